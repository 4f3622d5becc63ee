"""The outbox: woken on commit, sent in order, pruned; replicas relaying at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel, SecretStr

from services.common import topics
from services.common.codec import decode
from services.common.messages import (
    MentionReceived,
    Platform,
    ReplyPublished,
    SpeakerPaused,
)
from services.common.signing import CommandKeys
from services.triage.web.exceptions import (
    NotFound,
)
from services.triage.web.models import (
    AnswerReply,
    OutboxMessage,
    Team,
    WatchState,
)
from services.triage.web.store import Actor, TriageStore
from tests.triage.web.helpers.store import (
    Desk,
    FakeClock,
    all_outbox,
    classified_factory,
    migrated_store,
)

pytestmark = pytest.mark.timeout(60)


# --- outbox --------------------------------------------------------------------------


async def test_a_commit_that_wrote_to_the_outbox_wakes_the_relay(
    desk: Desk, camp_a: Team, mod_a: Actor
) -> None:
    woken: list[None] = []
    desk.store.on_outbox(lambda: woken.append(None))
    question_id = await desk.ingest()
    await desk.store.questions.act(question_id, "approve", mod_a)
    assert woken == []  # nothing for Kafka: nothing to wake
    with pytest.raises(NotFound):  # refused and rolled back: nothing sent, nothing to wake
        await desk.store.questions.act(question_id, "assign", mod_a, team="camp-gone")
    assert woken == []
    await desk.store.questions.act(question_id, "assign", mod_a, team="camp-a")
    assert woken == [None]  # questions.assigned is waiting: the relay is woken at once
    await desk.store.questions.act(question_id, "reject", mod_a)
    assert woken == [None]


async def test_the_outbox_is_sent_then_pruned(desk: Desk, camp_a: Team, mod_a: Actor) -> None:
    for _ in range(3):
        await desk.assigned(camp_a, mod_a)
    pending = await desk.store.outbox.pending()
    assert [r.topic for r in pending] == [topics.QUESTIONS_ASSIGNED] * 3
    assert [r.id for r in pending] == sorted(r.id for r in pending)
    assert [r.id for r in await desk.store.outbox.pending(limit=2)] == [r.id for r in pending[:2]]
    assert await desk.store.outbox.backlog() == 3

    sent: list[int] = []

    async def send(rows: Sequence[OutboxMessage]) -> None:
        sent.extend(r.id for r in rows)

    async def broker_down(rows: Sequence[OutboxMessage]) -> None:
        raise OSError("broker unreachable")

    with pytest.raises(OSError, match="unreachable"):
        await desk.store.outbox.relay(broker_down, limit=2)
    assert await desk.store.outbox.backlog() == 3  # nothing marked when the send failed
    assert await desk.store.outbox.relay(send, limit=2) == 2
    assert sent == [r.id for r in pending[:2]]
    [left] = await desk.store.outbox.pending()
    assert left.id == pending[2].id
    assert await desk.store.outbox.prune(timedelta(hours=1)) == 0  # sent just now

    desk.clock.advance(hours=2)
    assert await desk.store.outbox.prune(timedelta(hours=1)) == 2
    assert [r.id for r in await all_outbox(desk.store)] == [left.id]  # unsent is never pruned


@pytest.mark.integration
async def test_relays_running_at_once_on_postgres_send_each_message_once(
    tmp_path: Path, mention_factory: Callable[..., MentionReceived]
) -> None:
    """Two web replicas relaying at the same time take different rows (SKIP LOCKED)."""
    async with migrated_store("postgres", tmp_path, FakeClock()) as store:
        team = await store.teams.upsert(
            "camp-a", name="A", languages=["en"], capacity=50, actor=Actor.system("t")
        )
        make = classified_factory(mention_factory)
        for _ in range(6):
            question = await store.questions.ingest(make())
            assert question is not None
            await store.questions.act(question.id, "assign", Actor(name="mod"), team=team.slug)
        sent: list[int] = []
        inside: list[int] = []
        both_in = asyncio.Event()

        async def send(rows: Sequence[OutboxMessage]) -> None:
            sent.extend(r.id for r in rows)
            inside.append(1)
            if len(inside) == 2:
                both_in.set()
            with contextlib.suppress(TimeoutError):  # hold the rows until both are in
                await asyncio.wait_for(both_in.wait(), timeout=1.0)

        counts = await asyncio.gather(store.outbox.relay(send, 3), store.outbox.relay(send, 3))
        assert sorted(counts) == [3, 3]
        assert sorted(sent) == sorted(set(sent))
        assert len(sent) == 6
        assert await store.outbox.backlog() == 0


async def test_commands_for_the_publisher_are_signed_as_they_are_relayed(tmp_path: Path) -> None:
    """The publisher obeys only signed commands (issue 17): replies.requested,
    consent.withdrawn and speakers.paused leave signed by the current key; other
    topics as they were."""
    keys = CommandKeys("k2", {"k2": SecretStr("n" * 40), "k1": SecretStr("o" * 40)})
    async with migrated_store("sqlite", tmp_path, FakeClock(), command_keys=keys) as store:
        async with store.sessions() as session:
            store.db.enqueue(session, topics.REPLIES_REQUESTED, "q1", Unsigned(text="post it"))
            store.db.enqueue(session, topics.CONSENT_WITHDRAWN, "s1", Unsigned(text="take down"))
            store.db.enqueue(session, topics.SPEAKERS_PAUSED, "s1", Unsigned(text="hold"))
            store.db.enqueue(session, topics.QUESTIONS_ASSIGNED, "t1", Unsigned(text="assigned"))
            await session.commit()
        sent: dict[str, bytes] = {}

        async def send(rows: Sequence[OutboxMessage]) -> None:
            sent.update((r.topic, r.value) for r in rows)

        assert await store.outbox.relay(send) == 4
        for topic in (topics.REPLIES_REQUESTED, topics.CONSENT_WITHDRAWN, topics.SPEAKERS_PAUSED):
            keys.verify(topic, sent[topic])
            assert json.loads(sent[topic])["signature"]["key_id"] == "k2"
        assert sent[topics.QUESTIONS_ASSIGNED] == b'{"text":"assigned"}'
        [stored] = [r for r in await all_outbox(store) if r.topic == topics.REPLIES_REQUESTED]
        assert stored.value == sent[topics.REPLIES_REQUESTED]  # the row keeps what was sent


class Unsigned(BaseModel):
    text: str


def _watched(reply_id: str, state: WatchState, at: object) -> AnswerReply:
    return AnswerReply(
        reply_id=reply_id, platform="x", native_id=reply_id, answer_post_id="1",
        question_id="q", speaker_ref="s", author_id="a", author_handle="a", text="...",
        offensive=0.9, hate=0.1, verdict="hide", rule="r", model_version="m",
        state=state.value, decided_by="rules", created_at=at, received_at=at, updated_at=at,
    )  # fmt: skip


async def _commands_sent(desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor) -> str:
    """Two answers approved, one reply published (its id returned) and one still
    requested; actions asked for a reply still waiting (hide, then unhide) and for one
    hidden; a withdrawal of consent: all relayed (sent)."""
    store = desk.store
    question_done, reply_done = await desk.answered(camp_a, mod_a, member_a)
    await desk.answered(camp_a, mod_a, member_a)  # its reply is still requested
    now = desk.clock.now
    async with store.sessions() as session:
        session.add(_watched("r-waiting", WatchState.WAITING, now))
        session.add(_watched("r-hidden", WatchState.HIDDEN, now))
        for key, text in (("r-waiting", "hide"), ("r-waiting", "unhide"), ("r-hidden", "hide")):
            store.db.enqueue(session, topics.REPLIES_ACTION, key, Unsigned(text=text))
        store.db.enqueue(session, topics.CONSENT_WITHDRAWN, "s1", Unsigned(text="take down"))
        await session.commit()
    await store.answers.reply_outcome(
        ReplyPublished(
            reply_id=reply_done, question_id=question_done, platform=Platform.X,
            post_id="1900000000000000001", url="https://x.test/status/1900000000000000001",
            at=now,
        )
    )  # fmt: skip
    while await store.outbox.relay(_sent):
        pass
    return reply_done


async def _sent(rows: Sequence[OutboxMessage]) -> None:
    return None


async def test_a_new_broker_epoch_sends_again_what_awaits_an_outcome(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    """The embedded broker restarted empty, after the producer's resend window: a
    reply still requested, the last action asked for a reply still waiting, and every
    withdrawal are sent again; what has its outcome is not."""
    store = desk.store
    reply_done = await _commands_sent(desk, camp_a, mod_a, member_a)

    assert await store.outbox.requeue_awaited() == 3
    again = await store.outbox.pending()
    assert [r.topic for r in again] == [
        topics.REPLIES_REQUESTED,
        topics.REPLIES_ACTION,
        topics.CONSENT_WITHDRAWN,
    ]
    assert json.loads(again[0].value)["reply_id"] != reply_done
    assert json.loads(again[1].value)["text"] == "unhide"  # the last action asked
    assert await store.outbox.relay(_sent) == 3
    assert await store.outbox.backlog() == 0


async def test_pruning_keeps_the_commands_still_in_effect_however_old(
    desk: Desk, camp_a: Team, mod_a: Actor, member_a: Actor
) -> None:
    """A reply held for weeks (its speaker paused) keeps its request in the outbox, so
    a broker that lost it can be given it again; so do the last action for a reply
    still waiting, every withdrawal and each person's latest pause. What has its
    outcome, and what was superseded, goes."""
    store = desk.store
    await store.protection.pause("Amina", mod_a, "a threat")
    await store.protection.resume("Amina", mod_a)
    reply_done = await _commands_sent(desk, camp_a, mod_a, member_a)
    before = await all_outbox(store)

    desk.clock.advance(hours=24 * 30)
    pruned = await store.outbox.prune(timedelta(days=7))

    kept = await all_outbox(store)
    assert pruned == len(before) - len(kept) > 0
    assert sorted(r.topic for r in kept) == sorted(
        [
            topics.REPLIES_REQUESTED,
            topics.REPLIES_ACTION,
            topics.CONSENT_WITHDRAWN,
            topics.SPEAKERS_PAUSED,
        ]
    )
    [request] = [r for r in kept if r.topic == topics.REPLIES_REQUESTED]
    assert json.loads(request.value)["reply_id"] != reply_done
    [action] = [r for r in kept if r.topic == topics.REPLIES_ACTION]
    assert json.loads(action.value)["text"] == "unhide"
    [pause] = [r for r in kept if r.topic == topics.SPEAKERS_PAUSED]
    assert decode(SpeakerPaused, pause.value).paused is False  # the latest: the resume
    assert await store.outbox.requeue_awaited() == 4  # still there to be sent again


async def test_a_new_broker_epoch_sends_each_person_s_latest_pause_or_resume_again(
    store: TriageStore, mod_a: Actor
) -> None:
    """Lost with the broker before the publisher read it, a pause would let the
    replies it holds go out: the latest decision about each person is sent again (the
    publisher ignores one older than what it has)."""
    await store.protection.pause("Amina", mod_a, "a threat")
    await store.protection.resume("Amina", mod_a)
    await store.protection.pause("Nadia", mod_a, "doxxing")

    async def send(rows: Sequence[OutboxMessage]) -> None:
        return None

    while await store.outbox.relay(send):
        pass
    assert await store.outbox.requeue_awaited() == 2
    again = await store.outbox.pending()
    assert [(r.key, decode(SpeakerPaused, r.value).paused) for r in again] == [
        (b"Amina", False),
        (b"Nadia", True),
    ]
