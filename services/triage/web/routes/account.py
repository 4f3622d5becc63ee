"""Signing in and out through the API, who am I, and the admin's user accounts.

``POST /api/token`` (OAuth2 password flow) gives a bearer token; the pages use the
session cookie and a CSRF token instead (:mod:`.pages`)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from services.triage.web.deps import Admin, Anyone, Runtime
from services.triage.web.models import Role
from services.triage.web.schemas import (
    Me,
    Token,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["api"])


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post("/token", summary="Sign in (OAuth2 password flow)")
async def token(
    request: Request, runtime: Runtime, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> Token:
    value, principal = await runtime.accounts.login(
        form.username, form.password, address=client_address(request), kind="api"
    )
    return Token(
        access_token=value,
        expires_in=runtime.settings.session_ttl_s,
        role=principal.role.value,
        team=principal.actor.team_slug,
    )


@router.post("/logout", status_code=204, summary="Revoke this token or session")
async def logout(runtime: Runtime, principal: Anyone) -> None:
    await runtime.accounts.logout(principal)


@router.get("/me")
async def me(principal: Anyone) -> Me:
    return Me(
        username=principal.actor.name, role=principal.role.value, team=principal.actor.team_slug
    )


class UserBody(BaseModel):
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=12, max_length=256)
    role: Role
    team: str | None = None


@router.post("/users", status_code=201, summary="Create a user or reset one (admin)")
async def put_user(body: UserBody, runtime: Runtime, principal: Admin) -> Me:
    user = await runtime.accounts.upsert_user(
        body.username, body.password, body.role, team=body.team, actor=principal.actor
    )
    return Me(username=user.username, role=user.role, team=body.team)


@router.post(
    "/users/{username}/deactivate",
    status_code=204,
    summary="Deactivate a user: no more sign-in, every session ends now (admin)",
)
async def deactivate_user(username: str, runtime: Runtime, principal: Admin) -> None:
    await runtime.accounts.deactivate_user(username.strip().lower(), principal.actor)


@router.post(
    "/teams/{slug}/deactivate",
    status_code=204,
    summary="Deactivate a team: no more work, its members' sessions end now (admin)",
)
async def deactivate_team(slug: str, runtime: Runtime, principal: Admin) -> None:
    await runtime.accounts.deactivate_team(slug, principal.actor)
