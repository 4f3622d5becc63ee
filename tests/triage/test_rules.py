"""The rules file: validation, matching helpers and reloading without restart."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]

from services.common.messages import Platform
from services.triage.config import PACKAGE_DIR
from services.triage.rules import (
    MAX_RULES_BYTES,
    AuthorBlocklist,
    KeywordMatcher,
    PatternMatcher,
    Routing,
    Rules,
    RulesError,
    RulesFile,
    compile_pattern,
    load_rules,
    normalise,
    parse_rules,
)

BASE: dict[str, Any] = {
    "schema": 1,
    "campaign": {
        "description": "Questions to refugees in Kakuma",
        "examples": ["What is school like?"],
    },
    "decisions": {"quarantine": {"offensive": 0.8, "hate": 0.6}},
}


def dump(overrides: dict[str, Any] | None = None) -> bytes:
    doc = {**BASE, **(overrides or {})}
    return yaml.safe_dump(doc, allow_unicode=True).encode("utf-8")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def write_rules(tmp_path: Path) -> Callable[..., Path]:
    """Write a rules file; each write bumps the mtime so a change is always visible."""
    path = tmp_path / "rules.yaml"
    tick = iter(range(1, 10**6))

    def write(overrides: dict[str, Any] | None = None, *, raw: bytes | None = None) -> Path:
        path.write_bytes(raw if raw is not None else dump(overrides))
        stamp = 1_700_000_000_000_000_000 + next(tick) * 1_000_000_000
        os.utime(path, ns=(stamp, stamp))
        return path

    return write


# --- the shipped file -------------------------------------------------------------


def test_shipped_rules_file_loads() -> None:
    rules = load_rules(PACKAGE_DIR / "rules.yaml")

    assert rules.routing.team_for("en") == "kakuma-a"
    assert rules.routing.team_for("so") == "dadaab-b"
    assert rules.routing.team_for("de-AT") == "kalobeyei-c"
    assert rules.routing.team_for("es") is None
    assert rules.decisions.auto_assign.question >= 0.9


def test_campaign_examples_start_with_the_description() -> None:
    rules = parse_rules(dump())

    assert rules.campaign_examples == ["Questions to refugees in Kakuma", "What is school like?"]


def test_version_is_the_content_sha256_prefix() -> None:
    content = dump()

    assert parse_rules(content).version == hashlib.sha256(content).hexdigest()[:12]


def test_defaults_fill_sections_left_out() -> None:
    rules = parse_rules(dump())

    assert rules.decisions.quarantine.offensive == 0.8
    assert rules.decisions.question == 0.5
    assert rules.clusters.max_clusters == 5000


# --- validation errors --------------------------------------------------------------


def test_invalid_yaml_is_refused() -> None:
    with pytest.raises(RulesError, match="not valid YAML"):
        parse_rules(b"campaign: [unclosed\n")


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(RulesError, match="expected a mapping"):
        parse_rules(b"- a\n- b\n")


def test_non_utf8_is_refused() -> None:
    with pytest.raises(RulesError, match="UTF-8"):
        parse_rules(b"campaign: \xff\n")


def test_oversized_file_is_refused() -> None:
    with pytest.raises(RulesError, match="exceeds"):
        parse_rules(b"#" * (MAX_RULES_BYTES + 1))


def test_missing_campaign_is_refused() -> None:
    with pytest.raises(RulesError, match="campaign: Field required"):
        parse_rules(yaml.safe_dump({"schema": 1}).encode())


def test_unknown_key_is_refused_with_its_path() -> None:
    with pytest.raises(RulesError, match=r"decisions\.quarantin"):
        parse_rules(dump({"decisions": {"quarantin": {"offensive": 0.5}}}))


def test_threshold_outside_zero_one_is_refused() -> None:
    with pytest.raises(RulesError, match=r"decisions\.quarantine\.hate"):
        parse_rules(dump({"decisions": {"quarantine": {"hate": 1.5}}}))


def test_unsupported_schema_is_refused() -> None:
    with pytest.raises(RulesError, match="schema"):
        parse_rules(dump({"schema": 2}))


def test_bad_author_entry_is_refused() -> None:
    with pytest.raises(RulesError, match="entry 1 'troll'"):
        parse_rules(dump({"block": {"authors": ["x:@ok", "troll"]}}))


def test_bad_team_id_is_refused() -> None:
    with pytest.raises(RulesError, match=r"routing\.teams\.en"):
        parse_rules(dump({"routing": {"teams": {"en": "Kakuma A"}}}))


def test_bad_language_code_is_refused() -> None:
    with pytest.raises(RulesError, match=r"routing\.teams\.English"):
        parse_rules(dump({"routing": {"teams": {"English": "kakuma-a"}}}))


def test_invalid_regex_is_refused() -> None:
    with pytest.raises(RulesError, match="not a valid regular expression"):
        parse_rules(dump({"spam": {"patterns": ["(unclosed"]}}))


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(\w*x)*", r"(?:a|ab)+c", r"(ab{1,3})+"])
def test_catastrophic_regex_is_refused(pattern: str) -> None:
    with pytest.raises(RulesError, match="catastrophic backtracking"):
        parse_rules(dump({"block": {"patterns": [pattern]}}))


def test_overlong_regex_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than"):
        compile_pattern("a" * 201)


def test_simple_regex_is_accepted() -> None:
    assert compile_pattern(r"\bturned \$\d+ into").search("I TURNED $200 into more")


# --- matchers ------------------------------------------------------------------------


def test_keywords_match_whole_words_case_insensitively() -> None:
    matcher = KeywordMatcher(["scam"])

    assert matcher.find(normalise("What a SCAM!")) == "scam"
    assert matcher.find(normalise("I love scampi")) is None


def test_keywords_match_phrases_and_symbols() -> None:
    matcher = KeywordMatcher(["buy followers", "#crypto", "$moonx"])

    assert matcher.find(normalise("Buy   followers now")) is None  # phrase spacing is exact
    assert matcher.find(normalise("buy followers now")) == "buy followers"
    assert matcher.find(normalise("hot #Crypto tips")) == "#crypto"
    assert matcher.find(normalise("$MOONX to the moon")) == "$moonx"
    assert matcher.find(normalise("#cryptocurrency")) is None


def test_keywords_are_unicode_aware() -> None:
    matcher = KeywordMatcher(["Schmarotzer", "طفيليات"])

    assert matcher.find(normalise("Diese SCHMAROTZER!")) == "schmarotzer"
    assert matcher.find(normalise("هؤلاء طفيليات")) == "طفيليات"
    # Full-width letters fold to plain ones (NFKC): no dodging the list that way.
    assert matcher.find(normalise("\uff53\uff43\uff48marotzer")) == "schmarotzer"


def test_empty_keyword_list_matches_nothing() -> None:
    assert KeywordMatcher([]).find("anything") is None


def test_pattern_matcher_reports_the_pattern() -> None:
    matcher = PatternMatcher([r"\bfoo\d+", r"bar"])

    assert matcher.find("a foo12") == r"\bfoo\d+"
    assert matcher.find("nothing") is None


def test_author_blocklist_by_id_and_handle() -> None:
    blocked = AuthorBlocklist.parse(["x:123", "x:@Troll_1", "mastodon:@bad@social.example"])

    assert blocked.find(Platform.X, "123", "whoever") == "x:123"
    assert blocked.find(Platform.X, "9", "@troll_1") == "x:@troll_1"
    assert blocked.find(Platform.MASTODON, "9", "BAD@social.example") == (
        "mastodon:@bad@social.example"
    )


def test_author_blocklist_is_per_platform() -> None:
    blocked = AuthorBlocklist.parse(["x:@troll"])

    assert blocked.find(Platform.MASTODON, "1", "troll") is None
    assert blocked.find(Platform.X, "1", "trolley") is None


def test_routing_uses_the_primary_language_then_fallback() -> None:
    routing = Routing(teams={"en": "kakuma-a"}, fallback="triage-desk")

    assert routing.team_for("en-GB") == "kakuma-a"
    assert routing.team_for("EN") == "kakuma-a"
    assert routing.team_for("de") == "triage-desk"
    assert routing.team_for(None) == "triage-desk"


# --- reloading -----------------------------------------------------------------------


def test_missing_file_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read"):
        RulesFile(tmp_path / "nope.yaml")


def test_edit_is_picked_up_after_check_interval(write_rules: Callable[..., Path]) -> None:
    clock = FakeClock()
    path = write_rules()
    rules_file = RulesFile(path, check_every_s=2.0, clock=clock)
    first = rules_file.version

    write_rules({"decisions": {"quarantine": {"offensive": 0.5}}})
    clock.now += 2.0

    assert rules_file.current().decisions.quarantine.offensive == 0.5
    assert rules_file.version != first


def test_edit_is_not_seen_before_check_interval(write_rules: Callable[..., Path]) -> None:
    clock = FakeClock()
    rules_file = RulesFile(write_rules(), check_every_s=2.0, clock=clock)

    write_rules({"decisions": {"quarantine": {"offensive": 0.5}}})
    clock.now += 1.9

    assert rules_file.current().decisions.quarantine.offensive == 0.8
    clock.now += 0.1
    assert rules_file.current().decisions.quarantine.offensive == 0.5


def test_unchanged_file_is_not_reread(
    write_rules: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    rules_file = RulesFile(write_rules(), check_every_s=1.0, clock=clock)
    reads: list[Path] = []

    def counting_load(path: Path) -> Rules:
        reads.append(path)
        return load_rules(path)

    monkeypatch.setattr("services.triage.rules.load_rules", counting_load)

    for _ in range(5):
        clock.now += 1.0
        rules_file.current()

    assert reads == []


def test_broken_edit_keeps_last_good_rules_and_logs_once(
    write_rules: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    rules_file = RulesFile(write_rules(), check_every_s=1.0, clock=clock)
    good = rules_file.version

    write_rules({"decisions": {"quarantine": {"offensive": 7}}})
    with caplog.at_level(logging.ERROR, logger="services.triage.rules"):
        for _ in range(3):
            clock.now += 1.0
            rules = rules_file.current()

    assert rules.version == good
    assert rules.decisions.quarantine.offensive == 0.8
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "keeping" in errors[0].getMessage()
    assert "offensive" in errors[0].getMessage()


def test_fixed_edit_after_a_broken_one_is_applied(write_rules: Callable[..., Path]) -> None:
    clock = FakeClock()
    rules_file = RulesFile(write_rules(), check_every_s=1.0, clock=clock)
    write_rules(raw=b"campaign: [broken\n")
    clock.now += 1.0
    rules_file.current()

    write_rules({"decisions": {"quarantine": {"hate": 0.4}}})
    clock.now += 1.0

    assert rules_file.current().decisions.quarantine.hate == 0.4


def test_deleted_file_keeps_last_good_rules(
    write_rules: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    path = write_rules()
    rules_file = RulesFile(path, check_every_s=1.0, clock=clock)
    path.unlink()
    clock.now += 1.0

    with caplog.at_level(logging.ERROR, logger="services.triage.rules"):
        rules = rules_file.current()

    assert rules.decisions.quarantine.offensive == 0.8
    assert any("cannot read" in r.getMessage() for r in caplog.records)
