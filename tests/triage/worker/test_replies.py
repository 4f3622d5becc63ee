"""The reply processing core with fakes (no broker, no model): replies under our
answers are judged with the mention classifier and produced keyed by the answer;
what cannot be decoded or classified is dead-lettered, and the rest goes on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.common.codec import decode, encode
from services.common.messages import DeadLetter, ReplyClassified, ReplyReceived, ReplyVerdict
from services.triage.rules import RulesFile
from services.triage.worker import replies as replies_module
from services.triage.worker.batch import Incoming
from services.triage.worker.replies import ReplyProcessor
from tests.helpers.replies import NOW, reply_received
from tests.triage.worker.helpers import ABUSIVE, POISON
from tests.triage.worker.test_batch import Parts

RULES = Path(__file__).resolve().parents[3] / "services" / "triage" / "rules.yaml"


def reply(native: str, text: str) -> ReplyReceived:
    return reply_received(native, text=text, speaker_ref="speaker-1")


def incoming(value: bytes, offset: int) -> Incoming:
    return Incoming(key=b"8001", value=value, partition=0, offset=offset)


def processor(parts: Parts) -> ReplyProcessor:
    return ReplyProcessor(batch=parts.processor, rules=RulesFile(RULES), now=lambda: NOW)


async def test_replies_are_judged_and_keyed_by_their_answer() -> None:
    parts = Parts()
    batch = [reply("1", f"you {ABUSIVE}"), reply("2", "thank you for this answer")]
    done = await processor(parts).process([incoming(encode(r), i) for i, r in enumerate(batch)])
    out = parts.sink.on("p.replies.classified")
    assert (done, [r.key for r in out]) == (2, [b"8001", b"8001"])
    judged = [decode(ReplyClassified, r.value) for r in out]
    assert [(j.reply.id, j.verdict) for j in judged] == [
        ("x:1", ReplyVerdict.HIDE),
        ("x:2", ReplyVerdict.KEEP),
    ]
    assert judged[0].model_version == "fake-1"
    assert judged[0].rules_version


async def test_an_undecodable_reply_is_dead_lettered_and_the_rest_judged() -> None:
    parts = Parts()
    await processor(parts).process(
        [incoming(b"{not json", 0), incoming(encode(reply("3", "hi")), 1)]
    )
    [letter] = [decode(DeadLetter, r.value) for r in parts.sink.on("p.replies.received.dlq")]
    assert (letter.stage, letter.topic, letter.offset) == ("triage.decode", "replies.received", 0)
    assert len(parts.sink.on("p.replies.classified")) == 1


async def test_a_classifier_failure_dead_letters_the_batch_with_its_bytes() -> None:
    parts = Parts()
    values: list[Any] = [encode(reply("4", f"{POISON} text"))]
    await processor(parts).process([incoming(values[0], 0)])
    [letter] = [decode(DeadLetter, r.value) for r in parts.sink.on("p.replies.received.dlq")]
    assert letter.stage == "triage.classify"
    assert parts.sink.on("p.replies.classified") == []


async def test_a_reply_the_rules_fail_on_is_dead_lettered_and_the_rest_judged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before, one reply the rules raised on failed the whole batch, which the agent
    left un-acked: none of its replies was judged until the worker restarted."""
    real = replies_module.judge  # type: ignore[attr-defined]

    def judge(reply: ReplyReceived, *args: Any, **kwargs: Any) -> ReplyClassified:
        if reply.id == "x:5":
            raise ValueError("a rule the reply trips over")
        return real(reply, *args, **kwargs)

    monkeypatch.setattr(replies_module, "judge", judge)
    parts = Parts()
    batch = [reply("5", "hello"), reply("6", f"you {ABUSIVE}")]
    done = await processor(parts).process([incoming(encode(r), i) for i, r in enumerate(batch)])
    [letter] = [decode(DeadLetter, r.value) for r in parts.sink.on("p.replies.received.dlq")]
    assert (letter.stage, letter.offset) == ("triage.judge", 0)
    [judged] = [decode(ReplyClassified, r.value) for r in parts.sink.on("p.replies.classified")]
    assert (done, judged.reply.id, judged.verdict) == (2, "x:6", ReplyVerdict.HIDE)
