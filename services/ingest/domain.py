"""Pure decisions of ingest: what a valid incoming mention is, and how each
source's shape becomes a :class:`MentionReceived`. No I/O here."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from services.common.codec import describe_validation_error
from services.common.html_text import html_to_text
from services.common.langid import default_detector
from services.common.messages import (
    MAX_TEXT_CHARS,
    Author,
    LangSource,
    MentionReceived,
    NativeId,
    Platform,
    ShortText,
    Source,
    UtcDatetime,
    mention_id,
)

#: A mention dated further in the future than this is refused (clock skew allowance).
MAX_FUTURE_SKEW = timedelta(hours=1)

# Control characters other than tab and newline are stripped from text.
_CONTROL = {c for c in range(0x20) if c not in (0x09, 0x0A)} | {0x7F}
_STRIP_CONTROL = dict.fromkeys(_CONTROL)


class InvalidMention(ValueError):
    """An incoming item is not a usable mention; the message says why."""


class AuthorIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: NativeId
    handle: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    display_name: Annotated[str, StringConstraints(max_length=256)] | None = None
    followers: Annotated[int, Field(ge=0)] | None = None


class MentionIn(BaseModel):
    """One item of ``POST /v1/mentions`` (and one line of a replay file)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    platform: Platform
    id: NativeId
    author: AuthorIn
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
    created_at: UtcDatetime
    lang: str | None = None
    conversation_id: NativeId | None = None
    in_reply_to: NativeId | None = None
    url: Annotated[str, StringConstraints(max_length=2048)] | None = None
    matched_rules: list[ShortText] = Field(default_factory=list, max_length=50)
    #: The platform's own entities of the post (X: ``{"mentions": [{"username",
    #: "id"}]}``; Mastodon's status ``mentions`` as ``{"mentions": [{"acct", "id"}]}``).
    #: With them ingest knows who the post @mentions; without, it reads the text.
    entities: dict[str, Any] | None = None
    #: The author (handle or id) of the post this one quotes, if it quotes one.
    quoted_author: Annotated[str, StringConstraints(max_length=256)] | None = None
    #: Set by a source that knows (a Mastodon mention notification, a Bluesky
    #: mention/quote): the post summoned the campaign account.
    summoned: bool | None = None


@dataclass(frozen=True)
class CampaignAccounts:
    """The campaign's own accounts: their handles (any platform, without ``@``) and
    platform user ids. Who "summons" the campaign names one of these."""

    handles: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()

    @classmethod
    def of(cls, handles: Iterable[str] = (), ids: Iterable[str] = ()) -> CampaignAccounts:
        return cls(
            frozenset(h.strip().lstrip("@").casefold() for h in handles if h.strip().lstrip("@")),
            frozenset(i.strip() for i in ids if i.strip()),
        )

    def names(self, handle: str | None) -> bool:
        """``handle`` (``@name``, ``name@instance``, ``name.bsky.social``) is ours."""
        if not handle:
            return False
        name = handle.strip().lstrip("@").casefold()
        return name in self.handles or name.split("@")[0] in self.handles


def _mention_pattern(handles: Iterable[str]) -> re.Pattern[str] | None:
    names = sorted((re.escape(h) for h in handles), key=len, reverse=True)
    if not names:
        return None
    # @handle, @handle@instance; not an e-mail address, not a longer handle.
    return re.compile(rf"(?<![\w@])@(?:{'|'.join(names)})(?![\w])", re.IGNORECASE)


def summoned(item: MentionIn, accounts: CampaignAccounts) -> bool | None:
    """Did the post summon the campaign account (X's rule for replies)? From the
    platform's entities when the item has them, else from the text; a quote of
    one of the account's posts summons it too. ``None`` when nothing can tell
    (no entities, no configured handle)."""
    if item.summoned is not None:
        return item.summoned
    if accounts.names(item.quoted_author) or (item.quoted_author or "") in accounts.ids:
        return True
    mentions = (item.entities or {}).get("mentions")
    if isinstance(mentions, list):
        for entity in mentions:
            if not isinstance(entity, dict):
                continue
            names = [entity.get(key) for key in ("acct", "username", "handle")]
            if any(isinstance(n, str) and accounts.names(n) for n in names) or (
                entity.get("id") and str(entity["id"]) in accounts.ids
            ):
                return True
        return False
    pattern = _mention_pattern(accounts.handles)
    if pattern is None:
        return None
    return pattern.search(item.text) is not None


def clean_text(text: str) -> str:
    """NFC-normalise, drop control characters, trim. Never changes meaning."""
    return unicodedata.normalize("NFC", text).translate(_STRIP_CONTROL).strip()


def parse_item(raw: Any) -> MentionIn:
    """Validate one webhook/replay item; raise :class:`InvalidMention` with the reason."""
    if not isinstance(raw, dict):
        raise InvalidMention(f"item must be a JSON object, got {type(raw).__name__}")
    try:
        return MentionIn.model_validate(raw)
    except ValidationError as exc:
        raise InvalidMention(describe_validation_error(exc)) from exc


