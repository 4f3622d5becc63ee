"""What every server-rendered page shares: the Jinja2 environment (autoescaped, with
the date filters and content-hashed asset URLs), rendering, the refusal pages, and
``signed_in``: the signed-in person, or the page to answer instead (no session:
``/login``; wrong role: a 403 page).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader

from services.common.media.profiles import clock
from services.triage.web import domain
from services.triage.web.auth import Principal
from services.triage.web.deps import TriageRuntime, oauth2, optional_principal
from services.triage.web.exceptions import (
    Forbidden,
    Unauthorized,
)
from services.triage.web.models import Role

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parent.parent
TEMPLATES = PACKAGE / "templates"
STATIC = PACKAGE / "static"
MODERATORS = (Role.ADMIN, Role.MODERATOR)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _when_exact(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


@lru_cache(maxsize=64)
def _asset_version(path: str) -> str:
    file = (STATIC / path).resolve()
    if not file.is_relative_to(STATIC) or not file.is_file():
        return "0"
    return hashlib.sha256(file.read_bytes()).hexdigest()[:10]


def asset(path: str) -> str:
    """``/static/<path>?v=<content hash>``: browsers cache it until it changes."""
    return f"/static/{path}?v={_asset_version(path)}"


def _templates() -> Jinja2Templates:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    env.filters["when"] = _when
    env.filters["when_exact"] = _when_exact
    env.filters["clock"] = clock
    env.filters["language"] = domain.language_name
    env.globals["asset"] = asset
    return Jinja2Templates(env=env)


templates = _templates()


# --- who is asking --------------------------------------------------------------------


def home_of(principal: Principal) -> str:
    if principal.role is Role.TEAM and principal.actor.team_slug:
        return f"/team/{principal.actor.team_slug}"
    return "/queue"


def safe_next(value: str | None) -> str | None:
    """A same-site path to go back to after login, or None (no open redirects)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    principal: Principal | None = None,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    values: dict[str, Any] = {
        "principal": principal,
        "csrf_token": principal.csrf_token if principal else None,
        "is_moderator": principal is not None and principal.role in MODERATORS,
    }
    values.update(context or {})
    response = templates.TemplateResponse(
        request, name, values, status_code=status_code, headers=dict(headers or {})
    )
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def error_page(
    request: Request,
    status_code: int,
    message: str,
    *,
    principal: Principal | None = None,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    titles = {403: "Not allowed", 404: "Not found", 409: "Conflict", 429: "Too many attempts"}
    return render(
        request,
        "error.html",
        {"title": titles.get(status_code, "Error"), "message": message, "status": status_code},
        principal=principal,
        status_code=status_code,
        headers=headers,
    )


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)


async def signed_in(request: Request, runtime: TriageRuntime, *roles: Role) -> Principal | Response:
    """The signed-in person, or the page to answer instead: a redirect to the
    login page, or a 403 page when the role is not one of ``roles``."""
    try:
        principal = await optional_principal(request, runtime, await oauth2(request))
    except Unauthorized:
        return to_login(request)
    except Forbidden as exc:  # a state-changing page request without the CSRF token
        return error_page(request, 403, exc.message)
    if principal is None:
        return to_login(request)
    if roles and principal.role not in roles:
        return error_page(
            request,
            403,
            "This page is for " + " and ".join(f"{r.value}s" for r in roles) + ".",
            principal=principal,
        )
    return principal


def same_origin(request: Request) -> bool:
    """False when the browser says the form was posted from another site.

    ``Sec-Fetch-Site`` (sent by every current browser) is the browser's own verdict
    and survives proxies that rewrite the scheme or ``Host``; without it, the host in
    ``Origin`` must be this request's ``Host``. Neither header: no verdict (the
    double-submit token still decides)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in {"same-origin", "none"}
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")
