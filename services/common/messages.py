"""One frozen pydantic model per Kafka topic: the contract between services.

Every message carries ``schema_version`` and UTC-aware timestamps. Events are
past-tense facts (``MentionReceived``); commands are imperatives
(``PublishReply``). Serialise at the boundary with :mod:`services.common.codec`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

SCHEMA_VERSION: Literal[1] = 1


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


#: A timezone-aware datetime, normalised to UTC. Naive datetimes are refused.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]

# Every string is bounded, within the database columns it is stored in (tests/common/
# test_message_bounds.py): what does not fit is refused at decode, never at an INSERT.

#: Platform-native identifiers: printable, no whitespace, bounded. Bluesky's are a
#: DID (an account) or an AT URI (``at://did:plc:…/app.bsky.feed.post/<rkey>``).
_PLAIN_ID = r"[A-Za-z0-9_.\-@]{1,128}"
_DID = r"did:[a-z]{1,16}:[A-Za-z0-9._:%\-]{1,96}"
_AT_URI = rf"at://{_DID}/[a-z][a-z0-9\-]*(\.[A-Za-z0-9\-]+){{2,}}/[A-Za-z0-9._~:\-]{{1,64}}"
NativeId = Annotated[
    str, StringConstraints(max_length=128, pattern=rf"^({_PLAIN_ID}|{_DID}|{_AT_URI})$")
]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Sha256Hex = Annotated[str, StringConstraints(max_length=64, pattern=r"^[0-9a-f]{64}$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=256)]
#: ``<platform>:<native id>`` (:func:`mention_id`).
MentionId = Annotated[
    str,
    StringConstraints(max_length=137, pattern=r"^(x|mastodon|bluesky):\S{1,128}$"),
]
#: A BCP 47 language tag as platforms give it (``en``, ``pt-BR``).
LanguageTag = Annotated[
    str,
    StringConstraints(max_length=35, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$"),
]
#: Base64 of the bytes of a record (at most the largest message, base64-encoded).
Base64 = Annotated[str, StringConstraints(max_length=2_000_000)]

MAX_TEXT_CHARS = 10_000
_MENTION_ID = re.compile(r"^(x|mastodon|bluesky):\S{1,128}$")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Platform(StrEnum):
    X = "x"
    MASTODON = "mastodon"
    BLUESKY = "bluesky"


class Source(StrEnum):
    """Where ingest heard a mention (for counters and audit)."""

    WEBHOOK = "webhook"
    X_STREAM = "x_stream"
    MASTODON = "mastodon"
    BLUESKY = "bluesky"
    REPLAY = "replay"


class LangSource(StrEnum):
    """Where a mention's ``lang`` came from."""

    PLATFORM = "platform"  # the platform's own tag, kept as given
    DETECTED = "detected"  # ingest's language identification (the platform gave none)


class Decision(StrEnum):
    QUARANTINE = "quarantine"
    REVIEW = "review"
    DROP = "drop"
    AUTO_ASSIGN = "auto_assign"


class Message(BaseModel):
    """Base for every wire model: frozen, strict about unknown fields, versioned."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    schema_version: Literal[1] = SCHEMA_VERSION


class Part(BaseModel):
    """Base for nested value objects inside a message."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


# --- mentions.raw -----------------------------------------------------------


class Author(Part):
    id: NativeId
    handle: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    display_name: Annotated[str, StringConstraints(max_length=256)] | None = None
    followers: Annotated[int, Field(ge=0)] | None = None


def mention_id(platform: Platform, native_id: str) -> str:
    """The id every service uses for a mention: ``<platform>:<native id>``."""
    return f"{platform.value}:{native_id}"


#: ``MentionReceived`` version 2 added ``summoned``, version 3 ``lang_source``; older
#: messages still decode (what they lack is then unknown: ``None``).
MENTION_SCHEMA_VERSION: Literal[3] = 3


class MentionReceived(Message):
    """A mention of the campaign, as heard by ingest. Key: ``id``."""

    schema_version: Literal[1, 2, 3] = MENTION_SCHEMA_VERSION  # type: ignore[assignment]
    id: MentionId
    platform: Platform
    native_id: NativeId
    author: Author
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)]
    lang: LanguageTag | None = None
    created_at: UtcDatetime
    conversation_id: NativeId | None = None
    in_reply_to: NativeId | None = None
    url: Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://")] | None = None
    matched_rules: tuple[ShortText, ...] = ()
    source: Source = Source.WEBHOOK
    received_at: UtcDatetime
    #: Did the post summon the campaign account: @mention it, or quote one of its
    #: posts (X lets an app reply only then)? ``None``: not known (a version 1 message).
    summoned: bool | None = None
    #: Whether ``lang`` is the platform's tag or ingest's detection; ``None`` with no ``lang``.
    lang_source: LangSource | None = None

    @model_validator(mode="after")
    def _id_matches_platform(self) -> MentionReceived:
        if self.id != mention_id(self.platform, self.native_id) or not _MENTION_ID.match(self.id):
            raise ValueError(f"id must be '<platform>:<native_id>', got {self.id!r}")
        if self.schema_version == 1 and self.summoned is not None:
            raise ValueError("summoned came with schema version 2; a version 1 message has none")
        if self.lang_source is not None and (self.lang is None or self.schema_version < 3):
            raise ValueError("lang_source needs a lang and schema version 3")
        return self


