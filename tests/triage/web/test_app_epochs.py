"""The web's stream side wires the outbox to the producer's epoch watch: a broker
that came back empty (also while the web was down) has the commands awaiting an
outcome sent again (no broker here: the producer is never started)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel

from services.common import topics
from services.common.kafka import KafkaSettings, ResendingProducer
from services.triage.web import app as web_app
from services.triage.web.config import WebSettings
from tests.triage.web.helpers.store import FakeClock, migrated_store

pytestmark = pytest.mark.timeout(60)


async def test_a_new_epoch_requeues_the_outbox_through_the_producers_watch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_topics(*args: Any, **kwargs: Any) -> None:
        return None

    async def made(make: Any, *, timeout_s: float) -> Any:
        return make()  # not started: no broker

    monkeypatch.setattr(web_app, "ensure_topics", no_topics)
    monkeypatch.setattr(web_app, "start_when_reachable", made)
    kafka = KafkaSettings(resend_log=tmp_path / "sent.db")
    settings = WebSettings(consume=False)
    async with (
        migrated_store("sqlite", tmp_path, FakeClock()) as store,
        contextlib.AsyncExitStack() as stack,
    ):
        runs = await web_app._kafka_side(settings, kafka, store, SimpleNamespace(), stack)  # type: ignore[arg-type]
        producer = runs["outbox"].__self__.producer  # type: ignore[attr-defined]
        assert isinstance(producer, ResendingProducer)
        [callback] = producer.epoch.log_callbacks
        async with store.sessions() as session:
            store.db.enqueue(session, topics.CONSENT_WITHDRAWN, "s1", Withdrawal(speaker_ref="s1"))
            await session.commit()

        async def send(rows: Any) -> None:
            return None

        assert await store.outbox.relay(send) == 1
        assert await store.outbox.backlog() == 0
        await callback("e1", "e2")
        assert await store.outbox.backlog() == 1  # sent again by the relay


class Withdrawal(BaseModel):
    speaker_ref: str
