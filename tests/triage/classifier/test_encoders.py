"""The encoders: shape, normalisation, and what the multilingual one is for — a
translation sits closer to its original than an unrelated text (few texts: the
machines are shared)."""

from __future__ import annotations

import numpy as np
import pytest

from services.triage.classifier.encoders import E5Encoder, MiniLMEncoder, TextEncoder

INSULT = ["You are a disgusting parasite", "Du bist ein ekelhafter Parasit"]
OTHER = "When does the school in the camp open again?"


@pytest.fixture(scope="module")
def e5() -> E5Encoder:
    return E5Encoder(num_threads=1)


def test_e5_gives_normalised_384_dimension_rows(e5: E5Encoder) -> None:
    rows = e5.encode([*INSULT, OTHER])
    assert rows.shape == (3, 384)
    assert rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert e5.encode([]).shape == (0, 384)


def test_e5_puts_a_translation_closer_than_an_unrelated_text(e5: E5Encoder) -> None:
    english, german, other = e5.encode([*INSULT, OTHER])
    assert float(english @ german) > float(english @ other) + 0.1


def test_both_encoders_meet_the_interface() -> None:
    minilm: TextEncoder = MiniLMEncoder()
    rows = minilm.encode([*INSULT, OTHER])
    assert rows.shape == (3, minilm.dim)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
