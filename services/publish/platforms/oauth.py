"""The bearer token a platform adapter sends, and how X's gets refreshed.

X user-context access tokens (OAuth 2.0) expire after two hours; with the
``offline.access`` scope they come with a refresh token. A refresh is

    POST /2/oauth2/token   (application/x-www-form-urlencoded)
    grant_type=refresh_token&refresh_token=<token>&client_id=<client id>

with HTTP Basic auth (client id : client secret) for a confidential client, and
answers ``{"token_type": "bearer", "access_token", "expires_in", "scope",
"refresh_token"}``. Refresh tokens rotate: the one just used is spent (X answers
400 ``invalid_request`` to it afterwards), so the new one is saved in a
:class:`TokenStore` (the ledger database) *before* the new access token is used,
and a restart carries on from it instead of the spent one in the settings.

:class:`RefreshingToken` (a :class:`~services.publish.platforms.base.Credentials`)
refreshes when X answers 401
and shortly before a known expiry; requests that find the token stale together
share one refresh (an ``asyncio.Lock`` in the process, the store's row lock across
processes on Postgres). Tokens are never logged nor put in exception messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from services.publish.exceptions import FinalError, RetryableError
from services.publish.platforms.http import USER_AGENT, decode_body, describe_transport

log = logging.getLogger(__name__)

#: X's token endpoint, under the API base URL.
TOKEN_PATH = "/2/oauth2/token"  # noqa: S105 - a path, not a secret


def fingerprint(secret: SecretStr) -> str:
    """sha256 of a token: tells which configured refresh token a stored chain grew
    from, without keeping that token."""
    return hashlib.sha256(secret.get_secret_value().encode()).hexdigest()


@dataclass(frozen=True)
class TokenSet:
    """An account's latest tokens, as saved after a refresh."""

    access_token: SecretStr | None
    #: Epoch seconds; None when unknown.
    expires_at: float | None
    refresh_token: SecretStr
    #: :func:`fingerprint` of the configured refresh token this chain started from.
    seed: str


class TokenSlot(Protocol):
    """An account's stored tokens, held (locked) while a refresh decides on them."""

    @property
    def current(self) -> TokenSet | None: ...

    async def save(self, tokens: TokenSet) -> None:
        """Make ``tokens`` durable (before the new access token is used)."""
        ...


class TokenStore(Protocol):
    def hold_tokens(self, platform: str, account: str) -> AbstractAsyncContextManager[TokenSlot]:
        """Hold the account's stored tokens until the block ends."""
        ...


@dataclass
class _MemorySlot:
    store: MemoryTokenStore
    key: tuple[str, str]

    @property
    def current(self) -> TokenSet | None:
        return self.store.tokens.get(self.key)

    async def save(self, tokens: TokenSet) -> None:
        self.store.tokens[self.key] = tokens


@dataclass
class MemoryTokenStore:
    """Tokens kept in memory only (tests; an adapter built without a ledger): a
    restart goes back to the configured refresh token."""

    tokens: dict[tuple[str, str], TokenSet] = field(default_factory=dict)
    _locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def hold_tokens(self, platform: str, account: str) -> AsyncIterator[TokenSlot]:
        key = (platform, account)
        async with self._locks.setdefault(key, asyncio.Lock()):
            yield _MemorySlot(self, key)


class _TokenResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")

    token_type: str
    access_token: SecretStr
    expires_in: float | None = Field(default=None, ge=0)
    refresh_token: SecretStr | None = None
    scope: str | None = None


