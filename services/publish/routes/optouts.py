"""The moderators' opt-out list: ``/v1/opt-outs`` (bearer ``PUBLISH_API_KEY``).

Authors who reply "stop" are added by the ``mentions.raw`` reader; moderators
add (or lift) the others here, e.g. after a request made by e-mail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from services.common.http import ApiError
from services.common.messages import NativeId, Platform, ShortText
from services.publish import metrics
from services.publish.deps import Runtime, require_api_key

router = APIRouter(prefix="/v1/opt-outs", dependencies=[Depends(require_api_key)])


class OptOutIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    platform: Platform
    author_id: NativeId
    handle: ShortText | None = None
    recorded_by: ShortText
    reason: Annotated[str, Field(max_length=2000)] = ""


class OptOutOut(BaseModel):
    platform: str
    author_id: str
    handle: str | None
    source: str
    reason: str
    recorded_by: str | None
    at: datetime


@router.get("", summary="The opt-out list")
async def list_opt_outs(
    runtime: Runtime, platform: Annotated[Platform | None, Query()] = None
) -> list[OptOutOut]:
    rows = await runtime.ledger.opt_outs(platform.value if platform else None)
    return [OptOutOut.model_validate(r, from_attributes=True) for r in rows]


@router.post("", summary="Opt an author out (idempotent)", status_code=201)
async def add_opt_out(body: OptOutIn, runtime: Runtime, response: Response) -> dict[str, bool]:
    added = await runtime.ledger.add_opt_out(
        body.platform.value,
        body.author_id,
        source="moderator",
        handle=body.handle,
        reason=body.reason,
        recorded_by=body.recorded_by,
    )
    if added:
        metrics.OPT_OUTS.labels("moderator").inc()
    else:
        response.status_code = 200
    return {"added": added}


@router.delete("/{platform}/{author_id}", summary="Lift an opt-out", status_code=204)
async def remove_opt_out(platform: Platform, author_id: str, runtime: Runtime) -> Response:
    if not await runtime.ledger.remove_opt_out(platform.value, author_id):
        raise ApiError(404, f"{platform.value} author {author_id} has not opted out")
    return Response(status_code=204)
