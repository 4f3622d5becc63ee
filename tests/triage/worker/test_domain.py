"""Triage decisions: rules in order, priority parts, clusters of near-duplicates."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]

from services.common.messages import Decision, MentionClassified, MentionReceived, Platform, Scores
from services.triage.classifier.base import Prediction
from services.triage.rules import PriorityWeights, RulesFile
from services.triage.worker.domain import (
    ClusterAssignment,
    ClusterIndex,
    Triage,
    exact_key,
    is_pure_retweet,
    priority_parts,
    settle,
    text_for_model,
)

CREATED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
NOW = CREATED + timedelta(minutes=10)
DIM = 8

RULES: dict[str, Any] = {
    "schema": 1,
    "campaign": {"description": "Questions to young refugees in Kakuma and Dadaab"},
    "decisions": {
        "quarantine": {"offensive": 0.85, "hate": 0.70},
        "question": 0.5,
        "relevance": 0.3,
        "drop_irrelevant_below": None,
        "low_priority_cap": 25,
        "auto_assign": {
            "enabled": True,
            "question": 0.9,
            "relevance": 0.6,
            "max_offensive": 0.1,
            "max_hate": 0.05,
        },
    },
    "priority": {
        "question": 35,
        "relevance": 25,
        "not_abusive": {"points": 15, "penalty": 30},
        "reach": {"points": 10, "followers_for_max": 100_000},
        "freshness": {"points": 10, "half_life_minutes": 360},
        "novelty": {"new_question": 6, "per_doubling": 4, "max_askers": 12},
    },
    "clusters": {"similarity": 0.86, "max_clusters": 100, "idle_ttl_hours": 72},
    "block": {
        "authors": ["x:@known_troll", "x:666"],
        "keywords": ["parasites"],
        "patterns": [r"\bgo back to your own\b"],
    },
    "spam": {
        "keywords": ["airdrop", "followback"],
        "patterns": [r"\bturned \$\d+ into\b"],
        "max_hashtags": 4,
        "max_links": 1,
    },
    "routing": {"teams": {"en": "kakuma-a", "fr": "dadaab-b"}, "fallback": None},
}


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merged(base[key], value) if isinstance(value, dict) and key in base else value
    return out


def vec(*xs: float) -> npt.NDArray[np.float32]:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(xs)] = xs
    return v / np.float32(np.linalg.norm(v))


E1 = vec(1.0)
E1_NEAR = vec(1.0, 0.2)  # cosine 0.98 with E1
E2 = vec(0.0, 1.0)  # orthogonal: a different question
MISS = "@TakeActionCamps What do you miss most about home? #IWelcome"
MISS_2 = "what do u miss the most from home"
MISS_FR = "Qu'est-ce qui te manque le plus de ton pays ?"
SCHOOL = "What is school like in Kakuma?"


@pytest.fixture
def rules_file(tmp_path: Path) -> Callable[..., RulesFile]:
    """Rules from RULES with overrides (nested dicts merge); re-read on every call."""

    def make(**overrides: Any) -> RulesFile:
        path = tmp_path / "rules.yaml"
        path.write_text(yaml.safe_dump(merged(RULES, overrides)), encoding="utf-8")
        return RulesFile(path, check_every_s=0.0)

    return make


@pytest.fixture
def triage(rules_file: Callable[..., RulesFile]) -> Callable[..., Triage]:
    def make(**overrides: Any) -> Triage:
        return Triage(rules_file(**overrides), model_version="fake-1")

    return make


@pytest.fixture
def prediction() -> Callable[..., Prediction]:
    """A confident, clean, on-topic question unless told otherwise."""

    def make(**overrides: Any) -> Prediction:
        fields: dict[str, Any] = {
            "offensive": 0.01,
            "hate": 0.0,
            "question": 0.97,
            "relevance": 0.8,
            "embedding": E1,
        }
        fields.update(overrides)
        return Prediction(**fields)

    return make


def reason(result: MentionClassified, factor: str) -> str:
    return next(r.detail for r in result.reasons if r.factor == factor)


def points(result: MentionClassified, factor: str) -> float:
    return next(r.points for r in result.reasons if r.factor == factor)


MentionFactory = Callable[..., MentionReceived]
PredictionFactory = Callable[..., Prediction]
TriageFactory = Callable[..., Triage]


# --- text helpers ----------------------------------------------------------------------


def test_text_for_model_strips_retweet_prefix_and_addressing() -> None:
    text = "RT @zara16:  @TakeActionCamps What is school like?\n https://t.co/abc #TakeAction…"

    assert text_for_model(text) == "What is school like?"


def test_text_for_model_keeps_inline_hashtags_mentions_and_links() -> None:
    text = "#IWelcome? Ask @amani, see https://x.example/a now 🙏 @TakeActionCamps"

    assert text_for_model(text) == "#IWelcome? Ask @amani, see URL now 🙏"


def test_text_for_model_keeps_a_text_of_tags_only() -> None:
    assert text_for_model("@TakeActionCamps  #IWelcome") == "@TakeActionCamps #IWelcome"


def test_pure_retweet_is_only_a_leading_rt() -> None:
    assert is_pure_retweet("RT @zara16: What is school like?")
    assert not is_pure_retweet("Great question! RT @zara16: What is school like?")
    assert not is_pure_retweet("ART @ the museum: what do you like?")


def test_exact_key_ignores_case_mentions_links_and_punctuation() -> None:
    a = exact_key("@TakeActionCamps What do you miss most about home?? https://t.co/x")
    b = exact_key("what do you miss   most about home @someone_else")

    assert a == b
    assert a != exact_key("What do you miss most about school?")


# --- prejudge: decisions without the model ------------------------------------------------


def test_prejudge_needs_the_model_for_a_plain_question(
    triage: TriageFactory, mention_factory: MentionFactory
) -> None:
    assert triage().prejudge(mention_factory(), now=NOW) is None


def test_prejudge_quarantines_blocked_author_by_handle(
    triage: TriageFactory, mention_factory: MentionFactory
) -> None:
    mention = mention_factory(author={"id": "42", "handle": "Known_Troll"})

    result = triage().prejudge(mention, now=NOW)

    assert result is not None
    assert (result.decision, result.rule) == (Decision.QUARANTINE, "blocked_author")
    assert result.scores.offensive == 1.0
    assert result.priority == 0
    assert result.cluster_id is None
    assert result.model_version == "fake-1"
    assert "model not run" in reason(result, "decision")


def test_prejudge_quarantines_blocked_author_by_id(
    triage: TriageFactory, mention_factory: MentionFactory
) -> None:
    result = triage().prejudge(mention_factory(author={"id": "666", "handle": "x"}), now=NOW)

    assert result is not None
    assert result.rule == "blocked_author"


def test_prejudge_quarantines_blocked_keyword(
    triage: TriageFactory, mention_factory: MentionFactory
) -> None:
    result = triage().prejudge(mention_factory(text="Ungrateful PARASITES."), now=NOW)

    assert result is not None
    assert (result.decision, result.rule) == (Decision.QUARANTINE, "blocked_keyword")
    assert "parasites" in reason(result, "decision")


def test_prejudge_quarantines_blocked_pattern(
    triage: TriageFactory, mention_factory: MentionFactory
) -> None:
    result = triage().prejudge(mention_factory(text="Go back to your own country"), now=NOW)

    assert result is not None
    assert (result.decision, result.rule) == (Decision.QUARANTINE, "blocked_pattern")


@pytest.mark.parametrize(
    "text",
    [
        "@TakeActionCamps #IWelcome #TakeAction",
        "@TakeActionCamps https://t.co/abc",
        "@TakeActionCamps 🙏❤️",
        "@TakeActionCamps ??",
    ],
)
def test_prejudge_drops_empty(
    triage: TriageFactory, mention_factory: MentionFactory, text: str
) -> None:
    result = triage().prejudge(mention_factory(text=text), now=NOW)

    assert result is not None
    assert (result.decision, result.rule) == (Decision.DROP, "empty")
    assert result.scores.spam == 0.0


def test_prejudge_drops_pure_retweet(
    triage: TriageFactory, mention_factory: MentionFactory
) -> None:
    mention = mention_factory(text="RT @zara16: @TakeActionCamps What is school like?")

    result = triage().prejudge(mention, now=NOW)

    assert result is not None
    assert (result.decision, result.rule) == (Decision.DROP, "retweet")


def test_prejudge_keeps_a_retweet_with_a_comment(
    triage: TriageFactory, mention_factory: MentionFactory
) -> None:
    mention = mention_factory(text="Same from my class! RT @zara16: What is school like?")

    assert triage().prejudge(mention, now=NOW) is None


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("FREE USDT AIRDROP first 500 wallets", "spam_keyword"),
        ("I turned $200 into $12k, ask me how", "spam_pattern"),
        ("hello #a #b #c #d #e", "spam_hashtags"),
        ("look https://a.example https://b.example", "spam_links"),
    ],
)
def test_prejudge_drops_spam(
    triage: TriageFactory, mention_factory: MentionFactory, text: str, rule: str
) -> None:
    result = triage().prejudge(mention_factory(text=text), now=NOW)

    assert result is not None
    assert (result.decision, result.rule) == (Decision.DROP, rule)
    assert result.scores.spam == 1.0
    assert result.scores.question == 0.0


def test_prejudge_block_lists_come_before_drops(
    triage: TriageFactory, mention_factory: MentionFactory
) -> None:
    retweet = mention_factory(text="RT @a: parasites, all of them")
    spam_by_troll = mention_factory(
        text="FREE airdrop", author={"id": "1", "handle": "known_troll"}
    )

    assert triage().prejudge(retweet, now=NOW).rule == "blocked_keyword"  # type: ignore[union-attr]
    assert triage().prejudge(spam_by_troll, now=NOW).rule == "blocked_author"  # type: ignore[union-attr]


def test_prejudge_author_block_applies_to_its_platform_only(
    triage: TriageFactory, mention_factory: MentionFactory
) -> None:
    mention = mention_factory(
        platform=Platform.MASTODON, author={"id": "1", "handle": "known_troll"}
    )

    assert triage().prejudge(mention, now=NOW) is None


# --- decide: abuse -----------------------------------------------------------------------


def test_hate_at_threshold_quarantines(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    result = triage().decide(mention_factory(), prediction(hate=0.70), now=NOW)

    assert (result.decision, result.rule) == (Decision.QUARANTINE, "hate")
    assert result.priority == 0
    assert result.cluster_id is None


def test_hate_below_threshold_does_not_quarantine(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    result = triage().decide(mention_factory(), prediction(hate=0.69), now=NOW)

    assert result.decision is not Decision.QUARANTINE


def test_offensive_at_threshold_quarantines(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    result = triage().decide(mention_factory(), prediction(offensive=0.85), now=NOW)

    assert (result.decision, result.rule) == (Decision.QUARANTINE, "offensive")
    assert "offensive 0.85" in reason(result, "decision")


def test_hate_is_named_when_both_scores_are_high(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    result = triage().decide(mention_factory(), prediction(offensive=0.99, hate=0.9), now=NOW)

    assert result.rule == "hate"


def test_decide_applies_block_lists_before_scores(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    mention = mention_factory(author={"id": "1", "handle": "known_troll"})

    result = triage().decide(mention, prediction(hate=0.95), now=NOW)

    assert result.rule == "blocked_author"
    assert result.scores.hate == 0.95  # measured scores are kept when the model ran


def test_decide_quarantines_abuse_before_dropping(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    abusive_retweet = mention_factory(text="RT @x: you are all liars")

    result = triage().decide(abusive_retweet, prediction(offensive=0.95), now=NOW)

    assert (result.decision, result.rule) == (Decision.QUARANTINE, "offensive")


def test_decide_drops_what_prejudge_drops(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    result = triage().decide(
        mention_factory(text="RT @x: what is school like?"), prediction(), now=NOW
    )

    assert (result.decision, result.rule) == (Decision.DROP, "retweet")


# --- decide: review and auto-assign -------------------------------------------------------


def test_confident_clean_question_is_auto_assigned_to_its_team(
    rules_file: Callable[..., RulesFile],
    mention_factory: MentionFactory,
    prediction: PredictionFactory,
) -> None:
    rules = rules_file()
    t = Triage(rules, model_version="fake-1")

    result = t.decide(mention_factory(lang="en-GB"), prediction(), now=NOW)

    assert (result.decision, result.rule) == (Decision.AUTO_ASSIGN, "auto_assign")
    assert reason(result, "team") == "kakuma-a"
    assert result.model_version == "fake-1"
    assert result.cluster_id is not None
    decision = reason(result, "decision")
    assert "auto_assign by rule auto_assign" in decision
    assert f"(rules {rules.version})" in decision


def test_auto_assign_off_sends_to_review(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    t = triage(decisions={"auto_assign": {"enabled": False}})

    result = t.decide(mention_factory(), prediction(), now=NOW)

    assert (result.decision, result.rule) == (Decision.REVIEW, "review_auto_assign_off")


@pytest.mark.parametrize(
    ("scores", "why"),
    [
        ({"question": 0.89}, "question 0.89 < 0.90"),
        ({"relevance": 0.59}, "relevance 0.59 < 0.60"),
        ({"offensive": 0.11}, "offensive 0.11 > 0.10"),
        ({"hate": 0.06}, "hate 0.06 > 0.05"),
    ],
)
def test_below_auto_assign_thresholds_goes_to_review(
    triage: TriageFactory,
    mention_factory: MentionFactory,
    prediction: PredictionFactory,
    scores: dict[str, float],
    why: str,
) -> None:
    result = triage().decide(mention_factory(), prediction(**scores), now=NOW)

    assert (result.decision, result.rule) == (Decision.REVIEW, "review_low_confidence")
    assert why in reason(result, "decision")


def test_language_without_team_goes_to_review(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    result = triage().decide(mention_factory(lang="de"), prediction(), now=NOW)

    assert (result.decision, result.rule) == (Decision.REVIEW, "review_no_team")
    assert reason(result, "team") == "none for language de"


def test_fallback_team_takes_unlisted_languages(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    t = triage(routing={"fallback": "triage-desk"})

    result = t.decide(mention_factory(lang=None), prediction(), now=NOW)

    assert result.decision is Decision.AUTO_ASSIGN
    assert reason(result, "team") == "triage-desk"
    assert t.team_for(mention_factory(lang="so")) == "triage-desk"


def test_all_unmet_conditions_are_listed(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    result = triage().decide(mention_factory(lang="de"), prediction(question=0.8), now=NOW)

    assert result.rule == "review_low_confidence"
    assert "no team" in reason(result, "decision")


def test_only_the_first_of_a_cluster_is_auto_assigned(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    t = triage()

    first = t.decide(mention_factory(text=MISS), prediction(embedding=E1), now=NOW)
    second = t.decide(mention_factory(text=MISS_2), prediction(embedding=E1_NEAR), now=NOW)

    assert first.decision is Decision.AUTO_ASSIGN
    assert (second.decision, second.rule) == (Decision.REVIEW, "review_cluster_assigned")
    assert second.cluster_id == first.cluster_id


def test_not_a_question_goes_to_review_with_capped_priority(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    mention = mention_factory(
        text="Sending love to everyone in Kakuma",
        author={"id": "1", "handle": "a", "followers": 10**6},
    )

    result = triage().decide(mention, prediction(question=0.2, relevance=1.0), now=NOW)

    assert (result.decision, result.rule) == (Decision.REVIEW, "not_question")
    assert result.priority == 25
    assert points(result, "cap") < 0
    assert result.cluster_id is None


def test_off_topic_question_goes_to_review_with_capped_priority(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    result = triage().decide(mention_factory(), prediction(relevance=0.1), now=NOW)

    assert (result.decision, result.rule) == (Decision.REVIEW, "irrelevant")
    assert result.priority <= 25


def test_irrelevant_non_question_is_reviewed_when_drop_is_off(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    result = triage().decide(mention_factory(), prediction(question=0.1, relevance=0.01), now=NOW)

    assert result.decision is Decision.REVIEW


def test_irrelevant_non_question_is_dropped_when_configured(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    t = triage(decisions={"drop_irrelevant_below": 0.05})

    dropped = t.decide(mention_factory(), prediction(question=0.1, relevance=0.01), now=NOW)
    kept_question = t.decide(mention_factory(), prediction(relevance=0.01), now=NOW)

    assert (dropped.decision, dropped.rule) == (Decision.DROP, "irrelevant_drop")
    assert kept_question.rule == "irrelevant"


def test_non_finite_scores_count_as_unknown(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    result = triage().decide(
        mention_factory(), prediction(offensive=math.nan, relevance=7.0), now=NOW
    )

    assert result.scores.offensive == 0.5
    assert result.scores.relevance == 1.0
    assert result.decision is Decision.REVIEW


def test_reloaded_rules_apply_to_the_next_mention(
    tmp_path: Path, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(RULES), encoding="utf-8")
    t = Triage(RulesFile(path, check_every_s=0.0), model_version="fake-1")
    assert t.decide(mention_factory(), prediction(offensive=0.5), now=NOW).decision is not (
        Decision.QUARANTINE
    )

    stricter = merged(RULES, {"decisions": {"quarantine": {"offensive": 0.4}}})
    path.write_text(yaml.safe_dump(stricter) + "\n# stricter\n", encoding="utf-8")

    result = t.decide(mention_factory(), prediction(offensive=0.5), now=NOW)
    assert (result.decision, result.rule) == (Decision.QUARANTINE, "offensive")


class FakeCampaign:
    """Relevance 0.9 while the campaign mentions schools, else 0.1."""

    def __init__(self) -> None:
        self.embedded: list[tuple[str, ...]] = []

    def set_campaign(self, texts: Sequence[str]) -> None:
        self.embedded.append(tuple(texts))

    def relevance(self, embeddings: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        schools = any("school" in t for t in self.embedded[-1])
        return np.full(len(embeddings), 0.9 if schools else 0.1)


def test_an_edited_campaign_is_re_embedded_and_scores_the_next_mention(
    tmp_path: Path, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    """Relevance is measured at decision time against the campaign of the rules in
    force: an edit applies to the next mention, cached predictions included."""
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(RULES), encoding="utf-8")
    campaign = FakeCampaign()
    t = Triage(RulesFile(path, check_every_s=0.0), model_version="fake-1", campaign=campaign)
    cached = prediction(relevance=0.5)

    before = t.decide(mention_factory(), cached, now=NOW)
    t.decide(mention_factory(), cached, now=NOW)
    edited = merged(RULES, {"campaign": {"description": "Questions about school in the camps"}})
    path.write_text(yaml.safe_dump(edited), encoding="utf-8")
    after = t.decide(mention_factory(), cached, now=NOW)

    assert before.scores.relevance == pytest.approx(0.1)
    assert after.scores.relevance == pytest.approx(0.9)
    assert campaign.embedded == [
        ("Questions to young refugees in Kakuma and Dadaab",),
        ("Questions about school in the camps",),
    ]


# --- answered clusters -------------------------------------------------------------------


def test_near_duplicate_of_answered_cluster_is_dropped(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    t = triage()
    first = t.decide(mention_factory(text=MISS), prediction(embedding=E1), now=NOW)
    assert first.cluster_id is not None

    t.mark_answered(first.cluster_id)
    again = t.decide(mention_factory(text=MISS_2), prediction(embedding=E1_NEAR), now=NOW)
    other = t.decide(mention_factory(text=SCHOOL), prediction(embedding=E2), now=NOW)

    assert (again.decision, again.rule) == (Decision.DROP, "answered_cluster")
    assert again.cluster_id == first.cluster_id
    assert again.priority == 0
    assert other.decision is Decision.AUTO_ASSIGN


def test_an_approved_reply_to_any_member_marks_its_cluster_answered(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    """What the worker does with each record of replies.requested: the reply names
    a mention; the cluster that mention joined is answered from then on."""
    t = triage()
    first = t.decide(mention_factory(text=MISS), prediction(embedding=E1), now=NOW)
    member = mention_factory(text=MISS_2)
    joined = t.decide(member, prediction(embedding=E1_NEAR), now=NOW)
    assert joined.cluster_id == first.cluster_id
    assert joined.decision is not Decision.DROP

    assert t.answer_approved(member.id) == first.cluster_id
    later = t.decide(mention_factory(text=MISS), prediction(embedding=E1), now=NOW)

    assert (later.decision, later.rule) == (Decision.DROP, "answered_cluster")
    assert t.answer_approved("x:never-seen") is None


def test_the_member_map_is_bounded() -> None:
    index = ClusterIndex(capacity=4, similarity=0.99, idle_ttl_s=3600, max_answered=3)
    for n in range(5):
        index.assign(f"k{n}", np.eye(8, dtype=np.float32)[n], f"m{n}", now=0.0)
    assert index.cluster_of("m0") is None
    assert index.cluster_of("m1") is None
    assert index.cluster_of("m4") is not None


def test_marking_an_unknown_cluster_answered_is_remembered() -> None:
    index = ClusterIndex(capacity=4, similarity=0.9, idle_ttl_s=3600)

    index.mark_answered("c-from-another-worker")

    assert index.is_answered("c-from-another-worker")
    assert "c-from-another-worker" not in index


# --- priority ----------------------------------------------------------------------------

WEIGHTS = PriorityWeights.model_validate(RULES["priority"])


def scores(**overrides: float) -> Scores:
    fields = {"offensive": 0.0, "hate": 0.0, "question": 1.0, "relevance": 1.0, **overrides}
    return Scores(**fields)


def parts_of(**kwargs: Any) -> dict[str, float]:
    args: dict[str, Any] = {
        "followers": None,
        "age_minutes": 0.0,
        "cluster": None,
        "weights": WEIGHTS,
    }
    args.update(kwargs)
    s = args.pop("scores", scores())
    return {p.factor: p.points for p in priority_parts(s, **args)}


def test_question_and_relevance_scale_their_weights() -> None:
    parts = parts_of(scores=scores(question=0.5, relevance=0.4))

    assert parts["question"] == 17.5
    assert parts["relevance"] == 10.0


def test_not_abusive_rewards_clean_and_penalises_abuse() -> None:
    assert parts_of(scores=scores())["not_abusive"] == 15.0
    assert parts_of(scores=scores(offensive=0.5))["not_abusive"] == 7.5 - 15.0
    assert parts_of(scores=scores(hate=1.0))["not_abusive"] == -30.0


def test_reach_is_logarithmic_and_capped() -> None:
    assert parts_of(followers=None)["reach"] == 0.0
    assert parts_of(followers=0)["reach"] == 0.0
    assert parts_of(followers=316)["reach"] == pytest.approx(5.0, abs=0.01)
    assert parts_of(followers=100_000)["reach"] == 10.0
    assert parts_of(followers=10**9)["reach"] == 10.0


def test_freshness_halves_every_half_life() -> None:
    assert parts_of(age_minutes=0)["freshness"] == 10.0
    assert parts_of(age_minutes=360)["freshness"] == 5.0
    assert parts_of(age_minutes=720)["freshness"] == 2.5
    assert parts_of(age_minutes=-30)["freshness"] == 10.0  # clock skew: counted as new


def test_novelty_new_question_and_many_askers() -> None:
    def novelty(size: int, *, new: bool) -> float:
        cluster = ClusterAssignment("c-1", size, new=new, how="new" if new else "similar")
        return parts_of(cluster=cluster)["novelty"]

    assert novelty(1, new=True) == 6.0
    assert novelty(2, new=False) == 4.0  # asked twice: below a brand-new question
    assert novelty(4, new=False) == 8.0  # asked by four: above it
    assert novelty(1000, new=False) == 12.0  # capped
    assert "novelty" not in parts_of(cluster=None)


def test_settle_clamps_above_100_and_lists_the_clamp() -> None:
    high = PriorityWeights.model_validate({**RULES["priority"], "question": 100})
    parts = priority_parts(scores(), followers=None, age_minutes=0, cluster=None, weights=high)

    priority, settled = settle(parts, cap=None, cap_why="")

    assert priority == 100
    assert settled[-1].factor == "clamp"
    assert sum(p.points for p in settled) == pytest.approx(100)


def test_settle_clamps_below_zero() -> None:
    parts = priority_parts(
        scores(question=0.0, relevance=0.0, hate=1.0),
        followers=None,
        age_minutes=10**6,
        cluster=None,
        weights=WEIGHTS,
    )

    priority, settled = settle(parts, cap=None, cap_why="")

    assert priority == 0
    assert settled[-1].factor == "clamp"
    assert sum(p.points for p in settled) == pytest.approx(0, abs=0.01)


def test_priority_is_the_sum_of_its_parts(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    mention = mention_factory(author={"id": "1", "handle": "a", "followers": 316})

    result = triage().decide(mention, prediction(question=0.8, relevance=0.7), now=NOW)

    assert result.priority == round(sum(r.points for r in result.reasons))
    factors = [r.factor for r in result.reasons]
    assert factors == [
        "question",
        "relevance",
        "not_abusive",
        "reach",
        "freshness",
        "novelty",
        "team",
        "decision",
    ]
    expected = 35 * 0.8 + 25 * 0.7 + 15 * 0.99 - 30 * 0.01 + 5.0 + 10 * 0.5 ** (10 / 360) + 6
    assert result.priority == round(expected)


# --- clusters ----------------------------------------------------------------------------


def index(capacity: int = 10, ttl_s: float = 3600.0) -> ClusterIndex:
    return ClusterIndex(capacity=capacity, similarity=0.86, idle_ttl_s=ttl_s)


def test_near_duplicates_join_one_cluster() -> None:
    ix = index()

    a = ix.assign("k1", E1, "x:1", now=0)
    b = ix.assign("k2", E1_NEAR, "x:2", now=1)

    assert a.new
    assert a.cluster_id == "c-" + hashlib.sha256(b"x:1").hexdigest()[:12]
    assert (b.cluster_id, b.size, b.how, b.new) == (a.cluster_id, 2, "similar", False)
    assert b.similarity == pytest.approx(0.98, abs=0.01)


def test_different_questions_get_different_clusters() -> None:
    ix = index()

    a = ix.assign("k1", E1, "x:1", now=0)
    b = ix.assign("k2", vec(1.0, 1.0), "x:2", now=1)  # cosine 0.71 < 0.86

    assert b.new
    assert b.cluster_id != a.cluster_id
    assert len(ix) == 2


def test_question_joins_the_nearest_cluster() -> None:
    ix = index()
    a = ix.assign("k1", E1, "x:1", now=0)
    b = ix.assign("k2", E2, "x:2", now=0)

    near_b = ix.assign("k3", vec(0.1, 1.0), "x:3", now=1)

    assert near_b.cluster_id == b.cluster_id != a.cluster_id


def test_similar_questions_in_other_languages_do_not_join() -> None:
    ix = index()
    en = ix.assign("k1", E1, "x:1", now=0, group="en")

    so = ix.assign("k2", E1_NEAR, "x:2", now=1, group="so")
    en_again = ix.assign("k3", E1_NEAR, "x:3", now=2, group="en")

    assert so.new
    assert en_again.cluster_id == en.cluster_id


def test_decide_clusters_by_primary_language(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    t = triage()
    first = t.decide(mention_factory(text=MISS, lang="en"), prediction(embedding=E1), now=NOW)

    british = t.decide(
        mention_factory(text=MISS_2, lang="en-GB"), prediction(embedding=E1_NEAR), now=NOW
    )
    french = t.decide(
        mention_factory(text=MISS_FR, lang="fr"), prediction(embedding=E1_NEAR), now=NOW
    )

    assert british.cluster_id == first.cluster_id
    assert french.cluster_id != first.cluster_id


def test_exact_duplicates_share_a_cluster_whatever_the_embedding() -> None:
    ix = index()
    a = ix.assign("same", E1, "x:1", now=0)

    b = ix.assign("same", E2, "x:2", now=1)

    assert (b.cluster_id, b.how, b.size) == (a.cluster_id, "exact", 2)


def test_least_recently_used_cluster_is_evicted() -> None:
    ix = index(capacity=2)
    a = ix.assign("a", E1, "x:1", now=0)
    b = ix.assign("b", E2, "x:2", now=1)
    ix.assign("a2", E1_NEAR, "x:3", now=2)  # touches a

    ix.assign("c", vec(0, 0, 1.0), "x:4", now=3)

    assert len(ix) == 2
    assert a.cluster_id in ix
    assert b.cluster_id not in ix


def test_evicted_clusters_free_their_rows() -> None:
    ix = index(capacity=3)

    for i in range(50):
        ix.assign(f"k{i}", vec(*([0.0] * (i % DIM)), 1.0), f"x:{i}", now=i)

    assert len(ix) == 3
    assert ix._high <= 3


def test_exact_duplicate_after_eviction_keeps_its_cluster_id() -> None:
    ix = index(capacity=1)
    a = ix.assign("a", E1, "x:1", now=0)
    ix.assign("b", E2, "x:2", now=1)
    assert a.cluster_id not in ix

    again = ix.assign("a", E1, "x:3", now=2)

    assert (again.cluster_id, again.how) == (a.cluster_id, "exact")


def test_idle_clusters_expire() -> None:
    ix = index(ttl_s=100)
    a = ix.assign("a", E1, "x:1", now=0)

    b = ix.assign("b", E1_NEAR, "x:2", now=101)

    assert b.new
    assert b.cluster_id != a.cluster_id
    assert a.cluster_id not in ix


def test_cluster_ids_are_deterministic_for_the_same_input_order() -> None:
    sequence = [("a", E1, "x:1"), ("b", E2, "x:2"), ("c", E1_NEAR, "x:3"), ("d", vec(1, 1), "x:4")]

    runs = [
        [ix.assign(k, e, m, now=0).cluster_id for k, e, m in sequence] for ix in (index(), index())
    ]

    assert runs[0] == runs[1]


def test_same_founder_id_twice_gets_a_distinct_cluster_id() -> None:
    ix = index()
    a = ix.assign("a", E1, "x:1", now=0)

    b = ix.assign("b", E2, "x:1", now=1)

    assert b.cluster_id == a.cluster_id + "-2"


def test_zero_embedding_clusters_by_exact_text_only() -> None:
    ix = index()
    zero = np.zeros(DIM, dtype=np.float32)
    a = ix.assign("a", zero, "x:1", now=0)

    b = ix.assign("b", E1, "x:2", now=1)
    c = ix.assign("a", zero, "x:3", now=2)

    assert b.cluster_id != a.cluster_id
    assert (c.cluster_id, c.how) == (a.cluster_id, "exact")


def test_embedding_size_change_starts_afresh() -> None:
    ix = index()
    ix.assign("a", E1, "x:1", now=0)

    b = ix.assign("b", np.full(4, 0.5, dtype=np.float32), "x:2", now=1)

    assert b.new
    assert len(ix) == 1


def test_shrinking_capacity_keeps_the_most_recent(rules_file: Callable[..., RulesFile]) -> None:
    ix = index(capacity=5)
    ids = [ix.assign(f"k{i}", vec(*([0.0] * i), 1.0), f"x:{i}", now=i).cluster_id for i in range(5)]

    ix.configure(rules_file(clusters={"max_clusters": 2}).current().clusters)
    near_last = ix.assign("k-near", vec(0, 0, 0, 0, 1.0), "x:9", now=10)

    assert [i in ix for i in ids] == [False, False, False, True, True]
    assert near_last.cluster_id == ids[4]


def test_every_result_records_the_rules_version_and_the_suggested_team(
    rules_file: Callable[..., RulesFile], mention_factory: Callable[..., MentionReceived]
) -> None:
    rules = rules_file()
    triage = Triage(rules, "test-model")
    result = triage.prejudge(mention_factory(text="RT @someone: hello", lang="fr"), now=NOW)
    assert result is not None
    assert result.rules_version == rules.version
    assert result.team == rules.current().routing.team_for("fr")
    assert result.team is not None
