"""The triage rules file: thresholds, priority weights, clustering, block lists,
spam patterns, language→team routing and the campaign description.

One YAML file (``TRIAGE_RULES_PATH``, default ``services/triage/rules.yaml``)
is parsed and validated into a frozen :class:`Rules`; :class:`RulesFile`
re-reads it when it changes, so moderators' block lists and thresholds take
effect without a restart. A broken edit never stops the stream: the last good
rules stay in force and the error is logged.

Matching, everywhere: the text is NFKC-normalised (full-width letters and
other look-alikes fold to plain ones) and case-folded; keywords match whole
words only (not inside a longer word), in any script. Regular expressions are
accepted for the few things keywords cannot say, with guards against
catastrophic backtracking (see :func:`compile_pattern`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml  # type: ignore[import-untyped, unused-ignore]
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from services.common.codec import describe_validation_error
from services.common.messages import Escalation, Platform

log = logging.getLogger(__name__)

#: Rules files larger than this are refused (a block list of ~100k entries fits).
MAX_RULES_BYTES = 4 * 1024 * 1024
#: Longest regular expression accepted in the rules.
MAX_PATTERN_CHARS = 200

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Points = Annotated[float, Field(ge=0.0, le=100.0)]
TeamId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
LangCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]
Keyword = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
PatternText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PATTERN_CHARS)
]

_AUTHOR_ENTRY = re.compile(r"^(x|mastodon):(@?)([^\s@][^\s]{0,255})$")
# A repeated group that itself contains a repetition or an alternation: the
# shapes behind catastrophic backtracking, e.g. ``(a+)+``, ``(\w*x)*``, ``(a|ab)+``.
_NESTED_REPEAT = re.compile(r"\((?:[^()\\]|\\.)*(?:[*+|]|\{\d*,?\d*\})(?:[^()\\]|\\.)*\)\s*[*+{]")


class RulesError(ValueError):
    """The rules file cannot be read or does not validate; the message says where and why."""


#: Arabic short-vowel marks and the tatweel (kashida): optional in writing, so
#: sprinkled into a word they would hide it from a keyword ("غَبِي" is "غبي").
_ARABIC_MARKS = re.compile("[\u0640\u064b-\u065f\u0670]")


def normalise(text: str) -> str:
    """What every keyword and pattern is matched against: NFKC, case-folded, and
    without Arabic vowel marks and tatweel (the same word however it is voweled)."""
    return _ARABIC_MARKS.sub("", unicodedata.normalize("NFKC", text).casefold())


# --- the file's schema ----------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Campaign(_Section):
    #: What the campaign is about; embedded by the classifier for relevance.
    description: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    #: Typical on-topic mentions; relevance is the best similarity to any of them.
    examples: tuple[
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)], ...
    ] = ()


class Quarantine(_Section):
    #: Hate score at or above this quarantines.
    hate: Probability = 0.70
    #: Offensive score at or above this quarantines — unless one of the two
    #: exemptions below says the offence is not abuse of anyone.
    offensive: Probability = 0.85
    #: Offensive alone quarantines only text aimed at someone (a "you", a person,
    #: a group): profanity aimed at no one is not abuse of anyone.
    offensive_needs_target: bool = False
    #: A mention at least this relevant to the campaign is not quarantined on
    #: offensive alone (only hate quarantines it); null: no exemption.
    offensive_exempt_relevance: Probability | None = None
    #: The model paths whose relevance is trusted for that exemption. Relevance on
    #: the multilingual path (e5) does not tell insults from the campaign's subject
    #: ("Vous êtes des parasites…" scores 0.97), so there offensive text aimed at
    #: someone is quarantined; the multilingual suites measure exactly that rule.
    offensive_exempt_paths: tuple[str, ...] = ("en",)


class AutoAssign(_Section):
    enabled: bool = True
    question: Probability = 0.90
    relevance: Probability = 0.60
    max_offensive: Probability = 0.10
    max_hate: Probability = 0.05


class NotReplyable(_Section):
    """A question the platform will not let the campaign answer by reply (X: the
    post neither @mentions nor quotes the account). Moderators can still answer
    it with a standalone post."""

    #: Auto-assign it like any other question (false: it waits in review).
    auto_assign: bool = False
    #: Its priority at most this (null: not capped).
    priority_cap: Annotated[int, Field(ge=0, le=100)] | None = 25


class QuestionCues(_Section):
    enabled: bool = True
    except_languages: tuple[Annotated[str, StringConstraints(to_lower=True)], ...] = ("en",)


class Decisions(_Section):
    quarantine: Quarantine = Quarantine()
    #: Question score below this: not a question (review, low priority).
    question: Probability = 0.5
    #: Relevance below this: off-topic (review, low priority).
    relevance: Probability = 0.3
    #: Drop (rather than review) a non-question whose relevance is below this; null: never.
    drop_irrelevant_below: Probability | None = None
    #: Priority ceiling for not-a-question and off-topic mentions.
    low_priority_cap: Annotated[int, Field(ge=0, le=100)] = 25
    auto_assign: AutoAssign = AutoAssign()
    not_replyable: NotReplyable = NotReplyable()
    #: A question cue (question punctuation of any script, an interrogative word or
    #: particle of the mention's language: ``classifier/questions.py``) makes a mention a
    #: question whatever its question score, except in these languages (the question
    #: head was trained on them: its score stands). ``enabled: false``: cues ignored.
    question_cues: QuestionCues = QuestionCues()


class NotAbusive(_Section):
    points: Points = 15.0
    penalty: Points = 30.0


class Reach(_Section):
    points: Points = 10.0
    followers_for_max: Annotated[int, Field(ge=10)] = 100_000


class Freshness(_Section):
    points: Points = 10.0
    half_life_minutes: Annotated[float, Field(gt=0)] = 360.0


class Novelty(_Section):
    new_question: Points = 6.0
    per_doubling: Points = 4.0
    max_askers: Points = 12.0


class PriorityWeights(_Section):
    question: Points = 35.0
    relevance: Points = 25.0
    not_abusive: NotAbusive = NotAbusive()
    reach: Reach = Reach()
    freshness: Freshness = Freshness()
    novelty: Novelty = Novelty()


class Clusters(_Section):
    similarity: Annotated[float, Field(gt=0.0, le=1.0)] = 0.90
    #: The threshold in the multilingual (e5) space, where clusters span languages:
    #: e5's cosines run higher (measured in the triage README, "Clusters").
    multilingual_similarity: Annotated[float, Field(gt=0.0, le=1.0)] = 0.92
    #: ... and for an English question's MiniLM embedding bridged to e5 (lower: the
    #: bridge is approximate; measured in the triage README, "Every language").
    bridged_similarity: Annotated[float, Field(gt=0.0, le=1.0)] = 0.90
    max_clusters: Annotated[int, Field(ge=1, le=1_000_000)] = 5_000
    idle_ttl_hours: Annotated[float, Field(gt=0)] = 72.0
    #: Answered cluster ids remembered (duplicates of these are dropped).
    max_answered: Annotated[int, Field(ge=1, le=10_000_000)] = 100_000


class BlockSection(_Section):
    authors: tuple[str, ...] = ()
    keywords: tuple[Keyword, ...] = ()
    patterns: tuple[PatternText, ...] = ()

    @field_validator("authors")
    @classmethod
    def _author_entries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for i, entry in enumerate(value):
            if not _AUTHOR_ENTRY.match(entry.strip()):
                raise ValueError(
                    f"entry {i} {entry!r}: expected 'x:<author id>', 'x:@handle', "
                    "'mastodon:<account id>' or 'mastodon:@user@instance'"
                )
        return value

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for i, pattern in enumerate(value):
            try:
                compile_pattern(pattern)
            except ValueError as exc:
                raise ValueError(f"pattern {i}: {exc}") from exc
        return value


class SpamSection(_Section):
    keywords: tuple[Keyword, ...] = ()
    patterns: tuple[PatternText, ...] = ()
    #: More hashtags than this: spam (hashtag stuffing).
    max_hashtags: Annotated[int, Field(ge=1)] = 8
    #: More links than this: spam.
    max_links: Annotated[int, Field(ge=1)] = 2

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return BlockSection._patterns_compile(value)


class HideSection(_Section):
    """What hides a reply under one of our answers (it is addressed to a refugee who
    may read it: no campaign-subject exemption here)."""

    #: Hate score at or above this hides.
    hate: Probability = 0.50
    #: Offensive score at or above this hides (aimed at someone, if the next says so).
    offensive: Probability = 0.70
    offensive_needs_target: bool = True


class DoxxingSection(_Section):
    #: Words that place a person: camps, camp sections, blocks (whole words, any case).
    places: tuple[Keyword, ...] = ()
    #: Offensive or hate at least this makes a place (or the person's name) doxxing.
    hostility: Probability = 0.50


class PileOnSection(_Section):
    #: This many abusive replies under one answer ...
    replies: Annotated[int, Field(ge=2, le=1000)] = 5
    #: ... within this many minutes is a pile-on.
    minutes: Annotated[float, Field(gt=0, le=10_080)] = 10.0


class Protection(_Section):
    """The replies under our published answers (see ``rules.yaml``)."""

    enabled: bool = True
    hide: HideSection = HideSection()
    #: Threats: keywords (whole words or phrases) and patterns; a threat hides and escalates.
    threat_keywords: tuple[Keyword, ...] = ()
    threat_patterns: tuple[PatternText, ...] = ()
    doxxing: DoxxingSection = DoxxingSection()
    pile_on: PileOnSection = PileOnSection()
    #: Escalations that report the reply to the platform too (Mastodon, Bluesky).
    report_on: tuple[Escalation, ...] = (Escalation.THREAT, Escalation.DOXXING)
    #: Escalations that pause publishing the person's other answers at once (a
    #: moderator resumes it); the others only alert.
    pause_on: tuple[Escalation, ...] = (Escalation.THREAT, Escalation.DOXXING)

    @field_validator("threat_patterns")
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return BlockSection._patterns_compile(value)


class Routing(_Section):
    #: Language (ISO 639-1/-3, lower case) → team id.
    teams: dict[LangCode, TeamId] = Field(default_factory=dict)
    #: Team for languages not listed (and mentions without a language); null: review.
    fallback: TeamId | None = None

    def team_for(self, lang: str | None) -> str | None:
        """The team for a mention's language: ``en-GB`` → ``en``; unknown → fallback."""
        if lang:
            primary = re.split(r"[-_]", lang, maxsplit=1)[0].lower()
            team = self.teams.get(primary)
            if team is not None:
                return team
        return self.fallback