def to_mention(
    item: MentionIn,
    *,
    source: Source,
    received_at: datetime,
    accounts: CampaignAccounts | None = None,
) -> MentionReceived:
    """Normalise a validated item into the ``mentions.raw`` contract; ``accounts``
    (the campaign's) decide whether it summoned the campaign."""
    text = clean_text(item.text)
    if not text:
        raise InvalidMention("text: empty after removing whitespace and control characters")
    if item.created_at > received_at + MAX_FUTURE_SKEW:
        raise InvalidMention("created_at: in the future")
    lang = (item.lang or "").strip().lower() or None
    if lang in ("und", "zxx", "qme", "qht"):  # X's "undetermined"/"no linguistic content" codes
        lang = None
    # The platform's own tag is kept; without one, ingest detects (or leaves it undetermined).
    lang_source = LangSource.PLATFORM if lang else None
    if lang is None and (lang := default_detector().detect(text)):
        lang_source = LangSource.DETECTED
    url = item.url if item.url and item.url.startswith(("https://", "http://")) else None
    try:
        return MentionReceived(
            id=mention_id(item.platform, item.id),
            platform=item.platform,
            native_id=item.id,
            author=Author(
                id=item.author.id,
                handle=item.author.handle.lstrip("@"),
                display_name=item.author.display_name,
                followers=item.author.followers,
            ),
            text=text,
            lang=lang,
            lang_source=lang_source,
            created_at=item.created_at,
            conversation_id=item.conversation_id,
            in_reply_to=item.in_reply_to,
            url=url,
            matched_rules=tuple(dict.fromkeys(item.matched_rules)),
            source=source,
            received_at=received_at,
            summoned=summoned(item, accounts or CampaignAccounts()),
        )
    except ValidationError as exc:
        raise InvalidMention(describe_validation_error(exc)) from exc


# --- X API v2 ----------------------------------------------------------------


def x_payload_to_item(payload: Any) -> MentionIn:
    """Map one X API v2 filtered-stream object (``data`` / ``includes`` /
    ``matching_rules``) to an item. The author comes from ``includes.users``
    (``expansions=author_id``)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
        raise InvalidMention("X stream object has no 'data' object")
    tweet: dict[str, Any] = payload["data"]
    includes = _object(payload.get("includes"))
    found = includes.get("users")
    users: list[Any] = found if isinstance(found, list) else []
    author_id = tweet.get("author_id")
    user = next((u for u in users if isinstance(u, dict) and u.get("id") == author_id), None)
    if user is None:
        raise InvalidMention(
            "X stream object: author not in includes.users (expansions=author_id?)"
        )
    references = tweet.get("referenced_tweets")
    replied_to = next(
        (
            ref.get("id")
            for ref in (references if isinstance(references, list) else [])
            if isinstance(ref, dict) and ref.get("type") == "replied_to"
        ),
        None,
    )
    quoted_id = next(
        (
            ref.get("id")
            for ref in (references if isinstance(references, list) else [])
            if isinstance(ref, dict) and ref.get("type") == "quoted"
        ),
        None,
    )
    metrics = _object(user.get("public_metrics"))
    username = user.get("username") if isinstance(user.get("username"), str) else None
    # A long post (over 280 characters) comes whole only in ``note_tweet``.
    note = _object(tweet.get("note_tweet"))
    text = note.get("text") if isinstance(note.get("text"), str) else tweet.get("text")
    entities = note.get("entities") if isinstance(note.get("entities"), dict) else None
    if entities is None and isinstance(tweet.get("entities"), dict):
        entities = tweet["entities"]
    matching = payload.get("matching_rules")
    rules = [
        str(rule.get("tag") or rule.get("id"))
        for rule in (matching if isinstance(matching, list) else [])
        if isinstance(rule, dict) and (rule.get("tag") or rule.get("id"))
    ]
    item = {
        "platform": Platform.X.value,
        "id": tweet.get("id"),
        "author": {
            "id": author_id,
            "handle": username,
            "display_name": user.get("name"),
            "followers": metrics.get("followers_count"),
        },
        # X escapes &, < and > in tweet text.
        "text": html.unescape(text) if isinstance(text, str) else None,
        "created_at": tweet.get("created_at"),
        "lang": tweet.get("lang"),
        "conversation_id": tweet.get("conversation_id"),
        "in_reply_to": replied_to,
        "url": f"https://x.com/{username}/status/{tweet.get('id')}" if username else None,
        "matched_rules": rules,
        "entities": {"mentions": _x_mentions(entities)} if entities is not None else None,
        "quoted_author": _quoted_author(includes, users, quoted_id),
    }
    return parse_item(item)


def _x_mentions(entities: dict[str, Any]) -> list[dict[str, str]]:
    """X's ``entities.mentions`` (only ``username`` and ``id`` are kept)."""
    found = entities.get("mentions")
    return [
        {k: str(m[k]) for k in ("username", "id") if isinstance(m.get(k), str | int)}
        for m in (found if isinstance(found, list) else [])
        if isinstance(m, dict)
    ]


