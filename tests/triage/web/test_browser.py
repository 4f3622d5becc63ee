"""The triage pages in a real browser (Debian's headless Chromium driven by
Playwright) against the app served by uvicorn: a moderator's live queue and
keyboard, a recording team's phone page with a resumable upload and consent,
answer review down to the ``replies.requested`` outbox row, and how fast a
moderator can clear a queue with the keyboard.

Screenshots and the measured keyboard throughput land in ``var/screenshots/``."""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Dialog,
    FilePayload,
    Page,
    Route,
    expect,
    sync_playwright,
)

from services.common import topics
from services.common.codec import decode
from services.common.messages import PublishReply
from services.triage.web.models import Status
from services.triage.web.store import QuestionFilter
from tests.helpers import ROOT
from tests.helpers.media import video_bytes
from tests.triage.web.helpers.app import (
    ADMIN,
    MODERATOR,
    TEAM_A,
    Person,
    WebApp,
    classify,
    serve_live,
)
from tests.triage.web.helpers.media import run_media_jobs
from tests.triage.web.helpers.store import ClassifiedFactory

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "var" / "screenshots"
#: How long a page may take to show a change (the live streams poll every second).
LIVE_MS = 8000
#: How long a Playwright expectation waits for the page to agree, in every browser test
#: module (they import this one). They share the two cores with whole stacks in `make
#: test`: a page that answers in 5 s there is slow, not wrong. An expectation that
#: holds returns as soon as it does; only a failing one waits 15 s (Playwright's
#: default: 5 s) before it says so.
EXPECT_TIMEOUT_MS = 15_000
expect.set_options(timeout=EXPECT_TIMEOUT_MS)
#: A real (tiny) MP4: the server probes what it is given.
MP4 = video_bytes()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's chromium "
            "(apt-get install chromium); Playwright's own browser download is not used",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