class RulesDocument(_Section):
    """The YAML file as written (see the comments in ``rules.yaml``)."""

    schema_: Annotated[int, Field(alias="schema", ge=1, le=1)] = 1
    campaign: Campaign
    decisions: Decisions = Decisions()
    priority: PriorityWeights = PriorityWeights()
    clusters: Clusters = Clusters()
    block: BlockSection = BlockSection()
    spam: SpamSection = SpamSection()
    routing: Routing = Routing()
    protection: Protection = Protection()

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


# --- compiled matchers ------------------------------------------------------------


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a rules regex (case-insensitive, Unicode); refuse risky shapes.

    Refused: longer than :data:`MAX_PATTERN_CHARS`, not a valid regex, or a
    repeated group that contains a repetition or alternation (``(a+)+``,
    ``(a|ab)*``) — the usual causes of catastrophic backtracking. Matching
    also only ever sees a mention's text (at most 10,000 characters).
    """
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"longer than {MAX_PATTERN_CHARS} characters")
    if _NESTED_REPEAT.search(pattern):
        raise ValueError(
            f"{pattern!r} repeats a group that contains a repetition or alternation "
            "(risk of catastrophic backtracking); use keywords or a simpler pattern"
        )
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from exc


class KeywordMatcher:
    """Whole-word, case-insensitive, Unicode-aware keyword matching in one regex pass.

    A keyword matches when it is not part of a longer word: ``scam`` matches
    "a scam!" but not "scampi". Keywords may be phrases ("buy followers") and
    may start or end with symbols ("$moonx", "#followback").
    """

    def __init__(self, keywords: Iterable[str]) -> None:
        folded = sorted(
            {normalise(k.strip()) for k in keywords if k.strip()}, key=len, reverse=True
        )
        self.keywords: tuple[str, ...] = tuple(folded)
        self._regex = (
            re.compile(r"(?<!\w)(?:" + "|".join(re.escape(k) for k in folded) + r")(?!\w)")
            if folded
            else None
        )

    def find(self, normalised_text: str) -> str | None:
        """The first keyword found in ``normalised_text`` (from :func:`normalise`), if any."""
        if self._regex is None:
            return None
        match = self._regex.search(normalised_text)
        return match.group(0) if match else None


class PatternMatcher:
    """A list of rules regexes; reports which one matched."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self._patterns = tuple(compile_pattern(p) for p in patterns)

    def find(self, normalised_text: str) -> str | None:
        for pattern in self._patterns:
            if pattern.search(normalised_text):
                return pattern.pattern
        return None


