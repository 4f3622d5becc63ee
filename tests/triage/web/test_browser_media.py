"""The team page's media in a real browser (Debian's headless Chromium, a fake camera
and microphone): an answer recorded in the page goes up as the answer; a video larger
than the server's target is shrunk on the phone (WebCodecs) before it goes up; an
answer made offline waits on the phone and goes up by itself once back online."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, FilePayload, Page, expect, sync_playwright

from services.common.media.probe import probe
from services.triage.web.media import LocalMediaStore
from tests.helpers.media import make_clip
from tests.triage.web.helpers.app import MODERATOR, TEAM_A, WebApp, serve_live
from tests.triage.web.helpers.store import ClassifiedFactory
from tests.triage.web.test_browser import CHROMIUM, Console, shot

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SENT_MS = 60_000


@pytest.fixture(scope="module")
def camera_browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


def phone(browser: Browser, web: WebApp) -> BrowserContext:
    context = browser.new_context(
        base_url=web.base_url, viewport={"width": 390, "height": 844}, is_mobile=True
    )
    context.grant_permissions(["camera", "microphone"])
    return context


def team_page(context: BrowserContext, console: Console) -> Page:
    page = console.watch(context.new_page())
    page.goto("/team/camp-a")
    page.get_by_label("User name").fill(TEAM_A.username)
    page.get_by_label("Password").fill(TEAM_A.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/team/camp-a$"))
    return page


def assigned(web: WebApp) -> str:
    question = web.questions["urgent"]
    web.call(web.store.questions.act, question, "assign", web.actor(MODERATOR), team="camp-a")
    return question


def fill_consent(card: object) -> None:
    form = card.locator("form.upload-form")  # type: ignore[attr-defined]
    form.get_by_label("Consent given by").fill("Speaker 7 (adult)")
    form.get_by_label("May be used for").select_option("campaign-social")
    form.get_by_label("The person filmed").check()


def stored_file(web: WebApp, question: str) -> Path:
    [(answer, consent)] = web.call(web.store.answers.of_question, question)
    assert consent is not None
    assert consent.given_by == "Speaker 7 (adult)"
    store = LocalMediaStore(web.settings.media_dir)
    return store.objects / store.key_of(answer.media_uri)


def test_an_answer_recorded_in_the_page_goes_up(
    tmp_path: Path, camera_browser: Browser, classified: ClassifiedFactory
) -> None:
    with serve_live(tmp_path, classified, upload_chunk_max_bytes=64 * 1024) as web:
        question = assigned(web)
        console = Console()
        context = phone(camera_browser, web)
        try:
            page = team_page(context, console)
            card = page.locator(f".card[data-question='{question}']")
            card.locator("summary").click()
            card.get_by_role("button", name="Record with this phone").click()
            expect(card.locator(".record-status")).to_have_text("Recording…")
            page.wait_for_timeout(2500)
            card.get_by_role("button", name="Stop recording").click()
            expect(card.locator(".record-status")).to_contain_text("Recorded:", timeout=10_000)
            fill_consent(card)
            card.get_by_role("button", name="Upload answer").click()
            expect(card.locator(".upload-status")).to_contain_text("Answer sent", timeout=SENT_MS)
            shot(page, "team-recorded.png")
        finally:
            context.close()
        info = probe(stored_file(web, question))
        assert info.video_codec in {"vp8", "vp9", "h264"}  # what Chromium's recorder wrote
        assert info.audio_codec == "opus"
        assert 1.5 <= info.duration_s <= 4.0
        assert console.unexpected() == []


def test_a_video_over_the_target_is_shrunk_on_the_phone(
    tmp_path: Path, camera_browser: Browser, classified: ClassifiedFactory
) -> None:
    big = make_clip(
        tmp_path / "big.mp4",
        size=(640, 480),
        fps=25,
        seconds=2.0,
        vopts={"crf": "4", "preset": "ultrafast"},
    )  # about 3 MB/s: far over the target below
    with serve_live(
        tmp_path, classified, phone_target_kbps=300, phone_max_long=320,
        upload_chunk_max_bytes=64 * 1024,
    ) as web:  # fmt: skip
        question = assigned(web)
        console = Console()
        context = phone(camera_browser, web)
        try:
            page = team_page(context, console)
            assert page.evaluate("typeof VideoEncoder") == "function"
            card = page.locator(f".card[data-question='{question}']")
            card.locator("summary").click()
            card.locator("input[name=video]").set_input_files(
                files=[FilePayload(name="big.mp4", mimeType="video/mp4", buffer=big.read_bytes())]
            )
            fill_consent(card)
            card.get_by_role("button", name="Upload answer").click()
            expect(card.locator(".upload-status")).to_contain_text("Answer sent", timeout=SENT_MS)
        finally:
            context.close()
        sent = stored_file(web, question)
        info = probe(sent)
        assert sent.stat().st_size < big.stat().st_size / 4
        assert (info.video_codec, info.container.startswith("mov")) == ("h264", True)
        assert max(info.display_size) <= 320
        assert info.duration_s == pytest.approx(2.0, abs=0.3)
        assert console.unexpected() == []


def test_an_answer_made_offline_goes_up_by_itself_once_back_online(
    tmp_path: Path,
    camera_browser: Browser,
    classified: ClassifiedFactory,
    phone_videos: dict[str, Path],
) -> None:
    video = phone_videos["h264_mp4"].read_bytes()
    with serve_live(tmp_path, classified, upload_chunk_max_bytes=16 * 1024) as web:
        question = assigned(web)
        console = Console()
        context = phone(camera_browser, web)
        try:
            page = team_page(context, console)
            page.wait_for_function(
                "navigator.serviceWorker.controller !== null || "
                "navigator.serviceWorker.getRegistration().then(r => !!r && !!r.active)"
            )
            page.wait_for_timeout(1500)  # the shell is being kept
            context.set_offline(True)
            page.reload()  # no connection: the service worker serves the page and the feed
            card = page.locator(f".card[data-question='{question}']")
            expect(card).to_be_visible()
            card.locator("summary").click()
            card.locator("input[name=video]").set_input_files(
                files=[FilePayload(name="a.mp4", mimeType="video/mp4", buffer=video)]
            )
            fill_consent(card)
            card.get_by_role("button", name="Upload answer").click()
            waiting = page.locator("#outbox .outbox-item")
            expect(waiting).to_have_attribute("data-state", "waiting")
            expect(page.locator("#outbox")).to_contain_text("No connection")
            shot(page, "team-offline.png")
            assert web.call(web.store.answers.of_question, question) == []

            context.set_offline(False)

            expect(page.locator("#outbox .outbox-item")).to_have_attribute(
                "data-state", "done", timeout=SENT_MS
            )
        finally:
            context.close()
        assert stored_file(web, question).read_bytes() == video
        offline_noise = ("ERR_INTERNET_DISCONNECTED", "Failed to fetch", "net::ERR")
        assert console.unexpected(*offline_noise) == []
