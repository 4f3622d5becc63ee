"""The spike soak's plan: a sustained lead-in, the burst, the sustained rest."""

from __future__ import annotations

import pytest

from tests.bench.soak_spike import phases


def test_make_soak_spike_bursts_for_ten_minutes_between_sustained_phases() -> None:
    assert phases(900, 600, 5.0) == [(180.0, 1.0), (600, 5.0), (120.0, 1.0)]


def test_without_a_burst_length_the_spike_is_a_fifth_of_the_run() -> None:
    plan = phases(600, None, 5.0)
    assert plan == [(120.0, 1.0), (120.0, 5.0), (pytest.approx(360.0), 1.0)]


def test_a_burst_to_the_end_leaves_no_rest_phase() -> None:
    assert phases(100, 80, 3.0) == [(20.0, 1.0), (80, 3.0)]