@dataclass(frozen=True, slots=True)
class AuthorBlocklist:
    """Blocked authors as ``(platform, id)`` and ``(platform, handle)`` pairs."""

    ids: frozenset[tuple[str, str]]
    handles: frozenset[tuple[str, str]]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AuthorBlocklist:
        ids: set[tuple[str, str]] = set()
        handles: set[tuple[str, str]] = set()
        for entry in entries:
            match = _AUTHOR_ENTRY.match(entry.strip())
            if match is None:  # validated already; kept for direct callers
                raise ValueError(f"bad author entry {entry!r}")
            platform, at, value = match.groups()
            (handles if at else ids).add((platform, value.casefold() if at else value))
        return cls(frozenset(ids), frozenset(handles))

    def find(self, platform: Platform, author_id: str, handle: str) -> str | None:
        """The block-list entry that matches this author, if any."""
        if (platform.value, author_id) in self.ids:
            return f"{platform.value}:{author_id}"
        folded = handle.lstrip("@").casefold()
        if (platform.value, folded) in self.handles:
            return f"{platform.value}:@{folded}"
        return None


@dataclass(frozen=True, slots=True)
class Rules:
    """Validated rules, with matchers compiled once. ``version``: sha256[:12] of the file."""

    version: str
    campaign: Campaign
    decisions: Decisions
    priority: PriorityWeights
    clusters: Clusters
    routing: Routing
    blocked_authors: AuthorBlocklist
    blocked_keywords: KeywordMatcher
    blocked_patterns: PatternMatcher
    spam_keywords: KeywordMatcher
    spam_patterns: PatternMatcher
    max_hashtags: int
    max_links: int
    protection: Protection
    threat_keywords: KeywordMatcher
    threat_patterns: PatternMatcher
    doxxing_places: KeywordMatcher

    @property
    def campaign_examples(self) -> list[str]:
        """The description and the examples: what the classifier embeds for relevance."""
        return [self.campaign.description, *self.campaign.examples]

    @classmethod
    def from_document(cls, document: RulesDocument, version: str) -> Rules:
        return cls(
            version=version,
            campaign=document.campaign,
            decisions=document.decisions,
            priority=document.priority,
            clusters=document.clusters,
            routing=document.routing,
            blocked_authors=AuthorBlocklist.parse(document.block.authors),
            blocked_keywords=KeywordMatcher(document.block.keywords),
            blocked_patterns=PatternMatcher(document.block.patterns),
            spam_keywords=KeywordMatcher(document.spam.keywords),
            spam_patterns=PatternMatcher(document.spam.patterns),
            max_hashtags=document.spam.max_hashtags,
            max_links=document.spam.max_links,
            protection=document.protection,
            threat_keywords=KeywordMatcher(document.protection.threat_keywords),
            threat_patterns=PatternMatcher(document.protection.threat_patterns),
            doxxing_places=KeywordMatcher(document.protection.doxxing.places),
        )


