"""The processing core with fakes: no broker, no model, no faust."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from prometheus_client import REGISTRY

from services.common.codec import decode, encode
from services.common.kafka import KafkaSettings
from services.common.messages import DeadLetter, Decision, MentionClassified, MentionReceived
from services.triage.classifier.base import Prediction
from services.triage.worker.batch import BatchProcessor, Incoming, record_refused
from services.triage.worker.cache import PredictionCache
from tests.triage.worker.helpers import ABUSIVE, POISON, SPAM, FakeClassifier, FakeDecider, ListSink

NOW = datetime(2026, 11, 23, 12, 0, 5, tzinfo=UTC)
Factory = Callable[..., MentionReceived]


class Parts:
    def __init__(self, cache_size: int = 100) -> None:
        self.classifier = FakeClassifier()
        self.decider = FakeDecider()
        self.sink = ListSink()
        self.cache = PredictionCache(cache_size)
        self.sleeps: list[float] = []

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        async def run_inline(
            classifier: Any, texts: list[str], languages: list[str | None] | None = None
        ) -> list[Prediction]:
            result: list[Prediction] = classifier.classify(texts, languages)
            return result

        self.processor = BatchProcessor(
            kafka=KafkaSettings(topic_prefix="p."),
            classifier=self.classifier,
            decider=self.decider,
            cache=self.cache,
            sink=self.sink,
            now=lambda: NOW,
            run_classifier=run_inline,
            sleep=sleep,
        )

    def classified(self) -> list[MentionClassified]:
        return [decode(MentionClassified, r.value) for r in self.sink.on("p.mentions.classified")]

    def letters(self) -> list[DeadLetter]:
        return [decode(DeadLetter, r.value) for r in self.sink.on("p.mentions.raw.dlq")]


@pytest.fixture
def parts() -> Parts:
    return Parts()


def record(mention: MentionReceived, offset: int = 0) -> Incoming:
    return Incoming(
        key=mention.id.encode(), value=encode(mention), partition=0, offset=offset, timestamp=1.0
    )


def records(mentions: Sequence[MentionReceived]) -> list[Incoming]:
    return [record(m, i) for i, m in enumerate(mentions)]


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_classified_outputs_are_keyed_by_mention_id(
    parts: Parts, mention_factory: Factory
) -> None:
    mentions = [mention_factory() for _ in range(3)]
    report = await parts.processor.process(records(mentions))
    out = parts.sink.on("p.mentions.classified")
    assert [r.key for r in out] == [m.id.encode() for m in mentions]
    assert [c.mention for c in parts.classified()] == mentions
    assert {c.decision for c in parts.classified()} == {Decision.REVIEW}
    assert parts.sink.on("p.mentions.quarantined") == []
    assert (report.classified, report.quarantined, report.dead_lettered) == (3, 0, {})


async def test_a_quarantined_mention_goes_to_both_topics(
    parts: Parts, mention_factory: Factory
) -> None:
    bad = mention_factory(text=f"you {ABUSIVE}")
    await parts.processor.process(records([bad, mention_factory()]))
    quarantined = parts.sink.on("p.mentions.quarantined")
    assert [r.key for r in quarantined] == [bad.id.encode()]
    assert decode(MentionClassified, quarantined[0].value).decision is Decision.QUARANTINE
    assert bad.id in {c.mention.id for c in parts.classified()}


async def test_prejudged_mentions_skip_the_model(parts: Parts, mention_factory: Factory) -> None:
    spam = mention_factory(text=f"buy now {SPAM}")
    report = await parts.processor.process(records([spam]))
    assert parts.classifier.calls == []
    assert [c.decision for c in parts.classified()] == [Decision.DROP]
    assert report.prejudged == 1


async def test_a_batch_is_classified_in_one_call(parts: Parts, mention_factory: Factory) -> None:
    mentions = [mention_factory(text=f"question number {i}?") for i in range(10)]
    await parts.processor.process(records(mentions))
    assert len(parts.classifier.calls) == 1
    assert sorted(parts.classifier.calls[0]) == sorted(m.text for m in mentions)


async def test_duplicates_and_retweets_in_a_batch_are_classified_once(
    parts: Parts, mention_factory: Factory
) -> None:
    text = "what is school like in the camp?"
    mentions = [
        mention_factory(text=text),
        mention_factory(text=text),
        mention_factory(text=f"RT @amina: {text}"),
        mention_factory(text="something else?"),
    ]
    report = await parts.processor.process(records(mentions))
    assert parts.classifier.calls == [[text, "something else?"]]
    assert len(parts.classified()) == 4
    assert (report.cache_hits, report.model_texts) == (2, 2)


async def test_the_cache_answers_repeats_in_later_batches(
    parts: Parts, mention_factory: Factory
) -> None:
    text = "how do you spend your evenings?"
    await parts.processor.process(records([mention_factory(text=text)]))
    hits = sample("triage_cache_hits_total")
    report = await parts.processor.process(records([mention_factory(text=f"RT @x: {text}")]))
    assert len(parts.classifier.calls) == 1
    assert report.cache_hits == 1
    assert len(parts.classified()) == 2
    assert sample("triage_cache_hits_total") == hits + 1


async def test_without_a_cache_later_repeats_are_classified_again(
    mention_factory: Factory,
) -> None:
    parts = Parts(cache_size=0)
    await parts.processor.process(records([mention_factory(text="same?")]))
    await parts.processor.process(records([mention_factory(text="same?")]))
    assert parts.classifier.calls == [["same?"], ["same?"]]


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b'{"id": "x:1", "text": ', "malformed JSON"),
        (b"\xff\xfe not utf-8", "not valid UTF-8"),
        (b'{"id": "x:1", "text": "hello"}', "invalid MentionReceived"),
        (None, "tombstone"),
    ],
    ids=["bad-json", "bad-utf8", "wrong-schema", "tombstone"],
)
async def test_undecodable_records_are_dead_lettered_with_their_bytes(
    parts: Parts, mention_factory: Factory, raw: bytes | None, error: str
) -> None:
    good = mention_factory()
    before = sample("triage_dead_letters_total", {"stage": "decode"})
    broken = Incoming(key=b"some-key", value=raw, partition=1, offset=41)
    report = await parts.processor.process([broken, record(good, 42)])
    [letter] = parts.letters()
    assert letter.stage == "triage.decode"
    assert error in letter.error
    assert letter.topic == "mentions.raw"
    assert (letter.partition, letter.offset) == (1, 41)
    assert base64.b64decode(letter.value_b64) == (raw or b"")
    assert letter.key_b64 is not None
    assert base64.b64decode(letter.key_b64) == b"some-key"
    assert parts.sink.on("p.mentions.raw.dlq")[0].key == b"some-key"
    assert [c.mention.id for c in parts.classified()] == [good.id]
    assert report.dead_lettered == {"decode": 1}
    assert sample("triage_dead_letters_total", {"stage": "decode"}) == before + 1


async def test_a_failing_prejudge_dead_letters_that_mention_only(
    parts: Parts, mention_factory: Factory
) -> None:
    bad, good = mention_factory(), mention_factory()
    parts.decider.fail_prejudge_for.add(bad.id)
    await parts.processor.process(records([bad, good]))
    [letter] = parts.letters()
    assert (letter.stage, letter.error) == ("triage.prejudge", "KeyError: 'prejudge bug'")
    assert [c.mention.id for c in parts.classified()] == [good.id]


async def test_a_failing_model_text_dead_letters_that_mention_only(
    parts: Parts, mention_factory: Factory
) -> None:
    bad, good = mention_factory(), mention_factory()
    parts.decider.fail_text_for.add(bad.id)
    await parts.processor.process(records([bad, good]))
    [letter] = parts.letters()
    assert letter.stage == "triage.prepare"
    assert [c.mention.id for c in parts.classified()] == [good.id]


async def test_a_failing_decision_dead_letters_that_mention_only(
    parts: Parts, mention_factory: Factory
) -> None:
    bad, good = mention_factory(), mention_factory()
    parts.decider.fail_decide_for.add(bad.id)
    await parts.processor.process(records([bad, good]))
    [letter] = parts.letters()
    assert letter.stage == "triage.decide"
    assert "ZeroDivisionError" in letter.error
    assert base64.b64decode(letter.value_b64) == encode(bad)
    assert [c.mention.id for c in parts.classified()] == [good.id]


async def test_a_text_the_classifier_fails_on_is_isolated_by_bisection(
    parts: Parts, mention_factory: Factory
) -> None:
    mentions = [mention_factory(text=f"question {i}?") for i in range(8)]
    poisoned = mention_factory(text=f"a {POISON} question?")
    batch = [*mentions[:5], poisoned, *mentions[5:]]
    report = await parts.processor.process(records(batch))
    [letter] = parts.letters()
    assert letter.stage == "triage.classify"
    assert "ValueError" in letter.error
    assert base64.b64decode(letter.value_b64) == encode(poisoned)
    assert sorted(c.mention.id for c in parts.classified()) == sorted(m.id for m in mentions)
    assert report.dead_lettered == {"classify": 1}
    # 9 texts: one failing call per level on the poisoned path, well under one per text.
    assert len(parts.classifier.calls) <= 2 * 4 + 1


async def test_a_classifier_failing_once_loses_nothing(
    parts: Parts, mention_factory: Factory
) -> None:
    mentions = [mention_factory(text=f"question {i}?") for i in range(4)]
    parts.classifier.fail_next_calls = 1
    await parts.processor.process(records(mentions))
    assert parts.letters() == []
    assert len(parts.classified()) == 4
    assert [len(c) for c in parts.classifier.calls] == [4, 2, 2]


async def test_a_single_text_batch_survives_a_transient_classifier_failure(
    parts: Parts, mention_factory: Factory
) -> None:
    """One bad call on a batch of one must not dead-letter a good mention."""
    mention = mention_factory(text="what is school like?")
    parts.classifier.fail_next_calls = 1
    report = await parts.processor.process(records([mention]))
    assert parts.letters() == []
    assert [c.mention.id for c in parts.classified()] == [mention.id]
    assert report.dead_lettered == {}
    assert [len(c) for c in parts.classifier.calls] == [1, 1]


async def test_a_classifier_returning_too_few_predictions_is_a_failure(
    parts: Parts, mention_factory: Factory
) -> None:
    class Short(FakeClassifier):
        def classify(
            self, texts: Sequence[str], languages: Sequence[str | None] | None = None
        ) -> list[Prediction]:
            return super().classify(texts)[:-1]

    parts.processor.classifier = Short()
    await parts.processor.process(records([mention_factory(), mention_factory()]))
    letters = parts.letters()
    assert [letter.stage for letter in letters] == ["triage.classify"] * 2
    assert "ClassifierContractError" in letters[0].error
    assert parts.classified() == []


async def test_broker_trouble_is_retried_until_acknowledged(
    parts: Parts, mention_factory: Factory
) -> None:
    parts.sink.errors["mentions.classified"] = [
        KafkaTimeoutError(),
        KafkaConnectionError("down"),
        ProducerSendError("wrapped"),
    ]
    mention = mention_factory()
    report = await parts.processor.process(records([mention]))
    assert parts.sink.calls == 4
    assert parts.sleeps == [0.1, 0.25, 0.5]
    assert [c.mention.id for c in parts.classified()] == [mention.id]
    assert parts.letters() == []
    assert report.classified == 1


async def test_an_output_the_broker_refuses_dead_letters_its_input(
    parts: Parts, mention_factory: Factory
) -> None:
    bad, good = mention_factory(), mention_factory()
    parts.sink.errors["mentions.classified"] = [MessageSizeTooLargeError()]
    report = await parts.processor.process(records([bad, good]))
    [letter] = parts.letters()
    assert letter.stage == "triage.produce"
    assert "MessageSizeTooLargeError" in letter.error
    assert base64.b64decode(letter.value_b64) == encode(bad)
    assert [c.mention.id for c in parts.classified()] == [good.id]
    assert report.classified == 1
    assert parts.sleeps == []


async def test_a_refused_dead_letter_is_reported_lost(
    parts: Parts, mention_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    parts.sink.errors["mentions.raw.dlq"] = [MessageSizeTooLargeError()]
    broken = Incoming(key=None, value=b"{", partition=3, offset=7)
    report = await parts.processor.process([broken, record(mention_factory())])
    assert report.lost == 1
    assert parts.letters() == []
    assert len(parts.classified()) == 1
    assert "[3]@7" in caplog.text


async def test_an_empty_batch_does_nothing(parts: Parts) -> None:
    report = await parts.processor.process([])
    assert report.size == 0
    assert parts.sink.calls == 0


async def test_dead_letter_all_sends_every_record_of_the_batch(
    parts: Parts, mention_factory: Factory
) -> None:
    batch = records([mention_factory(), mention_factory()])
    assert await parts.processor.dead_letter_all(batch, "RuntimeError: bug")
    letters = parts.letters()
    assert [letter.stage for letter in letters] == ["triage.worker"] * 2
    assert [letter.offset for letter in letters] == [0, 1]


async def test_end_to_end_latency_is_observed_per_record(
    parts: Parts, mention_factory: Factory
) -> None:
    before = sample("triage_end_to_end_seconds_count")
    await parts.processor.process(records([mention_factory(), mention_factory()]))
    assert sample("triage_end_to_end_seconds_count") == before + 2


@pytest.mark.parametrize(
    ("error", "refused"),
    [
        (MessageSizeTooLargeError(), True),
        (ProducerSendError("x"), False),
        (KafkaTimeoutError(), False),
        (KafkaConnectionError(), False),
        (OSError("reset"), False),
        (TypeError("key must be bytes"), True),
    ],
)
def test_record_refused(error: BaseException, refused: bool) -> None:
    assert record_refused(error) is refused


def test_record_refused_looks_through_wrapping() -> None:
    outer = ProducerSendError("wrapped")
    outer.__cause__ = MessageSizeTooLargeError()
    assert record_refused(outer)
