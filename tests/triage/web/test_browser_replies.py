"""Replies to our answers in a real browser (headless Chromium): abusive text is
blurred until clicked, `u` shows the reply in focus again (sticky), `z` undoes it,
alerts are acknowledged, and the page has no serious accessibility violation."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from services.common.messages import Escalation, ReplyVerdict
from services.triage.rules import load_rules
from tests.helpers.axe import violations
from tests.helpers.replies import reply_classified, reply_received
from tests.triage.web.helpers.app import MODERATOR, WebApp
from tests.triage.web.test_browser import Console, browser, sign_in
from tests.triage.web.test_browser_workday import DESKTOP

pytestmark = pytest.mark.integration

__all__ = ["browser"]  # the module-scoped Chromium fixture, shared


def test_a_moderator_unhides_with_one_key_and_undoes_it(live_web: WebApp, browser: Browser) -> None:
    web, console = live_web, Console()
    rules = load_rules(web.runtime.settings.rules_path).protection
    abusive = reply_received("9001", text="you parasite, go back", speaker_ref="Amina")
    web.call(
        web.store.protection.ingest,
        reply_classified(abusive, ReplyVerdict.HIDE, Escalation.THREAT),
        rules,
    )
    kind = reply_received("9002", text="thank you, Amina")
    web.call(web.store.protection.ingest, reply_classified(kind, ReplyVerdict.KEEP), rules)
    context = browser.new_context(base_url=web.base_url, viewport=DESKTOP)
    try:
        page = sign_in(context, MODERATOR, "/replies", console)
        card = page.locator(f"article[data-id='{abusive.id}']")
        expect(card.locator(".blur")).to_have_count(1)  # abusive text blurred
        expect(page.locator(f"article[data-id='{kind.id}'] .blur")).to_have_count(0)
        expect(page.locator("#alert-list .alert")).to_have_count(1)
        assert violations(page) == []

        card.focus()
        page.keyboard.press("u")
        expect(card).to_have_attribute("data-state", "restored")
        expect(page.locator("#toasts")).to_contain_text("will not hide it again")
        [row] = [r for r in web.call(web.store.protection.replies) if r.reply_id == abusive.id]
        assert (row.state, row.sticky) == ("restored", True)
        page.keyboard.press("z")
        expect(card).to_have_attribute("data-state", "waiting")

        page.locator("#alert-list button[data-act='acknowledge']").click()
        expect(page.locator("#alert-list .alert:not([hidden])")).to_have_count(0)
        assert web.call(web.store.protection.alerts) == []
        assert console.unexpected() == []
    finally:
        context.close()