# --- mentions.classified / mentions.quarantined -----------------------------


class Scores(Part):
    offensive: Probability
    hate: Probability
    spam: Probability | None = None
    question: Probability
    relevance: Probability


class PriorityReason(Part):
    """One explainable part of a priority: e.g. ``question`` contributed +30."""

    factor: ShortText
    points: float
    detail: Annotated[str, StringConstraints(max_length=512)] = ""


#: ``MentionClassified`` version 2 added ``model_path`` and ``model_language``;
#: version 1 messages still decode (what they lack is then unknown: ``None``).
CLASSIFIED_SCHEMA_VERSION: Literal[2] = 2


class ModelPath(StrEnum):
    """Which encoder scored a mention."""

    EN = "en"  # the fine-tuned English MiniLM
    MULTI = "multi"  # the multilingual e5 heads


class MentionClassified(Message):
    """A mention with scores, priority and a decision. Key: mention id.

    Also the message on ``mentions.quarantined`` (abuse kept for audit).
    """

    schema_version: Literal[1, 2] = CLASSIFIED_SCHEMA_VERSION  # type: ignore[assignment]
    mention: MentionReceived
    scores: Scores
    priority: Annotated[int, Field(ge=0, le=100)]
    reasons: tuple[PriorityReason, ...] = ()
    decision: Decision
    model_version: ShortText
    rule: ShortText
    #: Version of the rules file that decided (its content hash).
    rules_version: ShortText | None = None
    cluster_id: ShortText | None = None
    #: The recording team suggested by language routing, if any.
    team: ShortText | None = None
    classified_at: UtcDatetime
    #: The classifier's path that scored the mention (``model_version`` is that
    #: path's model); ``None``: decided by a rule without the model, or version 1.
    model_path: ModelPath | None = None
    #: The language the decision went by (the mention's tag or ingest's detection,
    #: primary subtag); ``None``: unknown.
    model_language: LanguageTag | None = None

    @model_validator(mode="after")
    def _new_fields_need_version_2(self) -> MentionClassified:
        if self.schema_version == 1 and (
            self.model_path is not None or self.model_language is not None
        ):
            raise ValueError("model_path and model_language came with schema version 2")
        return self


# --- questions.assigned -------------------------------------------------------


class QuestionAssigned(Message):
    """A moderator (or auto-assign) routed a question to a team. Key: team id."""

    question_id: ShortText
    mention_id: MentionId
    team: ShortText
    assigned_by: ShortText
    priority: Annotated[int, Field(ge=0, le=100)]
    due_at: UtcDatetime | None = None
    assigned_at: UtcDatetime


# --- answers.recorded ---------------------------------------------------------


class SubtitleFile(Part):
    """Timed subtitles that go beside a video (where the platform takes them)."""

    uri: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    mime: Literal["application/x-subrip", "text/vtt"]
    bytes: Annotated[int, Field(gt=0)]
    sha256: Sha256Hex
    #: BCP 47 code of the subtitles' language (``en``, ``so``).
    language: Annotated[str, StringConstraints(min_length=2, max_length=16)]


class Media(Part):
    """A video: the original on ``answers.recorded``; on ``replies.requested``, the
    rendition made for the reply's platform (never the original, unless it is one)."""

    uri: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    mime: Annotated[str, StringConstraints(max_length=64, pattern=r"^video/[a-z0-9.+\-]+$")]
    bytes: Annotated[int, Field(gt=0)]
    sha256: Sha256Hex
    duration_s: Annotated[float, Field(gt=0)] | None = None
    #: The video's alt text, within the platform's limit (the answer's caption).
    alt_text: Annotated[str, StringConstraints(max_length=5_000)] = ""
    #: Subtitle files to attach (platforms that take them; elsewhere they are burned in).
    subtitles: tuple[SubtitleFile, ...] = ()


class Consent(Part):
    """Who agreed to be filmed and published, for what, recorded by whom and when."""

    speaker_ref: ShortText
    scope: ShortText
    recorded_by: ShortText
    at: UtcDatetime


