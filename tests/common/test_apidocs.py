"""``/docs`` from the vendored Swagger UI (services.common.apidocs): the page, its
assets, the checked-in files against VENDORED.md, and — in headless Chromium with
every other host unreachable — the triage web's and ingest's API reference
rendering under their Content-Security-Policy without a console error."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Route, expect, sync_playwright
from pydantic import SecretStr

from services.common.apidocs import ASSETS, CSP, HERE, install_api_docs
from services.ingest.app import Overrides as IngestOverrides
from services.ingest.app import create_app as create_ingest
from services.ingest.config import IngestSettings
from services.triage.web.models import Role
from tests.ingest.helpers.sink import FakeSink
from tests.triage.web.helpers.app import Person, make_app, sign_in, web_settings

CHROMIUM = Path("/usr/bin/chromium")


def small_app() -> FastAPI:
    app = FastAPI(title="a <service>", docs_url=None, redoc_url=None)

    @app.get("/v1/things", summary="List the things")
    async def things() -> list[str]:
        return []

    install_api_docs(app)
    return app


def test_the_docs_page_runs_no_inline_script_and_sets_a_strict_policy() -> None:
    client = TestClient(small_app())
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP
    assert "'unsafe-eval'" not in CSP
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, flags=re.S)
    assert [attrs for attrs, _ in scripts] == [
        ' src="/docs/assets/swagger-ui-bundle.js"',
        ' src="/docs/assets/docs.js"',
    ]
    assert all(body == "" for _, body in scripts)
    assert 'data-openapi="/openapi.json"' in page.text
    assert "a &lt;service&gt; · API reference" in page.text  # the title is escaped
    assert "http://" not in page.text
    assert "https://" not in page.text


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_every_asset_is_served_with_its_type(name: str) -> None:
    response = TestClient(small_app()).get(f"/docs/assets/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(ASSETS[name])
    assert response.content == (HERE / name).read_bytes()


@pytest.mark.parametrize("name", ["../__init__.py", "VENDORED.md", "swagger-ui-bundle.js.map"])
def test_nothing_else_is_served(name: str) -> None:
    assert TestClient(small_app()).get(f"/docs/assets/{name}").status_code == 404


def test_the_vendored_files_are_the_ones_recorded() -> None:
    table = (HERE / "VENDORED.md").read_text(encoding="utf-8")
    recorded = dict(re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", table, flags=re.M))
    assert set(recorded) == {"swagger-ui-bundle.js", "swagger-ui.css"}
    for name, digest in recorded.items():
        assert hashlib.sha256((HERE / name).read_bytes()).hexdigest() == digest, name
    assert "Apache License" in (HERE / "swagger-ui.LICENSE").read_text(encoding="utf-8")


# --- in a browser, offline ----------------------------------------------------------------


@pytest.fixture(name="triage_client")
def triage_client_fixture(tmp_path: Path) -> Iterator[TestClient]:
    """The triage web, signed in as its admin: its API description is for signed-in
    people (the page session the browser sends from ``/docs``)."""
    admin = Person("admin", Role.ADMIN, password="a long enough admin password 42")
    settings = web_settings(
        tmp_path, admin_user=admin.username, admin_password=SecretStr(admin.password)
    )
    with TestClient(make_app(settings), follow_redirects=False) as client:
        sign_in(client, admin)
        yield client


@pytest.fixture(name="anonymous_client")
def anonymous_client_fixture(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(make_app(web_settings(tmp_path)), follow_redirects=False) as client:
        yield client


@pytest.fixture(name="ingest_client")
def ingest_client_fixture() -> Iterator[TestClient]:
    settings = IngestSettings(api_key=SecretStr("test-key-0123456789abcdef"))
    with TestClient(create_ingest(settings, overrides=IngestOverrides(sink=FakeSink()))) as client:
        yield client


@pytest.mark.integration
@pytest.mark.parametrize(
    ("service", "operation"),
    [("triage", "/api/questions"), ("ingest", "/v1/mentions")],
)
def test_docs_render_offline_without_a_csp_violation(
    service: str, operation: str, request: pytest.FixtureRequest
) -> None:
    client: TestClient = request.getfixturevalue(f"{service}_client")
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)", pytrace=False)
    origin = "http://docs.test"
    elsewhere: list[str] = []
    console: list[str] = []

    def serve(route: Route) -> None:
        url = route.request.url
        if not url.startswith(origin + "/"):
            elsewhere.append(url)  # no network: anything else fails
            route.abort()
            return
        response = client.get(url.removeprefix(origin))
        headers: dict[str, Any] = dict(response.headers)
        route.fulfill(status=response.status_code, headers=headers, body=response.content)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console.append(f"uncaught: {e}"))
            page.route("**/*", serve)
            page.goto(origin + "/docs")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text(
                f"takeaction {service}"
            )
            expect(
                page.locator(f".opblock-summary-path[data-path='{operation}']").first
            ).to_be_visible()
        finally:
            browser.close()
    assert elsewhere == []
    assert console == []


def test_the_vendored_axe_core_is_the_one_recorded() -> None:
    """axe-core runs in the browser tests (tests/helpers/axe.py); its README records it."""
    vendor = Path(__file__).resolve().parents[1] / "helpers" / "vendor"
    table = (vendor / "README.md").read_text(encoding="utf-8")
    [(name, digest)] = re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", table, flags=re.M)
    assert name == "axe.min.js"
    assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest
    assert "Mozilla Public License" in (vendor / "axe-core.LICENSE").read_text(encoding="utf-8")


@pytest.mark.integration
def test_triage_docs_say_where_to_sign_in_when_signed_out(anonymous_client: TestClient) -> None:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)", pytrace=False)
    origin = "http://docs.test"

    def serve(route: Route) -> None:
        response = anonymous_client.get(route.request.url.removeprefix(origin))
        headers: dict[str, Any] = dict(response.headers)
        route.fulfill(status=response.status_code, headers=headers, body=response.content)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            page.route(origin + "/**", serve)
            page.goto(origin + "/docs")
            link = page.get_by_role("link", name="Sign in")
            expect(link).to_have_attribute("href", "/login?next=%2Fdocs")
        finally:
            browser.close()
