"""axe-core (vendored: ``tests/helpers/vendor/``, see its README) run in a page
driven by Playwright: the accessibility check of the browser tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
#: The axe impacts a page may not have.
BLOCKING = ("serious", "critical")
#: The rule sets checked: WCAG 2.1 A and AA, and axe's best practices.
TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice")


def violations(page: Page, *, impacts: tuple[str, ...] = BLOCKING) -> list[str]:
    """Each violation of ``impacts`` on the page as it is now: ``rule: target, ...``.

    axe is evaluated through the DevTools protocol (no ``<script>`` tag), so the page's
    own Content-Security-Policy is not loosened to run it."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    result: dict[str, Any] = page.evaluate(
        """async (TAGS) => await window.axe.run(document, {
            resultTypes: ["violations"],
            runOnly: {type: "tag", values: TAGS},
        })""",
        list(TAGS),
    )
    found = []
    for v in result["violations"]:
        if v.get("impact") not in impacts:
            continue
        targets = ", ".join(str(n["target"][0]) for n in v["nodes"][:5])
        found.append(f"{v['id']} ({v['impact']}): {v['help']} — {targets}")
    return found
