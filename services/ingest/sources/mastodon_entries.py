"""Mastodon source: reading what a feed carries (pure, no I/O).

A feed's *entries* are Statuses (hashtag feeds) or Notifications (the mention
feed), from the stream or a REST page. Here: the order of their ids, their
dates, the status a notification or a boost stands for, the rules a mention
records (``mastodon:hashtag:<tag>``, ``mastodon:mention``), and the bytes a bad
entry is dead-lettered with. :mod:`services.ingest.sources.mastodon` follows
the feeds and turns these into mentions.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any

from services.ingest.domain import InvalidMention

#: Rule recorded on mentions heard through the campaign account's notifications.
MENTION_RULE = "mastodon:mention"


def hashtag_rule(tag: str) -> str:
    """The rule recorded on mentions heard through a followed hashtag."""
    return f"mastodon:hashtag:{tag}"


def normalise_tag(tag: str) -> str:
    """Hashtags are case-insensitive on Mastodon; followed without the ``#``."""
    return tag.strip().lstrip("#").strip().lower()


def id_key(native_id: str) -> tuple[int, int, str]:
    """Sort key of Mastodon ids: numeric strings by value, anything else as text."""
    if native_id.isascii() and native_id.isdigit():
        return (0, int(native_id), "")
    return (1, 0, native_id)


def newest_id(*ids: str | None) -> str | None:
    present = [i for i in ids if i]
    return max(present, key=id_key) if present else None


def entry_id(entry: Any) -> str | None:
    value = entry.get("id") if isinstance(entry, dict) else None
    return value if isinstance(value, str) and value else None


def entry_key(entry: Any) -> tuple[int, int, str]:
    native_id = entry_id(entry)
    return id_key(native_id) if native_id is not None else (-1, 0, "")


def entry_created_at(entry: Any) -> datetime | None:
    value = entry.get("created_at") if isinstance(entry, dict) else None
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def dump_entry(entry: Any) -> bytes:
    return json.dumps(entry, ensure_ascii=False, default=str).encode()


def status_of(entry: Any, *, notification: bool) -> dict[str, Any] | None:
    """The status an entry carries: the entry itself on a hashtag feed; on the
    mention feed the notification's status, None for other notification types."""
    if not isinstance(entry, dict):
        raise InvalidMention(f"expected a JSON object, got {type(entry).__name__}")
    if not notification:
        return entry
    if entry.get("type") != "mention":
        return None
    status = entry.get("status")
    if not isinstance(status, dict):
        raise InvalidMention("mention notification without a 'status' object")
    return status


def shown_status(status: dict[str, Any]) -> dict[str, Any]:
    """The status a reader sees: the boosted one for a boost."""
    reblog = status.get("reblog")
    return reblog if isinstance(reblog, dict) else status


def matched_rules(
    status: dict[str, Any],
    feed_rule: str,
    followed_tags: Collection[str],
    own_account_id: str | None,
) -> list[str]:
    """The feed's rule, plus every other followed hashtag and the account mention it carries."""
    shown = shown_status(status)
    rules = [feed_rule]
    status_tags = shown.get("tags")
    for tag in status_tags if isinstance(status_tags, list) else []:
        raw_name = tag.get("name") if isinstance(tag, dict) else None
        name = normalise_tag(raw_name) if isinstance(raw_name, str) else ""
        if name in followed_tags:
            rules.append(hashtag_rule(name))
    mentions = shown.get("mentions")
    if (
        own_account_id
        and isinstance(mentions, list)
        and any(isinstance(m, dict) and m.get("id") == own_account_id for m in mentions)
    ):
        rules.append(MENTION_RULE)
    return rules
