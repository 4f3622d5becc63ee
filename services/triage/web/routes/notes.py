"""Moderators' notes on a question (``POST /api/questions/{id}/notes``): kept on the
question's timeline, where the question page shows them. Included before
:mod:`.questions`, whose catch-all action route would otherwise take the path."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.triage.web.deps import Moderator, Runtime

router = APIRouter(prefix="/api", tags=["api"])


class NoteBody(BaseModel):
    text: str = Field(min_length=1, max_length=2000)


@router.post("/questions/{question_id}/notes", status_code=204, summary="Add a note")
async def add_note(
    question_id: str, body: NoteBody, runtime: Runtime, principal: Moderator
) -> None:
    await runtime.store.questions.add_note(question_id, principal.actor, body.text.strip())
