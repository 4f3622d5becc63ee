"""Every string of every message is bounded, within the columns it is stored in
(issue 17, Low 2): a 400-character mention id used to decode, then fail the
ledger's INSERT on Postgres with a DataError, retried for ever."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterator
from typing import Any

import pytest
from annotated_types import MaxLen
from pydantic import BaseModel
from sqlalchemy import String

from services.common import codec, messages
from services.common.messages import Message, Part, PublishReply
from services.publish.models import Reply
from services.triage.web.models import Question
from tests.publish.helpers import request_factory


def _models() -> list[type[BaseModel]]:
    return [
        obj
        for obj in vars(messages).values()
        if isinstance(obj, type) and issubclass(obj, Message | Part) and obj not in (Message, Part)
    ]


def _string_parts(annotation: Any, metadata: list[Any]) -> Iterator[list[Any]]:
    """The metadata of each ``str`` an annotation admits (``str | None``, unions)."""
    if annotation is str:
        yield metadata
    elif typing.get_origin(annotation) is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        yield from _string_parts(inner, [*metadata, *extra])
    elif isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        for arg in typing.get_args(annotation):
            yield from _string_parts(arg, metadata)


def _str_fields(model: type[BaseModel]) -> Iterator[tuple[str, list[list[Any]]]]:
    for name, field in model.model_fields.items():
        parts = list(_string_parts(field.annotation, list(field.metadata)))
        if parts:
            yield name, parts


def _bound(metadata: list[Any]) -> int | None:
    for meta in metadata:
        if isinstance(meta, MaxLen):
            return int(meta.max_length)
        max_length = getattr(meta, "max_length", None)
        if max_length is not None:
            return int(max_length)
    return None


def _max_len(model: type[BaseModel], name: str) -> int | None:
    bounds = [
        _bound(parts)
        for field, all_parts in _str_fields(model)
        if field == name
        for parts in all_parts
    ]
    return None if not bounds or None in bounds else max(b for b in bounds if b is not None)


@pytest.mark.parametrize("model", _models(), ids=lambda m: m.__name__)
def test_every_string_field_has_a_length_bound(model: type[BaseModel]) -> None:
    unbounded = [name for name, _ in _str_fields(model) if _max_len(model, name) is None]
    assert unbounded == [], f"{model.__name__}: {unbounded} take any length"


#: Message field -> the column it is stored in (publisher ledger, triage database).
STORED = [
    (PublishReply, "reply_id", Reply.__table__.c.reply_id),
    (PublishReply, "question_id", Reply.__table__.c.question_id),
    (PublishReply, "mention_id", Reply.__table__.c.mention_id),
    (PublishReply, "in_reply_to", Reply.__table__.c.in_reply_to),
    (PublishReply, "language", Reply.__table__.c.language),
    (messages.MentionReceived, "id", Question.__table__.c.mention_id),
    (messages.MentionReceived, "native_id", Question.__table__.c.native_id),
    (messages.MentionReceived, "lang", Question.__table__.c.lang),
    (messages.MentionReceived, "url", Question.__table__.c.url),
    (messages.Author, "id", Question.__table__.c.author_id),
    (messages.Author, "handle", Question.__table__.c.author_handle),
]


@pytest.mark.parametrize(("model", "name", "column"), STORED, ids=lambda x: getattr(x, "name", ""))
def test_fields_fit_their_columns(model: type[BaseModel], name: str, column: Any) -> None:
    assert isinstance(column.type, String)
    bound = _max_len(model, name)
    assert bound is not None
    assert column.type.length is not None
    assert bound <= column.type.length, f"{model.__name__}.{name}: {bound} > {column}"


def test_a_400_character_mention_id_is_refused_at_decode() -> None:
    document = json.loads(codec.encode(request_factory()))
    document["mention_id"] = "x:" + "1" * 398
    with pytest.raises(codec.DecodeError, match="mention_id"):
        codec.decode(PublishReply, json.dumps(document).encode())