class RefreshingToken:
    """An X user-context access token that refreshes itself (see the module doc)."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        token_url: str,
        client_id: str,
        client_secret: SecretStr | None,
        access_token: SecretStr | None,
        refresh_token: SecretStr,
        store: TokenStore,
        platform: str,
        account: str,
        timeout: httpx.Timeout,
        margin_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._configured_refresh = refresh_token
        self._seed = fingerprint(refresh_token)
        self._store = store
        self.platform = platform
        self.account = account
        self._timeout = timeout
        self._margin_s = margin_s
        self._clock = clock
        self._access = access_token
        self._expires_at: float | None = None
        self._loaded = False
        #: Why the refresh token was refused, once it was (no point asking again).
        self._refused: FinalError | None = None
        self._lock = asyncio.Lock()
        #: Refreshes this process made (for tests and logs).
        self.refreshes = 0

    async def token(self) -> SecretStr:
        if not self._loaded:
            async with self._lock:
                if not self._loaded:
                    await self._load()
        current = self._access
        if current is None or self._expiring():
            return await self._refresh(current)
        return current

    async def refreshed(self, stale: SecretStr) -> SecretStr | None:
        log.info("%s access token of %s refused (401); refreshing it", self.platform, self.account)
        return await self._refresh(stale)

    # -- internals --

    def _expiring(self) -> bool:
        return self._expires_at is not None and self._clock() >= self._expires_at - self._margin_s

    def _same(self, token: SecretStr | None, other: SecretStr | None) -> bool:
        if token is None or other is None:
            return token is other
        return token.get_secret_value() == other.get_secret_value()

    def _usable(self, tokens: TokenSet) -> bool:
        return tokens.access_token is not None and (
            tokens.expires_at is None or self._clock() < tokens.expires_at - self._margin_s
        )

    async def _load(self) -> None:
        """Adopt the stored chain once, if it grew from the configured refresh token."""
        async with self._store.hold_tokens(self.platform, self.account) as slot:
            stored = slot.current
        if stored is not None and stored.seed == self._seed:
            self._adopt(stored)
            log.info("%s tokens of %s taken from the ledger", self.platform, self.account)
        elif stored is not None:
            log.info(
                "%s refresh token of %s is a new one; the stored chain is dropped",
                self.platform,
                self.account,
            )
        self._loaded = True

    def _adopt(self, tokens: TokenSet) -> None:
        self._access = tokens.access_token
        self._expires_at = tokens.expires_at

    async def _refresh(self, stale: SecretStr | None) -> SecretStr:
        async with self._lock:
            if self._refused is not None:
                raise self._refused
            current = self._access
            if current is not None and not self._same(current, stale) and not self._expiring():
                return current  # another request refreshed it meanwhile
            async with self._store.hold_tokens(self.platform, self.account) as slot:
                stored = slot.current if slot.current and slot.current.seed == self._seed else None
                if (
                    stored is not None
                    and not self._same(stored.access_token, stale)
                    and self._usable(stored)
                ):
                    self._adopt(stored)  # another process refreshed it
                    assert stored.access_token is not None
                    return stored.access_token
                refresh_token = stored.refresh_token if stored else self._configured_refresh
                fresh = await self._exchange(refresh_token)
                await slot.save(fresh)
            self._adopt(fresh)
            self.refreshes += 1
            log.info(
                "%s access token of %s refreshed (expires in %s s); new refresh token saved",
                self.platform,
                self.account,
                "?" if fresh.expires_at is None else f"{fresh.expires_at - self._clock():.0f}",
            )
            assert fresh.access_token is not None
            return fresh.access_token

    async def _exchange(self, refresh_token: SecretStr) -> TokenSet:
        """One ``POST /2/oauth2/token``. Not retried here: a refresh whose answer was
        lost may have spent the token; the request that needed it is retried whole."""
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token.get_secret_value(),
            "client_id": self._client_id,
        }
        extra: dict[str, Any] = {}
        if self._client_secret is not None:  # a confidential client
            extra["auth"] = httpx.BasicAuth(self._client_id, self._client_secret.get_secret_value())
        where = f"{self.platform} POST {TOKEN_PATH}"
        try:
            response = await self._http.post(
                self._token_url,
                data=form,
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                timeout=self._timeout,
                **extra,
            )
        except httpx.TransportError as exc:
            raise RetryableError(
                f"{where}: {describe_transport(exc)}", platform=self.platform, account=self.account
            ) from exc
        status = response.status_code
        if status >= 500 or status == 429:
            raise RetryableError(
                f"{where}: HTTP {status}",
                platform=self.platform,
                account=self.account,
                status=status,
                error=_oauth_error(response),
            )
        if status >= 400:
            error = _oauth_error(response)
            log.error(
                "%s refused to refresh the access token of %s (HTTP %d %s): authorize the "
                "account again and set PUBLISH_X_ACCESS_TOKEN / PUBLISH_X_REFRESH_TOKEN",
                self.platform,
                self.account,
                status,
                error.get("error"),
            )
            self._refused = FinalError(
                f"{where}: HTTP {status}: refresh token refused ({error.get('error')}: "
                f"{error.get('error_description')}); the account must be authorized again",
                platform=self.platform,
                account=self.account,
                status=status,
                error=error,
            )
            raise self._refused
        try:
            body = _TokenResponse.model_validate_json(response.content)
        except ValidationError as exc:
            # Never str(exc): pydantic puts the input, tokens included, in it.
            raise RetryableError(
                f"{where}: unexpected answer ({exc.error_count()} problems)",
                platform=self.platform,
                account=self.account,
                status=status,
            ) from None
        if body.token_type.lower() != "bearer":
            raise RetryableError(
                f"{where}: token_type {body.token_type!r}, expected bearer",
                platform=self.platform,
                account=self.account,
                status=status,
            )
        return TokenSet(
            access_token=body.access_token,
            expires_at=None if body.expires_in is None else self._clock() + body.expires_in,
            # A server that does not rotate keeps the old refresh token valid.
            refresh_token=body.refresh_token or refresh_token,
            seed=self._seed,
        )


def _oauth_error(response: httpx.Response) -> dict[str, str | None]:
    """``error`` and ``error_description`` of an OAuth error answer (nothing else)."""
    body = decode_body(response)
    if not isinstance(body, dict):
        return {"error": None, "error_description": None}
    return {
        key: str(body[key])[:300] if body.get(key) is not None else None
        for key in ("error", "error_description")
    }
