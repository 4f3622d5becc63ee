"""``POST /v1/mentions``: the webhook. Validates each item on its own, so one
bad item is rejected with its reason and does not sink the rest."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, Field

from services.common.http import ApiError
from services.common.messages import MentionReceived, Source, utcnow
from services.ingest import metrics
from services.ingest.deps import Runtime, require_api_key
from services.ingest.domain import InvalidMention, MentionIn, parse_item, to_mention
from services.ingest.exceptions import BrokerUnavailable

router = APIRouter()

#: How long a request waits for the dedupe memory before answering 503.
READY_WAIT_S = 5.0


class MentionsBatch(BaseModel):
    """Request body (documented; parsed by hand so each item fails on its own)."""

    mentions: list[MentionIn] = Field(min_length=1, max_length=1000)


class Rejection(BaseModel):
    index: int
    error: str


class MentionsAccepted(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[Rejection]


def _parse_body(raw: bytes, max_batch: int) -> list[Any]:
    if not raw.strip():
        raise ApiError(400, 'empty request body; expected {"mentions": [...]}')
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"request body is not valid UTF-8 (byte {exc.start})") from exc
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(payload, dict) or "mentions" not in payload:
        raise ApiError(422, "body must be a JSON object with a 'mentions' array")
    items = payload["mentions"]
    if not isinstance(items, list):
        raise ApiError(422, "'mentions' must be an array")
    if not 1 <= len(items) <= max_batch:
        raise ApiError(422, f"'mentions' must hold 1 to {max_batch} items, got {len(items)}")
    return items


@router.post(
    "/v1/mentions",
    status_code=202,
    response_model=MentionsAccepted,
    dependencies=[Depends(require_api_key)],
    summary="Submit mentions (webhook)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": MentionsBatch.model_json_schema()}},
        }
    },
    responses={
        400: {"description": "Malformed body (not UTF-8, not JSON)"},
        401: {"description": "Missing or invalid bearer token"},
        413: {"description": "Body too large"},
        415: {"description": "Body is not JSON"},
        422: {"description": 'Body is not {"mentions": [1..1000 items]}'},
        503: {"description": "Kafka unavailable or dedupe memory not ready; retry"},
    },
)
async def post_mentions(
    request: Request,
    runtime: Runtime,
    content_type: str | None = Header(default=None, include_in_schema=False),
    x_takeaction_source: str | None = Header(default=None, include_in_schema=False),
) -> MentionsAccepted:
    if content_type and content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "Content-Type must be application/json")
    source = Source.REPLAY if x_takeaction_source == Source.REPLAY.value else Source.WEBHOOK
    items = _parse_body(await request.body(), runtime.settings.max_batch)

    received_at = utcnow()
    mentions: list[MentionReceived] = []
    rejected: list[Rejection] = []
    for index, item in enumerate(items):
        try:
            mentions.append(
                to_mention(
                    parse_item(item),
                    source=source,
                    received_at=received_at,
                    accounts=runtime.accounts,
                )
            )
        except InvalidMention as exc:
            rejected.append(Rejection(index=index, error=str(exc)))
    metrics.MENTIONS.labels(source.value, "rejected").inc(len(rejected))

    if mentions and not await runtime.ready.wait(READY_WAIT_S):
        raise ApiError(
            503,
            "ingest is rebuilding its dedupe memory; retry shortly",
            headers={"Retry-After": "2"},
        )
    try:
        result = await runtime.sink.submit(mentions, source)
    except BrokerUnavailable as exc:
        raise ApiError(503, str(exc), headers={"Retry-After": "5"}) from exc
    return MentionsAccepted(
        accepted=len(result.accepted), duplicates=len(result.duplicates), rejected=rejected
    )
