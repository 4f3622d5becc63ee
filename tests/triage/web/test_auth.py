"""People, passwords and sessions on SQLite and on Postgres.

Argon2id at its production cost takes a few hundred milliseconds a hash; these
tests run the same algorithm at its lowest cost (``cheap_hashing``, conftest), and
one test checks the production parameters and the rehash on login."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from services.triage.web import auth
from services.triage.web.auth import Accounts, csrf_matches, token_hash
from services.triage.web.exceptions import Invalid, NotFound, TooManyAttempts, Unauthorized
from services.triage.web.models import AuditEntry, LoginFailure, Role, Session, User
from services.triage.web.store import Actor, TriageStore
from tests.helpers.db import KINDS
from tests.triage.web.helpers.store import FakeClock, add_team, migrated_store

pytestmark = pytest.mark.timeout(60)

SESSION_TTL_S = 3600
MAX_FAILURES = 6
WINDOW_S = 900
PASSWORD = "correct horse battery"
ADDRESS = "203.0.113.7"


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(kind: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[TriageStore]:
    async with migrated_store(kind, tmp_path, clock) as store:
        await add_team(store, "camp-a")
        yield store


@pytest.fixture
def accounts(store: TriageStore, cheap_hashing: PasswordHasher) -> Accounts:
    return Accounts(
        store, session_ttl_s=SESSION_TTL_S, max_failures=MAX_FAILURES, window_s=WINDOW_S
    )


async def login(accounts: Accounts, name: str = "mod", password: str = PASSWORD, **kw: str) -> str:
    token, _ = await accounts.login(
        name, password, address=kw.get("address", ADDRESS), kind=kw.get("kind", "web")
    )
    return token


async def stored_user(store: TriageStore, name: str) -> User:
    async with store.sessions() as session:
        user = await session.scalar(select(User).where(User.username == name))
    assert user is not None
    return user


# --- users ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "password", "membership", "message"),
    [
        ("mod", "short", (Role.MODERATOR, None), "at least 12"),
        ("mod", "x" * 11, (Role.MODERATOR, None), "at least 12"),
        ("m", PASSWORD, (Role.MODERATOR, None), "user names"),
        ("has space", PASSWORD, (Role.MODERATOR, None), "user names"),
        ("-dash", PASSWORD, (Role.MODERATOR, None), "user names"),
        ("x" * 65, PASSWORD, (Role.MODERATOR, None), "user names"),
        ("member", PASSWORD, (Role.TEAM, None), "belong to a team"),
        ("mod", PASSWORD, (Role.MODERATOR, "camp-a"), "belong to a team"),
        ("admin", PASSWORD, (Role.ADMIN, "camp-a"), "belong to a team"),
    ],
)
async def test_upsert_user_refuses_what_is_not_acceptable(
    accounts: Accounts,
    username: str,
    password: str,
    membership: tuple[Role, str | None],
    message: str,
) -> None:
    role, team = membership
    with pytest.raises(Invalid, match=message):
        await accounts.upsert_user(username, password, role, team=team)
    async with accounts.store.sessions() as session:
        assert list(await session.scalars(select(User))) == []


async def test_upsert_user_needs_an_existing_team(accounts: Accounts) -> None:
    with pytest.raises(NotFound, match="camp-gone"):
        await accounts.upsert_user("member", PASSWORD, Role.TEAM, team="camp-gone")


async def test_upsert_user_stores_a_hash_and_a_normalised_name(
    accounts: Accounts, store: TriageStore
) -> None:
    created = await accounts.upsert_user(
        "  Member.One ", PASSWORD, Role.TEAM, team="camp-a", actor=Actor(name="admin")
    )
    user = await stored_user(store, "member.one")
    assert (user.id, user.role, user.active) == (created.id, "team", True)
    assert user.team_id == (await store.teams.get("camp-a")).id
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    async with store.sessions() as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.action == "user"))
    assert entry is not None
    assert (entry.actor, entry.subject) == ("admin", "member.one")


# --- login and sessions ----------------------------------------------------------------


async def test_a_login_opens_a_session_the_token_resolves(
    accounts: Accounts, store: TriageStore, clock: FakeClock
) -> None:
    member = await accounts.upsert_user("member", PASSWORD, Role.TEAM, team="camp-a")
    token, principal = await accounts.login(" Member ", PASSWORD, address=ADDRESS, kind="api")

    resolved = await accounts.resolve(token)
    assert resolved == principal
    assert resolved.role is Role.TEAM
    assert resolved.actor == Actor(
        name="member",
        role=Role.TEAM,
        user_id=member.id,
        team_id=member.team_id,
        team_slug="camp-a",
    )
    assert (resolved.kind, resolved.token_hash) == ("api", token_hash(token))
    assert len(resolved.csrf_token) >= 24
    async with store.sessions() as session:
        row = await session.get(Session, token_hash(token))
        stored_tokens = list(await session.scalars(select(Session.token_hash)))
    assert row is not None
    assert row.expires_at == clock.now + accounts.session_ttl
    assert token not in stored_tokens  # only its hash is kept


async def test_each_login_is_a_session_of_its_own(accounts: Accounts) -> None:
    await accounts.upsert_user("mod", PASSWORD, Role.MODERATOR)
    first, second = await login(accounts), await login(accounts)
    assert first != second
    one, two = await accounts.resolve(first), await accounts.resolve(second)
    assert one is not None
    assert two is not None
    assert one.csrf_token != two.csrf_token
    assert one.role is Role.MODERATOR
    assert one.actor.team_slug is None


@pytest.mark.parametrize(("name", "password"), [("mod", "wrong password!"), ("nobody", PASSWORD)])
async def test_a_wrong_password_and_an_unknown_user_look_the_same(
    accounts: Accounts, store: TriageStore, name: str, password: str
) -> None:
    await accounts.upsert_user("mod", PASSWORD, Role.MODERATOR)
    with pytest.raises(Unauthorized, match="wrong user name or password") as caught:
        await accounts.login(name, password, address=ADDRESS, kind="web")
    assert caught.value.status == 401
    async with store.sessions() as session:
        failures = [(f.username, f.address) for f in await session.scalars(select(LoginFailure))]
        sessions = list(await session.scalars(select(Session)))
        audit = list(await session.scalars(select(AuditEntry.action)))
    assert failures == [(name, ADDRESS)]
    assert sessions == []
    assert audit[-1] == "login_failed"


async def test_failures_of_a_name_from_an_address_make_it_wait_longer_each_time(
    accounts: Accounts, clock: FakeClock
) -> None:
    await accounts.upsert_user("mod", PASSWORD, Role.MODERATOR)
    for _ in range(auth.FREE_FAILURES):
        with pytest.raises(Unauthorized):
            await login(accounts, password="guess guess guess")
    waits = []
    for _ in range(MAX_FAILURES - auth.FREE_FAILURES):
        with pytest.raises(TooManyAttempts) as caught:
            await login(accounts)  # even the right password
        assert caught.value.status == 429
        waits.append(caught.value.retry_after_s)
        clock.advance(seconds=caught.value.retry_after_s)
        with pytest.raises(Unauthorized):
            await login(accounts, password="guess guess guess")
    assert waits == sorted(waits), waits  # growing
    assert waits[0] < waits[-1], waits
    with pytest.raises(TooManyAttempts) as caught:
        await login(accounts)
    assert caught.value.retry_after_s <= WINDOW_S
    clock.advance(seconds=WINDOW_S + 1)
    assert await accounts.resolve(await login(accounts)) is not None


async def test_concurrent_wrong_passwords_are_limited_before_hashing(accounts: Accounts) -> None:
    """The attempt is reserved before the hash: a burst cannot slip past the count."""
    await accounts.upsert_user("mod", PASSWORD, Role.MODERATOR)
    results = await asyncio.gather(
        *(login(accounts, password=f"guess number {i:02}") for i in range(12)),
        return_exceptions=True,
    )
    kinds = [type(r).__name__ for r in results]
    assert kinds.count("Unauthorized") == auth.FREE_FAILURES, kinds
    assert kinds.count("TooManyAttempts") == 12 - auth.FREE_FAILURES, kinds


async def test_a_guessing_address_does_not_lock_the_real_user_out(accounts: Accounts) -> None:
    await accounts.upsert_user("mod", PASSWORD, Role.MODERATOR)
    for _ in range(12):
        with pytest.raises((Unauthorized, TooManyAttempts)):
            await login(accounts, password="guess guess guess")
    token = await login(accounts, address="198.51.100.1")  # the moderator, elsewhere
    assert await accounts.resolve(token) is not None


async def test_an_address_guessing_many_names_is_limited(accounts: Accounts) -> None:
    for i in range(MAX_FAILURES * auth.ADDRESS_FACTOR):
        with pytest.raises(Unauthorized):
            await login(accounts, f"user{i}", password="guess guess guess")
    with pytest.raises(TooManyAttempts):
        await login(accounts, "yet-another", password="guess guess guess")


async def test_only_a_few_passwords_are_hashed_at_once(
    accounts: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    await accounts.upsert_user("mod", PASSWORD, Role.MODERATOR)
    running, most = 0, 0
    real = auth.password_matches

    def counting(password_hash: str, password: str) -> bool:
        nonlocal running, most
        running += 1
        most = max(most, running)
        time.sleep(0.05)
        running -= 1
        return real(password_hash, password)

    monkeypatch.setattr(auth, "password_matches", counting)
    await asyncio.gather(
        *(login(accounts, "mod", address=f"192.0.2.{i}") for i in range(12)),
    )
    assert most <= auth.MAX_HASHES, most


async def test_logout_revokes_the_session(accounts: Accounts) -> None:
    await accounts.upsert_user("mod", PASSWORD, Role.MODERATOR)
    token = await login(accounts)
    kept = await login(accounts)
    principal = await accounts.resolve(token)
    assert principal is not None

    await accounts.logout(principal)
    assert await accounts.resolve(token) is None
    assert await accounts.resolve(kept) is not None  # only that session ends


async def test_an_expired_session_resolves_to_nothing(
    accounts: Accounts, store: TriageStore, clock: FakeClock
) -> None:
    await accounts.upsert_user("mod", PASSWORD, Role.MODERATOR)
    token = await login(accounts)
    clock.advance(seconds=SESSION_TTL_S - 1)
    assert await accounts.resolve(token) is not None
    clock.advance(seconds=1)
    assert await accounts.resolve(token) is None

    clock.advance(seconds=1)
    await login(accounts)  # a login sweeps the expired sessions away
    async with store.sessions() as session:
        assert await session.get(Session, token_hash(token)) is None


async def test_a_password_reset_ends_every_session(accounts: Accounts) -> None:
    await accounts.upsert_user("mod", PASSWORD, Role.MODERATOR)
    tokens = [await login(accounts), await login(accounts, kind="api")]
    await accounts.upsert_user("mod", "a whole new password", Role.MODERATOR)

    assert [await accounts.resolve(t) for t in tokens] == [None, None]
    with pytest.raises(Unauthorized):
        await login(accounts)
    assert await accounts.resolve(await login(accounts, password="a whole new password"))


async def test_the_same_account_again_keeps_its_sessions(accounts: Accounts) -> None:
    """A restart re-applies TRIAGE_ADMIN_USER/_PASSWORD: nobody is signed out."""
    await accounts.upsert_user("admin", PASSWORD, Role.ADMIN)
    token = await login(accounts, "admin")
    await accounts.upsert_user("admin", PASSWORD, Role.ADMIN)
    assert await accounts.resolve(token) is not None


async def test_a_role_change_takes_effect_at_the_next_login(accounts: Accounts) -> None:
    await accounts.upsert_user("person", PASSWORD, Role.TEAM, team="camp-a")
    await accounts.upsert_user("person", PASSWORD, Role.MODERATOR)
    principal = await accounts.resolve(await login(accounts, "person"))
    assert principal is not None
    assert (principal.role, principal.actor.team_id) == (Role.MODERATOR, None)


@pytest.mark.parametrize("token", ["", "not-a-token", "x" * 300])
async def test_a_token_that_opens_nothing_resolves_to_nothing(
    accounts: Accounts, token: str
) -> None:
    await accounts.upsert_user("mod", PASSWORD, Role.MODERATOR)
    await login(accounts)
    assert await accounts.resolve(token) is None


async def test_production_hashes_are_argon2id_and_weaker_ones_are_upgraded_at_login(
    store: TriageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts = Accounts(store, session_ttl_s=SESSION_TTL_S)
    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    await accounts.upsert_user("mod", PASSWORD, Role.MODERATOR)
    weak = (await stored_user(store, "mod")).password_hash
    monkeypatch.undo()

    assert auth._hasher.check_needs_rehash(weak)
    await login(accounts)
    upgraded = (await stored_user(store, "mod")).password_hash
    assert upgraded != weak
    assert upgraded.startswith("$argon2id$")
    assert not auth._hasher.check_needs_rehash(upgraded)
    assert await accounts.resolve(await login(accounts)) is not None  # the new hash verifies


def test_csrf_tokens_are_compared_exactly() -> None:
    assert csrf_matches("abc", "abc")
    assert not csrf_matches("abc", "abd")
    assert not csrf_matches("abc", None)
    assert not csrf_matches("abc", "")
