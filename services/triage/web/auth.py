"""People, passwords, sessions and tokens.

- Passwords are hashed with Argon2id (argon2-cffi); a hash made with older
  parameters is replaced at the next successful login.
- A login makes a session: a random token the browser keeps in an HttpOnly,
  SameSite=Strict cookie (``Secure`` outside development), or that an API
  client sends as ``Authorization: Bearer``. Only the token's sha256 is
  stored, so a leaked table opens nothing; logout revokes it server-side.
- Each web session has a CSRF token that every state-changing request made
  with the cookie must echo (header ``X-CSRF-Token`` or form field
  ``csrf_token``). Bearer requests carry no ambient credential and need none.
- Failed logins are limited per (user name, client address): each attempt is
  recorded as a failure *before* the password is checked (a success removes
  it), under a lock, so a burst of guesses cannot slip past the count. After
  :data:`FREE_FAILURES` the next try waits, twice as long each time; after
  ``max_failures`` in the window it waits for the window. The same name from
  another address is not held up (a guesser cannot lock a moderator out); an
  address guessing many names is capped at ``ADDRESS_FACTOR`` times as many.
- At most :data:`MAX_HASHES` passwords are hashed at once (Argon2id takes
  64 MiB each); more wait their turn.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import math
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.triage.web.exceptions import Invalid, NotFound, TooManyAttempts, Unauthorized
from services.triage.web.models import LoginFailure, Role, Session, Team, User
from services.triage.web.store import Actor, TriageStore

log = logging.getLogger(__name__)

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Compared against when the user does not exist, so a wrong name costs as much
    time as a wrong password (no user enumeration by timing). Made on first use."""
    return _hasher.hash("no such user: " + secrets.token_hex(8))


#: Failed logins of one name from one address before the next try has to wait.
FREE_FAILURES = 3
#: The first wait after those (seconds); it doubles with each further failure.
FIRST_WAIT_S = 2
#: An address may fail this many times ``max_failures``, over all names, per window.
ADDRESS_FACTOR = 5
#: Passwords hashed at once in a process.
MAX_HASHES = 4

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 12


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


@dataclass(frozen=True)
class Principal:
    """Who a request is from, and its session."""

    actor: Actor
    kind: str
    csrf_token: str
    token_hash: str

    @property
    def role(self) -> Role:
        assert self.actor.role is not None
        return self.actor.role


