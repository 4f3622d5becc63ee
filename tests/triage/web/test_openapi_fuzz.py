"""Schemathesis against the triage web's OpenAPI description, served for real
(uvicorn, seeded), signed in as each role: no request it makes gets a 5xx
(issue 17). Live streams and logout are left out (a stream never ends; a logout
would end the run's own session)."""

from __future__ import annotations

import pytest
import requests

from tests.helpers.fuzz import ignore, server_errors
from tests.triage.web.helpers.app import ADMIN, MODERATOR, TEAM_A, TEAMS, Person, WebApp

pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("person", [ADMIN, MODERATOR, TEAM_A], ids=lambda p: p.role.value)
def test_no_request_gets_a_server_error(live_web: WebApp, person: Person) -> None:
    signed = requests.post(
        f"{live_web.base_url}/api/token",
        data={"username": person.username, "password": person.password},
        timeout=30,
    )
    assert signed.status_code == 200, signed.text
    headers = {"Authorization": f"Bearer {signed.json()['access_token']}"}
    spec = live_web.app.openapi()
    found = server_errors(
        spec,
        live_web.base_url,
        headers=headers,
        skip=ignore("/stream", "/api/events", "/api/logout"),
        known={
            "question_id": list(live_web.questions.values()),
            "slug": [slug for slug, *_ in TEAMS],
        },
    )
    assert found == [], "\n".join(found)