class AnswerRecorded(Message):
    """A team uploaded a video answer with the speaker's consent. Key: question id."""

    question_id: ShortText
    team: ShortText
    media: Media
    consent: Consent
    caption: Annotated[str, StringConstraints(max_length=5_000)] = ""
    transcript: Annotated[str, StringConstraints(max_length=50_000)] = ""
    language: Annotated[str, StringConstraints(min_length=2, max_length=16)]
    recorded_at: UtcDatetime


# --- replies.requested / published / failed ----------------------------------


#: ``PublishReply`` version 2 added ``summoned`` and ``standalone``; version 1
#: commands still decode.
PUBLISH_SCHEMA_VERSION: Literal[2] = 2


class CommandSignature(Part):
    """HMAC-SHA256 of a command by the triage web (:mod:`services.common.signing`)."""

    key_id: Annotated[str, StringConstraints(max_length=32, pattern=r"^[A-Za-z0-9_.\-]{1,32}$")]
    hmac_sha256: Sha256Hex


class PublishReply(Message):
    """Command: post this reply. ``reply_id`` is the idempotency key. Key: question id."""

    schema_version: Literal[1, 2] = PUBLISH_SCHEMA_VERSION  # type: ignore[assignment]
    reply_id: ShortText
    question_id: ShortText
    mention_id: MentionId
    platform: Platform
    in_reply_to: NativeId
    author: Author
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)]
    language: Annotated[str, StringConstraints(min_length=2, max_length=16)] | None = None
    media: Media | None = None
    consent: Consent
    approved_by: ShortText
    requested_at: UtcDatetime
    #: Did the mention summon the campaign account (``MentionReceived.summoned``)?
    #: X refuses a reply to a post that did not; ``None``: not known.
    summoned: bool | None = None
    #: Post the answer on the campaign account on its own, not as a reply (and
    #: without an @mention): a moderator's choice for a post X will not let us answer.
    standalone: bool = False
    #: The answer (video) this reply posts: a withdrawal naming it refuses the reply
    #: whatever questions the withdrawal names. ``None``: an older command.
    answer_id: ShortText | None = None
    #: Added by the triage web's outbox; the publisher obeys only a valid one.
    signature: CommandSignature | None = None


class ReplyPublished(Message):
    """A reply went out. Key: question id."""

    reply_id: ShortText
    question_id: ShortText
    platform: Platform
    post_id: NativeId
    url: Annotated[str, StringConstraints(max_length=2048)] | None = None
    at: UtcDatetime


class ReplyFailed(Message):
    """A reply did not go out (dead letter of the publisher). Key: question id."""

    reply_id: ShortText
    question_id: ShortText
    platform: Platform
    error: Annotated[str, StringConstraints(min_length=1, max_length=4_000)]
    attempts: Annotated[int, Field(ge=0)]
    retryable: bool
    at: UtcDatetime


# --- <topic>.dlq --------------------------------------------------------------


class DeadLetter(Message):
    """An input a stage could not process, with the original bytes (base64).

    Key: the original key (or none). ``value_b64`` holds the bytes exactly as
    received, so a fixed consumer can replay them; for a value too large to travel
    whole (``value_truncated``) its head, with the whole value's length and sha256.
    """

    topic: ShortText
    stage: ShortText
    error: Annotated[str, StringConstraints(min_length=1, max_length=4_000)]
    partition: Annotated[int, Field(ge=0)] | None = None
    offset: Annotated[int, Field(ge=0)] | None = None
    key_b64: Base64 | None = None
    value_b64: Base64
    #: Length and sha256 of the whole original value (``value_b64`` may hold its head).
    value_bytes: Annotated[int, Field(ge=0)] | None = None
    value_sha256: Sha256Hex | None = None
    #: ``value_b64`` (and ``key_b64``) hold only the head: the whole letter would be
    #: over the broker's size limit.
    value_truncated: bool = False
    at: UtcDatetime


# --- consent.withdrawn ----------------------------------------------------------


class ConsentWithdrawn(Message):
    """A person filmed withdrew their consent: their published replies come down.

    ``question_ids`` narrows the withdrawal to those answers; empty: every reply
    that features ``speaker_ref``. ``answer_id`` names the answer whose consent was
    withdrawn: every request of it (``PublishReply.answer_id``) is refused, whatever
    its question; ``None``: an older event. Key: speaker ref.
    """

    speaker_ref: ShortText
    question_ids: tuple[ShortText, ...] = ()
    answer_id: ShortText | None = None
    withdrawn_by: ShortText
    reason: Annotated[str, StringConstraints(max_length=2_000)] = ""
    at: UtcDatetime
    #: Added by the triage web's outbox; the publisher obeys only a valid one.
    signature: CommandSignature | None = None


