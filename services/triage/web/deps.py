"""FastAPI dependencies of the triage web: the running pieces, who is asking,
what they may do, and the CSRF check for cookie sessions."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from services.common.kafka import BrokerCheck
from services.triage.web.auth import Accounts, Principal, csrf_matches
from services.triage.web.config import WebSettings
from services.triage.web.exceptions import BadRequest, Forbidden, Unauthorized
from services.triage.web.media import MediaStore, Uploads
from services.triage.web.models import Role
from services.triage.web.store import TriageStore

#: Name of the session cookie.
COOKIE = "ta_session"
#: Methods that change nothing (no CSRF token needed).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class TriageRuntime:
    """What the lifespan builds once and the routes use."""

    settings: WebSettings
    store: TriageStore
    accounts: Accounts
    media: MediaStore
    uploads: Uploads
    broker: BrokerCheck
    tasks: Mapping[str, asyncio.Task[None]] = field(default_factory=dict)
    #: Stops long-lived streams at shutdown.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


def get_runtime(request: Request) -> TriageRuntime:
    runtime: TriageRuntime = request.app.state.runtime
    return runtime


Runtime = Annotated[TriageRuntime, Depends(get_runtime)]


#: A count or an id in a header: ASCII digits only (``str.isdigit`` takes ``²``, ``int`` does
#: not), at most 18 of them (fits a 64-bit column).
_NUMBER = re.compile(r"[0-9]{1,18}")
#: The largest id (or id cursor) a request may name: the id columns are 32-bit
#: (Postgres ``integer``), where a larger number fails in the driver, a 500.
MAX_ID = 2**31 - 1


def header_number(request: Request, name: str, *, maximum: int | None = None) -> int | None:
    """The header ``name`` as a non-negative integer (at most ``maximum``), ``None``
    when absent; anything else is a 400 (never a 500, never silently ignored)."""
    value = request.headers.get(name)
    if value is None:
        return None
    if not _NUMBER.fullmatch(value) or (maximum is not None and int(value) > maximum):
        at_most = f" of at most {maximum}" if maximum is not None else ""
        raise BadRequest(f"the {name} header must be a non-negative whole number{at_most}")
    return int(value)


#: ``Authorization: Bearer`` from ``POST /api/token`` (also what OpenAPI's "Authorize" uses).
oauth2 = OAuth2PasswordBearer(tokenUrl="/api/token", auto_error=False)


async def optional_principal(
    request: Request, runtime: Runtime, token: Annotated[str | None, Depends(oauth2)]
) -> Principal | None:
    """The signed-in person (Bearer token first, then the session cookie), or None."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    principal: Principal | None = None
    if token is not None:
        principal = await runtime.accounts.resolve(token)
        if principal is None or principal.kind != "api":
            raise Unauthorized("invalid or expired token")
    else:
        cookie = request.cookies.get(COOKIE)
        if cookie:
            principal = await runtime.accounts.resolve(cookie)
            if principal is not None and principal.kind != "web":
                principal = None
    if principal is not None and principal.kind == "web" and request.method not in SAFE_METHODS:
        given = request.headers.get("x-csrf-token")
        if given is None and request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            form = await request.form()
            value = form.get("csrf_token")
            given = value if isinstance(value, str) else None
        if not csrf_matches(principal.csrf_token, given):
            raise Forbidden("missing or wrong CSRF token")
    request.state.principal = principal
    return principal


async def current_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    if principal is None:
        raise Unauthorized("sign in first")
    return principal


Signed = Annotated[Principal, Depends(current_principal)]


def require(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    async def check(principal: Signed) -> Principal:
        if principal.role not in roles:
            raise Forbidden(f"this needs the role {' or '.join(r.value for r in roles)}")
        return principal

    return check


Moderator = Annotated[Principal, Depends(require(Role.ADMIN, Role.MODERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
Anyone = Signed
