"""The tags aggregate: the moderators' own labels on questions ("follow-up",
"press", "ask-the-camp"), added and removed by anyone on the desk, each change kept
on the question's timeline (so the live queue shows it to everyone); the queue
filters by one (:class:`~services.triage.web.store.questions.QuestionFilter`)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.triage.web import domain
from services.triage.web.exceptions import Conflict, Invalid
from services.triage.web.models import QuestionTag
from services.triage.web.store.transaction import Actor, Database


def _valid(raw: str) -> str:
    tag = domain.normalise_tag(raw)
    if tag is None:
        raise Invalid(
            f"{raw!r} is not a tag: letters, digits and dashes, 1-32 of them (ask-the-camp)"
        )
    return tag


async def _tags_of(session: AsyncSession, question_id: str) -> list[str]:
    rows = await session.scalars(
        select(QuestionTag.tag)
        .where(QuestionTag.question_id == question_id)
        .order_by(QuestionTag.tag)
    )
    return list(rows)


class Tags:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, question_id: str, raw: str, actor: Actor) -> list[str]:
        """Tag a question (already tagged so: nothing changes). Returns its tags."""
        tag = _valid(raw)
        async with self.db.sessions() as session:
            await self.db.question(session, question_id)
            tags = await _tags_of(session, question_id)
            if tag in tags:
                return tags
            if len(tags) >= domain.MAX_TAGS:
                raise Conflict(f"a question carries at most {domain.MAX_TAGS} tags")
            session.add(
                QuestionTag(
                    question_id=question_id, tag=tag, added_by=actor.name, added_at=self.db.clock()
                )
            )
            self.db.event(session, question_id, actor, "tagged", reason=tag)
            try:
                await session.commit()
            except IntegrityError:  # tagged the same by someone else just now
                await session.rollback()
            async with self.db.sessions() as fresh:
                return await _tags_of(fresh, question_id)

    async def remove(self, question_id: str, raw: str, actor: Actor) -> list[str]:
        """Take a tag off a question (not there: nothing changes). Returns its tags."""
        tag = domain.normalise_tag(raw) or raw
        async with self.db.sessions() as session:
            await self.db.question(session, question_id)
            removed = await session.execute(
                delete(QuestionTag).where(
                    QuestionTag.question_id == question_id, QuestionTag.tag == tag
                )
            )
            if removed.rowcount:  # type: ignore[attr-defined]
                self.db.event(session, question_id, actor, "untagged", reason=tag)
            await session.commit()
            return await _tags_of(session, question_id)

    async def of(self, question_ids: Iterable[str]) -> dict[str, list[str]]:
        """The tags of each question (alphabetical); a question without has none."""
        ids = set(question_ids)
        if not ids:
            return {}
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(QuestionTag.question_id, QuestionTag.tag)
                .where(QuestionTag.question_id.in_(ids))
                .order_by(QuestionTag.tag)
            )
            found: dict[str, list[str]] = {}
            for question_id, tag in rows.all():
                found.setdefault(str(question_id), []).append(str(tag))
            return found

    async def in_use(self, *, limit: int = 200) -> list[tuple[str, int]]:
        """Every tag in use and on how many questions, the most used first."""
        async with self.db.sessions() as session:
            count = func.count(QuestionTag.id)
            rows = await session.execute(
                select(QuestionTag.tag, count)
                .group_by(QuestionTag.tag)
                .order_by(count.desc(), QuestionTag.tag)
                .limit(limit)
            )
            return [(str(tag), int(n)) for tag, n in rows.all()]
