"""Sign in and out of the pages. ``POST /login`` uses a double-submit CSRF token (why:
the triage README, "Login CSRF"); ``/`` sends a signed-in person to their home page.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Mapping

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.triage.web.deps import COOKIE, Runtime, TriageRuntime, oauth2, optional_principal
from services.triage.web.exceptions import (
    Forbidden,
    TooManyAttempts,
    TriageError,
    Unauthorized,
)
from services.triage.web.routes.account import client_address
from services.triage.web.routes.rendering import (
    error_page,
    home_of,
    render,
    safe_next,
    same_origin,
    signed_in,
)

log = logging.getLogger(__name__)

#: Cookie carrying the login form's double-submit CSRF token.
LOGIN_CSRF_COOKIE = "ta_login_csrf"
#: How long a login form stays usable (seconds).
LOGIN_FORM_TTL_S = 3600

router = APIRouter(include_in_schema=False)


def _login_page(
    request: Request,
    token: str,
    *,
    next_path: str | None,
    error: str | None = None,
    username: str = "",
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    response = render(
        request,
        "login.html",
        {"login_csrf": token, "next": next_path or "", "error": error, "username": username},
        status_code=status_code,
        headers=headers,
    )
    runtime: TriageRuntime = request.app.state.runtime
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=LOGIN_FORM_TTL_S,
        path="/login",
        secure=runtime.settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response


def _login_token(request: Request) -> str:
    """The login form's token: the browser's current one when it looks like ours."""
    current = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if 20 <= len(current) <= 64 and current.replace("-", "").replace("_", "").isalnum():
        return current
    return secrets.token_urlsafe(24)


@router.get("/login")
async def login_form(request: Request, runtime: Runtime) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    try:
        principal = await optional_principal(request, runtime, await oauth2(request))
    except TriageError:
        principal = None
    if principal is not None:
        return RedirectResponse(next_path or home_of(principal), status_code=303)
    return _login_page(request, _login_token(request), next_path=next_path)


@router.post("/login")
async def login(request: Request, runtime: Runtime) -> Response:
    form = await request.form()

    def field(name: str, limit: int) -> str:
        value = form.get(name)
        return value[:limit] if isinstance(value, str) else ""

    username, password = field("username", 64), field("password", 256)
    next_path = safe_next(field("next", 2000))
    given, expected = field("csrf_token", 128), request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if (
        not same_origin(request)
        or not given
        or not expected
        or not hmac.compare_digest(given.encode(), expected.encode())
    ):
        return _login_page(
            request,
            secrets.token_urlsafe(24),  # a token someone else may have planted is replaced
            next_path=next_path,
            username=username,
            error="The sign-in form had expired or came from another site. Please try again.",
            status_code=403,
        )
    try:
        token, principal = await runtime.accounts.login(
            username, password, address=client_address(request), kind="web"
        )
    except TooManyAttempts as exc:
        return _login_page(
            request,
            expected,
            next_path=next_path,
            username=username,
            error=f"{exc.message} (about {max(1, exc.retry_after_s // 60)} minutes).",
            status_code=429,
            headers={"Retry-After": str(exc.retry_after_s)},
        )
    except Unauthorized:
        return _login_page(
            request,
            expected,
            next_path=next_path,
            username=username,
            error="Wrong user name or password.",
            status_code=401,
        )
    # A session the browser already had ends here (no two live sessions per browser).
    old = request.cookies.get(COOKIE)
    if old:
        previous = await runtime.accounts.resolve(old)
        if previous is not None:
            await runtime.accounts.logout(previous)
    response = RedirectResponse(next_path or home_of(principal), status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=runtime.settings.session_ttl_s,
        path="/",
        secure=runtime.settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, runtime: Runtime) -> Response:
    try:
        principal = await optional_principal(request, runtime, await oauth2(request))
    except Forbidden as exc:
        return error_page(request, 403, exc.message)
    except Unauthorized:
        principal = None
    if principal is not None:
        await runtime.accounts.logout(principal)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/")
async def index(request: Request, runtime: Runtime) -> Response:
    who = await signed_in(request, runtime)
    if isinstance(who, Response):
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse(home_of(who), status_code=303)
