"""A bounded Schemathesis run against a live service: every operation of its
OpenAPI description, a few generated requests each (valid and invalid), as one
signed-in person; what answered 5xx (or did not answer) is returned, not raised,
so one run reports every finding at once.

Deterministic (``derandomize``) and without Hypothesis's example database: the
same requests every run, nothing written under the repository."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Err

#: Status of every request made, all runs of the process (how much they covered).
calls: list[int] = []
#: Requests generated per operation (and per person): the run stays well under a minute.
EXAMPLES = 6


def server_errors(
    spec: Mapping[str, Any],
    base_url: str,
    *,
    headers: Mapping[str, str],
    skip: Callable[[str, str], bool] = lambda _method, _path: False,
    known: Mapping[str, list[str]] | None = None,
    examples: int = EXAMPLES,
) -> list[str]:
    """``method path -> status`` of each generated request that got a 5xx or no answer.
    ``known``: real values of path parameters (question ids, team slugs), drawn
    instead of generated ones half the time, so requests get past the 404s."""
    schema = schemathesis.openapi.from_dict(dict(spec))
    found: list[str] = []
    session = requests.Session()
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # an operation the description gets wrong is a finding too
            found.append(f"invalid operation: {result.err()}")
            continue
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if not skip(operation.method.upper(), operation.path):
            _fuzz(
                operation,
                label,
                base_url,
                session,
                dict(headers),
                dict(known or {}),
                examples,
                found,
            )
    session.close()
    return sorted(set(found))


def ignore(*parts: str) -> Callable[[str, str], bool]:
    """A ``skip`` for the paths containing any of ``parts`` (live streams, logout)."""

    def skip(_method: str, path: str) -> bool:
        return any(part in path for part in parts)

    return skip


def _fuzz(  # noqa: PLR0917 - one private call site
    operation: Any,
    label: str,
    base_url: str,
    session: requests.Session,
    headers: dict[str, str],
    known: dict[str, list[str]],
    examples: int,
    found: list[str],
) -> None:
    @given(case=operation.as_strategy(), data=st.data())
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any, data: st.DataObject) -> None:
        for name in list(case.path_parameters or {}):
            if known.get(name) and data.draw(st.booleans()):
                case.path_parameters[name] = data.draw(st.sampled_from(known[name]))
        try:
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=20)
        except requests.RequestException as exc:
            found.append(f"{label} -> {type(exc).__name__}")
            return
        calls.append(response.status_code)
        if response.status_code >= 500:
            found.append(f"{label} -> {response.status_code} {response.text[:200]}")

    run()
