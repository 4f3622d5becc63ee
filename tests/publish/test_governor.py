"""The governor's rules, templates and mention reading, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.common.messages import Author, Consent, Platform
from services.common.replies import Template, Templates
from services.publish import domain
from services.publish.domain import (
    EngagementFact,
    OptOutFact,
    PauseFact,
    Policy,
    Refusal,
    Snapshot,
    WithdrawalFact,
)
from tests.publish.helpers import request_factory

NOW = datetime.now(UTC)
POLICY = Policy(
    engagement=frozenset({"account", "hashtag"}),
    author_daily_cap=2,
    consent_scopes=frozenset({"campaign-social"}),
)
TEMPLATES = Templates.load()


def allowed_snapshot(author_id: str, **overrides: object) -> Snapshot:
    fields: dict[str, object] = {"engagement": EngagementFact(author_id, frozenset({"account"}))}
    fields.update(overrides)
    return Snapshot(**fields)  # type: ignore[arg-type]


def only(refusals: list[Refusal]) -> Refusal:
    assert len(refusals) == 1, refusals
    return refusals[0]


def test_a_request_that_breaks_no_rule_is_allowed() -> None:
    request = request_factory()
    assert domain.check(request, allowed_snapshot(request.author.id), POLICY, NOW) == []


def test_engaged_refuses_an_asker_with_no_recorded_engagement() -> None:
    request = request_factory()
    refusal = only(domain.check(request, Snapshot(), POLICY, NOW))
    assert refusal.rule == domain.ENGAGED
    assert f"no record of mention {request.mention_id}" in refusal.reason


def test_engaged_refuses_a_reply_to_someone_else_than_the_mention_author() -> None:
    request = request_factory()
    snapshot = allowed_snapshot("someone-else")
    refusal = only(domain.check(request, snapshot, POLICY, NOW))
    assert refusal.rule == domain.ENGAGED
    assert "someone-else" in refusal.reason


def test_engaged_follows_the_configured_kinds_of_engagement() -> None:
    request = request_factory(platform=Platform.MASTODON)
    hashtag_only = allowed_snapshot(
        request.author.id, engagement=EngagementFact(request.author.id, frozenset({"hashtag"}))
    )
    account_policy = Policy(engagement=frozenset({"account"}), consent_scopes=POLICY.consent_scopes)

    refusal = only(domain.check(request, hashtag_only, account_policy, NOW))
    assert refusal.rule == domain.ENGAGED
    assert "engaged by hashtag; accepted: account" in refusal.reason
    assert domain.check(request, hashtag_only, POLICY, NOW) == []


def test_x_reply_allowed_refuses_what_x_would_refuse() -> None:
    """Since 2026-02-23 X refuses a reply to a post that neither @mentions nor quotes
    the account: refused by the governor, before any upload, with the reason."""
    not_summoned = request_factory(summoned=False)
    snapshot = allowed_snapshot(not_summoned.author.id)
    refusal = only(domain.check(not_summoned, snapshot, POLICY, NOW))
    assert refusal.rule == domain.X_REPLY_ALLOWED
    assert "X would refuse this reply" in refusal.reason
    assert "@mentions it or quotes one of its posts" in refusal.reason
    summoned = request_factory(summoned=True, author=not_summoned.author)
    assert domain.check(summoned, snapshot, POLICY, NOW) == []
    # An older command (summoned unknown): the mention as the publisher read it decides.
    old = request_factory()
    hashtag_only = allowed_snapshot(
        old.author.id, engagement=EngagementFact(old.author.id, frozenset({"hashtag"}))
    )
    assert only(domain.check(old, hashtag_only, POLICY, NOW)).rule == domain.X_REPLY_ALLOWED
    assert domain.check(old, allowed_snapshot(old.author.id), POLICY, NOW) == []
    # Mastodon has no such rule.
    mastodon = request_factory(platform=Platform.MASTODON, summoned=False)
    assert domain.check(mastodon, allowed_snapshot(mastodon.author.id), POLICY, NOW) == []


def test_an_x_reply_never_starts_with_a_handle_nor_carries_a_link() -> None:
    request = request_factory(
        text="@amina see https://example.org/answer for the video",
        author=Author(id="7", handle="amina"),
    )
    plain = Templates({"en": (Template(id="t", text="{text}"),)})
    composed = domain.compose(request, Snapshot(), plain, POLICY)
    assert isinstance(composed, domain.Composed)
    assert composed.text == "see for the video"
    addressed = domain.compose(
        request, Snapshot(recent_texts=frozenset({"see for the video"})), plain, POLICY
    )
    assert isinstance(addressed, domain.Composed)
    assert addressed.text == "see for the video (amina)"
    with_urls = Policy(consent_scopes=POLICY.consent_scopes, x_allow_urls=True)
    composed = domain.compose(request, Snapshot(), plain, with_urls)
    assert isinstance(composed, domain.Composed)
    assert composed.text == "see https://example.org/answer for the video"


def test_a_bare_domain_is_a_link_on_x_and_taken_out_too() -> None:
    """X links ``unhcr.org`` as it does ``https://...`` (X's own rules), and not
    ``Node.js`` nor ``e.g.``; the sentence's last mark stays."""
    request = request_factory(
        text="Read unhcr.org/kenya. Built with Node.js, e.g. at www.amnesty.org!",
        author=Author(id="7", handle="amina"),
    )
    plain = Templates({"en": (Template(id="t", text="{text}"),)})
    composed = domain.compose(request, Snapshot(), plain, POLICY)
    assert isinstance(composed, domain.Composed)
    assert composed.text == "Read. Built with Node.js, e.g. at!"


