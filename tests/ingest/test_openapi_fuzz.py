"""Schemathesis against ingest's OpenAPI description (the webhook and its
neighbours), served for real with a fake sink, with the API key and without:
no request it makes gets a 5xx (issue 17)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from services.ingest.app import Overrides, create_app
from services.ingest.config import IngestSettings
from tests.helpers.fuzz import server_errors
from tests.helpers.live import served
from tests.ingest.helpers.sink import FakeSink

pytestmark = pytest.mark.timeout(180)

API_KEY = "fuzz-key-0123456789abcdef"


@pytest.mark.parametrize("signed", [True, False], ids=["api-key", "anonymous"])
def test_no_request_gets_a_server_error(signed: bool) -> None:
    settings = IngestSettings(api_key=SecretStr(API_KEY), max_body_bytes=1_000_000)
    app = create_app(settings, overrides=Overrides(sink=FakeSink()))
    with served(app) as server:
        headers = {"Authorization": f"Bearer {API_KEY}"} if signed else {}
        found = server_errors(app.openapi(), server.base_url, headers=headers, examples=25)
    assert found == [], "\n".join(found)