class Console:
    """Errors a page logged (a CSP refusal, an exception in our scripts)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        return page

    def unexpected(self, *allowed: str) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in allowed)]


def sign_in(context: BrowserContext, person: Person, path: str, console: Console) -> Page:
    page = console.watch(context.new_page())
    page.goto(path)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("User name").fill(person.username)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(re.escape(path) + "$"))
    # The URL changes when the redirect commits, before the page's deferred scripts
    # run: a click meanwhile submits a form natively (seen once under load: a note
    # added before review.js listened was lost to a GET of the same page).
    page.wait_for_load_state("load")
    return page


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def status_of(web: WebApp, question_id: str) -> str:
    return web.call(web.store.questions.get, question_id).status


def test_moderator_and_team_answer_a_question_end_to_end(
    live_web: WebApp, browser: Browser, classified: ClassifiedFactory
) -> None:
    web = live_web
    console = Console()
    moderation = browser.new_context(base_url=web.base_url, viewport={"width": 1280, "height": 900})
    phone = browser.new_context(
        base_url=web.base_url,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    try:
        queue = sign_in(moderation, MODERATOR, "/queue", console)
        expect(queue.locator("#live.on")).to_be_visible(timeout=LIVE_MS)
        items = queue.locator("#queue-list .item")
        expect(items).to_have_count(6)

        # Abusive text stays blurred until the moderator clicks it.
        blurred = queue.locator(f"#q-{web.questions['abusive']} .blur")
        expect(blurred).not_to_have_class("blur revealed")
        blurred.click()
        expect(blurred).to_have_class("blur revealed")

        # A mention classified while the page is open appears at the top, no reload.
        fresh = web.ingest(
            classify(classified, "Is there a library in the camp?", priority=99, team="camp-a")
        )
        expect(items.first).to_have_attribute("id", f"q-{fresh}", timeout=LIVE_MS)
        expect(items).to_have_count(7)
        expect(blurred).to_have_class("blur revealed")  # kept across the live refresh
        shot(queue, "queue.png")

        # The filters swap the list in place (htmx) and keep the address bar in step.
        search = queue.get_by_label("Search")
        search.fill("family")
        expect(items).to_have_count(1)
        expect(queue).to_have_url(re.compile(r"/queue\?status=new&q=family$"))
        search.fill("")
        expect(items).to_have_count(7)
        search.press("Escape")  # back to the list: the keys work again

        # j focuses (and claims) the first question, a approves it, the focus moves on,
        # and 1 gives that next question to the first team in the list (Camp A).
        queue.keyboard.press("j")
        expect(queue.locator(".item.focused")).to_have_attribute("id", f"q-{fresh}")
        expect(queue.locator("#teams .team.suggested")).to_have_attribute("data-slug", "camp-a")
        queue.keyboard.press("a")
        expect(queue.locator(f"#q-{fresh}")).to_have_count(0)
        urgent = web.questions["urgent"]
        expect(queue.locator(".item.focused")).to_have_attribute("id", f"q-{urgent}")
        queue.keyboard.press("1")
        expect(queue.locator(f"#q-{urgent}")).to_have_count(0)
        assert status_of(web, fresh) == Status.APPROVED
        assert status_of(web, urgent) == Status.ASSIGNED
        assert web.call(web.store.questions.get, urgent).team_id is not None

        # Another moderator's claim shows as a lock, and actions skip that question.
        quiet = web.questions["quiet"]
        web.call(web.store.questions.claim, quiet, web.actor(ADMIN))
        expect(queue.locator(f"#q-{quiet}.locked .holder")).to_have_text("admin", timeout=LIVE_MS)

        # x selects, Shift+R rejects the selection (abusive, then french: j skips the
        # collapsed food cluster's second question).
        abusive, french = web.questions["abusive"], web.questions["french"]
        expect(queue.locator(".item.focused")).to_have_attribute("id", f"q-{abusive}")
        queue.keyboard.press("x")
        queue.keyboard.press("j")
        queue.keyboard.press("j")
        expect(queue.locator(".item.focused")).to_have_attribute("id", f"q-{french}")
        queue.keyboard.press("x")
        expect(queue.locator("#selection-count")).to_have_text("2")
        queue.keyboard.press("Shift+R")
        expect(queue.locator(f"#q-{abusive}, #q-{french}")).to_have_count(0)
        expect(queue.locator("#toasts")).to_contain_text("2 questions rejected")
        assert status_of(web, abusive) == status_of(web, french) == Status.REJECTED

        food = web.questions["food-1"]
        expect(queue.locator(".item.focused")).to_have_attribute("id", f"q-{food}")
        queue.keyboard.press("j")
        expect(queue.locator(".item.focused")).to_have_attribute("id", f"q-{quiet}")
        queue.keyboard.press("a")
        expect(queue.locator("#toasts")).to_contain_text("Held by admin: skipped")
        expect(queue.locator(".item.focused")).to_have_attribute("id", f"q-{food}")
        assert status_of(web, quiet) == Status.NEW

        queue.keyboard.press("?")
        expect(queue.locator("#help")).to_be_visible()
        queue.keyboard.press("Escape")
        expect(queue.locator("#help")).to_be_hidden()

        # k moves up (to a question that arrived above), r rejects it, focus goes on.
        spam = web.ingest(classify(classified, "Win a free phone, click now?", priority=98))
        expect(items.first).to_have_attribute("id", f"q-{spam}", timeout=LIVE_MS)
        queue.keyboard.press("k")
        expect(queue.locator(".item.focused")).to_have_attribute("id", f"q-{spam}")
        queue.keyboard.press("r")
        expect(queue.locator(f"#q-{spam}")).to_have_count(0)
        expect(queue.locator(".item.focused")).to_have_attribute("id", f"q-{food}")
        assert status_of(web, spam) == Status.REJECTED

        # The team's phone: the assigned question is there; one assigned now arrives live.
        team = sign_in(phone, TEAM_A, "/team/camp-a", console)
        expect(team.locator("#live.on")).to_be_visible(timeout=LIVE_MS)
        card = team.locator(f"#cards .card[data-question='{urgent}']")
        expect(card).to_contain_text("Do you get to talk to your family back home?")
        queue.keyboard.press("1")  # the moderator, still on food-1, assigns it to Camp A
        expect(team.locator(f"#cards .card[data-question='{food}']")).to_be_visible(timeout=LIVE_MS)

        card.get_by_role("button", name="Take").click()
        expect(card.locator(".card-state")).to_have_text("You took this question.")
        form = card.locator("form.upload-form")
        form.locator("input[name=video]").set_input_files(
            files=[FilePayload(name="answer.mp4", mimeType="video/mp4", buffer=MP4)]
        )
        form.get_by_label("Caption").fill("We call every Sunday, when the network allows.")
        form.get_by_label("Transcript (optional").fill("We call home every Sunday.")
        form.get_by_label("Consent given by").fill("Speaker 12 (adult)")
        form.get_by_label("May be used for").select_option("campaign-social")

        # No consent ticked: the page refuses and sends nothing.
        sent: list[str] = []
        team.on(
            "request", lambda r: sent.append(f"{r.method} {r.url}") if "/upload" in r.url else None
        )
        form.get_by_role("button", name="Upload answer").click()
        expect(form.locator(".upload-status")).to_contain_text("No consent, no answer")
        assert sent == []

        # With consent: chunks of 1 KiB; the connection drops on the second one and the
        # page resumes from the offset the server reports. Then the finish's answer is
        # lost at a gateway (502, the answer recorded): the phone keeps the item and
        # finishes again, which records nothing new.
        dropped: list[str] = []
        lost: list[str] = []

        def flaky(route: Route) -> None:
            request = route.request
            offset = request.headers.get("upload-offset")
            if request.method == "PATCH" and offset == "1024" and not dropped:
                dropped.append(request.url)
                route.abort("connectionreset")
                return
            if request.method == "POST" and request.url.endswith("/answer") and not lost:
                lost.append(request.url)
                route.fetch()  # the server records the answer; its response never arrives
                route.fulfill(status=502, body="Bad Gateway")
                return
            route.continue_()

        team.route("**/api/uploads/**", flaky)
        form.get_by_label("The person filmed").check()
        form.get_by_role("button", name="Upload answer").click()
        expect(form.locator(".upload-status")).to_contain_text("Kept on the phone", timeout=15000)
        expect(form.locator(".upload-status")).to_contain_text("Answer sent", timeout=30000)
        assert lost, "the test never lost the finish's answer"
        assert len(web.call(web.store.answers.of_question, urgent)) == 1  # recorded once
        expect(card.locator(".card-state")).to_have_text(
            "Answer sent: waiting for review.", timeout=LIVE_MS
        )
        # The card starts clean for a new recording (nothing of the last one's form).
        expect(card.locator("textarea[name=caption]")).to_have_value("")
        expect(card.locator("input[name=consent_given_by]")).to_have_value("")
        assert dropped, "the test never cut the connection"
        patches = [s for s in sent if s.startswith("PATCH")]
        assert len(patches) == math.ceil(len(MP4) / 1024) + 1  # 1 KiB chunks, one sent twice
        resumed = sent.index(next(s for s in sent if s.startswith("GET ")))
        assert sent[resumed - 1].startswith("PATCH")  # the status check came after the failure
        (answer, consent), *_ = web.call(web.store.answers.of_question, urgent)
        assert answer.sha256 == hashlib.sha256(MP4).hexdigest()
        assert answer.bytes == len(MP4)
        assert consent is not None
        assert (consent.given_by, consent.scope) == ("Speaker 12 (adult)", "campaign-social")
        expect(card.get_by_role("button", name="Take")).to_have_count(0)
        shot(team, "team-phone.png")

        # The media worker makes the poster, the transcript and the X version (stand-ins).
        web.call(run_media_jobs, web.store)

        # Review: the moderator watches, reads the consent record, and approves.
        queue.goto("/answers")
        review = queue.locator(f".answer[data-question='{urgent}']")
        expect(review.locator("video")).to_have_attribute("src", f"/api/answers/{answer.id}/video")
        expect(review.locator(".consent")).to_contain_text("Speaker 12 (adult)")
        shot(queue, "answers.png")
        review.get_by_role("button", name="Approve and reply").click()
        # Nothing goes out before the moderator sees who receives it and the exact text.
        confirm = review.locator("dialog.approve-dialog[open]")
        expect(confirm.locator(".recipients li")).to_have_count(1)
        handle = web.call(web.store.questions.get, urgent).author_handle
        expect(confirm.locator(".recipients")).to_contain_text(f"@{handle} on x (en)")
        expect(confirm.locator(".reply-text")).to_have_text(
            "We call every Sunday, when the network allows."
        )
        confirm.get_by_role("button", name="Send 1 reply").click()
        expect(review.locator(".review-result")).to_have_text("Approved: 1 reply requested.")
        assert status_of(web, urgent) == Status.ANSWERED

        rows = [
            r for r in web.call(web.store.outbox.pending) if r.topic == topics.REPLIES_REQUESTED
        ]
        assert len(rows) == 1
        reply = decode(PublishReply, rows[0].value)
        assert (reply.question_id, reply.approved_by) == (urgent, MODERATOR.username)
        assert reply.text == "We call every Sunday, when the network allows."

        queue.goto(f"/questions/{urgent}")
        expect(queue.locator("li.event-answer_approved")).to_have_count(1)
        shot(queue, "question-timeline.png")

        team.get_by_role("button", name="Sign out").click()
        expect(team).to_have_url(re.compile(r"/login$"))
        team.goto("/team/camp-a")
        expect(team).to_have_url(re.compile(r"/login\?next="))

        # Nothing the pages do trips the CSP or throws (the dropped chunk and the lost
        # finish log network errors by design).
        assert console.unexpected("ERR_CONNECTION_RESET", "status of 502 (Bad Gateway)") == []
    finally:
        phone.close()
        moderation.close()


def test_blocking_an_author_asks_first(
    tmp_path: Path, browser: Browser, classified: ClassifiedFactory
) -> None:
    """b in the queue and the question page's button both ask before blocking:
    dismissed, nothing changes; accepted, the author's open questions are rejected."""
    with serve_live(tmp_path, classified) as web:
        first = web.ingest(classify(classified, "Blockcheck one?", priority=90))
        second = web.ingest(classify(classified, "Blockcheck two?", priority=80))
        context = browser.new_context(
            base_url=web.base_url, viewport={"width": 1280, "height": 900}
        )
        console = Console()
        asked: list[str] = []
        try:
            page = sign_in(context, MODERATOR, "/queue?status=new&q=blockcheck", console)
            expect(page.locator("#live.on")).to_be_visible(timeout=LIVE_MS)
            expect(page.locator("#queue-list .item")).to_have_count(2)
            page.keyboard.press("j")
            expect(page.locator(".item.focused")).to_have_attribute("id", f"q-{first}")

            def dismiss(dialog: Dialog) -> None:
                asked.append(dialog.message)
                dialog.dismiss()

            page.once("dialog", dismiss)
            page.keyboard.press("b")
            page.keyboard.press("?")  # the page is still there, no request went out
            expect(page.locator("#help")).to_be_visible()
            page.keyboard.press("Escape")
            assert status_of(web, first) == status_of(web, second) == Status.NEW
            author = web.call(web.store.questions.get, first).author_handle
            assert asked == [
                f"Block @{author}? Their open questions are rejected, and what they send "
                "later skips the queue."
            ]

            detail = console.watch(context.new_page())
            detail.goto(f"/questions/{second}")
            detail.once("dialog", dismiss)
            detail.get_by_role("button", name="Block author").click()
            assert len(asked) == 2
            assert status_of(web, second) == Status.NEW

            detail.once("dialog", lambda dialog: dialog.accept())
            detail.get_by_role("button", name="Block author").click()
            expect(detail.locator(".status").first).to_have_text("rejected")
            assert status_of(web, second) == Status.REJECTED
        finally:
            context.close()
        assert console.unexpected() == []