# --- speakers.paused ------------------------------------------------------------


class SpeakerPaused(Message):
    """The replies featuring a person filmed are held (``paused``) or may go again
    (not ``paused``): a moderator's decision, or the protection rules' after a threat
    or doxxing under one of their answers. Key: speaker ref.

    ``at`` orders the decisions about one person: the publisher obeys the latest and
    never lets an older one (a redelivery, a resend at a new broker epoch) override
    it; at the same instant, the pause."""

    speaker_ref: ShortText
    paused: bool
    reason: Annotated[str, StringConstraints(max_length=2_000)] = ""
    decided_by: ShortText
    at: UtcDatetime
    #: Added by the triage web's outbox; the publisher obeys only a valid one.
    signature: CommandSignature | None = None


# --- replies.received / replies.classified / replies.action / replies.moderated --
#
# Protection: the replies written under the campaign's published answers, watched
# by the publisher, classified by the triage worker, shown to moderators by the
# triage web, which signs the hide / unhide commands the publisher carries out.


class ReplyKind(StrEnum):
    REPLY = "reply"
    QUOTE = "quote"


class ReplyReceived(Message):
    """Someone replied under (or quoted) one of our published answers, as the
    publisher's watcher read it off the platform. Key: ``answer_post_id``.

    ``id`` is ``<platform>:<native id>`` of the reply: the deduplication key."""

    id: MentionId
    platform: Platform
    native_id: NativeId
    kind: ReplyKind = ReplyKind.REPLY
    #: Our published answer it is under (its post id on the platform).
    answer_post_id: NativeId
    #: The publisher's reply id of that answer, and its question.
    answer_reply_id: ShortText
    question_id: ShortText
    #: Whose answer it is (the consent's speaker ref): escalations name that person.
    speaker_ref: ShortText
    author: Author
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)]
    lang: LanguageTag | None = None
    url: Annotated[str, StringConstraints(max_length=2048, pattern=r"^https?://")] | None = None
    created_at: UtcDatetime
    received_at: UtcDatetime

    @model_validator(mode="after")
    def _id_matches_platform(self) -> ReplyReceived:
        if self.id != mention_id(self.platform, self.native_id):
            raise ValueError(f"id must be '<platform>:<native_id>', got {self.id!r}")
        return self


class ReplyVerdict(StrEnum):
    HIDE = "hide"
    KEEP = "keep"


class Escalation(StrEnum):
    """Why a reply is put in front of the safeguarding lead at once."""

    THREAT = "threat"
    DOXXING = "doxxing"
    PILE_ON = "pile_on"


class ReplyClassified(Message):
    """A reply with its scores and what the protection rules say. Key: answer post id."""

    reply: ReplyReceived
    scores: Scores
    verdict: ReplyVerdict
    #: The protection rule that decided (``hate``, ``offensive``, ``threat``, ``clean``...).
    rule: ShortText
    reasons: tuple[Annotated[str, StringConstraints(max_length=512)], ...] = ()
    #: Threats and doxxing found in this reply (pile-ons are counted by the web).
    escalations: tuple[Escalation, ...] = ()
    model_version: ShortText
    rules_version: ShortText | None = None
    classified_at: UtcDatetime


class ModerationAction(StrEnum):
    HIDE = "hide"
    UNHIDE = "unhide"


class ModerateReply(Message):
    """Command: hide (or unhide) one reply under one of our answers. ``action_id`` is
    the idempotency key; signed by the triage web. Key: the reply's ``reply_id``."""

    action_id: ShortText
    reply_id: MentionId
    platform: Platform
    native_id: NativeId
    answer_post_id: NativeId
    author: Author
    action: ModerationAction
    #: Also report the reply to the platform's moderators (Mastodon, Bluesky).
    report: bool = False
    reason: Annotated[str, StringConstraints(max_length=1_000)] = ""
    decided_by: ShortText
    requested_at: UtcDatetime
    #: Added by the triage web's outbox; the publisher obeys only a valid one.
    signature: CommandSignature | None = None


class ModerationOutcome(StrEnum):
    DONE = "done"
    FAILED = "failed"
    REFUSED = "refused"


class ReplyModerated(Message):
    """What became of a :class:`ModerateReply`. Key: the reply's ``reply_id``."""

    action_id: ShortText
    reply_id: MentionId
    platform: Platform
    action: ModerationAction
    outcome: ModerationOutcome
    #: How it was done on the platform (``hidden``, ``muted``, ``muted+reported``...).
    how: Annotated[str, StringConstraints(max_length=64)] = ""
    error: Annotated[str, StringConstraints(max_length=4_000)] | None = None
    at: UtcDatetime