def content_version(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()[:12]


def parse_rules(content: bytes, *, source: str = "<rules>") -> Rules:
    """Parse and validate a rules file's bytes; :class:`RulesError` says where and why."""
    if len(content) > MAX_RULES_BYTES:
        raise RulesError(f"{source}: {len(content)} bytes exceeds {MAX_RULES_BYTES}")
    try:
        raw: Any = yaml.safe_load(content.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RulesError(f"{source}: not valid UTF-8 at byte {exc.start}") from exc
    except yaml.YAMLError as exc:
        raise RulesError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise RulesError(f"{source}: expected a mapping at the top, got {type(raw).__name__}")
    try:
        document = RulesDocument.model_validate(raw)
    except ValidationError as exc:
        raise RulesError(f"{source}: {describe_validation_error(exc, limit=10)}") from exc
    return Rules.from_document(document, content_version(content))


def load_rules(path: Path) -> Rules:
    """Read and validate the rules file at ``path``."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise RulesError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return parse_rules(content, source=str(path))


class RulesFile:
    """The rules in force, re-read when the file changes (no restart needed).

    :meth:`current` checks the file's mtime and size at most every
    ``check_every_s`` seconds (by ``clock``) and re-reads it when either
    changed. A broken edit (bad YAML, failed validation, file gone) is logged
    once as an error and the last good rules stay in force. The first load
    must succeed: :class:`RulesError` from the constructor.
    """

    def __init__(
        self,
        path: Path,
        *,
        check_every_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._check_every_s = check_every_s
        self._clock = clock
        signature = self._signature()
        self._rules = load_rules(path)
        self._signature_seen = signature
        self._checked_at = clock()
        log.info("rules %s loaded from %s", self._rules.version, path)

    @property
    def version(self) -> str:
        """The version (sha256[:12] of the content) of the rules in force."""
        return self._rules.version

    def current(self) -> Rules:
        """The rules in force, re-reading the file first if it changed."""
        now = self._clock()
        if now - self._checked_at >= self._check_every_s:
            self._checked_at = now
            self._maybe_reload()
        return self._rules

    def _signature(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _maybe_reload(self) -> None:
        signature = self._signature()
        if signature == self._signature_seen:
            return
        self._signature_seen = signature
        try:
            rules = load_rules(self.path)
        except RulesError as exc:
            log.error(  # noqa: TRY400 - the message is the whole story
                "rules not reloaded, keeping %s in force: %s", self._rules.version, exc
            )
            return
        if rules.version != self._rules.version:
            log.info(
                "rules reloaded from %s: %s -> %s", self.path, self._rules.version, rules.version
            )
        self._rules = rules
