"""Who may see and touch which team's work, and what makes a consent usable: the
rules the routes and the store enforce, in one place. (Which role a route needs
is said where the route is declared: :mod:`.deps`.)"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from services.triage.web.exceptions import Conflict, ConsentMissing, Forbidden
from services.triage.web.models import Role, Status

#: Where a question is while a team works on it: assigned to the team, or its answer
#: recorded and waiting for review (a re-recording replaces it).
TEAM_WORKS = (Status.ASSIGNED, Status.RECORDED)
#: Where a question is while its team may read it: while it works on it, and once its
#: answer is approved (its own finished work). Never once it is taken from the team
#: (rejected, quarantined, sent back to triage).
TEAM_READS = (*TEAM_WORKS, Status.ANSWERED, Status.PUBLISHED)


class Someone(Protocol):
    """Who is acting (:class:`services.triage.web.store.Actor`)."""

    @property
    def role(self) -> Role | None: ...

    @property
    def team_id(self) -> int | None: ...


def _other_team(actor: Someone, team_id: int | None) -> bool:
    """A team member acting on what is not their team's (moderators may act on any)."""
    return actor.role is Role.TEAM and (team_id is None or team_id != actor.team_id)


def check_team_scope(actor: Someone, team_id: int) -> None:
    """A team member sees only their own team's feed."""
    if _other_team(actor, team_id):
        raise Forbidden("a team sees only its own feed")


def check_assignment(actor: Someone, team_id: int) -> None:
    """A team member works only on questions assigned to their team."""
    if _other_team(actor, team_id):
        raise Forbidden("this question is assigned to another team")


def check_question(actor: Someone, team_id: int | None, status: str) -> None:
    """A team member reads only questions their team holds (:data:`TEAM_READS`): a
    question taken from the team (rejected, quarantined) is as another team's."""
    if _other_team(actor, team_id) or (actor.role is Role.TEAM and status not in TEAM_READS):
        raise Forbidden("this question is not assigned to your team")


def check_recording(actor: Someone, team_id: int | None, status: str) -> None:
    """Anyone records (and uploads) an answer only while a team works on the question
    (:data:`TEAM_WORKS`); a team member only for a question their team holds."""
    check_question(actor, team_id, status)
    if status not in TEAM_WORKS:
        raise Conflict(f"the question is {status}: it takes no recording")


def check_answer(actor: Someone, team_id: int) -> None:
    """A team member sees only their own team's answers."""
    if _other_team(actor, team_id):
        raise Forbidden("this answer belongs to another team")


def answers_team(actor: Someone) -> int | None:
    """Whose answers ``actor`` may list: their own team's (a team member), or all (None)."""
    return actor.team_id if actor.role is Role.TEAM else None


def check_four_eyes(approver: str, uploaded_by: str) -> None:
    """Four eyes: whoever uploaded an answer does not approve it."""
    if approver == uploaded_by:
        raise Forbidden("you uploaded this answer: another moderator must approve it")


def check_consent(given_by: str, scope: str, scopes: Iterable[str]) -> None:
    """No consent, no answer: who gave it, and a scope the campaign may use."""
    allowed = tuple(scopes)
    if not given_by.strip():
        raise ConsentMissing("no consent, no answer: say who gave consent")
    if scope not in allowed:
        raise ConsentMissing(f"consent scope {scope!r} is not one of {', '.join(allowed)}")
