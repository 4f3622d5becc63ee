"""The moderation queue's rules, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common.messages import Decision
from services.triage.web import domain as queue
from services.triage.web.models import Status, Team
from services.triage.web.store import TeamLoad


def load(slug: str, languages: str, *, capacity: int = 10, assigned: int = 0) -> TeamLoad:
    return TeamLoad(Team(slug=slug, languages=languages, capacity=capacity), assigned)


@pytest.mark.parametrize(
    ("decision", "blocked", "status"),
    [
        (Decision.REVIEW, False, Status.NEW),
        (Decision.AUTO_ASSIGN, False, Status.NEW),
        (Decision.DROP, False, Status.DROPPED),
        (Decision.QUARANTINE, False, Status.QUARANTINED),
        (Decision.REVIEW, True, Status.REJECTED),
        (Decision.AUTO_ASSIGN, True, Status.REJECTED),
        (Decision.DROP, True, Status.REJECTED),
        (Decision.QUARANTINE, True, Status.QUARANTINED),  # abuse is kept for audit
    ],
)
def test_status_for_decision(decision: Decision, blocked: bool, status: Status) -> None:
    assert queue.status_for_decision(decision, author_blocked=blocked) is status


@pytest.mark.parametrize(
    ("action", "allowed", "to"),
    [
        ("approve", {Status.NEW}, Status.APPROVED),  # approving twice is a conflict
        ("reject", {Status.NEW, Status.APPROVED, Status.ASSIGNED}, Status.REJECTED),
        (
            "quarantine",
            {Status.NEW, Status.APPROVED, Status.ASSIGNED, Status.REJECTED, Status.DROPPED},
            Status.QUARANTINED,
        ),
        ("restore", {Status.REJECTED, Status.DROPPED, Status.QUARANTINED}, Status.NEW),
    ],
)
def test_moderator_actions_move_from_these_statuses(
    action: str, allowed: set[Status], to: Status
) -> None:
    move = queue.MODERATOR_ACTIONS[action]
    assert (set(move.allowed), move.to) == (allowed, to)


def test_no_moderator_action_touches_an_answered_question() -> None:
    done = {Status.RECORDED, Status.ANSWERED, Status.PUBLISHED}
    assert all(not done & set(m.allowed) for m in queue.MODERATOR_ACTIONS.values())
    assert not done & set(queue.ASSIGNABLE)
    assert queue.ACTIONS == ("approve", "reject", "quarantine", "restore", "assign", "block")


@pytest.mark.parametrize(
    ("lang", "base"),
    [("en", "en"), ("en-GB", "en"), ("pt_BR", "pt"), ("SW", "sw"), ("und", None), (None, None)],
)
def test_base_language(lang: str | None, base: str | None) -> None:
    assert queue.base_language(lang) == base


def test_suggest_team_picks_the_speaking_team_with_most_capacity_left() -> None:
    loads = [
        load("camp-a", "en fr", capacity=10, assigned=8),
        load("camp-b", "en", capacity=10, assigned=3),
        load("camp-c", "sw", capacity=50),
    ]
    assert queue.suggest_team("en-GB", "camp-a", loads) == "camp-b"
    assert queue.suggest_team("fr", None, loads) == "camp-a"
    assert queue.suggest_team("sw", "camp-a", loads) == "camp-c"


def test_suggest_team_breaks_a_tie_with_the_routed_team() -> None:
    loads = [load("camp-a", "en"), load("camp-b", "en"), load("camp-c", "en")]
    assert queue.suggest_team("en", "camp-b", loads) == "camp-b"
    assert queue.suggest_team("en", "camp-c", list(reversed(loads))) == "camp-c"


def test_suggest_team_falls_back_to_the_routed_team_when_nobody_speaks_it() -> None:
    loads = [load("camp-a", "en"), load("camp-b", "fr")]
    assert queue.suggest_team("ar", "camp-b", loads) == "camp-b"
    assert queue.suggest_team(None, "camp-a", loads) == "camp-a"


def test_suggest_team_is_none_when_nobody_can() -> None:
    loads = [load("camp-a", "en")]
    assert queue.suggest_team("ar", None, loads) is None
    assert queue.suggest_team("ar", "camp-gone", loads) is None  # routed to no known team
    assert queue.suggest_team("en", "camp-a", []) is None


def test_a_full_team_is_never_suggested_and_the_page_says_why() -> None:
    loads = [load("camp-a", "en", capacity=5, assigned=5), load("camp-b", "en fr", capacity=5)]
    assert queue.suggest("en", "camp-a", loads) == queue.Suggestion(
        "camp-b", "speaks en; the most room today: 5 more"
    )
    full = [load("camp-a", "en", capacity=5, assigned=5)]
    assert queue.suggest("en", "camp-a", full) == queue.Suggestion(
        None, "every team speaking en is full today"
    )
    assert queue.suggest("so", "camp-a", full) == queue.Suggestion(
        None, "camp-a, where the routing sends it, is full today (no team speaks so)"
    )
    assert queue.suggest(None, "camp-a", [load("camp-a", "en")]).why == (
        "the routing rules send it there (language unknown)"
    )


@pytest.mark.parametrize(
    ("lang", "languages", "remaining", "warnings"),
    [
        ("en", "en fr", 3, []),
        ("en-GB", "ar fr so", 3, ["does not speak en"]),
        ("en", "en", 0, ["full today"]),
        ("sw", "en", 0, ["full today", "does not speak sw"]),
        (None, "en", 2, []),  # a language nobody knows is no reason to warn
    ],
)
def test_assignment_warnings(
    lang: str | None, languages: str, remaining: int, warnings: list[str]
) -> None:
    assert queue.assignment_warnings(lang, languages, remaining) == warnings


@pytest.mark.parametrize(
    ("event", "actor", "from_status", "age_s", "why"),
    [
        ("approve", "moira", "new", 5, None),
        ("assigned", "moira", "approved", 5, None),
        ("approve", "admin", "new", 5, "admin changed it since"),
        (
            "approve",
            "moira",
            "new",
            601,
            "too late to undo (after 10 minutes); act on it again",
        ),
        ("reject", "moira", "assigned", 5, "it was taken from a team: assign it again instead"),
        ("author_blocked", "moira", "new", 5, None),
        ("undone", "moira", "rejected", 5, "the last change (undone) cannot be undone"),
        ("classified", "system:classifier", None, 5, "nothing to undo"),
    ],
)
def test_why_not_undo(
    event: str, actor: str, from_status: str | None, age_s: int, why: str | None
) -> None:
    assert (
        queue.why_not_undo(
            event, actor=actor, by="moira", from_status=from_status, age=timedelta(seconds=age_s)
        )
        == why
    )


@pytest.mark.parametrize(
    ("minutes", "words", "late"),
    [
        (0, "0 min", False),
        (59, "59 min", False),
        (125, "2 h", False),
        (24 * 60 + 1, "24 h", True),
        (3 * 24 * 60, "3 days", True),
    ],
)
def test_waiting_says_how_long_and_whether_past_the_target(
    minutes: int, words: str, late: bool
) -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert queue.waiting(now - timedelta(minutes=minutes), now) == (words, late)


def test_team_load_remaining_never_goes_below_zero() -> None:
    assert load("a", "en", capacity=5, assigned=2).remaining == 3
    assert load("a", "en", capacity=5, assigned=9).remaining == 0


def test_reply_id_is_deterministic_and_distinct_per_answer_and_mention() -> None:
    first = queue.reply_id("answer-1", "x:100")
    assert first == queue.reply_id("answer-1", "x:100")
    assert first.startswith("reply-")
    assert len(first) == len("reply-") + 32
    others = {
        queue.reply_id("answer-1", "x:101"),
        queue.reply_id("answer-2", "x:100"),
        queue.reply_id("answer-1x", ":100"),  # the separator keeps the parts apart
        queue.reply_id("answer-1", "mastodon:100"),
    }
    assert first not in others
    assert len(others) == 4


def test_reply_text_is_the_caption_with_whitespace_collapsed_and_bounded() -> None:
    assert queue.reply_text("  Thank you\n for  asking ", "en") == "Thank you for asking"
    long = queue.reply_text("word " * 100, "en")
    assert len(long) == 240
    assert long.startswith("word word")


@pytest.mark.parametrize(
    ("language", "text"),
    [
        ("fr", queue.FALLBACK_TEXT["fr"]),
        ("sw-KE", queue.FALLBACK_TEXT["sw"]),
        ("de-AT", queue.FALLBACK_TEXT["de"]),
        ("tr", queue.FALLBACK_TEXT["en"]),
        (None, queue.FALLBACK_TEXT["en"]),
    ],
)
def test_reply_text_without_a_caption_is_a_line_in_the_answers_language(
    language: str | None, text: str
) -> None:
    assert queue.reply_text("   ", language) == text


@pytest.mark.parametrize(
    ("raw", "tag"),
    [
        (" Ask the camp ", "ask-the-camp"),
        ("follow_up", "follow-up"),
        ("Presse", "presse"),
        ("سؤال", "سؤال"),
        ("2026", "2026"),
        ("-x-", "x"),
        ("", None),
        ("#!?", None),
        ("a/b", None),
        ("x" * 33, None),
    ],
)
def test_normalise_tag(raw: str, tag: str | None) -> None:
    assert queue.normalise_tag(raw) == tag