def test_opted_out_refuses_an_author_who_said_stop() -> None:
    request = request_factory()
    snapshot = allowed_snapshot(request.author.id, opt_out=OptOutFact("reply", NOW, "stop"))
    refusal = only(domain.check(request, snapshot, POLICY, NOW))
    assert refusal.rule == domain.OPTED_OUT
    assert f"author {request.author.id} opted out (reply)" in refusal.reason


def test_consent_refuses_a_scope_that_does_not_cover_publishing() -> None:
    request = request_factory(
        consent=Consent(speaker_ref="s1", scope="internal-only", recorded_by="t", at=NOW)
    )
    refusal = only(domain.check(request, allowed_snapshot(request.author.id), POLICY, NOW))
    assert refusal.rule == domain.CONSENT
    assert "'internal-only'" in refusal.reason


def test_consent_refuses_consent_dated_in_the_future() -> None:
    later = NOW + timedelta(hours=1)
    request = request_factory(
        consent=Consent(speaker_ref="s1", scope="campaign-social", recorded_by="t", at=later)
    )
    refusal = only(domain.check(request, allowed_snapshot(request.author.id), POLICY, NOW))
    assert refusal.rule == domain.CONSENT
    assert "future" in refusal.reason


def test_consent_refuses_after_a_withdrawal() -> None:
    request = request_factory()
    withdrawal = WithdrawalFact(NOW - timedelta(minutes=5), "team-b", "asked")
    snapshot = allowed_snapshot(request.author.id, withdrawals=(withdrawal,))
    refusal = only(domain.check(request, snapshot, POLICY, NOW))
    assert refusal.rule == domain.CONSENT
    assert "withdrawn by team-b" in refusal.reason


def test_consent_given_again_after_a_withdrawal_counts() -> None:
    request = request_factory()  # consent an hour old
    old = WithdrawalFact(NOW - timedelta(days=2), "team-b")
    snapshot = allowed_snapshot(request.author.id, withdrawals=(old,))
    assert domain.check(request, snapshot, POLICY, NOW) == []


def test_one_reply_per_question_refuses_a_second_reply() -> None:
    request = request_factory()
    snapshot = allowed_snapshot(request.author.id, other_live_reply="r-first")
    refusal = only(domain.check(request, snapshot, POLICY, NOW))
    assert refusal.rule == domain.ONE_REPLY_PER_QUESTION
    assert "already has reply r-first" in refusal.reason


def test_author_daily_cap_refuses_at_the_cap() -> None:
    request = request_factory()
    below = allowed_snapshot(request.author.id, author_replies_24h=1)
    at_cap = allowed_snapshot(request.author.id, author_replies_24h=2)
    assert domain.check(request, below, POLICY, NOW) == []
    refusal = only(domain.check(request, at_cap, POLICY, NOW))
    assert refusal.rule == domain.AUTHOR_DAILY_CAP
    assert "2 replies in 24 h (cap 2)" in refusal.reason


