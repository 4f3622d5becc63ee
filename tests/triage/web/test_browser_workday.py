"""Issue 18 in a real browser (headless Chromium, desktop and a 390x844 phone): a
moderator's working day in the queue — feedback and Undo, guard rails on
assignment, every question reachable, every action by mouse, touch and Tab, cards
that lead with the question — and an accessibility check (axe-core) of every page.
One test per numbered item of the issue; the API docs are in tests/common."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, ViewportSize, expect

from services.common import topics
from services.common.codec import decode
from services.common.messages import PublishReply
from services.common.replies import Templates
from services.publish import domain as publisher
from services.triage.web.models import Status
from tests.helpers.axe import violations
from tests.triage.web.helpers.app import ADMIN, MODERATOR, TEAM_A, Person, WebApp, classify
from tests.triage.web.helpers.media import run_media_jobs
from tests.triage.web.helpers.store import ClassifiedFactory, stored_answer
from tests.triage.web.test_browser import LIVE_MS, Console, browser, shot, sign_in, status_of

pytestmark = pytest.mark.integration

__all__ = ["browser"]  # the module-scoped Chromium fixture, shared

DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture
def desktop(live_web: WebApp, browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=live_web.base_url, viewport=DESKTOP)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def phone(live_web: WebApp, browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(
        base_url=live_web.base_url,
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    try:
        yield context
    finally:
        context.close()


def queue_of(context: BrowserContext, console: Console, person: Person = MODERATOR) -> Page:
    page = sign_in(context, person, "/queue", console)
    expect(page.locator("#live.on")).to_be_visible(timeout=LIVE_MS)
    return page


# --- 1. feedback and undo ----------------------------------------------------------------


def test_1_every_action_says_what_it_did_and_can_be_undone(
    live_web: WebApp, desktop: BrowserContext
) -> None:
    web, console = live_web, Console()
    page = queue_of(desktop, console)
    urgent, abusive = web.questions["urgent"], web.questions["abusive"]

    # a: the card leaves, a notice says what happened, its Undo puts the question back.
    page.keyboard.press("j")
    expect(page.locator(".item.focused")).to_have_attribute("id", f"q-{urgent}")
    page.keyboard.press("a")
    expect(page.locator(f"#q-{urgent}")).to_have_count(0)
    toast = page.locator("#toasts .toast").filter(has_text="Question approved")
    expect(toast).to_be_visible()
    toast.get_by_role("button", name="Undo").click()
    expect(page.locator(f"#q-{urgent}")).to_have_count(1, timeout=LIVE_MS)
    expect(page.locator("#toasts")).to_contain_text("Undone")
    assert status_of(web, urgent) == Status.NEW

    # r, then the undo key (z).
    expect(page.locator(".item.focused")).to_have_attribute("id", f"q-{urgent}")
    page.keyboard.press("r")
    expect(page.locator(f"#q-{urgent}")).to_have_count(0)
    page.keyboard.press("z")
    expect(page.locator(f"#q-{urgent}")).to_have_count(1, timeout=LIVE_MS)
    assert status_of(web, urgent) == Status.NEW

    # 1 (assign to the first team), then undo: the team gets its place back.
    page.keyboard.press("1")
    expect(page.locator(f"#q-{urgent}")).to_have_count(0)
    expect(page.locator("#toasts")).to_contain_text("assigned to camp-a")
    page.keyboard.press("z")
    expect(page.locator(f"#q-{urgent}")).to_have_count(1, timeout=LIVE_MS)
    assert status_of(web, urgent) == Status.NEW
    assert web.call(web.store.questions.get, urgent).team_id is None

    # q, undone with u.
    page.locator(f"#q-{abusive}").click(position={"x": 5, "y": 5})
    page.keyboard.press("q")
    expect(page.locator(f"#q-{abusive}")).to_have_count(0)
    page.keyboard.press("u")
    expect(page.locator(f"#q-{abusive}")).to_have_count(1, timeout=LIVE_MS)
    assert status_of(web, abusive) == Status.NEW

    # Quarantine: restore every selected mention at once, and undo that too.
    web.call(web.store.questions.act, abusive, "quarantine", web.actor(MODERATOR))
    page.goto("/quarantine")
    rows = page.locator("#quarantine-list li:not([hidden]) .item")
    expect(rows).to_have_count(2)
    page.get_by_label("Select all shown").check()
    page.get_by_role("button", name="Restore selected").click()
    expect(rows).to_have_count(0)
    expect(page.locator("#toasts")).to_contain_text("2 restored to the queue")
    assert status_of(web, abusive) == Status.NEW
    page.keyboard.press("z")
    expect(rows).to_have_count(2)
    assert status_of(web, abusive) == Status.QUARANTINED
    assert console.unexpected() == []


# --- 2. guard rails on assignment -------------------------------------------------------


def test_2_assignment_warns_on_capacity_and_language_and_says_why(
    live_web: WebApp, desktop: BrowserContext
) -> None:
    web, console = live_web, Console()
    page = queue_of(desktop, console)
    urgent = web.questions["urgent"]  # English; Camp B speaks fr and ar

    page.keyboard.press("j")
    expect(page.locator(".item.focused")).to_have_attribute("id", f"q-{urgent}")
    warned: list[str] = []

    def decline(dialog: Dialog) -> None:
        warned.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", decline)
    page.keyboard.press("2")
    expect(page.locator(f"#q-{urgent}")).to_have_count(1)
    assert warned == ["Camp B: does not speak en. Assign anyway?"]
    assert status_of(web, urgent) == Status.NEW

    # The card says which team is suggested and why; its team menu marks the mismatch.
    item = page.locator(f"#q-{urgent}")
    expect(item.locator(".suggested")).to_contain_text("camp-a")
    expect(item.locator(".suggested")).to_contain_text("speaks en")
    item.get_by_role("button", name="Assign").click()
    menu = item.locator(".assign-menu")
    expect(menu).to_be_visible()
    expect(menu.get_by_role("button", name=re.compile("Camp B"))).to_contain_text(
        "does not speak en"
    )

    # A full team: never pre-selected, and the question page says why nothing is.
    web.call(
        web.store.teams.upsert,
        "camp-a",
        name="Camp A",
        languages=("en",),
        capacity=1,
        actor=web.actor(ADMIN),
    )
    food = web.questions["food-1"]
    web.call(web.store.questions.act, food, "assign", web.actor(MODERATOR), team="camp-a")
    page.goto(f"/questions/{urgent}")
    select = page.get_by_label("Team")
    expect(select).to_have_value("")
    expect(page.locator(".suggestion-why")).to_contain_text("every team speaking en is full today")
    select.select_option("camp-a")
    page.once("dialog", decline)
    page.get_by_role("button", name="Assign", exact=True).click()
    expect(page.locator(".suggestion-why")).to_be_visible()
    assert warned[-1] == "Camp A: full today. Assign anyway?"
    assert status_of(web, urgent) == Status.NEW
    assert console.unexpected() == []


# --- 3. every question reachable --------------------------------------------------------


def test_3_the_queue_pages_through_everything(
    live_web: WebApp, desktop: BrowserContext, classified: ClassifiedFactory
) -> None:
    web, console = live_web, Console()
    for n in range(120):
        web.ingest(classify(classified, f"Question number {n} about the camp?", priority=80))
    page = queue_of(desktop, console)
    items = page.locator("#queue-list .item")
    expect(page.locator("#queue-count")).to_have_text("100 shown of 126")
    page.get_by_role("button", name="Show more questions").click()
    expect(page.locator("#queue-count")).to_have_text(re.compile(r"^12[56] shown of 126$"))
    expect(page.locator(f"#q-{web.questions['quiet']}")).to_be_visible()
    expect(page.locator("#queue-next")).to_contain_text("every question")
    hundred_first = items.nth(100)
    hundred_first.scroll_into_view_if_needed()
    expect(hundred_first).to_be_visible()

    # A live change keeps the pages already loaded (keyset "through" the last one).
    fresh = web.ingest(classify(classified, "A new priority-75 mention?", priority=75))
    expect(page.locator(f"#q-{fresh}")).to_have_count(1, timeout=LIVE_MS)
    expect(page.locator(f"#q-{web.questions['quiet']}")).to_have_count(1)
    assert console.unexpected() == []


# --- 4. mouse, touch and Tab ------------------------------------------------------------


def test_4_every_action_by_mouse_and_tab(live_web: WebApp, desktop: BrowserContext) -> None:
    web, console = live_web, Console()
    page = queue_of(desktop, console)
    urgent = web.questions["urgent"]
    item = page.locator(f"#q-{urgent}")
    for name in ("Approve", "Reject", "Quarantine", "Assign"):
        expect(item.get_by_role("button", name=name, exact=True)).to_be_visible()

    # Tab reaches the first card and its buttons; Enter presses one.
    page.locator("#help-button").focus()
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.dataset.act === 'approve'"):
            break
    focused = page.evaluate("() => document.activeElement.closest('.item').id")
    assert focused == f"q-{urgent}"
    page.keyboard.press("Enter")
    expect(item).to_have_count(0)
    assert status_of(web, urgent) == Status.APPROVED

    # The mouse: Assign opens the team menu, a team assigns.
    food = web.questions["food-1"]
    page.locator(f"#q-{food}").get_by_role("button", name="Assign").click()
    page.locator(f"#q-{food}").get_by_role("button", name=re.compile("^Camp A")).click()
    expect(page.locator(f"#q-{food}")).to_have_count(0)
    assert status_of(web, food) == Status.ASSIGNED
    assert console.unexpected() == []


def test_4_every_action_by_touch_on_a_phone(live_web: WebApp, phone: BrowserContext) -> None:
    web, console = live_web, Console()
    page = queue_of(phone, console)
    # The filters start folded: the first screen shows questions, not a form.
    expect(page.locator("#filters-box")).not_to_have_attribute("open", "")
    first = page.locator("#queue-list .item").first
    box = first.bounding_box()
    assert box is not None
    assert box["y"] < PHONE["height"] / 2
    page.locator("#filters-box > summary").tap()
    expect(page.get_by_label("Search")).to_be_visible()

    urgent = web.questions["urgent"]
    page.locator(f"#q-{urgent}").get_by_role("button", name="Reject").tap()
    expect(page.locator(f"#q-{urgent}")).to_have_count(0)
    page.locator("#toasts").get_by_role("button", name="Undo").tap()
    expect(page.locator(f"#q-{urgent}")).to_have_count(1, timeout=LIVE_MS)
    assert status_of(web, urgent) == Status.NEW
    shot(page, "queue-phone.png")
    assert console.unexpected() == []


# --- 5. cards lead with the question ------------------------------------------------------


def test_5_cards_lead_with_the_question_without_jargon(
    live_web: WebApp, desktop: BrowserContext
) -> None:
    web, console = live_web, Console()
    page = queue_of(desktop, console)
    item = page.locator(f"#q-{web.questions['food-1']}")
    body = item.locator(".body > *").first
    expect(body).to_have_text("What food do you miss the most?")
    visible = item.inner_text()
    for jargon in ("c-food", "default-review", "test-model-1", "decision", "rule"):
        assert jargon not in visible
    expect(item).to_contain_text("asked by 2 people")
    # One score display, behind "Why priority N".
    expect(item.locator("meter").first).to_be_hidden()
    item.get_by_text("Why priority 55").click()
    expect(item.locator("meter").first).to_be_visible()
    # Dense enough: at least four cards in the first 900 px.
    tops = page.locator("#queue-list .group > .item").evaluate_all(
        "els => els.map(e => e.getBoundingClientRect().bottom)"
    )
    assert sum(1 for bottom in tops if bottom <= DESKTOP["height"]) >= 4
    shot(page, "queue-desktop.png")
    assert console.unexpected() == []


# --- 6. clusters save work --------------------------------------------------------------


def test_6_approving_a_cluster_s_first_question_offers_the_others(
    live_web: WebApp, desktop: BrowserContext, classified: ClassifiedFactory
) -> None:
    web, console = live_web, Console()
    page = queue_of(desktop, console)
    food, food_2 = web.questions["food-1"], web.questions["food-2"]
    page.locator(f"#q-{food}").get_by_role("button", name="Approve").click()
    offer = page.locator("#toasts .toast").filter(has_text="asked 1 more times")
    offer.get_by_role("button", name="Approve the 1 similar too").click()
    expect(page.locator(f"#q-{food_2}")).to_have_count(0)
    assert status_of(web, food) == status_of(web, food_2) == Status.APPROVED

    # Once the cluster went to a team, a new asker of it follows: nothing to triage.
    web.call(web.store.questions.act, food, "assign", web.actor(MODERATOR), team="camp-a")
    later = web.ingest(
        classify(classified, "what food do u miss?", priority=60, cluster_id="c-food")
    )
    assert status_of(web, later) == Status.ASSIGNED
    page.reload()
    expect(page.locator(f"#q-{later}")).to_have_count(0)
    assert console.unexpected() == []


# --- 7. approval: who receives it and the exact text, confirmed -------------------------


def test_7_approval_shows_the_recipients_and_the_text_and_asks_first(
    live_web: WebApp, desktop: BrowserContext
) -> None:
    web, console = live_web, Console()
    food, food_2 = web.questions["food-1"], web.questions["food-2"]
    web.call(web.store.questions.act, food, "assign", web.actor(MODERATOR), team="camp-a")
    web.call(
        web.store.answers.record,
        food,
        web.actor(TEAM_A),
        stored_answer(caption="Rice   and beans,\nlike at home."),
    )
    web.call(run_media_jobs, web.store)
    page = sign_in(desktop, MODERATOR, "/answers", console)
    page.get_by_role("button", name="Approve and reply").click()
    dialog = page.locator("dialog.approve-dialog[open]")
    expect(dialog.locator(".recipient-count")).to_have_text("2 people")  # the cluster's askers
    expect(dialog.locator(".recipients li")).to_have_count(2)
    expect(dialog.locator(".reply-text")).to_have_text("Rice and beans, like at home.")
    dialog.get_by_role("button", name="Cancel").click()
    assert status_of(web, food) == Status.RECORDED  # nothing went out

    page.get_by_role("button", name="Approve and reply").click()
    # Prepared replies in the answer's language are offered to start from.
    dialog.get_by_label("Start from a prepared reply").select_option(
        "A refugee answered your question on video."
    )
    expect(dialog.locator(".reply-text")).to_have_text("A refugee answered your question on video.")
    dialog.get_by_label("The reply's text").fill("Rice and beans, like my mother's.")
    # Each recipient's reply as the publisher will post it, the correction rendered as typed.
    posted = dialog.locator(".recipients .posted-text")
    expect(posted).to_have_count(2)
    for n in range(2):
        expect(posted.nth(n)).to_contain_text("Rice and beans, like my mother's.")
    shown = sorted(posted.all_text_contents())
    dialog.get_by_role("button", name="Send 2 replies").click()
    expect(page.locator(".review-result")).to_have_text("Approved: 2 replies requested.")
    requests = [
        decode(PublishReply, row.value)
        for row in web.call(web.store.outbox.pending)
        if row.topic == topics.REPLIES_REQUESTED
    ]
    texts = {r.question_id: r.text for r in requests}
    assert texts == dict.fromkeys((food, food_2), "Rice and beans, like my mother's.")
    templates = Templates.load()
    composed = [
        publisher.compose(r, publisher.Snapshot(), templates, publisher.Policy()) for r in requests
    ]
    assert shown == sorted(c.text for c in composed if isinstance(c, publisher.Composed))
    assert console.unexpected("status of 404") == []  # the stand-in answer has no video file


# --- 9. a readable timeline ----------------------------------------------------------------


def test_9_the_timeline_reads_as_sentences(live_web: WebApp, desktop: BrowserContext) -> None:
    web, console = live_web, Console()
    urgent = web.questions["urgent"]
    moderator = web.actor(MODERATOR)
    web.call(web.store.questions.claim, urgent, moderator)
    web.call(web.store.questions.release, urgent, moderator)
    web.call(web.store.questions.act, urgent, "assign", moderator, team="camp-a")
    page = sign_in(desktop, MODERATOR, f"/questions/{urgent}", console)
    expect(page.locator(".meta")).to_contain_text("asked 2026-11-23")
    expect(page.locator(".meta")).to_contain_text("received 2026-11-23")
    timeline = page.locator("ol.timeline")
    expect(timeline.locator("li")).to_have_count(2)  # classified, assigned
    expect(timeline).to_contain_text("assigned by moira · new → assigned")
    expect(timeline.locator(".event-detail")).to_contain_text(["priority", "team"])
    expect(page.get_by_text("2 claim and release entries")).to_be_visible()
    assert "{" not in timeline.inner_text()
    expect(page.locator("section.replies")).to_contain_text("No reply yet.")

    # A note for the other moderators lands on the timeline.
    page.get_by_label("A note for the other moderators").fill("Asked the camp lead about calls.")
    page.get_by_role("button", name="Add the note").click()
    expect(page.locator("ol.timeline li.event-note")).to_contain_text(
        "note by moira · Asked the camp lead about calls."
    )
    assert console.unexpected() == []


# --- 8. the team feed --------------------------------------------------------------------


def test_8_the_team_feed_puts_the_most_important_first_with_search_and_mine(
    live_web: WebApp, phone: BrowserContext
) -> None:
    web, console = live_web, Console()
    moderator = web.actor(MODERATOR)
    for name in ("quiet", "urgent", "food-1"):  # assigned in another order than priority
        web.call(web.store.questions.act, web.questions[name], "assign", moderator, team="camp-a")
    page = sign_in(phone, TEAM_A, "/team/camp-a", console)
    expect(page.locator("#live.on")).to_be_visible(timeout=LIVE_MS)
    cards = page.locator("#cards .card")
    expect(cards).to_have_count(3)
    order = cards.evaluate_all("els => els.map(e => e.dataset.question)")
    assert order == [web.questions[n] for n in ("urgent", "food-1", "quiet")]
    facts = page.locator(".team-facts")
    expect(facts).to_contain_text("3 questions to answer, most important first")
    expect(facts).to_contain_text("new today: 3 (the moderators send at most 20 a day)")

    page.get_by_label("Search").fill("food")
    expect(page.locator("#cards .card:not([hidden])")).to_have_count(1)
    expect(page.locator("#team-shown")).to_have_text("1 of 3 shown")
    page.get_by_label("Search").fill("")
    urgent = page.locator(f".card[data-question='{web.questions['urgent']}']")
    urgent.get_by_role("button", name="Take").tap()
    expect(urgent.locator(".card-state")).to_have_text("You took this question.")
    page.get_by_label("Only mine").check()
    expect(page.locator("#cards .card:not([hidden])")).to_have_count(1)
    expect(page.locator("#cards .card:not([hidden])")).to_have_attribute(
        "data-question", web.questions["urgent"]
    )
    assert console.unexpected() == []


# --- what moderators of other tools expect ---------------------------------------------


def test_saved_views_waiting_times_and_the_author_s_history(
    live_web: WebApp, desktop: BrowserContext, classified: ClassifiedFactory
) -> None:
    web, console = live_web, Console()
    urgent = web.questions["urgent"]
    author = web.call(web.store.questions.get, urgent)
    again = classified(mention={"author": {"id": author.author_id, "handle": author.author_handle}})
    web.ingest(again)
    page = queue_of(desktop, console)
    # Every card says how long it has waited; past the 24 h target it says so.
    expect(page.locator(f"#q-{urgent} .waiting")).to_contain_text("waiting")
    expect(page.locator(f"#q-{urgent} .waiting.late")).to_contain_text("past the 24 h target")

    page.get_by_label("Search").fill("food")
    expect(page.locator("#queue-list .item")).to_have_count(2)
    page.once("dialog", lambda d: d.accept("Food questions"))
    page.get_by_role("button", name="Save this view").click()
    page.goto("/queue")
    page.get_by_role("link", name="Food questions").click()
    expect(page).to_have_url(re.compile(r"q=food"))
    expect(page.locator("#queue-list .item")).to_have_count(2)

    page.goto(f"/questions/{urgent}")
    history = page.locator("section.author-history")
    expect(history).to_contain_text(f"@{author.author_handle}'s other questions")
    expect(history.locator("li")).to_have_count(1)
    assert console.unexpected() == []


# --- accessibility ----------------------------------------------------------------------


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_no_serious_accessibility_violation_on_any_page(
    live_web: WebApp, browser: Browser, viewport: ViewportSize
) -> None:
    web, console = live_web, Console()
    context = browser.new_context(base_url=web.base_url, viewport=viewport)
    try:
        page = console.watch(context.new_page())
        page.goto("/login")
        found = {"/login": violations(page)}
        queue = queue_of(context, console)
        queue.locator(f"#q-{web.questions['urgent']}").get_by_role("button", name="Assign").click()
        found["/queue"] = violations(queue)
        for path in (
            f"/questions/{web.questions['urgent']}",
            "/quarantine",
            "/answers",
            "/replies",
            "/team/camp-a",
        ):
            queue.goto(path)
            found[path] = violations(queue)
        team = browser.new_context(base_url=web.base_url, viewport=viewport)
        try:
            web.call(
                web.store.questions.act,
                web.questions["french"],
                "assign",
                web.actor(MODERATOR),
                team="camp-a",
            )
            feed = sign_in(team, TEAM_A, "/team/camp-a", console)
            found["/team/camp-a (team)"] = violations(feed)
        finally:
            team.close()
    finally:
        context.close()
    assert {path: v for path, v in found.items() if v} == {}
