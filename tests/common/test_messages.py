from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from services.common import codec, topics
from services.common.messages import (
    AnswerRecorded,
    Author,
    Consent,
    ConsentWithdrawn,
    DeadLetter,
    Decision,
    Escalation,
    LangSource,
    Media,
    MentionClassified,
    MentionReceived,
    ModerateReply,
    ModerationAction,
    ModerationOutcome,
    Platform,
    PriorityReason,
    PublishReply,
    QuestionAssigned,
    ReplyClassified,
    ReplyFailed,
    ReplyModerated,
    ReplyPublished,
    ReplyReceived,
    ReplyVerdict,
    Scores,
    SpeakerPaused,
)
from tests.helpers.replies import reply_classified, reply_received

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SHA = "a" * 64


def test_mention_id_must_match_platform_and_native_id(
    mention_factory: Callable[..., MentionReceived],
) -> None:
    with pytest.raises(ValidationError, match="<platform>:<native_id>"):
        mention_factory(id="mastodon:1", platform=Platform.X, native_id="1")


def test_naive_datetimes_are_refused(mention_factory: Callable[..., MentionReceived]) -> None:
    with pytest.raises(ValidationError, match="timezone"):
        mention_factory(created_at=datetime(2026, 11, 23, 12, 0))


def test_datetimes_are_normalised_to_utc(mention_factory: Callable[..., MentionReceived]) -> None:
    nairobi = timezone(timedelta(hours=3))
    mention = mention_factory(created_at=datetime(2026, 11, 23, 15, 0, tzinfo=nairobi))
    assert mention.created_at == NOW
    assert mention.created_at.tzinfo == UTC


def test_messages_are_frozen(mention_factory: Callable[..., MentionReceived]) -> None:
    mention = mention_factory()
    with pytest.raises(ValidationError):
        mention.text = "changed"  # type: ignore[misc]


def test_unknown_fields_and_versions_are_refused(
    mention_factory: Callable[..., MentionReceived],
) -> None:
    raw = mention_factory().model_dump(mode="json")
    with pytest.raises(ValidationError, match="Extra inputs"):
        MentionReceived.model_validate({**raw, "surprise": 1})
    with pytest.raises(ValidationError, match="schema_version"):
        MentionReceived.model_validate({**raw, "schema_version": 4})


def test_mention_schema_2_records_summoned_and_version_1_still_decodes(
    mention_factory: Callable[..., MentionReceived],
) -> None:
    mention = mention_factory(summoned=True)
    assert mention.schema_version == 3
    assert MentionReceived.model_validate_json(mention.model_dump_json()).summoned is True
    # A message written before version 2: no ``summoned`` key at all.
    old = mention.model_dump(mode="json", exclude={"summoned"}) | {"schema_version": 1}
    decoded = MentionReceived.model_validate_json(json.dumps(old))
    assert (decoded.schema_version, decoded.summoned) == (1, None)
    with pytest.raises(ValidationError, match="version 1 message has none"):
        MentionReceived.model_validate({**old, "summoned": False})


def test_mention_schema_3_records_lang_source_and_older_versions_still_decode(
    mention_factory: Callable[..., MentionReceived],
) -> None:
    mention = mention_factory(lang="de", lang_source=LangSource.DETECTED)
    assert mention.schema_version == 3
    decoded = MentionReceived.model_validate_json(mention.model_dump_json())
    assert decoded.lang_source is LangSource.DETECTED
    # A message written before version 3: no ``lang_source`` key at all.
    for version in (1, 2):
        old = mention.model_dump(mode="json", exclude={"lang_source", "summoned"})
        old |= {"schema_version": version}
        decoded = MentionReceived.model_validate_json(json.dumps(old))
        assert (decoded.schema_version, decoded.lang_source) == (version, None)
    with pytest.raises(ValidationError, match="lang_source needs"):
        MentionReceived.model_validate({**old, "lang_source": "platform"})
    with pytest.raises(ValidationError, match="lang_source needs"):
        mention_factory(lang=None, lang_source=LangSource.PLATFORM)


def test_empty_text_is_refused(mention_factory: Callable[..., MentionReceived]) -> None:
    with pytest.raises(ValidationError, match="text"):
        mention_factory(text="   ")


