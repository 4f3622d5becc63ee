"""The notifications aggregate: what a person is told once — new work for their team,
a question given to them, their team's answer out — and whether they have read it.
The writes (:func:`notify_team`, :func:`notify_person`) run in the transaction of the
change they announce; the pages show an unread count (``GET
/api/notifications/unread-count``) and the list."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.triage.web.models import Notification, Role, User
from services.triage.web.store.transaction import Database

#: What a notification says (kinds).
TEAM_ASSIGNED = "team_assigned"
GIVEN_TO_YOU = "given_to_you"
ANSWER_PUBLISHED = "answer_published"
#: Most notifications kept per person (older read ones are not listed).
LIST_LIMIT = 50


def excerpt(text: str, limit: int = 80) -> str:
    """A question's text shortened for a notice (whole words, an ellipsis)."""
    words = " ".join(text.split())
    if len(words) <= limit:
        return words
    return words[:limit].rsplit(" ", 1)[0].rstrip(",.;:") + "…"


def _add(
    db: Database,
    session: AsyncSession,
    user_ids: Iterable[int],
    kind: str,
    text: str,
    *,
    question_id: str | None,
    link: str,
) -> None:
    now = db.clock()
    for user_id in dict.fromkeys(user_ids):
        session.add(
            Notification(
                user_id=user_id,
                kind=kind,
                question_id=question_id,
                text=text[:300],
                link=link[:300],
                created_at=now,
            )
        )


async def notify_team(
    db: Database,
    session: AsyncSession,
    team_id: int,
    kind: str,
    text: str,
    *,
    question_id: str | None = None,
    link: str = "",
    but: str | None = None,
) -> None:
    """Tell every active member of a team (but the one named ``but``: they did it)."""
    members = await session.scalars(
        select(User.id).where(
            User.team_id == team_id, User.active.is_(True), User.username != (but or "")
        )
    )
    _add(db, session, list(members), kind, text, question_id=question_id, link=link)


def notify_person(
    db: Database,
    session: AsyncSession,
    user_id: int,
    kind: str,
    text: str,
    *,
    question_id: str | None = None,
    link: str = "",
) -> None:
    _add(db, session, [user_id], kind, text, question_id=question_id, link=link)


async def forget_for_teams(
    session: AsyncSession, question_id: str, *, but_team: int | None = None
) -> None:
    """The question left its team (rejected, quarantined, its assignment undone, given
    to another team): what team members were told of it (its text, in a notice) goes
    with it; ``but_team``'s members, who hold it now, keep theirs."""
    members = select(User.id).where(User.role == Role.TEAM.value)
    if but_team is not None:
        members = members.where(User.team_id != but_team)
    await session.execute(
        delete(Notification).where(
            Notification.question_id == question_id, Notification.user_id.in_(members)
        )
    )


class Notifications:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def unread(self, user_id: int) -> int:
        async with self.db.sessions() as session:
            count = await session.scalar(
                select(func.count(Notification.id)).where(
                    Notification.user_id == user_id, Notification.read_at.is_(None)
                )
            )
            return int(count or 0)

    async def recent(self, user_id: int, *, limit: int = LIST_LIMIT) -> Sequence[Notification]:
        """A person's notifications, newest first."""
        async with self.db.sessions() as session:
            rows = await session.scalars(
                select(Notification)
                .where(Notification.user_id == user_id)
                .order_by(Notification.id.desc())
                .limit(limit)
            )
            return list(rows)

    async def mark_read(self, user_id: int, ids: Sequence[int] | None = None) -> int:
        """Mark a person's notifications read (those ``ids``, or all); how many changed."""
        async with self.db.sessions() as session:
            query = update(Notification).where(
                Notification.user_id == user_id, Notification.read_at.is_(None)
            )
            if ids is not None:
                query = query.where(Notification.id.in_(list(ids)))
            result = await session.execute(
                query.values(read_at=self.db.clock()).execution_options(synchronize_session=False)
            )
            await session.commit()
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
