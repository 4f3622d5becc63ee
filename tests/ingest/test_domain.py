from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.common.messages import Source
from services.ingest.domain import InvalidMention, clean_text, to_mention, x_payload_to_item

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _x(**tweet: Any) -> dict[str, Any]:
    data = {
        "id": "1851",
        "text": "@TakeActionCamps what is school like in Kakuma? &amp; do you play football?",
        "author_id": "9",
        "created_at": "2026-11-23T10:00:00.000Z",
        "lang": "en",
        "conversation_id": "1851",
        **tweet,
    }
    return {
        "data": data,
        "includes": {
            "users": [
                {
                    "id": "9",
                    "name": "Ann",
                    "username": "ann",
                    "public_metrics": {"followers_count": 12},
                }
            ]
        },
        "matching_rules": [{"id": "7", "tag": "campaign"}],
    }


def test_x_payload_maps_every_field() -> None:
    mention = to_mention(
        x_payload_to_item(_x(referenced_tweets=[{"type": "replied_to", "id": "1700"}])),
        source=Source.X_STREAM,
        received_at=NOW,
    )
    assert mention.id == "x:1851"
    assert mention.text.endswith("& do you play football?")
    assert mention.author.handle == "ann"
    assert mention.author.followers == 12
    assert mention.in_reply_to == "1700"
    assert mention.url == "https://x.com/ann/status/1851"
    assert mention.matched_rules == ("campaign",)


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        {"data": "x"},
        {"data": {"id": "1", "author_id": "9"}, "includes": "nope"},
        {"data": {"id": "1", "author_id": "9"}, "includes": {"users": "nope"}},
        {"data": {"id": "1", "author_id": "9"}, "includes": {"users": [{"id": "8"}]}},
    ],
)
def test_x_payload_oddities_are_invalid_mentions(payload: Any) -> None:
    with pytest.raises(InvalidMention):
        x_payload_to_item(payload)


def test_x_payload_tolerates_odd_optional_parts() -> None:
    payload = _x(referenced_tweets="weird")
    payload["includes"]["users"][0]["public_metrics"] = "n/a"
    payload["matching_rules"] = {"not": "a list"}
    item = x_payload_to_item(payload)
    assert item.author.followers is None
    assert item.matched_rules == []
    assert item.in_reply_to is None


def test_undetermined_language_becomes_none() -> None:
    mention = to_mention(x_payload_to_item(_x(lang="und")), source=Source.X_STREAM, received_at=NOW)
    assert mention.lang is None


def test_clean_text_keeps_meaning() -> None:
    assert (
        clean_text(" Hujambo\u0000 rafiki!\n Unaendeleaje? ") == "Hujambo rafiki!\n Unaendeleaje?"
    )
