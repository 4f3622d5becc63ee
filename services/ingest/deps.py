"""FastAPI dependencies of ingest: the API key check and the running pieces."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Request

from services.common.http import ApiError, bearer_matches
from services.common.kafka import BrokerCheck
from services.ingest.config import IngestSettings
from services.ingest.dedupe import ReadinessCheck
from services.ingest.domain import CampaignAccounts
from services.ingest.sink import MentionSink


@dataclass
class IngestRuntime:
    """What the lifespan builds once and the routes use."""

    settings: IngestSettings
    sink: MentionSink
    ready: ReadinessCheck
    broker: BrokerCheck
    #: The background tasks (dedupe tail, sources) by name, for ``/healthz``.
    tasks: Mapping[str, asyncio.Task[None]] = field(default_factory=dict)

    @property
    def accounts(self) -> CampaignAccounts:
        """The campaign's accounts (who a post must name to summon it)."""
        return CampaignAccounts.of(
            self.settings.campaign_handles, [self.settings.x_account_id or ""]
        )


def get_runtime(request: Request) -> IngestRuntime:
    runtime: IngestRuntime = request.app.state.runtime
    return runtime


Runtime = Annotated[IngestRuntime, Depends(get_runtime)]


def require_api_key(
    runtime: Runtime, authorization: Annotated[str | None, Header()] = None
) -> None:
    expected = runtime.settings.api_key.get_secret_value()
    if not bearer_matches(authorization, expected):
        raise ApiError(
            401,
            "missing or invalid bearer token",
            headers={"WWW-Authenticate": 'Bearer realm="ingest"'},
        )
