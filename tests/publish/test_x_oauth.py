"""X's OAuth 2.0 token refresh, against the sandbox's token endpoint: a 401 or a
known expiry refreshes once, requests share a refresh, the rotated refresh token
is kept in the ledger across a restart, and no token ever reaches a log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.publish.config import PublishSettings
from services.publish.exceptions import FinalError
from services.publish.ledger import Ledger
from services.publish.platforms import build_platforms
from services.publish.platforms.base import MediaFile, ReplyDraft, StaticToken
from services.publish.platforms.oauth import MemoryTokenStore, RefreshingToken, TokenStore
from services.publish.platforms.x import XClient
from services.sandbox import SandboxSettings
from tests.helpers.sandbox import FakeClock, SandboxServer, posts
from tests.publish.helpers import migrated_ledger

pytestmark = pytest.mark.timeout(60)

CLIENT_ID = "takeaction-test"
ACCOUNT = "takeaction_sandbox"
TTL_S = 7200.0
KEY = ("x", "x-campaign")

ClientFactory = Callable[..., XClient]


@pytest.fixture
def x_client(
    publish_settings: Callable[..., PublishSettings], http: httpx.AsyncClient, clock: FakeClock
) -> ClientFactory:
    """An X client that refreshes: ``access`` (maybe None) and ``refresh`` configured."""

    def make(
        *,
        access: str | None,
        refresh: str,
        store: TokenStore | None = None,
        client: httpx.AsyncClient | None = None,
        **overrides: Any,
    ) -> XClient:
        settings = publish_settings(
            x_access_token=access, x_refresh_token=refresh, x_client_id=CLIENT_ID, **overrides
        )
        return XClient(
            settings,
            client or http,
            token_store=store if store is not None else MemoryTokenStore(),
            sleep=clock.sleep,
            clock=clock,
        )

    return make


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with migrated_ledger("sqlite", tmp_path) as ledger:
        yield ledger


def refreshes(client: XClient) -> int:
    assert isinstance(client.credentials, RefreshingToken)
    return client.credentials.refreshes


async def test_an_expired_token_is_refreshed_and_the_reply_goes_out_exactly_once(
    *,
    x_client: ClientFactory,
    sandbox: SandboxServer,
    clock: FakeClock,
    http: httpx.AsyncClient,
    media_factory: Callable[..., MediaFile],
    mention_id: Callable[[], str],
) -> None:
    access, refresh = sandbox.state.grant_x_tokens(ACCOUNT)
    store = MemoryTokenStore()
    client = x_client(access=access, refresh=refresh, store=store)
    media_id = await client.upload_video(media_factory())
    await clock.sleep(TTL_S + 1)  # expired; the client was never told when
    mention = mention_id()

    reply = await client.post_reply(ReplyDraft(
        text="Answer from the camp", in_reply_to=mention, media_ids=(media_id,),
        idempotency_key="reply-1",
    ))  # fmt: skip

    [post] = await posts(http, sandbox)
    assert (post["id"], post["in_reply_to"]) == (reply.post_id, mention)
    assert sandbox.state.x_expired_refusals == 1  # the POST /2/tweets that found it expired
    assert sandbox.state.x_refreshes == 1
    assert sandbox.state.x_refresh_tokens[refresh].spent
    saved = store.tokens[KEY]
    assert saved.refresh_token.get_secret_value() != refresh
    assert saved.expires_at == pytest.approx(clock() + TTL_S)


async def test_a_known_expiry_is_refreshed_before_x_refuses_the_token(
    x_client: ClientFactory, sandbox: SandboxServer, clock: FakeClock
) -> None:
    _, refresh = sandbox.state.grant_x_tokens(ACCOUNT)
    client = x_client(access=None, refresh=refresh)  # only a refresh token: get one first

    await client.find_reply(in_reply_to="1790000000000000001")
    assert sandbox.state.x_refreshes == 1
    await clock.sleep(TTL_S - 30)  # inside the 60 s margin
    await client.find_reply(in_reply_to="1790000000000000001")

    assert sandbox.state.x_refreshes == 2
    assert sandbox.state.x_expired_refusals == 0
    assert refreshes(client) == 2


async def test_concurrent_requests_share_one_refresh(
    x_client: ClientFactory, sandbox: SandboxServer, clock: FakeClock
) -> None:
    access, refresh = sandbox.state.grant_x_tokens(ACCOUNT)
    client = x_client(access=access, refresh=refresh)
    await clock.sleep(TTL_S + 1)

    found = await asyncio.gather(
        *(client.find_reply(in_reply_to=f"179000000000000000{n}") for n in range(8))
    )

    assert found == [None] * 8
    assert sandbox.state.x_expired_refusals == 8  # every request hit the expired token
    assert sandbox.state.x_refreshes == 1  # and they shared one refresh


async def test_a_spent_refresh_token_fails_for_good_and_is_not_tried_again(
    x_client: ClientFactory,
    sandbox: SandboxServer,
    clock: FakeClock,
    http: httpx.AsyncClient,
    mention_id: Callable[[], str],
) -> None:
    access, refresh = sandbox.state.grant_x_tokens(ACCOUNT)
    assert sandbox.state.refresh_x(refresh, CLIENT_ID) is not None  # spent elsewhere
    asked: list[str] = []

    async def record(request: httpx.Request) -> None:
        asked.append(request.url.path)

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as recording:
        client = x_client(access=access, refresh=refresh, client=recording)
        await clock.sleep(TTL_S + 1)
        for _ in range(2):
            with pytest.raises(FinalError, match="refresh token refused") as refused:
                await client.post_reply(
                    ReplyDraft(text="Answer", in_reply_to=mention_id(), idempotency_key="reply-1")
                )
            assert refused.value.status == 400
            assert refused.value.error == {
                "error": "invalid_request",
                "error_description": "Value passed for the token was invalid.",
            }

    assert asked.count("/2/oauth2/token") == 1
    assert await posts(http, sandbox) == []


async def test_a_restart_carries_on_from_the_refresh_token_in_the_ledger(
    x_client: ClientFactory, sandbox: SandboxServer, clock: FakeClock, ledger: Ledger
) -> None:
    access, refresh = sandbox.state.grant_x_tokens(ACCOUNT)
    first = x_client(access=access, refresh=refresh, store=ledger)
    await clock.sleep(TTL_S + 1)
    await first.user_id()  # 401, refreshed: the configured refresh token is spent
    assert sandbox.state.x_refreshes == 1

    # The publisher restarts with the same settings (the spent token) and database.
    restarted = x_client(access=access, refresh=refresh, store=Ledger(ledger.engine))
    await restarted.user_id()  # the stored access token is still good: nothing to do
    assert (sandbox.state.x_refreshes, sandbox.state.x_expired_refusals) == (1, 1)

    await clock.sleep(TTL_S + 1)
    await restarted.find_reply(in_reply_to="1790000000000000001")

    assert sandbox.state.x_refreshes == 2  # with the rotated refresh token
    assert refreshes(restarted) == 1
    assert sandbox.state.x_expired_refusals == 1  # the expiry was known: no 401 this time


async def test_without_the_ledger_a_restart_would_reuse_the_spent_refresh_token(
    x_client: ClientFactory, sandbox: SandboxServer, clock: FakeClock
) -> None:
    """What the ledger saves the publisher from (the test above can fail)."""
    access, refresh = sandbox.state.grant_x_tokens(ACCOUNT)
    await clock.sleep(TTL_S + 1)
    await x_client(access=access, refresh=refresh).user_id()

    forgetful = x_client(access=access, refresh=refresh, store=MemoryTokenStore())
    with pytest.raises(FinalError, match="refresh token refused"):
        await forgetful.user_id()


async def test_a_new_refresh_token_in_the_settings_starts_a_new_chain(
    x_client: ClientFactory, sandbox: SandboxServer, clock: FakeClock, ledger: Ledger
) -> None:
    old_access, old_refresh = sandbox.state.grant_x_tokens(ACCOUNT)
    await clock.sleep(TTL_S + 1)
    await x_client(access=old_access, refresh=old_refresh, store=ledger).user_id()
    # The account is authorized again: an operator sets the new pair.
    access, refresh = sandbox.state.grant_x_tokens(ACCOUNT)

    client = x_client(access=access, refresh=refresh, store=ledger)
    await client.user_id()
    assert sandbox.state.x_refreshes == 1  # the new access token was used as it was
    await clock.sleep(TTL_S + 1)
    await client.find_reply(in_reply_to="1790000000000000001")

    assert sandbox.state.x_refresh_tokens[refresh].spent  # not the old chain's token
    async with ledger.hold_tokens(*KEY) as slot:
        stored = slot.current
    assert stored is not None
    assert stored.refresh_token.get_secret_value() not in (old_refresh, refresh)


async def test_a_confidential_client_refreshes_with_basic_auth(
    serve: Any,
    sandbox_settings: Callable[..., SandboxSettings],
    x_client: ClientFactory,
    clock: FakeClock,
) -> None:
    settings = sandbox_settings(x_client_id=CLIENT_ID, x_client_secret="app-secret")
    async with serve(settings) as server:
        _, refresh = server.state.grant_x_tokens(ACCOUNT)
        _, other_refresh = server.state.grant_x_tokens(ACCOUNT)
        where = {"x_api_base_url": server.base_url}
        confidential = x_client(access=None, refresh=refresh, x_client_secret="app-secret", **where)
        public = x_client(access=None, refresh=other_refresh, **where)

        await confidential.user_id()
        with pytest.raises(FinalError, match="unauthorized_client"):
            await public.user_id()

        assert server.state.x_refreshes == 1


async def test_a_static_token_that_expires_stays_a_401(
    publish_settings: Callable[..., PublishSettings],
    http: httpx.AsyncClient,
    sandbox: SandboxServer,
    clock: FakeClock,
) -> None:
    access, _ = sandbox.state.grant_x_tokens(ACCOUNT)
    client = XClient(publish_settings(x_access_token=access), http, clock=clock)
    assert isinstance(client.credentials, StaticToken)
    await clock.sleep(TTL_S + 1)

    with pytest.raises(FinalError) as refused:
        await client.user_id()

    assert refused.value.status == 401
    assert sandbox.state.x_refreshes == 0


async def test_tokens_never_reach_the_logs(
    x_client: ClientFactory,
    sandbox: SandboxServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
    mention_id: Callable[[], str],
) -> None:
    caplog.set_level(logging.DEBUG)
    access, refresh = sandbox.state.grant_x_tokens(ACCOUNT)
    client = x_client(access=access, refresh=refresh)
    await clock.sleep(TTL_S + 1)
    await client.post_reply(
        ReplyDraft(text="Answer", in_reply_to=mention_id(), idempotency_key="r")
    )
    spent = x_client(access=access, refresh=refresh)  # its refresh token is spent now
    with pytest.raises(FinalError) as refused:
        await spent.user_id()

    tokens = {*sandbox.state.x_access_tokens, *sandbox.state.x_refresh_tokens}
    assert len(tokens) == 4
    said = [r.getMessage() for r in caplog.records] + [str(refused.value)]
    said += [caplog.text]
    assert any("refreshed" in line for line in said)
    assert [line for line in said if any(token in line for token in tokens)] == []


def test_x_is_on_with_only_a_refresh_token(http: httpx.AsyncClient) -> None:
    settings = PublishSettings(x_refresh_token=SecretStr("r"), x_client_id=CLIENT_ID)

    platforms = build_platforms(settings, http)

    [x] = platforms.values()
    assert isinstance(x, XClient)
    assert isinstance(x.credentials, RefreshingToken)
