"""The sandbox's X OAuth 2.0 token endpoint, for the refresh grant only:
``POST /2/oauth2/token`` (form ``grant_type=refresh_token``, ``refresh_token``,
``client_id``; HTTP Basic auth for a confidential client) hands out a short-lived
access token and a new refresh token, and spends the one it was given: using it
again is a 400 ``invalid_request``, as on X. Tokens are never logged."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from services.sandbox.common import Api, PlatformError, route

log = logging.getLogger(__name__)

#: The scopes a publisher's token carries (what the sandbox says it granted).
SCOPES = "tweet.read tweet.write users.read media.write offline.access"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error(status: int, error: str, description: str) -> PlatformError:
    """An RFC 6749 error answer, in X's words."""
    return PlatformError(status, {"error": error, "error_description": description}, _NO_STORE)


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """(client id, secret) from ``Authorization: Basic``; None without one."""
    scheme, _, encoded = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise oauth_error(401, "invalid_client", "Malformed authorization header") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise oauth_error(401, "invalid_client", "Malformed authorization header")
    return client_id, secret


class XOAuthApi(Api):
    tag = "X API v2 subset"

    @route("POST", "/2/oauth2/token")
    async def token(self, request: Request) -> Response:
        basic = basic_credentials(request)
        if not request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            raise oauth_error(400, "invalid_request", "Send application/x-www-form-urlencoded")
        form = await request.form()
        grant_type = form.get("grant_type")
        if grant_type != "refresh_token":
            raise oauth_error(
                400, "unsupported_grant_type", "The sandbox only does grant_type=refresh_token"
            )
        client_id = basic[0] if basic else form.get("client_id")
        if not isinstance(client_id, str) or not client_id:
            raise oauth_error(400, "invalid_request", "Missing required parameter [client_id].")
        if self.settings.x_client_id is not None and client_id != self.settings.x_client_id:
            raise oauth_error(400, "invalid_request", "Value passed for the client_id was invalid.")
        secret = self.settings.x_client_secret
        if secret is not None and (
            basic is None
            or not hmac.compare_digest(basic[1].encode(), secret.get_secret_value().encode())
        ):
            raise oauth_error(401, "unauthorized_client", "Missing valid authorization header")
        refresh_token = form.get("refresh_token")
        if not isinstance(refresh_token, str) or not refresh_token:
            raise oauth_error(400, "invalid_request", "Missing required parameter [refresh_token].")
        issued = self.state.refresh_x(refresh_token, client_id)
        if issued is None:
            log.info("sandbox X token endpoint: unknown or spent refresh token refused")
            raise oauth_error(400, "invalid_request", "Value passed for the token was invalid.")
        access, refresh = issued
        log.info("sandbox X token endpoint: refreshed (refresh #%d)", self.state.x_refreshes)
        body = {
            "token_type": "bearer",
            "expires_in": int(self.settings.x_access_token_ttl_s),
            "access_token": access,
            "scope": SCOPES,
            "refresh_token": refresh,
        }
        return JSONResponse(body, headers=_NO_STORE)