def _examples(mention: MentionReceived) -> dict[type, object]:
    consent = Consent(
        speaker_ref="speaker-17", scope="campaign-social", recorded_by="team-a", at=NOW
    )
    media = Media(uri="file:///m/1.mp4", mime="video/mp4", bytes=1024, sha256=SHA, duration_s=12.5)
    classified = MentionClassified(
        mention=mention,
        scores=Scores(offensive=0.01, hate=0.0, question=0.97, relevance=0.9),
        priority=82,
        reasons=(PriorityReason(factor="question", points=30, detail="p=0.97"),),
        decision=Decision.REVIEW,
        model_version="minilm-heads-1",
        rule="default",
        cluster_id="c-12",
        classified_at=NOW,
    )
    reply = reply_received("9001", created_at=NOW, received_at=NOW)
    return {
        MentionReceived: mention,
        MentionClassified: classified,
        QuestionAssigned: QuestionAssigned(
            question_id="q1",
            mention_id=mention.id,
            team="kakuma-a",
            assigned_by="mod1",
            priority=82,
            due_at=NOW,
            assigned_at=NOW,
        ),
        AnswerRecorded: AnswerRecorded(
            question_id="q1",
            team="kakuma-a",
            media=media,
            consent=consent,
            caption="Hello from Kakuma",
            language="en",
            recorded_at=NOW,
        ),
        PublishReply: PublishReply(
            reply_id="r1",
            question_id="q1",
            mention_id=mention.id,
            platform=Platform.X,
            in_reply_to=mention.native_id,
            author=Author(id="1", handle="asker"),
            text="Thank you for asking",
            media=media,
            consent=consent,
            approved_by="mod1",
            requested_at=NOW,
        ),
        ReplyPublished: ReplyPublished(
            reply_id="r1", question_id="q1", platform=Platform.X, post_id="99", at=NOW
        ),
        ReplyFailed: ReplyFailed(
            reply_id="r1",
            question_id="q1",
            platform=Platform.X,
            error="403 Forbidden",
            attempts=1,
            retryable=False,
            at=NOW,
        ),
        ConsentWithdrawn: ConsentWithdrawn(
            speaker_ref="speaker-17",
            question_ids=("q1",),
            withdrawn_by="team-a",
            reason="asked by the speaker",
            at=NOW,
        ),
        DeadLetter: DeadLetter(
            topic="mentions.raw", stage="triage", error="bad", value_b64="AA==", at=NOW
        ),
        ReplyReceived: reply,
        ReplyClassified: reply_classified(reply, ReplyVerdict.HIDE, Escalation.THREAT, at=NOW),
        ModerateReply: ModerateReply(
            action_id="a1",
            reply_id=reply.id,
            platform=Platform.X,
            native_id=reply.native_id,
            answer_post_id=reply.answer_post_id,
            author=reply.author,
            action=ModerationAction.HIDE,
            report=True,
            reason="threat",
            decided_by="rules r-1",
            requested_at=NOW,
        ),
        ReplyModerated: ReplyModerated(
            action_id="a1",
            reply_id=reply.id,
            platform=Platform.X,
            action=ModerationAction.HIDE,
            outcome=ModerationOutcome.DONE,
            how="hidden",
            at=NOW,
        ),
        SpeakerPaused: SpeakerPaused(
            speaker_ref="speaker-17",
            paused=True,
            reason="threat: a threat from @someone",
            decided_by="rules",
            at=NOW,
        ),
    }


def test_a_reply_id_must_be_its_platform_and_native_id() -> None:
    with pytest.raises(ValidationError, match="platform"):
        reply_received("9001", id="mastodon:9001")


def test_every_topic_has_a_model_that_round_trips(
    mention_factory: Callable[..., MentionReceived],
) -> None:
    examples = _examples(mention_factory())
    for spec in topics.ALL_TOPICS:
        message = examples[spec.model]
        assert isinstance(message, spec.model)
        assert codec.decode(spec.model, codec.encode(message)) == message
        version = getattr(message, "schema_version", None)
        assert version in (1, 2, 3)
        assert f'"schema_version":{version}'.encode() in codec.encode(message)


def test_every_topic_has_a_dead_letter_topic() -> None:
    names = {spec.name for spec in topics.ALL_TOPICS}
    for spec in topics.TOPICS:
        assert topics.dlq(spec.name) in names
    assert topics.spec_for("mentions.raw.dlq").model is DeadLetter
    with pytest.raises(KeyError):
        topics.spec_for("nope")


def test_media_must_be_video_with_a_real_sha256() -> None:
    with pytest.raises(ValidationError, match="mime"):
        Media(uri="x", mime="application/pdf", bytes=1, sha256=SHA)
    with pytest.raises(ValidationError, match="sha256"):
        Media(uri="x", mime="video/mp4", bytes=1, sha256="nothex")
