"""Topic names and what travels on each: the table in DESIGN.md, once, in code."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from services.common.messages import (
    AnswerRecorded,
    ConsentWithdrawn,
    DeadLetter,
    MentionClassified,
    MentionReceived,
    ModerateReply,
    PublishReply,
    QuestionAssigned,
    ReplyClassified,
    ReplyFailed,
    ReplyModerated,
    ReplyPublished,
    ReplyReceived,
    SpeakerPaused,
)

MENTIONS_RAW = "mentions.raw"
MENTIONS_CLASSIFIED = "mentions.classified"
MENTIONS_QUARANTINED = "mentions.quarantined"
QUESTIONS_ASSIGNED = "questions.assigned"
ANSWERS_RECORDED = "answers.recorded"
REPLIES_REQUESTED = "replies.requested"
REPLIES_PUBLISHED = "replies.published"
REPLIES_FAILED = "replies.failed"
CONSENT_WITHDRAWN = "consent.withdrawn"
REPLIES_RECEIVED = "replies.received"
REPLIES_CLASSIFIED = "replies.classified"
REPLIES_ACTION = "replies.action"
REPLIES_MODERATED = "replies.moderated"
SPEAKERS_PAUSED = "speakers.paused"

DLQ_SUFFIX = ".dlq"


def dlq(topic: str) -> str:
    """The dead-letter topic of ``topic``."""
    return f"{topic}{DLQ_SUFFIX}"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    model: type[BaseModel]
    key: str
    configs: dict[str, str] = field(default_factory=dict)


#: Every topic of the pipeline, in flow order. Dead-letter topics are derived.
TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(MENTIONS_RAW, MentionReceived, "mention id"),
    TopicSpec(MENTIONS_CLASSIFIED, MentionClassified, "mention id"),
    TopicSpec(MENTIONS_QUARANTINED, MentionClassified, "mention id"),
    TopicSpec(QUESTIONS_ASSIGNED, QuestionAssigned, "team id"),
    TopicSpec(ANSWERS_RECORDED, AnswerRecorded, "question id"),
    TopicSpec(REPLIES_REQUESTED, PublishReply, "question id"),
    TopicSpec(REPLIES_PUBLISHED, ReplyPublished, "question id"),
    TopicSpec(REPLIES_FAILED, ReplyFailed, "question id"),
    TopicSpec(CONSENT_WITHDRAWN, ConsentWithdrawn, "speaker ref"),
    TopicSpec(REPLIES_RECEIVED, ReplyReceived, "answer post id"),
    TopicSpec(REPLIES_CLASSIFIED, ReplyClassified, "answer post id"),
    TopicSpec(REPLIES_ACTION, ModerateReply, "reply id"),
    TopicSpec(REPLIES_MODERATED, ReplyModerated, "reply id"),
    TopicSpec(SPEAKERS_PAUSED, SpeakerPaused, "speaker ref"),
)

DLQ_TOPICS: tuple[TopicSpec, ...] = tuple(
    TopicSpec(dlq(spec.name), DeadLetter, "original key") for spec in TOPICS
)

ALL_TOPICS: tuple[TopicSpec, ...] = TOPICS + DLQ_TOPICS


def spec_for(name: str) -> TopicSpec:
    for spec in ALL_TOPICS:
        if spec.name == name:
            return spec
    raise KeyError(name)