class Accounts:
    def __init__(
        self,
        store: TriageStore,
        *,
        session_ttl_s: int,
        max_failures: int = 10,
        window_s: int = 900,
    ) -> None:
        self.store = store
        self.session_ttl = timedelta(seconds=session_ttl_s)
        self.max_failures = max_failures
        self.window = timedelta(seconds=window_s)
        self._hashing = asyncio.Semaphore(MAX_HASHES)
        self._reserving = asyncio.Lock()

    async def _matches(self, password_hash: str, password: str) -> bool:
        """Argon2 takes ~0.2 s of CPU and 64 MiB: off the event loop, a few at a time."""
        async with self._hashing:
            return await asyncio.to_thread(password_matches, password_hash, password)

    # --- users ---------------------------------------------------------------------

    async def upsert_user(
        self,
        username: str,
        password: str,
        role: Role,
        *,
        team: str | None = None,
        actor: Actor | None = None,
    ) -> User:
        """Create a user, or reset the password, role and team of an existing one."""
        username = username.strip().lower()
        if not USERNAME.match(username):
            raise Invalid("user names are 2-64 characters: a-z, 0-9, '.', '_' or '-'")
        if len(password) < MIN_PASSWORD:
            raise Invalid(f"passwords are at least {MIN_PASSWORD} characters")
        if (role is Role.TEAM) != (team is not None):
            raise Invalid("team members (and only they) belong to a team")
        actor = actor or Actor.system("accounts")
        async with self.store.sessions() as session:
            team_id = None
            if team is not None:
                team_id = await session.scalar(select(Team.id).where(Team.slug == team))
                if team_id is None:
                    raise NotFound(f"team {team!r} not found")
            user = await session.scalar(select(User).where(User.username == username))
            if (
                user is not None
                and (user.role, user.team_id, user.active) == (role.value, team_id, True)
                and await self._matches(user.password_hash, password)
            ):
                return user  # nothing to change: its sessions stay open (a restart)
            if user is None:
                user = User(username=username, created_at=self.store.clock())
                session.add(user)
            user.password_hash = await asyncio.to_thread(hash_password, password)
            user.role = role.value
            user.team_id = team_id
            user.active = True
            await session.flush()
            # A reset password ends every session of that user.
            await session.execute(
                update(Session)
                .where(Session.user_id == user.id, Session.revoked_at.is_(None))
                .values(revoked_at=self.store.clock())
            )
            self.store.db.audit(
                session, actor, "user", username, {"role": role.value, "team": team}
            )
            await session.commit()
            return user

    async def deactivate_user(self, username: str, actor: Actor) -> None:
        """The person can no longer sign in, and every session of theirs ends now."""
        async with self.store.sessions() as session:
            user = await session.scalar(select(User).where(User.username == username))
            if user is None:
                raise NotFound(f"user {username!r} not found")
            user.active = False
            await self._end_sessions(session, [user.id])
            self.store.db.audit(session, actor, "deactivate_user", username)
            await session.commit()

    async def deactivate_team(self, slug: str, actor: Actor) -> None:
        """The team gets no more work, its members can no longer sign in, and every
        session of theirs ends now (an admin's ``PUT /api/teams`` brings it back)."""
        async with self.store.sessions() as session:
            team = await session.scalar(select(Team).where(Team.slug == slug))
            if team is None:
                raise NotFound(f"team {slug!r} not found")
            team.active = False
            members = list(await session.scalars(select(User.id).where(User.team_id == team.id)))
            await self._end_sessions(session, members)
            self.store.db.audit(session, actor, "deactivate_team", slug)
            await session.commit()

    async def _end_sessions(self, session: AsyncSession, user_ids: list[int]) -> None:
        if user_ids:
            await session.execute(
                update(Session)
                .where(Session.user_id.in_(user_ids), Session.revoked_at.is_(None))
                .values(revoked_at=self.store.clock())
            )

    @staticmethod
    async def _may_sign_in(session: AsyncSession, user: User | None) -> bool:
        """Active, and (a team member) of an active team."""
        if user is None or not user.active:
            return False
        if user.team_id is None:
            return True
        return bool(await session.scalar(select(Team.active).where(Team.id == user.team_id)))

    # --- login ---------------------------------------------------------------------

    def _wait_s(self, failures: list[datetime], now: datetime) -> int:
        """Seconds before ``failures`` (of one name from one address in the window,
        newest first) allow another try; 0: now."""
        if len(failures) >= self.max_failures:
            free_at = failures[self.max_failures - 1] + self.window
        elif len(failures) >= FREE_FAILURES:
            wait = FIRST_WAIT_S * 2 ** (len(failures) - FREE_FAILURES)
            free_at = failures[0] + min(timedelta(seconds=wait), self.window)
        else:
            return 0
        return max(0, math.ceil((free_at - now).total_seconds()))

    async def _reserve(self, username: str, address: str) -> None:
        """Check the limits and record this attempt as a failure, in one step (under
        a lock in this process, and a transaction-scoped lock on Postgres across
        replicas), before any password is hashed; a successful login deletes it."""
        now = self.store.clock()
        since = now - self.window
        async with self._reserving, self.store.sessions() as session:
            if self.store.engine.dialect.name == "postgresql":
                await session.execute(
                    text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": address}
                )
            failures = list(
                await session.scalars(
                    select(LoginFailure.at)
                    .where(
                        LoginFailure.username == username,
                        LoginFailure.address == address,
                        LoginFailure.at >= since,
                    )
                    .order_by(LoginFailure.at.desc(), LoginFailure.id.desc())
                )
            )
            wait_s = self._wait_s(failures, now)
            if not wait_s:
                from_address = await session.scalar(
                    select(func.count(LoginFailure.id)).where(
                        LoginFailure.address == address, LoginFailure.at >= since
                    )
                )
                if int(from_address or 0) >= self.max_failures * ADDRESS_FACTOR:
                    wait_s = int(self.window.total_seconds())
            if wait_s:
                raise TooManyAttempts(
                    "too many failed logins; wait and try again", retry_after_s=wait_s
                )
            session.add(LoginFailure(username=username, address=address, at=now))
            await session.commit()

    async def login(
        self, username: str, password: str, *, address: str, kind: str
    ) -> tuple[str, Principal]:
        """Check the password and open a session; returns (token, principal).
        Wrong name and wrong password give the same error."""
        if kind not in {"web", "api"}:
            raise ValueError(f"unknown session kind {kind!r}")
        username = username.strip().lower()[:64]
        address = address[:64]
        await self._reserve(username, address)
        async with self.store.sessions() as session:
            user = await session.scalar(
                select(User).where(User.username == username, User.active.is_(True))
            )
            if not await self._may_sign_in(session, user):
                user = None  # a deactivated person or team: as if unknown
            known = user.password_hash if user else _dummy_hash()
            ok = await self._matches(known, password) and user is not None
            now = self.store.clock()
            if not ok or user is None:  # the reserved failure stays
                self.store.db.audit(session, Actor(name=username), "login_failed", address)
                await session.commit()
                raise Unauthorized("wrong user name or password")
            await session.execute(  # this name from this address starts afresh
                delete(LoginFailure).where(
                    LoginFailure.username == username, LoginFailure.address == address
                )
            )
            if _hasher.check_needs_rehash(user.password_hash):
                user.password_hash = await asyncio.to_thread(hash_password, password)
            token = secrets.token_urlsafe(32)
            row = Session(
                token_hash=token_hash(token),
                user_id=user.id,
                kind=kind,
                csrf_token=secrets.token_urlsafe(24),
                created_at=now,
                expires_at=now + self.session_ttl,
            )
            session.add(row)
            await session.execute(delete(Session).where(Session.expires_at < now))
            await session.execute(delete(LoginFailure).where(LoginFailure.at < now - self.window))
            self.store.db.audit(session, Actor(name=user.username), "login", kind)
            await session.commit()
            principal = await self._principal(session, user, row)
            return token, principal

    @staticmethod
    async def _principal(session: AsyncSession, user: User, row: Session) -> Principal:
        slug = None
        if user.team_id is not None:
            slug = await session.scalar(select(Team.slug).where(Team.id == user.team_id))
        actor = Actor(
            name=user.username,
            role=Role(user.role),
            user_id=user.id,
            team_id=user.team_id,
            team_slug=slug,
        )
        return Principal(
            actor=actor, kind=row.kind, csrf_token=row.csrf_token, token_hash=row.token_hash
        )

    async def usernames(self, user_ids: Iterable[int | None]) -> dict[int, str]:
        """The user name of each id (``None`` and unknown ids left out)."""
        ids = {i for i in user_ids if i is not None}
        if not ids:
            return {}
        async with self.store.sessions() as session:
            rows = await session.execute(select(User.id, User.username).where(User.id.in_(ids)))
            return {int(i): str(name) for i, name in rows.all()}

    async def people_for(self, team_id: int | None) -> list[tuple[str, str]]:
        """Who a question can be given to, as (user name, what they are): every active
        moderator and admin, and the members of the team it is with."""
        async with self.store.sessions() as session:
            desk = User.role.in_([Role.MODERATOR.value, Role.ADMIN.value])
            rows = await session.execute(
                select(User.username, User.role)
                .where(
                    User.active.is_(True), or_(desk, User.team_id == team_id) if team_id else desk
                )
                .order_by(User.role, User.username)
            )
            return [(str(name), str(role)) for name, role in rows.all()]

    async def resolve(self, token: str) -> Principal | None:
        """The live session a token opens, or ``None``."""
        if not token or len(token) > 256:
            return None
        now = self.store.clock()
        async with self.store.sessions() as session:
            row = await session.get(Session, token_hash(token))
            if row is None or row.revoked_at is not None or row.expires_at <= now:
                return None
            user = await session.get(User, row.user_id)
            if user is None or not await self._may_sign_in(session, user):
                return None
            return await self._principal(session, user, row)

    async def still_valid(self, principal: Principal) -> bool:
        """Whether ``principal``'s session still holds as it was opened: not revoked
        or expired, the person active with the same role and team (a live stream
        asks again while it runs)."""
        now = self.store.clock()
        async with self.store.sessions() as session:
            row = await session.get(Session, principal.token_hash)
            if row is None or row.revoked_at is not None or row.expires_at <= now:
                return False
            user = await session.get(User, row.user_id)
            return (
                user is not None
                and await self._may_sign_in(session, user)
                and user.role == principal.role.value
                and user.team_id == principal.actor.team_id
            )

    async def logout(self, principal: Principal) -> None:
        async with self.store.sessions() as session:
            await session.execute(
                update(Session)
                .where(Session.token_hash == principal.token_hash)
                .values(revoked_at=self.store.clock())
            )
            self.store.db.audit(session, principal.actor, "logout", principal.kind)
            await session.commit()
