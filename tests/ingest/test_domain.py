from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.common.messages import LangSource, Source
from services.ingest.domain import (
    CampaignAccounts,
    InvalidMention,
    clean_text,
    parse_item,
    status_to_item,
    to_mention,
    x_payload_to_item,
)

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


def test_undetermined_language_is_detected_or_stays_none() -> None:
    mention = to_mention(x_payload_to_item(_x(lang="und")), source=Source.X_STREAM, received_at=NOW)
    assert (mention.lang, mention.lang_source) == ("en", LangSource.DETECTED)
    short = _x(lang="und", text="@TakeActionCamps ok 👍")
    mention = to_mention(x_payload_to_item(short), source=Source.X_STREAM, received_at=NOW)
    assert (mention.lang, mention.lang_source) == (None, None)


def test_the_platforms_language_tag_is_kept_over_detection() -> None:
    # Detection would say German; the platform said Swiss German, and that is kept.
    tweet = _x(lang="de-CH", text="Wann öffnet die Schule im Lager wieder für die Kinder")
    mention = to_mention(x_payload_to_item(tweet), source=Source.X_STREAM, received_at=NOW)
    assert (mention.lang, mention.lang_source) == ("de-ch", LangSource.PLATFORM)


def test_a_mention_without_a_tag_gets_its_detected_language() -> None:
    tweet = _x(lang=None, text="@TakeActionCamps متى سيتم فتح المدرسة في المخيم مرة أخرى")
    mention = to_mention(x_payload_to_item(tweet), source=Source.X_STREAM, received_at=NOW)
    assert (mention.lang, mention.lang_source) == ("ar", LangSource.DETECTED)


def test_clean_text_keeps_meaning() -> None:
    assert (
        clean_text(" Hujambo\u0000 rafiki!\n Unaendeleaje? ") == "Hujambo rafiki!\n Unaendeleaje?"
    )


# --- summoned: X lets an app reply only to a post that @mentions or quotes it ---------

CAMPAIGN = CampaignAccounts.of(["TakeActionCamps"], ["42"])


def _summoned(payload: dict[str, Any], accounts: CampaignAccounts = CAMPAIGN) -> bool | None:
    item = x_payload_to_item(payload)
    return to_mention(item, source=Source.X_STREAM, received_at=NOW, accounts=accounts).summoned


def test_x_entities_decide_summoned_not_the_text() -> None:
    mentioned = _x(entities={"mentions": [{"start": 0, "end": 16, "username": "TakeActionCamps"}]})
    assert _summoned(mentioned) is True
    by_id = _x(entities={"mentions": [{"username": "renamed", "id": "42"}]})
    assert _summoned(by_id) is True
    # The handle is in the text (a quoted screenshot, say) but X's entities name nobody of ours.
    other = _x(entities={"mentions": [{"username": "someone_else", "id": "7"}]})
    assert _summoned(other) is False
    hashtag_only = _x(text="what is school like? #AskRefugees", entities={"hashtags": []})
    assert _summoned(hashtag_only) is False


def test_x_quote_of_a_campaign_post_summons_it() -> None:
    payload = _x(
        text="what about the school? #AskRefugees",
        entities={"hashtags": [{"tag": "AskRefugees"}]},
        referenced_tweets=[{"type": "quoted", "id": "1700"}],
    )
    payload["includes"]["tweets"] = [{"id": "1700", "author_id": "42", "text": "ours"}]
    payload["includes"]["users"].append({"id": "42", "username": "TakeActionCamps"})
    assert _summoned(payload) is True
    payload["includes"]["tweets"][0]["author_id"] = "9"  # quoting someone else
    assert _summoned(payload) is False


def test_x_long_post_comes_whole_from_note_tweet() -> None:
    long_text = "@TakeActionCamps " + "why " * 100 + "?"
    payload = _x(
        text=long_text[:270] + "…",
        note_tweet={
            "text": long_text,
            "entities": {"mentions": [{"username": "TakeActionCamps", "id": "42"}]},
        },
    )
    item = x_payload_to_item(payload)
    assert item.text == long_text.strip()
    assert _summoned(payload) is True


def test_without_entities_the_text_decides_against_the_campaign_handles() -> None:
    def summoned(text: str, accounts: CampaignAccounts = CAMPAIGN) -> bool | None:
        item = parse_item(
            {
                "platform": "x",
                "id": "1",
                "author": {"id": "9", "handle": "ann"},
                "text": text,
                "created_at": "2026-11-23T10:00:00Z",
            }
        )
        mention = to_mention(item, source=Source.WEBHOOK, received_at=NOW, accounts=accounts)
        return mention.summoned

    assert summoned("@takeactioncamps is school free?") is True
    assert summoned("is school free? cc @TakeActionCamps@mastodon.social") is True
    assert summoned("is school free? #TakeActionCamps") is False
    assert summoned("mail me: me@TakeActionCamps.org") is False
    assert summoned("@TakeActionCampsFans is school free?") is False
    # No campaign handle configured and no entities: nobody can tell.
    assert summoned("@TakeActionCamps hi", CampaignAccounts()) is None


def test_webhook_item_may_carry_the_platforms_entities() -> None:
    item = parse_item(
        {
            "platform": "x",
            "id": "2",
            "author": {"id": "9", "handle": "ann"},
            "text": "school? #AskRefugees",
            "created_at": "2026-11-23T10:00:00Z",
            "entities": {"mentions": [{"username": "TakeActionCamps"}]},
        }
    )
    mention = to_mention(item, source=Source.WEBHOOK, received_at=NOW, accounts=CAMPAIGN)
    assert mention.summoned is True


def test_mastodon_status_mentions_are_its_entities() -> None:
    status = {
        "id": "110",
        "created_at": "2026-11-23T10:00:00Z",
        "visibility": "public",
        "content": "<p>school? #AskRefugees</p>",
        "account": {"id": "5", "acct": "ann@example.org"},
        "mentions": [{"id": "77", "acct": "TakeActionCamps@camps.social", "username": "x"}],
    }
    item = status_to_item(status)
    mention = to_mention(item, source=Source.MASTODON, received_at=NOW, accounts=CAMPAIGN)
    assert mention.summoned is True
    item = status_to_item({**status, "mentions": []})
    mention = to_mention(item, source=Source.MASTODON, received_at=NOW, accounts=CAMPAIGN)
    assert mention.summoned is False