def test_every_broken_rule_is_reported() -> None:
    request = request_factory()
    snapshot = Snapshot(
        opt_out=OptOutFact("moderator", NOW), other_live_reply="r0", author_replies_24h=9
    )
    rules = [r.rule for r in domain.check(request, snapshot, POLICY, NOW)]
    assert rules == [
        domain.ENGAGED,
        domain.OPTED_OUT,
        domain.ONE_REPLY_PER_QUESTION,
        domain.AUTHOR_DAILY_CAP,
    ]


# --- templates -------------------------------------------------------------------


def test_the_shipped_templates_have_variants_for_every_language() -> None:
    for language, templates in TEMPLATES.by_language.items():
        assert len(templates) >= 2, language


def test_the_text_comes_from_a_template_of_the_reply_language() -> None:
    request = request_factory(language="fr-FR", text="Bonjour depuis Kakuma.")
    composed = domain.compose(request, Snapshot(), TEMPLATES, POLICY)
    assert isinstance(composed, domain.Composed)
    assert composed.template_id.startswith("fr-")
    assert "Bonjour depuis Kakuma." in composed.text


def test_an_unknown_language_falls_back_to_the_default() -> None:
    request = request_factory(language="xx")
    composed = domain.compose(request, Snapshot(), TEMPLATES, POLICY)
    assert isinstance(composed, domain.Composed)
    assert composed.template_id.startswith("en-")


def test_every_reply_of_one_answer_has_the_same_wrapping() -> None:
    """Replies of one answer (other reply ids, other askers, other platforms) get the
    same template; other answers are spread over the language's templates."""
    first = domain.compose(request_factory(text="Our answer."), Snapshot(), TEMPLATES, POLICY)
    assert isinstance(first, domain.Composed)
    for platform in (Platform.X, Platform.MASTODON, Platform.BLUESKY):
        other = domain.compose(
            request_factory(text="Our answer.", platform=platform), Snapshot(), TEMPLATES, POLICY
        )
        assert isinstance(other, domain.Composed)
        assert other.template_id == first.template_id
    used = set()
    for n in range(40):
        composed = domain.compose(
            request_factory(text=f"Answer {n}."), Snapshot(), TEMPLATES, POLICY
        )
        assert isinstance(composed, domain.Composed)
        used.add(composed.template_id)
    assert used == {t.id for t in TEMPLATES.by_language["en"]}


def test_the_same_text_never_goes_out_twice_in_a_row() -> None:
    """Many replies with the same approved text, each after the previous one: no two
    consecutive texts are the same, and they keep the one wrapping (each names its
    asker once the plain text is taken)."""
    previous: domain.Composed | None = None
    used = set()
    for n in range(40):
        request = request_factory(
            text="Watch our answer.", author=Author(id=f"p{n}", handle=f"p{n}")
        )
        snapshot = Snapshot(
            previous_text=previous.text if previous else None,
            previous_template=previous.template_id if previous else None,
        )
        composed = domain.compose(request, snapshot, TEMPLATES, POLICY)
        assert isinstance(composed, domain.Composed)
        if previous is not None:
            assert composed.text != previous.text
        used.add(composed.template_id)
        previous = composed
    assert len(used) == 1


def test_variation_refuses_when_no_template_gives_another_text(tmp_path: Path) -> None:
    single = tmp_path / "one.yaml"
    single.write_text('en:\n  - id: only\n    text: "{text}"\n', encoding="utf-8")
    request = request_factory(text="Same words.", author=Author(id="7", handle="amina"))
    snapshot = Snapshot(
        previous_text="Same words.",
        previous_template="only",
        recent_texts=frozenset({"Same words. (amina)"}),
    )
    refusal = domain.compose(request, snapshot, Templates.load(single), POLICY)
    assert isinstance(refusal, Refusal)
    assert refusal.rule == domain.VARIATION
    assert "also addressed to @amina" in refusal.reason


