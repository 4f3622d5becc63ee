"""The replies under our published answers in the triage database: each stored once,
a hide the rules ask goes to the outbox as a command, a moderator's unhide sticks,
what the publisher did is recorded, escalations raise alerts and pause the person
(a signed command tells the publisher, and another one the resume), pile-ons are
counted under one answer within the window, and a paused person's answer is not
approved."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import BaseModel

from services.common import topics
from services.common.codec import decode, encode
from services.common.messages import (
    Escalation,
    ModerateReply,
    ModerationAction,
    ModerationOutcome,
    ReplyClassified,
    ReplyKind,
    ReplyModerated,
    ReplyVerdict,
    SpeakerPaused,
)
from services.triage.rules import Protection, RulesFile, load_rules
from services.triage.web.consumers import RecordHandlers
from services.triage.web.exceptions import Conflict, NotFound
from services.triage.web.exceptions import SpeakerPaused as PausedError
from services.triage.web.models import Team
from services.triage.web.store import Actor, TriageStore
from tests.helpers.replies import reply_classified, reply_received
from tests.triage.web.helpers.store import START, Desk, FakeClock, outbox, stored_answer

RULES_PATH = Path(__file__).resolve().parents[4] / "services" / "triage" / "rules.yaml"
RULES = load_rules(RULES_PATH)
PROTECTION: Protection = RULES.protection


@pytest.fixture
def judged(clock: FakeClock) -> Callable[..., ReplyClassified]:
    counter = iter(range(1, 10_000))

    def make(
        verdict: ReplyVerdict = ReplyVerdict.HIDE,
        escalations: tuple[Escalation, ...] = (),
        answer: str = "8001",
    ) -> ReplyClassified:
        reply = reply_received(
            str(9000 + next(counter)),
            answer_post_id=answer,
            speaker_ref="Amina",
            created_at=clock(),
            received_at=clock(),
        )
        return reply_classified(reply, verdict, *escalations, at=clock())

    return make


def outcome(
    command: ModerateReply,
    result: ModerationOutcome = ModerationOutcome.DONE,
    *,
    how: str = "hidden",
    error: str | None = None,
) -> ReplyModerated:
    """What the publisher says it did with ``command``."""
    return ReplyModerated(
        action_id=command.action_id, reply_id=command.reply_id, platform=command.platform,
        action=command.action, outcome=result, how=how, error=error, at=START,
    )  # fmt: skip


async def commands(store: TriageStore) -> list[ModerateReply]:
    return [m for _, m in await outbox(store, topics.REPLIES_ACTION, ModerateReply)]


async def test_a_reply_is_stored_once_and_a_hide_is_asked_once(
    store: TriageStore, judged: Callable[..., ReplyClassified]
) -> None:
    message = judged()
    first = await store.protection.ingest(message, PROTECTION)
    assert first is not None
    assert first.reply.state == "waiting"
    assert await store.protection.ingest(message, PROTECTION) is None  # redelivered
    [command] = await commands(store)
    assert (command.reply_id, command.action, command.decided_by) == (
        message.reply.id, ModerationAction.HIDE, "rules r-1",
    )  # fmt: skip
    assert (command.answer_post_id, command.author.id, command.report) == ("8001", "66", False)


async def test_a_kept_reply_asks_nothing(
    store: TriageStore, judged: Callable[..., ReplyClassified]
) -> None:
    stored = await store.protection.ingest(judged(ReplyVerdict.KEEP), PROTECTION)
    assert stored is not None
    assert stored.reply.state == "kept"
    assert await commands(store) == []


async def test_the_publishers_outcome_is_recorded_and_an_unhide_sticks(
    store: TriageStore, judged: Callable[..., ReplyClassified], mod_a: Actor, clock: FakeClock
) -> None:
    message = judged()
    await store.protection.ingest(message, PROTECTION)
    [hide] = await commands(store)

    def done(command: ModerateReply) -> ReplyModerated:
        return outcome(command)

    assert await store.protection.moderated(done(hide))
    [row] = await store.protection.replies(["hidden"])
    assert row.how == "hidden"

    restored = await store.protection.unhide(message.reply.id, mod_a)
    assert (restored.state, restored.sticky, restored.decided_by) == ("restored", True, "mod-a")
    unhide = (await commands(store))[-1]
    assert unhide.action is ModerationAction.UNHIDE
    assert unhide.decided_by == "mod-a"
    # A late "hidden" of the rules' hide must not undo the moderator's decision.
    await store.protection.moderated(done(hide))
    await store.protection.moderated(done(unhide))
    [row] = await store.protection.replies()
    assert (row.state, row.sticky) == ("restored", True)
    timeline = [(e.actor, e.event) for e in await store.protection.timeline(message.reply.id)]
    assert timeline[:2] == [("rules r-1", "classified"), ("rules r-1", "hide_asked")]
    assert ("mod-a", "unhide_asked") in timeline
    assert timeline[-1] == ("publisher (x)", "shown")


async def test_a_failed_action_is_shown_with_the_platforms_error(
    store: TriageStore, judged: Callable[..., ReplyClassified], clock: FakeClock
) -> None:
    await store.protection.ingest(judged(), PROTECTION)
    [hide] = await commands(store)
    await store.protection.moderated(outcome(hide, ModerationOutcome.FAILED, error="403 Forbidden"))
    [row] = await store.protection.replies(["failed"])
    assert row.error == "403 Forbidden"


async def test_a_threat_alerts_pauses_the_person_and_reports(
    store: TriageStore, judged: Callable[..., ReplyClassified]
) -> None:
    stored = await store.protection.ingest(judged(escalations=(Escalation.THREAT,)), PROTECTION)
    assert stored is not None
    assert [a.kind for a in stored.alerts] == ["threat"]
    assert [p.speaker_ref for p in await store.protection.paused()] == ["Amina"]
    [command] = await commands(store)
    assert command.report is True


async def pauses(store: TriageStore) -> list[tuple[str, SpeakerPaused]]:
    """The pause and resume commands for the publisher, as (key, command)."""
    return await outbox(store, topics.SPEAKERS_PAUSED, SpeakerPaused)


async def test_the_rules_pause_tells_the_publisher_in_the_same_transaction(
    store: TriageStore, judged: Callable[..., ReplyClassified], clock: FakeClock
) -> None:
    """The publisher holds replies already requested only if it hears of the pause."""
    await store.protection.ingest(judged(escalations=(Escalation.THREAT,)), PROTECTION)
    await store.protection.ingest(judged(escalations=(Escalation.DOXXING,)), PROTECTION)

    [(key, command)] = await pauses(store)  # paused once, however many escalations
    assert key == "Amina"
    assert (command.speaker_ref, command.paused, command.decided_by, command.at) == (
        "Amina", True, "rules", clock(),
    )  # fmt: skip
    assert command.reason.startswith("threat: a threat from @")


async def test_a_moderator_s_pause_and_resume_each_tell_the_publisher_in_order(
    store: TriageStore, mod_a: Actor, *, mod_b: Actor, clock: FakeClock
) -> None:
    await store.protection.pause("Amina", mod_a, "a pile-on under her last answer")
    await store.protection.pause("Amina", mod_b, "again")  # already paused: nothing more
    await store.protection.resume("Amina", mod_b)
    with pytest.raises(Conflict):
        await store.protection.resume("Amina", mod_b)  # not paused: nothing sent
    clock.advance(seconds=-5)  # another replica's clock, behind
    await store.protection.pause("Amina", mod_a, "a threat")

    commands = [c for _, c in await pauses(store)]
    assert [(c.paused, c.decided_by, c.reason) for c in commands] == [
        (True, "mod-a", "a pile-on under her last answer"),
        (False, "mod-b", "resumed"),
        (True, "mod-a", "a threat"),
    ]
    # The publisher obeys the latest ``at`` of a person: each decision is after the last.
    assert commands[0].at < commands[1].at < commands[2].at


class OlderCommand(BaseModel):
    """A command of this topic from an earlier version: not a ``SpeakerPaused`` now."""

    speaker: str


async def test_a_previous_command_that_no_longer_decodes_does_not_stop_a_pause(
    store: TriageStore, mod_a: Actor, clock: FakeClock
) -> None:
    async with store.sessions() as session:
        store.db.enqueue(session, topics.SPEAKERS_PAUSED, "Amina", OlderCommand(speaker="Amina"))
        await session.commit()
    await store.protection.pause("Amina", mod_a, "a threat")
    _, latest = [r for r in await store.outbox.pending() if r.topic == topics.SPEAKERS_PAUSED]
    command = decode(SpeakerPaused, latest.value)
    assert (command.paused, command.at) == (True, clock())


async def test_a_pile_on_is_n_abusive_replies_within_m_minutes_under_one_answer(
    store: TriageStore, judged: Callable[..., ReplyClassified], clock: FakeClock
) -> None:
    n, minutes = PROTECTION.pile_on.replies, PROTECTION.pile_on.minutes
    for _ in range(n - 1):
        await store.protection.ingest(judged(), PROTECTION)
        await store.protection.ingest(judged(answer="other"), PROTECTION)  # another answer
        await store.protection.ingest(judged(ReplyVerdict.KEEP), PROTECTION)  # not abusive
    assert await store.protection.alerts() == []
    last = await store.protection.ingest(judged(), PROTECTION)
    assert last is not None
    assert [a.kind for a in last.alerts] == ["pile_on"]
    again = await store.protection.ingest(judged(), PROTECTION)  # the same pile-on
    assert again is not None
    assert again.alerts == []
    clock.advance(minutes=minutes * 3)  # the window has passed: one abusive reply is not one
    later = await store.protection.ingest(judged(), PROTECTION)
    assert later is not None
    assert later.alerts == []


async def test_alerts_are_acknowledged_and_a_pause_resumed(
    store: TriageStore, judged: Callable[..., ReplyClassified], mod_a: Actor
) -> None:
    await store.protection.ingest(judged(escalations=(Escalation.DOXXING,)), PROTECTION)
    [alert] = await store.protection.alerts()
    await store.protection.acknowledge(alert.id, mod_a)
    assert await store.protection.alerts() == []
    await store.protection.resume("Amina", mod_a)
    assert await store.protection.paused() == []
    with pytest.raises(NotFound):
        await store.protection.acknowledge(alert.id + 100, mod_a)


async def test_a_paused_persons_answer_is_not_approved_until_resumed(
    store: TriageStore, desk: Desk, camp_a: Team, mod_a: Actor, *, mod_b: Actor, member_a: Actor
) -> None:
    question = await desk.assigned(camp_a, mod_a)
    speaker = "Amina, filmed in Kakuma"
    await store.answers.record(question, member_a, stored_answer(consent_given_by=speaker))
    await store.protection.pause(speaker, mod_b, "a pile-on under her last answer")
    with pytest.raises(PausedError):
        await desk.approve(question, mod_b)
    await store.protection.resume(speaker, mod_b)
    assert len(await desk.approve(question, mod_b)) == 1


async def test_the_consumer_stores_a_judged_reply_once_and_counts_its_alerts(
    store: TriageStore, judged: Callable[..., ReplyClassified], clock: FakeClock
) -> None:
    handlers = RecordHandlers(store, RulesFile(RULES_PATH))

    def record(topic: str, value: bytes) -> Any:
        return SimpleNamespace(topic=f"p.{topic}", value=value, partition=0, offset=0, key=None)

    message = judged(escalations=(Escalation.THREAT,))
    before = REGISTRY.get_sample_value("triage_protection_alerts_total", {"kind": "threat"}) or 0
    assert (
        await handlers._protection(record(topics.REPLIES_CLASSIFIED, encode(message))) == "stored"
    )
    again = record(topics.REPLIES_CLASSIFIED, encode(message))
    assert await handlers._protection(again) == "duplicate"
    after = REGISTRY.get_sample_value("triage_protection_alerts_total", {"kind": "threat"})
    assert after == before + 1
    [hide] = await commands(store)
    done = outcome(hide)
    assert await handlers._protection(record(topics.REPLIES_MODERATED, encode(done))) == "stored"
    unknown = done.model_copy(update={"reply_id": "x:1"})
    assert await handlers._protection(record(topics.REPLIES_MODERATED, encode(unknown))) == (
        "unknown"
    )


async def test_a_late_failure_of_a_reversed_action_does_not_change_the_state(
    store: TriageStore, judged: Callable[..., ReplyClassified], mod_a: Actor, clock: FakeClock
) -> None:
    message = judged()
    await store.protection.ingest(message, PROTECTION)
    [hide] = await commands(store)
    await store.protection.unhide(message.reply.id, mod_a)
    await store.protection.moderated(outcome(hide, ModerationOutcome.FAILED, error="503"))
    [row] = await store.protection.replies()
    assert (row.state, row.sticky, row.error) == ("restored", True, None)
    events = [e.event for e in await store.protection.timeline(message.reply.id)]
    assert events[-1] == "failed"  # on the timeline all the same


async def test_a_quote_of_our_answer_is_stored_as_a_quote(store: TriageStore) -> None:
    quote = reply_received("9500", kind=ReplyKind.QUOTE, text="look at this, send them back")
    stored = await store.protection.ingest(reply_classified(quote), PROTECTION)
    assert stored is not None
    assert (stored.reply.kind, stored.reply.state) == ("quote", "waiting")
