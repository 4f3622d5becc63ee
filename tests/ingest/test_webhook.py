"""POST /v1/mentions against a fake sink: every way the input can be wrong."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.common.messages import Source
from services.ingest.app import Overrides, create_app
from services.ingest.config import IngestSettings
from tests.ingest.helpers.sink import FakeSink

API_KEY = "test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {API_KEY}"}

Item = Callable[..., dict[str, Any]]


class NotReady:
    async def wait(self, timeout: float) -> bool:
        return False

    async def check(self) -> str | None:
        return "KafkaConnectionError: no brokers"


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink()


@pytest.fixture
def client(sink: FakeSink) -> Iterator[TestClient]:
    settings = IngestSettings(api_key=SecretStr(API_KEY), max_body_bytes=1_000_000)
    with TestClient(create_app(settings, overrides=Overrides(sink=sink))) as test_client:
        yield test_client


def post(client: TestClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post("/v1/mentions", json=body, headers=headers or AUTH)


def test_accepts_a_batch_and_produces_each_once(
    client: TestClient, sink: FakeSink, item_factory: Item
) -> None:
    items = [item_factory() for _ in range(100)]
    response = post(client, {"mentions": items})
    assert response.status_code == 202
    assert response.json() == {"accepted": 100, "duplicates": 0, "rejected": []}
    assert [m.id for m in sink.accepted] == [f"x:{i['id']}" for i in items]
    assert {m.source for m in sink.accepted} == {Source.WEBHOOK}

    again = post(client, {"mentions": items})
    assert again.json() == {"accepted": 0, "duplicates": 100, "rejected": []}
    assert len(sink.accepted) == 100


def test_duplicate_inside_one_batch_counts_once(
    client: TestClient, sink: FakeSink, item_factory: Item
) -> None:
    item = item_factory()
    response = post(client, {"mentions": [item, item]})
    assert response.json() == {"accepted": 1, "duplicates": 1, "rejected": []}


def test_bad_items_are_rejected_with_reasons_and_do_not_sink_the_rest(
    client: TestClient, sink: FakeSink, item_factory: Item
) -> None:
    good = item_factory()
    batch = [
        item_factory(text="   "),
        good,
        item_factory(author={"id": "1"}),
        item_factory(created_at="yesterday"),
        item_factory(platform="myspace"),
        item_factory(followers="many"),
        "not an object",
        item_factory(text=123),
        item_factory(created_at="2026-11-23T12:00:00"),
        item_factory(id="has spaces in it"),
        item_factory(created_at="2099-01-01T00:00:00Z"),
    ]
    response = post(client, {"mentions": batch})
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1
    reasons = {r["index"]: r["error"] for r in body["rejected"]}
    assert set(reasons) == set(range(len(batch))) - {1}
    assert "text: empty" in reasons[0]
    assert "author.handle: Field required" in reasons[2]
    assert "created_at" in reasons[3]
    assert "platform" in reasons[4]
    assert "followers: Extra inputs" in reasons[5]
    assert "must be a JSON object" in reasons[6]
    assert "text: Input should be a valid string" in reasons[7]
    assert "timezone" in reasons[8]
    assert "id" in reasons[9]
    assert "future" in reasons[10]
    assert [m.native_id for m in sink.accepted] == [good["id"]]


def test_text_is_normalised(client: TestClient, sink: FakeSink, item_factory: Item) -> None:
    post(client, {"mentions": [item_factory(text="  Cafe\u0301?\x00\x07 ", lang="EN")]})
    (mention,) = sink.accepted
    assert mention.text == "Café?"
    assert mention.lang == "en"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {API_KEY}"}],
)
def test_bad_token_is_401(client: TestClient, item_factory: Item, headers: dict[str, str]) -> None:
    response = client.post("/v1/mentions", json={"mentions": [item_factory()]}, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_oversized_body_is_413(client: TestClient) -> None:
    body = b'{"mentions": [' + b" " * 10 * 1024 * 1024 + b"]}"
    response = client.post(
        "/v1/mentions", content=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("content", "status", "fragment"),
    [
        (b"", 400, "empty request body"),
        (b"{not json", 400, "malformed JSON"),
        (b'{"mentions": [\xff\xfe]}', 400, "not valid UTF-8"),
        (b"[]", 422, "JSON object with a 'mentions' array"),
        (b'{"mentions": {}}', 422, "must be an array"),
        (b'{"mentions": []}', 422, "1 to 1000 items"),
    ],
)
def test_malformed_bodies_get_clear_errors(
    client: TestClient, content: bytes, status: int, fragment: str
) -> None:
    response = client.post(
        "/v1/mentions", content=content, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == status
    assert fragment in response.json()["error"]["message"]
    assert client.get("/healthz").status_code == 200  # and the service keeps running


def test_more_than_1000_items_is_422(client: TestClient, item_factory: Item) -> None:
    response = post(client, {"mentions": [item_factory() for _ in range(1001)]})
    assert response.status_code == 422


def test_wrong_content_type_is_415(client: TestClient, item_factory: Item) -> None:
    response = client.post(
        "/v1/mentions",
        content=json.dumps({"mentions": [item_factory()]}),
        headers={**AUTH, "Content-Type": "text/plain"},
    )
    assert response.status_code == 415


def test_broker_outage_is_503_and_a_retry_loses_nothing(
    client: TestClient, sink: FakeSink, item_factory: Item
) -> None:
    items = [item_factory() for _ in range(3)]
    sink.fail_submits = 1
    response = post(client, {"mentions": items})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert sink.accepted == []
    retry = post(client, {"mentions": items})
    assert retry.json()["accepted"] == 3


def test_replay_header_labels_the_source(
    client: TestClient, sink: FakeSink, item_factory: Item
) -> None:
    post(client, {"mentions": [item_factory()]}, headers={**AUTH, "X-Takeaction-Source": "replay"})
    assert sink.accepted[0].source is Source.REPLAY


def test_not_ready_is_503_and_health_reports_the_broker(sink: FakeSink, item_factory: Item) -> None:
    settings = IngestSettings(api_key=SecretStr(API_KEY))
    overrides = Overrides(sink=sink, ready=NotReady(), broker=NotReady())
    with TestClient(create_app(settings, overrides=overrides)) as client:
        response = post(client, {"mentions": [item_factory()]})
        assert response.status_code == 503
        health = client.get("/healthz")
        assert health.status_code == 200
        assert health.json()["broker"] == {
            "connected": False,
            "error": "KafkaConnectionError: no brokers",
        }
        assert client.get("/readyz").status_code == 503


def test_health_and_metrics(client: TestClient, item_factory: Item) -> None:
    assert client.get("/readyz").json()["status"] == "ok"
    post(client, {"mentions": [item_factory(), item_factory(text="")]})
    metrics = client.get("/metrics").text
    assert 'ingest_mentions_total{outcome="rejected",source="webhook"}' in metrics


def test_openapi_documents_the_webhook(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/mentions"]["post"]
    assert "requestBody" in operation
    assert {"202", "401", "413"} <= set(operation["responses"])


def test_a_background_task_that_dies_is_logged_and_fails_liveness(
    sink: FakeSink, caplog: pytest.LogCaptureFixture
) -> None:
    """A source that ended hears nothing more: /healthz says which, with a 503, so
    that the process is restarted."""
    started = threading.Event()

    async def source() -> None:
        started.set()
        await asyncio.Event().wait()

    async def explode() -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("boom in a source")

    settings = IngestSettings(api_key=SecretStr(API_KEY))
    overrides = Overrides(sink=sink, extra_tasks=[source, explode])
    with TestClient(create_app(settings, overrides=overrides)) as c:
        assert started.wait(5)
        deadline = time.monotonic() + 5
        while (health := c.get("/healthz")).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert health.status_code == 503
        assert health.json()["status"] == "dead"
        assert health.json()["tasks"] == {
            "extra-0": "running",
            "extra-1": "died: RuntimeError: boom in a source",
        }
        assert health.json()["broker"]["connected"] is True
    assert any("died" in r.getMessage() and r.exc_info for r in caplog.records)


def test_health_lists_the_running_tasks(client: TestClient) -> None:
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["tasks"] == {}


async def test_readiness_fails_once_the_dedupe_tail_has_died() -> None:
    from services.common.kafka import KafkaSettings  # noqa: PLC0415
    from services.ingest.dedupe import (  # noqa: PLC0415 - the class under test
        SeenIds,
        TailReadiness,
        TopicTail,
    )

    tail = TopicTail(KafkaSettings(), "t", SeenIds(60, 1000))
    tail.caught_up.set()

    async def dead() -> None:
        raise RuntimeError("tail crashed")

    task = asyncio.create_task(dead())
    await asyncio.sleep(0)
    with contextlib.suppress(RuntimeError):
        await task
    assert await TailReadiness(tail).wait(0) is True
    assert await TailReadiness(tail, task).wait(0) is False


def test_summoned_is_decided_against_the_configured_campaign_handles(
    sink: FakeSink, item_factory: Item
) -> None:
    settings = IngestSettings(api_key=SecretStr(API_KEY), campaign_handles=["takeaction_sandbox"])
    with TestClient(create_app(settings, overrides=Overrides(sink=sink))) as client:
        items = [
            item_factory(text="@takeaction_sandbox is school free in the camp?"),
            item_factory(text="is school free in the camp? #AskRefugees"),
            item_factory(
                text="is school free in the camp? #AskRefugees",
                entities={"mentions": [{"username": "takeaction_sandbox", "id": "1"}]},
            ),
        ]
        assert post(client, {"mentions": items}).json()["accepted"] == 3
    assert [m.summoned for m in sink.accepted] == [True, False, True]