def test_one_answer_reaches_every_asker_of_a_cluster_with_distinct_texts() -> None:
    """An answer approved for a cluster goes to many askers: the first reply is
    plain, every later one names its asker, so no two replies of the account are the
    same text, nobody is refused, and all of them read with the same wrapping."""
    texts: list[str] = []
    templates: set[str] = set()
    for n in range(12):
        request = request_factory(
            text="Watch our answer.", author=Author(id=f"p{n}", handle=f"asker{n}")
        )
        snapshot = Snapshot(
            previous_text=texts[-1] if texts else None, recent_texts=frozenset(texts)
        )
        composed = domain.compose(request, snapshot, TEMPLATES, POLICY)
        assert isinstance(composed, domain.Composed), composed
        texts.append(composed.text)
        templates.add(composed.template_id)
    assert len(set(texts)) == 12
    assert len(templates) == 1
    assert not any(t.startswith("@") for t in texts)  # X: never a leading @handle
    named = sum(t.endswith(f"(asker{n})") for n, t in enumerate(texts))
    assert named == 11


def test_a_mastodon_reply_names_the_asker() -> None:
    request = request_factory(
        platform=Platform.MASTODON, author=Author(id="9", handle="amina@social.example")
    )
    composed = domain.compose(request, Snapshot(), TEMPLATES, POLICY)
    assert isinstance(composed, domain.Composed)
    assert composed.text.startswith("@amina@social.example ")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('en:\n  - id: a\n    text: "no placeholder"\n', "must contain {text}"),
        ('en:\n  - id: a\n    text: "{text} {name}"\n', "unknown placeholders"),
        ("en: []\n", "no templates for en"),
        ('en:\n  - id: a\n    text: "{text}"\nfr:\n  - id: a\n    text: "{text}"\n', "unique"),
    ],
)
def test_a_broken_templates_file_is_refused(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises((ValidationError, ValueError), match=message):
        Templates.load(path)


# --- mentions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "how"),
    [
        ("@TakeActionCamps what is school like?", {"account"}),
        ("@takeactioncamps@mastodon.example hello", {"account"}),
        ("what is school like? #takeaction", {"hashtag"}),
        ("@TakeActionCamps #IWelcome hi", {"account", "hashtag"}),
        ("@TakeActionCampsFan #TakeActionNow hi", set()),
        ("email me at x@TakeActionCamps.org", set()),
    ],
)
def test_engagement_is_a_mention_of_the_account_or_a_hashtag(text: str, how: set[str]) -> None:
    assert domain.engagement(text, ["TakeActionCamps"], ["TakeAction", "IWelcome"]) == how


@pytest.mark.parametrize(
    "text",
    ["STOP", "@TakeActionCamps stop!!", "Stop please 🙏", "unsubscribe", "Arrêtez svp",
     "@TakeActionCamps basta", "Hör auf", "توقف"],
)  # fmt: skip
def test_opt_out_replies_are_recognised(text: str) -> None:
    assert domain.is_opt_out(text)


@pytest.mark.parametrize(
    "text",
    ["don't stop asking!", "where is the bus stop?", "@TakeActionCamps what do you miss?", ""],
)
def test_other_messages_are_not_opt_outs(text: str) -> None:
    assert not domain.is_opt_out(text)


# --- paused people ---------------------------------------------------------------------

T = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PAUSE = PauseFact(paused=True, at=T, decided_by="rules", reason="threat")
RESUME = PauseFact(paused=False, at=T, decided_by="mod-a")


@pytest.mark.parametrize(
    ("new", "current", "wins"),
    [
        (PAUSE, None, True),
        (RESUME, None, True),  # a resume first: recorded, so that an older pause loses
        (PauseFact(False, T + timedelta(seconds=1), "mod-a"), PAUSE, True),
        (PauseFact(False, T - timedelta(seconds=1), "mod-a"), PAUSE, False),
        (PauseFact(True, T - timedelta(microseconds=1), "rules"), RESUME, False),
        (RESUME, PAUSE, False),  # the same instant: the pause stands
        (PAUSE, RESUME, True),
        (PAUSE, PAUSE, False),  # the same command again changes nothing
    ],
)
def test_the_latest_decision_about_a_person_stands(
    new: PauseFact, current: PauseFact | None, wins: bool
) -> None:
    assert domain.supersedes(new, current) is wins


def test_a_reply_is_held_only_while_its_person_is_paused() -> None:
    request = request_factory()
    assert domain.held(request, None) is None
    assert domain.held(request, RESUME) is None
    why = domain.held(request, PAUSE)
    assert why == (
        f"publishing {request.consent.speaker_ref} paused by rules at {T.isoformat()} (threat)"
    )
