"""Issue 18's follow-ups in a real browser (headless Chromium, desktop and a 390x844
phone): a block undone from its notice, tags on questions, blurred abusive text that
screen readers do not read, taking a question and "Only mine", the notifications
badge, and no page wider than a phone."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from services.triage.web.models import Status
from tests.triage.web.helpers.app import MODERATOR, TEAM_A, WebApp
from tests.triage.web.helpers.store import ClassifiedFactory
from tests.triage.web.test_browser import LIVE_MS, Console, browser, sign_in, status_of
from tests.triage.web.test_browser_workday import PHONE, desktop, phone

pytestmark = pytest.mark.integration

__all__ = ["browser", "desktop", "phone"]  # fixtures, shared


def queue_of(context: BrowserContext, console: Console, path: str = "/queue") -> Page:
    page = sign_in(context, MODERATOR, path, console)
    expect(page.locator("#live.on")).to_be_visible(timeout=LIVE_MS)
    return page


def test_a_block_is_undone_from_its_notice(
    live_web: WebApp, desktop: BrowserContext, classified: ClassifiedFactory
) -> None:
    web, console = live_web, Console()
    author = {"author": {"id": "heated-7", "handle": "heated"}}
    first = web.ingest(classified(mention={**author, "text": "Blockundo one?"}, priority=99))
    second = web.ingest(classified(mention={**author, "text": "Blockundo two?"}, priority=98))
    page = queue_of(desktop, console, "/queue?status=new&q=blockundo")
    expect(page.locator("#queue-list .item")).to_have_count(2)
    page.keyboard.press("j")
    page.once("dialog", lambda dialog: dialog.accept())
    page.keyboard.press("b")
    toast = page.locator("#toasts .toast").filter(has_text="blocked")
    expect(toast).to_contain_text("Author (@heated) blocked")
    expect(page.locator("#queue-list .item")).to_have_count(0, timeout=LIVE_MS)
    assert status_of(web, second) == Status.REJECTED
    toast.get_by_role("button", name="Undo").click()
    expect(page.locator("#queue-list .item")).to_have_count(2, timeout=LIVE_MS)
    assert status_of(web, first) == status_of(web, second) == Status.NEW
    assert console.unexpected() == []


def test_tags_by_key_and_by_touch_and_the_tag_filter(
    live_web: WebApp, desktop: BrowserContext, phone: BrowserContext
) -> None:
    web, console = live_web, Console()
    urgent, french = web.questions["urgent"], web.questions["french"]
    page = queue_of(desktop, console)
    page.keyboard.press("j")
    expect(page.locator(".item.focused")).to_have_attribute("id", f"q-{urgent}")
    page.keyboard.press("t")
    field = page.locator(f"#q-{urgent}").get_by_label("New tag")
    expect(field).to_be_focused()
    field.fill("Ask the camp")
    field.press("Enter")
    expect(page.locator(f"#tags-{urgent} .tag a")).to_have_text(["ask-the-camp"])
    expect(page.locator("#toasts")).to_contain_text("Tagged ask-the-camp")
    expect(page.locator(f"#q-{urgent}").get_by_label("New tag")).to_be_hidden()

    # On a phone: the Tag button, a tag from the list in use, and the filter.
    mobile = queue_of(phone, console)
    card = mobile.locator(f"#q-{french}")
    card.get_by_role("button", name="Tag").tap()
    card.get_by_label("New tag").fill("ask-the-camp")
    card.get_by_role("button", name="Add").tap()
    expect(mobile.locator(f"#tags-{french} .tag")).to_have_count(1)
    mobile.goto("/queue?status=new&tag=ask-the-camp")
    expect(mobile.locator("#queue-list .item")).to_have_count(2)
    expect(mobile.get_by_label("Tag", exact=True)).to_have_value("ask-the-camp")

    # Taken off with its remove button, and that is undone from the notice.
    mobile.locator(f"#q-{french}").get_by_role("button", name="Remove the tag ask-the-camp").tap()
    expect(mobile.locator(f"#tags-{french} .tag")).to_have_count(0)
    mobile.locator("#toasts .toast").filter(has_text="Tag removed").get_by_role(
        "button", name="Undo"
    ).tap()
    expect(mobile.locator(f"#tags-{french} .tag")).to_have_count(1)
    assert web.call(web.store.tags.of, [urgent, french]) == {
        urgent: ["ask-the-camp"],
        french: ["ask-the-camp"],
    }
    assert console.unexpected() == []


def test_screen_readers_do_not_read_blurred_abusive_text(
    live_web: WebApp, desktop: BrowserContext
) -> None:
    web, console = live_web, Console()
    page = queue_of(desktop, console)
    card = page.locator(f"#q-{web.questions['abusive']}")
    # What assistive technology is given: the button, not the text.
    tree = card.locator(".text").aria_snapshot()
    assert "parasites" not in tree
    assert "Show the hidden text (possibly abusive)" in tree
    reveal = card.get_by_role("button", name="Show the hidden text (possibly abusive)")
    expect(reveal).to_have_attribute("aria-pressed", "false")
    reveal.focus()
    page.keyboard.press("Enter")
    expect(reveal).to_have_attribute("aria-pressed", "true")
    expect(card.locator(".blur")).to_have_class("blur revealed")
    assert "parasites" in card.locator(".text").aria_snapshot()
    page.keyboard.press("Enter")
    expect(card.locator(".blur")).to_have_attribute("aria-hidden", "true")
    assert console.unexpected() == []


def test_take_it_then_only_mine(live_web: WebApp, desktop: BrowserContext) -> None:
    web, console = live_web, Console()
    urgent = web.questions["urgent"]
    page = queue_of(desktop, console)
    page.keyboard.press("j")
    expect(page.locator(".item.focused")).to_have_attribute("id", f"q-{urgent}")
    page.keyboard.press("m")
    card = page.locator(f"#q-{urgent}")
    expect(card.locator(".assignee")).to_have_text("· looked after by you")
    expect(card.get_by_role("button", name="Let go")).to_be_visible()
    expect(page.locator("#toasts")).to_contain_text("Yours now")
    assert web.call(web.store.questions.get, urgent).assignee_id is not None

    page.get_by_label("Only mine").check()
    expect(page.locator("#queue-list .item")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"mine=1"))
    page.locator(f"#q-{urgent}").get_by_role("button", name="Let go").click()
    expect(page.locator(f"#q-{urgent} .assignee")).to_be_hidden()
    assert web.call(web.store.questions.get, urgent).assignee_id is None
    assert console.unexpected() == []


def test_a_team_sees_a_badge_for_new_work_and_reads_it(
    live_web: WebApp, phone: BrowserContext
) -> None:
    web, console = live_web, Console()
    page = sign_in(phone, TEAM_A, "/team/camp-a", console)
    badge = page.locator("#unread")
    expect(badge).to_be_hidden()
    web.call(
        web.store.questions.act,
        web.questions["french"],
        "assign",
        web.actor(MODERATOR),
        team="camp-a",
    )
    page.reload()
    expect(badge).to_have_text("1")
    expect(page.locator("#notifications-link")).to_have_attribute(
        "aria-label", "Notifications, 1 unread"
    )
    page.locator("#notifications-link").tap()
    expect(page.locator(".notification").first).to_contain_text("New question for Camp A")
    # Shown, they are read: the badge's count (asked after marking them) says none.
    expect(page.locator("#notifications-link")).to_have_attribute("aria-label", "Notifications")
    expect(page.locator("#unread")).to_be_hidden()
    assert web.call(web.store.notifications.unread, web.actor(TEAM_A).user_id) == 0
    assert console.unexpected() == []


def test_no_page_is_wider_than_a_phone(live_web: WebApp, phone: BrowserContext) -> None:
    """A 390 px phone never scrolls sideways (the question page's team form did)."""
    web, console = live_web, Console()
    page = queue_of(phone, console)
    wide = {}
    for path in (
        "/queue",
        f"/questions/{web.questions['food-1']}",
        "/quarantine",
        "/answers",
        "/notifications",
    ):
        page.goto(path)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            wide[path] = width
    assert wide == {}
    assert console.unexpected() == []