def _quoted_author(includes: dict[str, Any], users: list[Any], quoted_id: Any) -> str | None:
    """Username (else id) of the author of the quoted post, from ``includes.tweets``
    (``expansions=referenced_tweets.id``) and ``includes.users``
    (``referenced_tweets.id.author_id``)."""
    if quoted_id is None:
        return None
    tweets = includes.get("tweets")
    quoted = next(
        (
            t
            for t in (tweets if isinstance(tweets, list) else [])
            if isinstance(t, dict) and t.get("id") == quoted_id
        ),
        None,
    )
    author_id = quoted.get("author_id") if quoted is not None else None
    if not isinstance(author_id, str):
        return None
    user = next((u for u in users if isinstance(u, dict) and u.get("id") == author_id), None)
    username = user.get("username") if user is not None else None
    return username if isinstance(username, str) else author_id


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# --- Mastodon statuses (pure) -----------------------------------------------------------


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def status_to_item(status: dict[str, Any], *, rules: Sequence[str] = ()) -> MentionIn:
    """Map a Mastodon Status entity to an ingest item; raise InvalidMention.

    A boost (``reblog`` set) carries no text of its own: the question is the
    boosted status, asked by its author, and the answer belongs under it. So a
    boost maps to the boosted status (its id, author, text and URL); a boost
    and the original then share one mention id and the sink keeps one.
    """
    if not isinstance(status, dict):
        raise InvalidMention(f"status must be a JSON object, got {type(status).__name__}")
    reblog = status.get("reblog")
    if reblog is not None:
        if not isinstance(reblog, dict):
            raise InvalidMention("status.reblog must be a Status object or null")
        status = reblog
    account = status.get("account")
    if not isinstance(account, dict):
        raise InvalidMention("status has no 'account' object")
    content = status.get("content")
    if not isinstance(content, str):
        raise InvalidMention("status has no 'content' string")
    text = html_to_text(content)
    spoiler = status.get("spoiler_text")
    if isinstance(spoiler, str) and spoiler.strip():
        text = f"{spoiler.strip()}\n\n{text}" if text else spoiler.strip()
    display_name = account.get("display_name")
    followers = account.get("followers_count")
    url = _str_or_none(status.get("url")) or _str_or_none(status.get("uri"))
    item: dict[str, Any] = {
        "platform": Platform.MASTODON.value,
        "id": status.get("id"),
        "author": {
            "id": account.get("id"),
            "handle": account.get("acct"),
            # Remote servers may allow longer names than the contract keeps.
            "display_name": display_name[:256] if isinstance(display_name, str) else None,
            # Some servers hide the count as -1.
            "followers": followers
            if isinstance(followers, int) and not isinstance(followers, bool) and followers >= 0
            else None,
        },
        "text": text[:MAX_TEXT_CHARS],
        "created_at": status.get("created_at"),
        "lang": _str_or_none(status.get("language")),
        "in_reply_to": _str_or_none(status.get("in_reply_to_id")),
        "url": url if url and len(url) <= 2048 else None,
        "matched_rules": list(dict.fromkeys(rules)),
        "entities": {"mentions": _mastodon_mentions(status.get("mentions"))},
    }
    return parse_item(item)


def _mastodon_mentions(mentions: Any) -> list[dict[str, str]]:
    """A status's ``mentions`` (``acct``, ``username``, ``id``) as entities."""
    return [
        {k: m[k] for k in ("acct", "username", "id") if isinstance(m.get(k), str)}
        for m in (mentions if isinstance(mentions, list) else [])
        if isinstance(m, dict)
    ]


# --- Bluesky notifications (pure) ---------------------------------------------------

#: Notification reasons that carry a post addressed to the campaign account.
BLUESKY_REASONS = frozenset({"mention", "reply", "quote"})


def bluesky_to_item(notification: dict[str, Any]) -> MentionIn:
    """Map one ``app.bsky.notification.listNotifications`` entry (a mention, a reply
    to one of the account's posts, or a quote of one) to an item; the account was
    summoned by it."""
    if not isinstance(notification, dict):
        raise InvalidMention("notification must be a JSON object")
    record = _object(notification.get("record"))
    author = _object(notification.get("author"))
    handle = author.get("handle")
    uri = notification.get("uri")
    parent = _object(_object(record.get("reply")).get("parent")).get("uri")
    langs = record.get("langs")
    rkey = uri.rsplit("/", 1)[-1] if isinstance(uri, str) else ""
    item = {
        "platform": Platform.BLUESKY.value,
        "id": uri,
        "author": {
            "id": author.get("did"),
            "handle": handle,
            "display_name": (author.get("displayName") or None),
        },
        "text": record.get("text") if isinstance(record.get("text"), str) else None,
        "created_at": record.get("createdAt") or notification.get("indexedAt"),
        "lang": langs[0]
        if isinstance(langs, list) and langs and isinstance(langs[0], str)
        else None,
        "in_reply_to": parent if isinstance(parent, str) else None,
        "url": f"https://bsky.app/profile/{handle}/post/{rkey}" if handle and rkey else None,
        "matched_rules": [f"bluesky:{notification.get('reason')}"],
        "summoned": notification.get("reason") in BLUESKY_REASONS,
    }
    return parse_item(item)
