"""Reply templates per language: every language the triage web writes a reply line in
has the publisher's templates, and a reply in a language without any falls back to
English."""

from __future__ import annotations

import pytest

from services.common.replies import Templates
from services.triage.web.domain import FALLBACK_TEXT


@pytest.fixture(scope="module")
def templates() -> Templates:
    return Templates.load()


def test_every_language_with_a_reply_line_has_at_least_two_templates(
    templates: Templates,
) -> None:
    short = {
        lang: len(templates.by_language.get(lang, ()))
        for lang in FALLBACK_TEXT
        if len(templates.by_language.get(lang, ())) < 2
    }
    assert short == {}


@pytest.mark.parametrize(
    ("language", "expected"),
    [("fr-CA", "fr"), ("AR", "ar"), ("so", "so"), ("sw_KE", "sw"), ("it", "en"), (None, "en")],
)
def test_a_reply_gets_its_language_s_templates_or_english(
    templates: Templates, language: str | None, expected: str
) -> None:
    assert templates.for_language(language, "en") == templates.by_language[expected]
