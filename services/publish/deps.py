"""FastAPI dependencies of the publisher: the running pieces and the API key check."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Request

from services.common.http import ApiError, bearer_matches
from services.common.kafka import BrokerCheck
from services.publish.config import PublishSettings
from services.publish.ledger import Ledger


@dataclass
class PublishRuntime:
    """What the lifespan builds once and the routes use."""

    settings: PublishSettings
    ledger: Ledger
    broker: BrokerCheck
    #: The background tasks by name, the three consumers and the take-down sweep
    #: (a finished one is dead: /healthz says so).
    tasks: Mapping[str, asyncio.Task[None]] = field(default_factory=dict)


def get_runtime(request: Request) -> PublishRuntime:
    runtime: PublishRuntime = request.app.state.runtime
    return runtime


Runtime = Annotated[PublishRuntime, Depends(get_runtime)]


def require_api_key(
    runtime: Runtime, authorization: Annotated[str | None, Header()] = None
) -> None:
    """Moderators' endpoints: ``Authorization: Bearer <PUBLISH_API_KEY>``."""
    key = runtime.settings.api_key
    if key is None:
        raise ApiError(403, "the opt-out endpoints are off (PUBLISH_API_KEY is unset)")
    if not bearer_matches(authorization, key.get_secret_value()):
        raise ApiError(
            401,
            "missing or invalid bearer token",
            headers={"WWW-Authenticate": 'Bearer realm="publish"'},
        )
