"""The publisher as a service: the composition root wires the ledger, the
platforms and the consumers; health, readiness, metrics and the moderators'
opt-out endpoints on its HTTP port. One running service for the module (its
start and stop cost seconds of consumer-group traffic)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.common import topics
from services.common.codec import encode, encode_key
from services.common.db import make_engine
from services.common.kafka import KafkaSettings, make_producer
from services.common.signing import SigningSettings
from services.publish.app import create_app
from services.publish.config import PublishSettings
from services.publish.spend import CallClass
from tests.helpers.sandbox import MASTODON_TOKEN, X_TOKEN, SandboxServer, live_sandbox
from tests.publish.helpers import KEYS, mention_for, request_factory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

API_KEY = "moderators-key-for-tests"
SIGNING = SigningSettings(keys=SecretStr(f"test:{KEYS.keys['test'].get_secret_value()}"))
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class Service:
    app: FastAPI
    client: TestClient
    kafka: KafkaSettings
    sandbox: SandboxServer
    db: Path


@pytest.fixture(scope="module")
def service(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("publish-app")
    kafka = KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        partitions=2,
        request_timeout_ms=5000,
    )
    with live_sandbox(tmp) as sandbox:
        settings = PublishSettings(
            database_url=f"sqlite+aiosqlite:///{tmp / 'ledger.db'}",
            x_api_base_url=sandbox.base_url,
            x_web_base_url=sandbox.base_url,
            x_access_token=SecretStr(X_TOKEN),
            mastodon_base_url=sandbox.base_url,
            mastodon_access_token=SecretStr(MASTODON_TOKEN),
            api_key=SecretStr(API_KEY),
            poll_timeout_ms=100,
            # Groups of their own: the session's broker may still hold members of
            # the default groups from an earlier test (a `make run` that was killed).
            group_id=f"publish-{kafka.topic_prefix}",
            mentions_group_id=f"publish-mentions-{kafka.topic_prefix}",
            consent_group_id=f"publish-consent-{kafka.topic_prefix}",
            pauses_group_id=f"publish-pauses-{kafka.topic_prefix}",
        )
        app = create_app(settings, kafka, signing=SIGNING)
        with TestClient(app) as client:
            yield Service(app, client, kafka, sandbox, tmp / "ledger.db")


async def _produce(kafka: KafkaSettings, records: list[tuple[str, bytes, str]]) -> None:
    producer = make_producer(kafka)
    await producer.start()
    try:
        for topic, value, key in records:
            await producer.send_and_wait(kafka.topic(topic), value, key=encode_key(key))
    finally:
        await producer.stop()


def test_health_readiness_and_metrics(service: Service) -> None:
    client = service.client
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["consumers"] == dict.fromkeys(
        ["replies", "mentions", "consent", "pauses", "take-downs", "actions", "watch"], "running"
    )
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["broker"]["connected"]
    assert ready.json()["database"]["connected"]
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "publish_replies_total" in metrics.text
    assert "publish_refusals_total" in metrics.text
    assert service.db.exists()  # created and migrated at start


def test_readiness_fails_when_the_database_is_gone(service: Service) -> None:
    ledger = service.app.state.runtime.ledger
    working = ledger.engine
    ledger.engine = make_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    try:
        ready = service.client.get("/readyz")
    finally:
        ledger.engine = working
    assert ready.status_code == 503
    database = ready.json()["database"]
    assert database["connected"] is False
    assert "Error" in database["error"]  # the exception's type and message
    assert service.client.get("/readyz").status_code == 200


def test_moderators_manage_the_opt_out_list(service: Service) -> None:
    client = service.client
    body = {"platform": "x", "author_id": "42", "handle": "asker", "recorded_by": "mod1",
            "reason": "asked by e-mail"}  # fmt: skip
    assert client.post("/v1/opt-outs", json=body).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.get("/v1/opt-outs", headers=wrong).status_code == 401

    created = client.post("/v1/opt-outs", json=body, headers=AUTH)
    assert (created.status_code, created.json()) == (201, {"added": True})
    again = client.post("/v1/opt-outs", json=body, headers=AUTH)
    assert (again.status_code, again.json()) == (200, {"added": False})
    bad = client.post("/v1/opt-outs", json={**body, "platform": "myspace"}, headers=AUTH)
    assert bad.status_code == 422

    [listed] = client.get("/v1/opt-outs", params={"platform": "x"}, headers=AUTH).json()
    assert (listed["author_id"], listed["source"], listed["recorded_by"]) == (
        "42",
        "moderator",
        "mod1",
    )
    assert client.get("/v1/opt-outs", params={"platform": "mastodon"}, headers=AUTH).json() == []

    assert client.delete("/v1/opt-outs/x/42", headers=AUTH).status_code == 204
    missing = client.delete("/v1/opt-outs/x/42", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_the_opt_out_endpoints_are_off_without_a_key(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = service.app.state.runtime
    monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(update={"api_key": None}))
    response = service.client.get("/v1/opt-outs", headers=AUTH)
    assert response.status_code == 403
    assert "PUBLISH_API_KEY" in response.json()["error"]["message"]


def test_a_requested_reply_goes_out_through_the_running_service(service: Service) -> None:
    """The composition root's consumers (real consumer groups): the mention is
    read from mentions.raw, the request from replies.requested, the post made."""
    request = request_factory()
    mention = mention_for(request)
    ledger = service.app.state.runtime.ledger
    asyncio.run(_produce(service.kafka, [(topics.MENTIONS_RAW, encode(mention), mention.id)]))
    deadline = time.monotonic() + 45
    while service.client.portal.call(ledger.snapshot, request).engagement is None:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the mention was never read"
        time.sleep(0.1)
    signed = KEYS.sign(topics.REPLIES_REQUESTED, encode(request))
    record = (topics.REPLIES_REQUESTED, signed, request.question_id)
    asyncio.run(_produce(service.kafka, [record]))
    posts: list[dict[str, Any]] = []
    while not posts:
        assert time.monotonic() < deadline, "the reply never went out"
        time.sleep(0.1)
        posts = httpx.get(f"{service.sandbox.base_url}/sandbox/posts").json()
    [post] = posts
    assert post["in_reply_to"] == request.in_reply_to


def test_a_dead_consumer_fails_liveness(service: Service) -> None:
    """Last in the module: it stops one of the service's consumers."""
    task = service.app.state.runtime.tasks["consent"]
    task.get_loop().call_soon_threadsafe(task.cancel)
    deadline = time.monotonic() + 10
    while not task.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    dead = service.client.get("/healthz")
    assert dead.status_code == 503
    assert dead.json()["consumers"]["consent"] == "cancelled"


def test_the_admin_page_shows_this_months_x_spend(service: Service) -> None:
    spend = service.app.state.runtime.spend
    portal = service.client.portal
    assert portal is not None
    portal.call(spend.record, CallClass.REPLY)
    assert service.client.get("/v1/spend").status_code == 401
    body = service.client.get("/v1/spend", headers=AUTH).json()
    assert body["month_by_class"]["reply"]["calls"] >= 1
    assert body["month_usd"] >= 0.01
    assert body["paused_until"] is None
    page = service.client.get("/admin/spend", auth=("admin", API_KEY))
    assert page.status_code == 200
    assert "This month&#x27;s X spend: $" in page.text or "This month's X spend: $" in page.text
    assert "reply" in page.text
    assert service.client.get("/admin/spend", auth=("admin", "wrong")).status_code == 401
