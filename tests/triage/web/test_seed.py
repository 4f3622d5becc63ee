"""The demo teams come from the shipped routing: every routed language has a team
that speaks it, a reply line and prepared replies here, and templates at the publisher."""

from __future__ import annotations

from services.common.replies import Templates
from services.triage.config import PACKAGE_DIR
from services.triage.rules import load_rules
from services.triage.web import domain as queue
from services.triage.web.seed import teams_from_rules


def _shipped_teams() -> dict[str, list[str]]:
    return teams_from_rules(load_rules(PACKAGE_DIR / "rules.yaml"))


def test_the_demo_has_a_german_speaking_team() -> None:
    teams = _shipped_teams()
    german = [slug for slug, languages in teams.items() if "de" in languages]
    assert german == ["kalobeyei-c"]


def test_a_german_question_is_suggested_to_the_german_speaking_team() -> None:
    class Team:
        def __init__(self, slug: str, languages: list[str]) -> None:
            self.slug, self.languages = slug, " ".join(languages)

    class Load:
        def __init__(self, team: Team) -> None:
            self.team, self.remaining = team, 5

    loads = [Load(Team(slug, languages)) for slug, languages in _shipped_teams().items()]
    assert queue.suggest_team("de-DE", None, loads) == "kalobeyei-c"
    assert queue.suggest_team("fr", None, loads) == "dadaab-b"


def test_every_routed_language_has_reply_texts_and_templates() -> None:
    templates = Templates.load()
    routed = {lang for languages in _shipped_teams().values() for lang in languages}
    for lang in sorted(routed):
        assert lang in queue.FALLBACK_TEXT, lang
        assert len(queue.canned_replies(lang)) >= 2, lang
        assert len(templates.by_language.get(lang, ())) >= 2, lang
