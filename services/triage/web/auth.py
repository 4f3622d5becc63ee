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
- Failed logins are limited per user name and per client address.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, or_, select, update
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
                and await asyncio.to_thread(password_matches, user.password_hash, password)
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

    # --- login ---------------------------------------------------------------------

    async def _check_limit(self, username: str, address: str) -> None:
        since = self.store.clock() - self.window
        async with self.store.sessions() as session:
            failures = await session.scalar(
                select(func.count(LoginFailure.id)).where(
                    LoginFailure.at >= since,
                    or_(LoginFailure.username == username, LoginFailure.address == address),
                )
            )
        if int(failures or 0) >= self.max_failures:
            raise TooManyAttempts(
                "too many failed logins; wait and try again",
                retry_after_s=int(self.window.total_seconds()),
            )

    async def login(
        self, username: str, password: str, *, address: str, kind: str
    ) -> tuple[str, Principal]:
        """Check the password and open a session; returns (token, principal).
        Wrong name and wrong password give the same error."""
        if kind not in {"web", "api"}:
            raise ValueError(f"unknown session kind {kind!r}")
        username = username.strip().lower()[:64]
        await self._check_limit(username, address)
        async with self.store.sessions() as session:
            user = await session.scalar(
                select(User).where(User.username == username, User.active.is_(True))
            )
            # Argon2 takes ~0.2 s of CPU: off the event loop.
            known = user.password_hash if user else _dummy_hash()
            ok = await asyncio.to_thread(password_matches, known, password) and user is not None
            now = self.store.clock()
            if not ok or user is None:
                session.add(LoginFailure(username=username, address=address[:64], at=now))
                self.store.db.audit(session, Actor(name=username), "login_failed", address)
                await session.commit()
                raise Unauthorized("wrong user name or password")
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
            if user is None or not user.active:
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
                and user.active
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
