"""The author panel of the question page: the author's other questions, and a block."""

from __future__ import annotations

import pytest

from services.triage.web.store import Actor
from tests.triage.web.helpers.store import Desk

pytestmark = pytest.mark.timeout(60)


async def test_the_author_s_other_questions_newest_first_and_their_block(
    desk: Desk, mod_a: Actor
) -> None:
    author = {"author": {"id": "77", "handle": "curious"}}
    first = await desk.ingest(mention=author)
    desk.clock.advance(minutes=1)
    second = await desk.ingest(mention=author)
    await desk.ingest()  # someone else
    question = await desk.store.questions.get(first)

    others, blocked = await desk.store.questions.by_author(question)
    assert ([q.id for q in others], blocked) == ([second], False)

    await desk.store.questions.act(second, "block", mod_a)
    _, blocked = await desk.store.questions.by_author(question)
    assert blocked
