"""Helpers for the triage store and account tests: a migrated store on an empty
database, a clock the test moves, classified mentions, stored answers, people
(inserted directly: no password hashing where none is needed) and the outbox
decoded back into its messages."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import select

from services.common.codec import decode
from services.common.media.profiles import MediaInfo
from services.common.messages import (
    Decision,
    MentionClassified,
    MentionReceived,
    PriorityReason,
    Scores,
)
from services.triage.web.db import migrate
from services.triage.web.models import (
    AuditEntry,
    OutboxMessage,
    QuestionEvent,
    Reply,
    Role,
    Team,
    User,
)
from services.triage.web.store import Actor, MediaPolicy, StoredAnswer, TriageStore
from tests.helpers.db import empty_database
from tests.triage.web.helpers.media import run_media_jobs

M = TypeVar("M", bound=BaseModel)

#: How long a claim lasts in the store tests (seconds).
CLAIM_TTL_S = 120

#: A Tuesday morning, so "today" (the capacity window) starts at a known midnight.
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


class FakeClock:
    """UTC time that moves only when the test says so."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@contextlib.asynccontextmanager
async def migrated_store(
    kind: str, tmp_path: Path, clock: FakeClock, **options: Any
) -> AsyncIterator[TriageStore]:
    async with empty_database(kind, tmp_path) as (engine, _, _):
        await migrate(engine)
        options.setdefault("media_policy", MediaPolicy(media_dir=tmp_path / "media"))
        yield TriageStore(engine, clock=clock, **options)


ClassifiedFactory = Callable[..., MentionClassified]


def classified_factory(mention_factory: Callable[..., MentionReceived]) -> ClassifiedFactory:
    """``make(**overrides)``: a ``review`` decision on a fresh mention. ``mention``
    takes a ``MentionReceived`` or a dict of overrides for one."""

    def make(**overrides: Any) -> MentionClassified:
        mention = overrides.pop("mention", {})
        if isinstance(mention, dict):
            mention = mention_factory(**mention)
        fields: dict[str, Any] = {
            "mention": mention,
            "scores": Scores(offensive=0.02, hate=0.01, question=0.9, relevance=0.8),
            "priority": 60,
            "reasons": (PriorityReason(factor="question", points=30.0, detail="asks"),),
            "decision": Decision.REVIEW,
            "model_version": "test-model-1",
            "rule": "default-review",
            "rules_version": "rules-abc",
            "classified_at": START,
        }
        fields.update(overrides)
        return MentionClassified(**fields)

    return make


@dataclass(frozen=True)
class Desk:
    """A store with its clock and a classified-mention factory, and the steps
    that bring a question to a status (each returns the question id)."""

    store: TriageStore
    clock: FakeClock
    classified: ClassifiedFactory

    async def ingest(self, **overrides: Any) -> str:
        question = await self.store.questions.ingest(self.classified(**overrides))
        assert question is not None
        return question.id

    async def status(self, question_id: str) -> str:
        return (await self.store.questions.get(question_id)).status

    async def assigned(self, team: Team, moderator: Actor, **overrides: Any) -> str:
        question_id = await self.ingest(**overrides)
        await self.store.questions.act(question_id, "assign", moderator, team=team.slug)
        return question_id

    async def recorded(self, team: Team, moderator: Actor, member: Actor, **overrides: Any) -> str:
        question_id = await self.assigned(team, moderator, **overrides)
        await self.store.answers.record(question_id, member, stored_answer())
        return question_id

    async def approve(self, question_id: str, moderator: Actor) -> list[Reply]:
        """The media worker's jobs done (stand-ins), then the answer approved."""
        await run_media_jobs(self.store)
        return await self.store.review.approve(question_id, moderator)

    async def answered(self, team: Team, moderator: Actor, member: Actor) -> tuple[str, str]:
        """(question id, reply id) of a question whose answer was approved."""
        question_id = await self.recorded(team, moderator, member)
        [reply] = await self.approve(question_id, moderator)
        return question_id, reply.reply_id


_answers = itertools.count(1)


def probed(**overrides: Any) -> MediaInfo:
    """What the probe would say of a phone's portrait answer."""
    fields: dict[str, Any] = {
        "container": "mov,mp4,m4a,3gp,3g2,mj2",
        "duration_s": 42.0,
        "width": 1920,
        "height": 1080,
        "rotation": -90,
        "fps": 60.0,
        "video_codec": "hevc",
        "audio_codec": "aac",
        "bytes": 1000,
    }
    return MediaInfo(**{**fields, **overrides})


def stored_answer(**overrides: Any) -> StoredAnswer:
    n = next(_answers)
    fields: dict[str, Any] = {
        "uri": f"file:///media/answer-{n}.mp4",
        "mime": "video/mp4",
        "bytes": 1000 + n,
        "sha256": hashlib.sha256(f"answer {n}".encode()).hexdigest(),
        "caption": f"What I miss most is the market ({n}).",
        "transcript": "I miss the market.",
        "language": "en",
        "consent_given_by": f"speaker-{n}",
        "consent_scope": "campaign-social",
        "info": probed(duration_s=42.0),
    }
    fields.update(overrides)
    return StoredAnswer(**fields)


async def add_team(
    store: TriageStore, slug: str, *, languages: tuple[str, ...] = ("en",), capacity: int = 20
) -> Team:
    return await store.teams.upsert(
        slug,
        name=slug.title(),
        languages=languages,
        capacity=capacity,
        actor=Actor.system("test"),
    )


async def add_person(store: TriageStore, name: str, role: Role, team: Team | None = None) -> Actor:
    """A user row (the hash is a placeholder: these people never log in) and its Actor."""
    async with store.sessions() as session:
        user = User(
            username=name,
            password_hash="not-a-hash",
            role=role.value,
            team_id=team.id if team else None,
            active=True,
            created_at=store.clock(),
        )
        session.add(user)
        await session.commit()
        return Actor(
            name=name,
            role=role,
            user_id=user.id,
            team_id=team.id if team else None,
            team_slug=team.slug if team else None,
        )


async def outbox(store: TriageStore, topic: str, model: type[M]) -> list[tuple[str, M]]:
    """Unsent outbox rows of ``topic``, as (key, decoded message), oldest first."""
    rows = await store.outbox.pending(limit=1000)
    return [(row.key.decode(), decode(model, row.value)) for row in rows if row.topic == topic]


async def outbox_topics(store: TriageStore) -> list[str]:
    return [row.topic for row in await store.outbox.pending(limit=1000)]


async def events(store: TriageStore, question_id: str) -> list[tuple[Any, ...]]:
    """(event, actor, from, to, decision) of each event of a question, in order."""
    return [
        (e.event, e.actor, e.from_status, e.to_status, e.decision)
        for e in await store.questions.timeline(question_id)
    ]


async def audit(store: TriageStore) -> list[tuple[str, str, str]]:
    """(actor, action, subject) of every audit row, in order."""
    async with store.sessions() as session:
        rows = await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(r.actor, r.action, r.subject) for r in rows]


async def all_events(store: TriageStore) -> int:
    async with store.sessions() as session:
        return len(list(await session.scalars(select(QuestionEvent.id))))


async def all_outbox(store: TriageStore) -> list[OutboxMessage]:
    async with store.sessions() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
