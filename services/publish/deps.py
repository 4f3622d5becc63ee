"""FastAPI dependencies of the publisher: the running pieces and the API key check."""

from __future__ import annotations

import asyncio
import base64
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Request

from services.common.http import ApiError, bearer_matches
from services.common.kafka import BrokerCheck
from services.publish.config import PublishSettings
from services.publish.ledger import Ledger
from services.publish.spend import SpendLedger


@dataclass
class PublishRuntime:
    """What the lifespan builds once and the routes use."""

    settings: PublishSettings
    ledger: Ledger
    broker: BrokerCheck
    #: The background tasks by name, the three consumers and the take-down sweep
    #: (a finished one is dead: /healthz says so).
    tasks: Mapping[str, asyncio.Task[None]] = field(default_factory=dict)
    #: What the X account spent (pay-per-use); None in tests without it.
    spend: SpendLedger | None = None


def basic_password_matches(authorization: str | None, expected: str) -> bool:
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not expected:
        return False
    try:
        _, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(password.encode(), expected.encode())


def get_runtime(request: Request) -> PublishRuntime:
    runtime: PublishRuntime = request.app.state.runtime
    return runtime


Runtime = Annotated[PublishRuntime, Depends(get_runtime)]


def require_api_key(
    runtime: Runtime, authorization: Annotated[str | None, Header()] = None
) -> None:
    """Moderators' endpoints: ``Authorization: Bearer <PUBLISH_API_KEY>`` (a browser
    may send it as the password of HTTP Basic authentication, any user name)."""
    key = runtime.settings.api_key
    if key is None:
        raise ApiError(403, "the opt-out endpoints are off (PUBLISH_API_KEY is unset)")
    if basic_password_matches(authorization, key.get_secret_value()):
        return
    if not bearer_matches(authorization, key.get_secret_value()):
        raise ApiError(
            401,
            "missing or invalid bearer token",
            headers={"WWW-Authenticate": 'Bearer realm="publish"'},
        )
