"""The review page in a real browser (headless Chromium): the answer a moderator
approves is the one on the card they watched. A newer recording arriving while the
approval dialog is open is not sent; the moderator is told to review it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from services.common import topics
from services.triage.web.models import Status
from tests.triage.web.helpers.app import MODERATOR, TEAM_A, WebApp
from tests.triage.web.helpers.media import run_media_jobs
from tests.triage.web.helpers.store import stored_answer
from tests.triage.web.test_browser import Console, browser, sign_in, status_of

pytestmark = pytest.mark.integration

__all__ = ["browser"]  # the module-scoped Chromium fixture, shared


@pytest.fixture
def desktop(live_web: WebApp, browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=live_web.base_url)
    try:
        yield context
    finally:
        context.close()


def test_a_recording_replaced_while_the_dialog_is_open_is_not_sent(
    live_web: WebApp, desktop: BrowserContext
) -> None:
    web, console = live_web, Console()
    urgent = web.questions["urgent"]
    web.call(web.store.questions.act, urgent, "assign", web.actor(MODERATOR), team="camp-a")
    web.call(
        web.store.answers.record, urgent, web.actor(TEAM_A), stored_answer(caption="Reviewed.")
    )
    web.call(run_media_jobs, web.store)
    page = sign_in(desktop, MODERATOR, "/answers", console)
    page.get_by_role("button", name="Approve and reply").click()
    dialog = page.locator("dialog.approve-dialog[open]")
    expect(dialog.locator(".reply-text")).to_have_text("Reviewed.")

    # The team films again meanwhile (another take, another caption).
    web.call(web.store.answers.record, urgent, web.actor(TEAM_A), stored_answer(caption="Unseen."))
    web.call(run_media_jobs, web.store)
    dialog.get_by_role("button", name="Send 1 reply").click()

    expect(page.locator("#toasts .toast")).to_contain_text("no longer the one waiting for review")
    assert status_of(web, urgent) == Status.RECORDED
    pending = web.call(web.store.outbox.pending)
    assert [row for row in pending if row.topic == topics.REPLIES_REQUESTED] == []
    assert console.unexpected("status of 404", "status of 409") == []


def test_words_the_team_changed_after_the_page_loaded_are_not_sent_unseen(
    live_web: WebApp, desktop: BrowserContext
) -> None:
    """The team corrects the English words while the moderator has the card open: the
    approval is refused (the words on the page are not the words that would go out),
    and the page reloads to show the new ones; approved then, they go out."""
    web, console = live_web, Console()
    urgent = web.questions["urgent"]
    web.call(web.store.questions.act, urgent, "assign", web.actor(MODERATOR), team="camp-a")
    answer = web.call(
        web.store.answers.record, urgent, web.actor(TEAM_A), stored_answer(caption="Reviewed.")
    )
    web.call(run_media_jobs, web.store)
    page = sign_in(desktop, MODERATOR, "/answers", console)
    card = page.locator("article.answer")
    expect(card.locator("textarea[name='translation']")).not_to_have_value("Words nobody read.")

    web.call(
        web.store.media.edit_transcript,
        answer.id,
        web.actor(TEAM_A),
        transcript=None,
        translation="Words nobody read.",
    )
    web.call(run_media_jobs, web.store)
    page.get_by_role("button", name="Approve and reply").click()
    page.locator("dialog.approve-dialog[open]").get_by_role("button", name="Send 1 reply").click()

    expect(page.locator("#toasts .toast")).to_contain_text("changed after you looked")
    assert status_of(web, urgent) == Status.RECORDED
    pending = web.call(web.store.outbox.pending)
    assert [row for row in pending if row.topic == topics.REPLIES_REQUESTED] == []
    # The page reloads by itself: the words are the team's now, and they can be approved.
    expect(card.locator("textarea[name='translation']")).to_have_value(
        "Words nobody read.", timeout=10_000
    )
    page.get_by_role("button", name="Approve and reply").click()
    page.locator("dialog.approve-dialog[open]").get_by_role("button", name="Send 1 reply").click()
    expect(card).to_contain_text("Approved: 1 reply requested.")
    assert status_of(web, urgent) == Status.ANSWERED
    assert console.unexpected("status of 404", "status of 409") == []
