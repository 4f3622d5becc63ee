"""The faust agent: ``agent.test_context()`` without a broker, then the real
worker against the session's Kafka-protocol broker (Tansu)."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError
from pydantic import SecretStr

from services.common.codec import decode, encode
from services.common.epoch import SentLog
from services.common.kafka import KafkaSettings, make_producer
from services.common.messages import DeadLetter, Decision, MentionClassified, MentionReceived
from services.devstack.broker import free_port
from services.triage.worker.agents import FaustSink
from services.triage.worker.app import (
    FETCH_MAX_WAIT_MS,
    TriageWorker,
    create_worker,
    ensure_worker_topics,
    faust_settings,
)
from services.triage.worker.batch import BatchProcessor, Outgoing
from services.triage.worker.config import WorkerSettings
from tests.helpers import ROOT
from tests.helpers.kafka import read_all
from tests.publish.helpers import request_factory
from tests.triage.worker.helpers import (
    ABUSIVE,
    POISON,
    FakeClassifier,
    FakeDecider,
    ListSink,
)
from tests.triage.worker.stream_worker_main import TEST_FAUST

Factory = Callable[..., MentionReceived]
Maker = Callable[..., TriageWorker]


def close_idle_consumer(worker: TriageWorker) -> None:
    """test_context creates faust's consumer (and its thread's event loop) but never
    starts it; close that loop so it is not reported as leaked."""
    consumer = worker.app._consumer
    thread = getattr(consumer, "_thread", None) if consumer is not None else None
    loop = getattr(thread, "thread_loop", None)
    if loop is not None and not loop.is_running() and not loop.is_closed():
        loop.close()


@pytest.fixture
def make_worker(tmp_path: Path) -> Iterator[Maker]:
    created: list[TriageWorker] = []

    def make(
        kafka: KafkaSettings | None = None,
        *,
        classifier: FakeClassifier | None = None,
        decider: FakeDecider | None = None,
        sink: ListSink | None = None,
        batch_size: int = 10,
        web_port: int | None = None,
        group: str | None = None,
    ) -> TriageWorker:
        settings = WorkerSettings(
            worker_group=group or f"triage-test-{uuid.uuid4().hex[:8]}",
            batch_size=batch_size,
            batch_within_s=0.02,
        )
        worker = create_worker(
            settings,
            kafka or KafkaSettings(topic_prefix="ctx."),
            classifier=classifier or FakeClassifier(),
            decider=decider or FakeDecider(),
            sink=sink,
            web_enabled=web_port is not None,
            web_port=web_port,
            web_bind="127.0.0.1",
            datadir=tmp_path / settings.worker_group,
            faust_overrides=TEST_FAUST,
        )
        created.append(worker)
        return worker

    yield make
    for worker in created:
        close_idle_consumer(worker)


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


# --- agent.test_context() ------------------------------------------------------------


async def test_agent_classifies_and_acks(make_worker: Maker, mention_factory: Factory) -> None:
    sink = ListSink()
    worker = make_worker(sink=sink)
    mention = mention_factory()
    async with worker.agent.test_context() as agent:
        event = await agent.put(encode(mention), key=mention.id.encode())
        await eventually(lambda: event.message.acked)
    [out] = sink.records
    assert out.topic == "ctx.mentions.classified"
    assert out.key == mention.id.encode()
    assert decode(MentionClassified, out.value).mention == mention


async def test_a_requested_reply_marks_its_mention_s_cluster_answered(
    make_worker: Maker, mention_factory: Factory
) -> None:
    decider = FakeDecider()
    worker = make_worker(decider=decider)
    mention = mention_factory()
    request = request_factory(
        mention_id=mention.id, in_reply_to=mention.native_id, platform=mention.platform
    )
    async with worker.approvals_agent.test_context() as agent:
        bad = await agent.put(b"{not json", key=b"q-1")
        good = await agent.put(encode(request), key=request.question_id.encode())
        await eventually(lambda: bad.message.acked and good.message.acked)
    assert decider.approved == [mention.id]


async def test_agent_dead_letters_a_malformed_record_and_goes_on(
    make_worker: Maker, mention_factory: Factory
) -> None:
    sink = ListSink()
    worker = make_worker(sink=sink)
    mention = mention_factory()
    async with worker.agent.test_context() as agent:
        bad = await agent.put(b"\xc3\x28 not utf-8", key=b"k1")
        await eventually(lambda: bad.message.acked)
        good = await agent.put(encode(mention), key=mention.id.encode())
        await eventually(lambda: good.message.acked)
    [letter] = [decode(DeadLetter, r.value) for r in sink.on("ctx.mentions.raw.dlq")]
    assert letter.stage == "triage.decode"
    assert base64.b64decode(letter.value_b64) == b"\xc3\x28 not utf-8"
    assert [r.key for r in sink.on("ctx.mentions.classified")] == [mention.id.encode()]


async def test_agent_dead_letters_a_batch_it_cannot_process(
    make_worker: Maker, mention_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = ListSink()
    worker = make_worker(sink=sink)
    calls = 0
    real = BatchProcessor.process

    async def buggy(self: BatchProcessor, batch: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        return await real(self, batch)

    monkeypatch.setattr(BatchProcessor, "process", buggy)
    first, second = mention_factory(), mention_factory()
    async with worker.agent.test_context() as agent:
        event = await agent.put(encode(first), key=first.id.encode())
        await eventually(lambda: event.message.acked)
        later = await agent.put(encode(second), key=second.id.encode())
        await eventually(lambda: later.message.acked)
    [letter] = [decode(DeadLetter, r.value) for r in sink.on("ctx.mentions.raw.dlq")]
    assert (letter.stage, letter.error) == ("triage.worker", "RuntimeError: a bug")
    assert base64.b64decode(letter.value_b64) == encode(first)
    assert [r.key for r in sink.on("ctx.mentions.classified")] == [second.id.encode()]


async def test_agent_leaves_a_batch_unacked_when_even_its_dead_letters_fail(
    make_worker: Maker, mention_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = ListSink()
    worker = make_worker(sink=sink)

    async def buggy(self: BatchProcessor, batch: Any) -> Any:
        raise RuntimeError("a bug")

    async def broken_sink(records: Any) -> Any:
        raise RuntimeError("and a broken sink")

    monkeypatch.setattr(BatchProcessor, "process", buggy)
    monkeypatch.setattr(sink, "send", broken_sink)
    mention = mention_factory()
    async with worker.agent.test_context() as agent:
        event = await agent.put(encode(mention), key=mention.id.encode())
        await asyncio.sleep(0.3)
        assert not event.message.acked
        assert not agent._crashed.is_set()  # the agent is still running


def test_faust_settings_at_least_once_without_idempotence() -> None:
    conf = faust_settings(
        WorkerSettings(batch_size=64, worker_port=8123),
        KafkaSettings(bootstrap_servers="k1:9092, k2:9093"),
    )
    assert conf["broker"] == ["kafka://k1:9092", "kafka://k2:9093"]
    assert conf["producer_acks"] == -1
    assert conf["processing_guarantee"] == "at_least_once"
    assert conf["value_serializer"] == conf["key_serializer"] == "raw"
    assert conf["stream_buffer_maxsize"] == 256
    assert conf["web_port"] == 8123
    assert conf["broker_credentials"] is None


def test_faust_settings_carry_sasl_credentials() -> None:
    conf = faust_settings(
        WorkerSettings(),
        KafkaSettings(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_username="triage",
            sasl_password=SecretStr("s3cret-s3cret-s3cret"),
        ),
    )
    credentials = conf["broker_credentials"]
    assert credentials.username == "triage"
    assert credentials.password == "s3cret-s3cret-s3cret"
    assert credentials.mechanism.value == "SCRAM-SHA-256"


# --- through the broker --------------------------------------------------------------


@asynccontextmanager
async def running(worker: TriageWorker) -> AsyncIterator[TriageWorker]:
    await worker.app.start()
    try:
        yield worker
    finally:
        await worker.app.stop()


async def produce_raw(
    kafka: KafkaSettings, records: list[tuple[bytes | None, bytes | None]]
) -> None:
    producer = make_producer(kafka)
    await producer.start()
    try:
        topic = kafka.topic("mentions.raw")
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def produce_mentions(kafka: KafkaSettings, mentions: list[MentionReceived]) -> None:
    await produce_raw(kafka, [(m.id.encode(), encode(m)) for m in mentions])


async def wait_for_keys(
    kafka: KafkaSettings, topic: str, keys: set[bytes], timeout_s: float = 30.0
) -> list[Any]:
    """Records of ``topic`` once every key in ``keys`` is there (duplicates kept)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await read_all(kafka, kafka.topic(topic))
        if keys <= {r.key for r in found}:
            return found
        if time.monotonic() > deadline:
            missing = keys - {r.key for r in found}
            raise AssertionError(f"{len(missing)} keys never reached {topic}")
        await asyncio.sleep(0.2)


