"""Tags on questions under ``/api``: the tags in use, and adding or removing one on
a question (each change on the question's timeline). Included before
:mod:`.questions`, whose catch-all action route would otherwise take the path."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from services.triage.web.deps import Moderator, Runtime

router = APIRouter(prefix="/api", tags=["api"])


class TagBody(BaseModel):
    tag: str = Field(min_length=1, max_length=64)


class QuestionTags(BaseModel):
    question_id: str
    tags: list[str]


class TagUse(BaseModel):
    tag: str
    questions: int


@router.get("/tags", summary="The tags in use, the most used first")
async def tags_in_use(runtime: Runtime, _: Moderator) -> list[TagUse]:
    return [TagUse(tag=t, questions=n) for t, n in await runtime.store.tags.in_use()]


@router.post("/questions/{question_id}/tags", summary="Tag a question")
async def add_tag(
    question_id: str, body: TagBody, runtime: Runtime, principal: Moderator
) -> QuestionTags:
    tags = await runtime.store.tags.add(question_id, body.tag, principal.actor)
    return QuestionTags(question_id=question_id, tags=tags)


@router.delete("/questions/{question_id}/tags/{tag}", summary="Take a tag off a question")
async def remove_tag(
    question_id: str,
    tag: Annotated[str, Path(min_length=1, max_length=64)],
    runtime: Runtime,
    principal: Moderator,
) -> QuestionTags:
    tags = await runtime.store.tags.remove(question_id, tag, principal.actor)
    return QuestionTags(question_id=question_id, tags=tags)