def test_keyboard_throughput_clears_100_questions(
    tmp_path: Path, browser: Browser, classified: ClassifiedFactory
) -> None:
    with serve_live(tmp_path, classified) as web:
        for n in range(100):
            web.ingest(classify(classified, f"Throughput question {n}?", priority=10 + n % 80))
        context = browser.new_context(
            base_url=web.base_url, viewport={"width": 1280, "height": 900}
        )
        console = Console()
        try:
            page = sign_in(context, MODERATOR, "/queue?status=new&q=throughput", console)
            expect(page.locator("#live.on")).to_be_visible(timeout=LIVE_MS)
            expect(page.locator("#queue-list .item")).to_have_count(100)
            page.keyboard.press("j")
            started = time.perf_counter()
            for _ in range(100):
                focused = page.locator(".item.focused")
                question = focused.get_attribute("data-id", timeout=5000)
                page.keyboard.press("a")
                page.locator(f"#q-{question}").wait_for(state="detached", timeout=5000)
            elapsed = time.perf_counter() - started
            expect(page.locator("#queue-list .item")).to_have_count(0)
            shot(page, "queue-cleared.png")
        finally:
            context.close()
        approved = web.call(
            web.store.questions.page,
            QuestionFilter(statuses=(Status.APPROVED,), text="throughput"),
            limit=1,
        )[1]
        assert approved == 100
        assert console.unexpected() == []

    rate = 100 / elapsed
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "keyboard-throughput.txt").write_text(
        f"100 questions approved with the 'a' key in {elapsed:.2f} s: "
        f"{rate:.1f} actions/second (headless Chromium, SQLite, one moderator)\n"
    )
    print(f"keyboard throughput: {rate:.1f} actions/s ({elapsed:.2f} s for 100)")
    assert elapsed < 180
