"""A consent withdrawal against an approval of the same answer, at the same moment:
no reply of a withdrawn consent is requested that the withdrawal does not name
(on SQLite and on Postgres, two sessions really running at once)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from services.common import topics
from services.common.messages import ConsentWithdrawn, PublishReply
from services.triage.web import domain
from services.triage.web.exceptions import Conflict
from services.triage.web.models import (
    Answer,
    AnswerState,
    Consent,
    Question,
    Reply,
    ReplyState,
    Team,
)
from services.triage.web.store import Actor, WithdrawalRequest
from tests.triage.web.helpers.media import run_media_jobs
from tests.triage.web.helpers.store import START, Desk, audit, outbox

pytestmark = pytest.mark.timeout(60)

ASKED = WithdrawalRequest(requested_by="Amina herself", requested_at=START, channel="phone")

#: How long the approval waits, in its window, for the withdrawal to finish: plenty
#: for one that is not held up (a few milliseconds), so one still running is held up.
_WINDOW_S = 0.5


async def _cluster(desk: Desk, team: Team, moderator: Actor, member: Actor) -> tuple[str, str]:
    """(lead question, its answer) of a cluster of three askers, ready to approve."""
    lead = await desk.recorded(team, moderator, member, cluster_id="c")
    for _ in range(2):
        await desk.ingest(cluster_id="c")
    [(answer, _)] = await desk.store.answers.of_question(lead)
    await run_media_jobs(desk.store)
    return lead, answer.id


async def _requested(desk: Desk) -> set[str]:
    return {key for key, _ in await outbox(desk.store, topics.REPLIES_REQUESTED, PublishReply)}


async def _withdrawn(desk: Desk) -> list[ConsentWithdrawn]:
    return [m for _, m in await outbox(desk.store, topics.CONSENT_WITHDRAWN, ConsentWithdrawn)]


async def test_a_withdrawal_during_an_approval_names_every_reply_it_requested(
    desk: Desk,
    camp_a: Team,
    mod_a: Actor,
    mod_b: Actor,
    member_a: Actor,
    *,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The withdrawal is recorded while the approval is between reading the consent
    and committing its replies: it waits for the approval, then names every reply."""
    lead, answer_id = await _cluster(desk, camp_a, mod_a, member_a)
    publishable = desk.store.media.publishable
    withdrawals: list[asyncio.Task[Answer]] = []

    async def meanwhile(session: Any, answer: Answer, asker: Question) -> Any:
        if not withdrawals:  # the first asker's rendition: the approval is under way
            withdrawal = asyncio.create_task(
                desk.store.answers.withdraw_consent(answer_id, mod_b, ASKED)
            )
            withdrawals.append(withdrawal)
            await asyncio.wait({withdrawal}, timeout=_WINDOW_S)
        return await publishable(session, answer, asker)

    monkeypatch.setattr(desk.store.media, "publishable", meanwhile)
    replies = await desk.store.review.approve(lead, mod_a)
    [withdrawal] = withdrawals
    await withdrawal

    requested = await _requested(desk)
    assert requested == {r.question_id for r in replies}
    assert len(requested) == 3
    [message] = await _withdrawn(desk)
    assert requested <= set(message.question_ids)  # every reply comes down
    answer, consent = await desk.store.answers.get(answer_id)
    assert answer.state == AnswerState.WITHDRAWN
    assert consent is not None
    assert consent.withdrawn_by == "mod-b"
    with pytest.raises(Conflict, match="withdrew their consent"):
        await desk.store.review.approve(lead, mod_a)
    assert await _requested(desk) == requested