@pytest.mark.integration
async def test_worker_through_the_broker(
    make_worker: Maker, kafka_settings: KafkaSettings, mention_factory: Factory
) -> None:
    await ensure_worker_topics(kafka_settings)
    good = [mention_factory(text=f"what is your favourite food? {i}") for i in range(6)]
    abusive = mention_factory(text=f"you {ABUSIVE}")
    retweet = mention_factory(text=f"RT @someone: {good[0].text}")
    malformed: list[tuple[bytes | None, bytes | None]] = [
        (b"bad-json", b'{"id": '),
        (b"bad-utf8", b"\xff\xfe\xfd"),
        (b"bad-schema", b'{"id": "x:1", "text": "hello"}'),
        (b"tombstone", None),
    ]
    await produce_mentions(kafka_settings, good[:3])
    await produce_raw(kafka_settings, malformed)
    await produce_mentions(kafka_settings, [*good[3:], abusive, retweet])
    classifier = FakeClassifier()
    port = free_port()
    async with running(make_worker(kafka_settings, classifier=classifier, web_port=port)) as w:
        # faust hard-codes a 1500 ms fetch wait; ours bounds latency on Tansu.
        assert w.app.consumer._thread._consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS
        all_ids = {m.id.encode() for m in [*good, abusive, retweet]}
        classified = await wait_for_keys(kafka_settings, "mentions.classified", all_ids)
        letters = await wait_for_keys(
            kafka_settings, "mentions.raw.dlq", {k for k, _ in malformed if k}
        )
        quarantined = await wait_for_keys(
            kafka_settings, "mentions.quarantined", {abusive.id.encode()}
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            health = await http.get("/healthz")
            ready = await http.get("/readyz")
            scraped = await http.get("/metrics")
            alive = w.health.dead()
            w.health.dead = lambda: ["faust's consumer thread died"]  # type: ignore[method-assign]
            dead = await http.get("/healthz")
    for record in classified:
        message = decode(MentionClassified, record.value)
        assert record.key == message.mention.id.encode()
    assert [decode(MentionClassified, r.value).decision for r in quarantined] == [
        Decision.QUARANTINE
    ]
    by_key = {r.key: decode(DeadLetter, r.value) for r in letters}
    for key, value in malformed:
        assert key is not None
        assert by_key[key].stage == "triage.decode"
        assert base64.b64decode(by_key[key].value_b64) == (value or b"")
    assert retweet.text not in classifier.texts_seen  # answered from the cache or its twin
    assert (health.status_code, ready.status_code) == (200, 200)
    assert alive == []  # the real app, running: not dead
    assert (dead.status_code, dead.json()["status"]) == (503, "dead")
    assert ready.json() == {"status": "ready"}
    assert "triage_messages_in_total" in scraped.text
    assert scraped.headers["content-type"].startswith("text/plain")


@pytest.mark.integration
async def test_a_failing_classifier_call_only_dead_letters_what_truly_fails(
    make_worker: Maker, kafka_settings: KafkaSettings, mention_factory: Factory
) -> None:
    await ensure_worker_topics(kafka_settings)
    fine = [mention_factory(text=f"question {i}?") for i in range(12)]
    poisoned = mention_factory(text=f"{POISON}?")
    await produce_mentions(kafka_settings, [*fine[:6], poisoned, *fine[6:]])
    classifier = FakeClassifier()
    classifier.fail_next_calls = 1  # and the poisoned text fails every time
    async with running(make_worker(kafka_settings, classifier=classifier, batch_size=64)):
        await wait_for_keys(kafka_settings, "mentions.classified", {m.id.encode() for m in fine})
        [letter] = await wait_for_keys(kafka_settings, "mentions.raw.dlq", {poisoned.id.encode()})
    dead = decode(DeadLetter, letter.value)
    assert dead.stage == "triage.classify"
    assert base64.b64decode(dead.value_b64) == encode(poisoned)
    classified = await read_all(kafka_settings, kafka_settings.topic("mentions.classified"))
    assert poisoned.id.encode() not in {r.key for r in classified}


def start_worker_process(
    kafka: KafkaSettings, group: str, stall_file: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "KAFKA_PARTITIONS": str(kafka.partitions),
        "TRIAGE_WORKER_GROUP": group,
        "TRIAGE_BATCH_SIZE": "10",
        "TRIAGE_BATCH_WITHIN_S": "0.02",
        "FAKE_PER_TEXT_S": "0.002",
        "FAKE_STALL_ON_CALL": "4",
        "FAKE_STALL_FILE": str(stall_file),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.triage.worker.stream_worker_main"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )


@pytest.mark.integration
async def test_nothing_is_lost_when_the_worker_is_killed_mid_batch(
    make_worker: Maker, kafka_settings: KafkaSettings, mention_factory: Factory, tmp_path: Path
) -> None:
    await ensure_worker_topics(kafka_settings)
    mentions = [mention_factory(text=f"how are the winters there? #{i}") for i in range(150)]
    keys = {m.id.encode() for m in mentions}
    await produce_mentions(kafka_settings, mentions)
    group = f"triage-kill-{uuid.uuid4().hex[:8]}"
    stall_file = tmp_path / "stalled"
    process = start_worker_process(kafka_settings, group, stall_file)
    try:
        deadline = time.monotonic() + 30
        while not stall_file.exists():  # the 4th batch is in the "model" now
            assert process.poll() is None, "the worker process died on its own"
            assert time.monotonic() < deadline, "the worker process never got to its 4th batch"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # several commit intervals: whatever was acked is committed
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=10)
    before = await read_all(kafka_settings, kafka_settings.topic("mentions.classified"))
    assert 0 < len({r.key for r in before}) < len(mentions), "not killed mid-stream"

    async with running(make_worker(kafka_settings, group=group, batch_size=50)):
        classified = await wait_for_keys(kafka_settings, "mentions.classified", keys, 20)
    assert {r.key for r in classified} == keys  # none lost; duplicates allowed


def test_cli_refuses_an_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    from services.triage.__main__ import main  # noqa: PLC0415 - imports the composition root

    with pytest.raises(SystemExit) as exited:
        main(["bogus"])
    assert exited.value.code == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err


class _Producer:
    """faust's producer as FaustSink uses it: send() gives a future of the ack."""

    def __init__(self, log: SentLog, fail_on: bytes) -> None:
        self.log = log
        self.fail_on = fail_on
        self.logged_before_send: list[int] = []

    async def send(self, topic: str, key: bytes | None, value: bytes, *_: Any) -> Any:
        self.logged_before_send.append(len(self.log))
        if key == self.fail_on:
            raise KafkaConnectionError("down")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


async def test_the_sink_writes_a_batch_to_the_sent_log_before_sending_any_of_it(
    tmp_path: Path,
) -> None:
    log = SentLog(tmp_path / "sent.db", window_s=60)
    producer = _Producer(log, fail_on=b"k1")
    sink = FaustSink(SimpleNamespace(producer=producer), log)
    records = [Outgoing("t.mentions.classified", f"k{n}".encode(), b"v", n) for n in range(3)]
    results = await sink.send(records)
    assert results[0] is None
    assert results[2] is None
    assert isinstance(results[1], KafkaConnectionError)
    assert producer.logged_before_send == [3, 3, 3]
    assert [sent.key for sent in log.window()] == [b"k0", b"k1", b"k2"]
