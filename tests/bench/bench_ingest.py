"""Ingest throughput, against a baseline measured in the same run.

    python -m tests.bench.bench_ingest [--mentions 20000] [--batch 500]

Starts a Tansu broker and the real ingest service (a subprocess, as in
``make run``), then measures, on the same machine and the same mentions:

- ``raw_produce``: aiokafka producing the encoded mentions straight to the
  broker (send + await all) — the floor cost of getting bytes into Kafka;
- ``webhook``: the same mentions through ``POST /v1/mentions`` (HTTP, JSON
  parse, per-item validation, normalisation, dedupe, produce, ack).

Prints mentions/s for each and ``RATIO webhook/raw_produce <value>``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from services.common.bootstrap import ensure_topics
from services.common.codec import encode, encode_key
from services.common.kafka import KafkaSettings, make_producer
from services.common.messages import MentionReceived, Source, utcnow
from services.common.topics import ALL_TOPICS, TopicSpec
from services.devstack.broker import EmbeddedBroker, free_port
from services.ingest.domain import parse_item, to_mention

ROOT = Path(__file__).resolve().parents[2]


def items(count: int, run: str) -> list[dict[str, object]]:
    return [
        {
            "platform": "x",
            "id": f"{run}-{n}",
            "author": {"id": str(n % 5000), "handle": f"asker{n % 5000}", "followers": n % 977},
            "text": f"@TakeActionCamps what is school like in Kakuma? What do you dream of? #{n}",
            "created_at": datetime(2026, 11, 23, 12, 0, tzinfo=UTC).isoformat(),
            "lang": "en",
        }
        for n in range(count)
    ]


async def raw_produce(kafka: KafkaSettings, batch: list[dict[str, object]]) -> float:
    mentions = [
        to_mention(parse_item(i), source=Source.WEBHOOK, received_at=utcnow()) for i in batch
    ]
    producer = make_producer(kafka)
    await producer.start()
    try:
        start = time.perf_counter()
        futures = [
            await producer.send(kafka.topic("bench.raw"), encode(m), key=encode_key(m.id))
            for m in mentions
        ]
        await asyncio.gather(*futures)
        return len(mentions) / (time.perf_counter() - start)
    finally:
        await producer.stop()


async def webhook(url: str, key: str, batch: list[dict[str, object]], size: int) -> float:
    async with httpx.AsyncClient(timeout=60) as client:
        start = time.perf_counter()
        accepted = 0
        for i in range(0, len(batch), size):
            response = await client.post(
                f"{url}/v1/mentions",
                json={"mentions": batch[i : i + size]},
                headers={"Authorization": f"Bearer {key}"},
            )
            response.raise_for_status()
            accepted += response.json()["accepted"]
        elapsed = time.perf_counter() - start
    assert accepted == len(batch), f"only {accepted} of {len(batch)} accepted"
    return len(batch) / elapsed


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("ingest did not become ready")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mentions", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()

    with EmbeddedBroker(free_port(), log_path=ROOT / "var" / "log" / "bench-broker.log") as broker:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        asyncio.run(
            ensure_topics(kafka, [*ALL_TOPICS, TopicSpec("bench.raw", MentionReceived, "id")])
        )
        port, key = free_port(), uuid.uuid4().hex
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "INGEST_PORT": str(port),
            "INGEST_API_KEY": key,
            "LOG_LEVEL": "WARNING",
        }
        ingest = subprocess.Popen([sys.executable, "-m", "services.ingest"], env=env, cwd=ROOT)
        profiler = None
        if os.environ.get("BENCH_PROFILE"):  # py-spy samples of the ingest process
            profiler = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(ingest.pid),
                    "--format",
                    "raw",
                    "-o",
                    os.environ["BENCH_PROFILE"],
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url)
            run = uuid.uuid4().hex[:8]
            raw_rate = asyncio.run(raw_produce(kafka, items(args.mentions, run + "r")))
            hook_rate = asyncio.run(webhook(url, key, items(args.mentions, run + "w"), args.batch))
        finally:
            ingest.terminate()
            ingest.wait(30)
            if profiler is not None:
                profiler.wait(30)
    print(f"ingest: {args.mentions} mentions, batches of {args.batch}")
    print(f"raw_produce   {raw_rate:10.0f} mentions/s")
    print(f"webhook       {hook_rate:10.0f} mentions/s")
    print(f"RATIO webhook/raw_produce {hook_rate / raw_rate:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