async def test_an_approval_after_a_withdrawal_in_its_window_is_refused(
    desk: Desk,
    camp_a: Team,
    mod_a: Actor,
    mod_b: Actor,
    member_a: Actor,
    *,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The withdrawal commits after the approval read the answer waiting for review,
    before it wrote anything: the approval is refused (409), nothing is requested."""
    lead, answer_id = await _cluster(desk, camp_a, mod_a, member_a)
    current = desk.store.review._current
    calls: list[str] = []

    async def read_then_withdrawn(*args: Any, **kwargs: Any) -> Answer:
        answer = await current(*args, **kwargs)
        calls.append(answer.state)
        if len(calls) == 2:  # the approval's own transaction (the first asks for renditions)
            await asyncio.wait_for(
                desk.store.answers.withdraw_consent(answer_id, mod_b, ASKED), _WINDOW_S * 10
            )
        return answer

    monkeypatch.setattr(desk.store.review, "_current", read_then_withdrawn)
    with pytest.raises(Conflict, match="withdrew their consent") as refused:
        await desk.store.review.approve(lead, mod_a)
    assert refused.value.status == 409
    assert calls == ["submitted", "submitted"]  # it did read the answer before the withdrawal

    assert await _requested(desk) == set()
    async with desk.store.sessions() as session:
        assert list(await session.scalars(select(Reply))) == []
    assert await desk.status(lead) == "recorded"
    [message] = await _withdrawn(desk)
    assert set(message.question_ids) == {lead}
    answer, _ = await desk.store.answers.get(answer_id)
    assert (answer.state, answer.reviewed_by) == (AnswerState.WITHDRAWN, None)


async def test_a_withdrawal_and_an_approval_at_once_leave_nothing_unnamed(
    desk: Desk, camp_a: Team, mod_a: Actor, mod_b: Actor, member_a: Actor
) -> None:
    """No hook: both run at once, whichever wins. Either nothing is requested, or
    the withdrawal names every reply requested."""
    lead, answer_id = await _cluster(desk, camp_a, mod_a, member_a)
    approved, _ = await asyncio.gather(
        desk.store.review.approve(lead, mod_a),
        desk.store.answers.withdraw_consent(answer_id, mod_b, ASKED),
        return_exceptions=True,
    )
    requested = await _requested(desk)
    [message] = await _withdrawn(desk)
    if isinstance(approved, BaseException):
        assert isinstance(approved, Conflict), approved
        assert requested == set()
    else:
        assert requested == {r.question_id for r in approved}
    assert requested <= set(message.question_ids)


async def test_recording_a_withdrawal_again_names_replies_found_since(
    desk: Desk, camp_a: Team, mod_a: Actor, mod_b: Actor, member_a: Actor
) -> None:
    """A reply requested after the first withdrawal (an approval that raced it before
    this was fixed) comes down when the withdrawal is recorded again; the first
    withdrawal stays the consent's, and both are in the audit log."""
    lead, answer_id = await _cluster(desk, camp_a, mod_a, member_a)
    first = await desk.store.answers.withdraw_consent(answer_id, mod_a, ASKED)
    [message] = await _withdrawn(desk)
    assert message.question_ids == (lead,)
    later = await desk.ingest(cluster_id="c")
    async with desk.store.sessions() as session:  # what the race left behind
        question = await session.get(Question, later)
        assert question is not None
        session.add(
            Reply(
                reply_id=domain.reply_id(answer_id, question.mention_id),
                question_id=later,
                answer_id=answer_id,
                platform=question.platform,
                state=ReplyState.PUBLISHED.value,
                requested_at=desk.clock.now,
                updated_at=desk.clock.now,
            )
        )
        await session.commit()
    desk.clock.advance(minutes=5)

    again = await desk.store.answers.withdraw_consent(
        answer_id, mod_b, WithdrawalRequest("Amina herself", START, "email", "found another")
    )

    assert again.state == first.state == AnswerState.WITHDRAWN
    first_message, second_message = await _withdrawn(desk)
    assert first_message == message
    assert set(second_message.question_ids) == {lead, later}
    assert second_message.speaker_ref == message.speaker_ref
    assert second_message.at == message.at  # when the consent was withdrawn
    assert second_message.withdrawn_by == "mod-b"
    async with desk.store.sessions() as session:
        consent = await session.scalar(select(Consent).where(Consent.answer_id == answer_id))
        assert consent is not None
        assert (consent.withdrawn_by, consent.withdrawn_at) == ("mod-a", message.at)
    entries = [e for e in await audit(desk.store) if e[1] == "withdraw_consent"]
    assert entries == [
        ("mod-a", "withdraw_consent", answer_id),
        ("mod-b", "withdraw_consent", answer_id),
    ]
    timeline = await desk.store.questions.timeline(later)
    assert [e.actor for e in timeline if e.event == "consent_withdrawn"] == ["mod-b"]
