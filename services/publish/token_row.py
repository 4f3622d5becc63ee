"""The X account's OAuth tokens in the ledger database (``oauth_tokens``): the
:class:`~services.publish.platforms.oauth.TokenSlot` that
:meth:`Ledger.hold_tokens <services.publish.ledger.Ledger.hold_tokens>` yields."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from services.publish.models import OAuthToken
from services.publish.platforms.oauth import TokenSet


class TokenRow:
    """A :class:`~services.publish.platforms.oauth.TokenSlot` over an ``oauth_tokens`` row."""

    def __init__(
        self,
        session: AsyncSession,
        platform: str,
        account: str,
        row: OAuthToken | None,
        now: Callable[[], datetime],
    ) -> None:
        self._session = session
        self._key = (platform, account)
        self._row = row
        self._now = now

    @property
    def current(self) -> TokenSet | None:
        row = self._row
        if row is None:
            return None
        return TokenSet(
            access_token=SecretStr(row.access_token) if row.access_token is not None else None,
            expires_at=row.expires_at.timestamp() if row.expires_at is not None else None,
            refresh_token=SecretStr(row.refresh_token),
            seed=row.seed_sha256,
        )

    async def save(self, tokens: TokenSet) -> None:
        row = self._row
        if row is None:
            row = self._row = OAuthToken(platform=self._key[0], account=self._key[1])
            self._session.add(row)
        row.access_token = (
            tokens.access_token.get_secret_value() if tokens.access_token is not None else None
        )
        expires_at = tokens.expires_at
        row.expires_at = datetime.fromtimestamp(expires_at, UTC) if expires_at is not None else None
        row.refresh_token = tokens.refresh_token.get_secret_value()
        row.seed_sha256 = tokens.seed
        row.refreshed_at = self._now()
        await self._session.commit()
