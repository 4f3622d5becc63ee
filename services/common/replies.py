"""A reply's text as the publisher posts it: the per-language templates
(``reply_templates.yaml``) and the pure rendering, shared by the publisher (which
posts it) and the triage web (whose approval dialog shows it, per recipient, before
anything is sent).

The publisher picks one template per answer (:func:`answer_key`), plain first; it
addresses a reply to its asker, or takes another template, only when the plain text
would repeat the account's previous reply or a recent one still up (its ledger
knows; :func:`first_choice` is what it posts otherwise).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import string
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from linkify_it import LinkifyIt
from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from services.common.messages import Platform, PublishReply

DEFAULT_TEMPLATES = Path(__file__).resolve().parent / "reply_templates.yaml"


class Template(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    text: str = Field(min_length=1, max_length=1000)

    @field_validator("text")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        if "text" not in names:
            raise ValueError("a template must contain {text}")
        unknown = names - {"text", "handle"}
        if unknown:
            raise ValueError(f"unknown placeholders {sorted(unknown)}; use {{text}}, {{handle}}")
        return value


class _TemplateFile(RootModel[dict[str, tuple[Template, ...]]]):
    pass


@dataclass(frozen=True)
class Templates:
    """Reply templates per language (lower-case ISO 639 code)."""

    by_language: Mapping[str, tuple[Template, ...]]

    @classmethod
    def load(cls, path: Path | None = None) -> Templates:
        """Read and check a templates file (the shipped one when ``path`` is None)."""
        raw = yaml.safe_load((path or DEFAULT_TEMPLATES).read_text(encoding="utf-8"))
        parsed = _TemplateFile.model_validate(raw).root
        empty = [lang for lang, items in parsed.items() if not items]
        if empty:
            raise ValueError(f"no templates for {', '.join(empty)}")
        ids = [t.id for items in parsed.values() for t in items]
        if len(ids) != len(set(ids)):
            raise ValueError("template ids must be unique")
        return cls({lang.lower(): items for lang, items in parsed.items()})

    def for_language(self, language: str | None, default: str) -> tuple[Template, ...]:
        primary = (language or "").replace("_", "-").split("-")[0].lower()
        found = self.by_language.get(primary) or self.by_language.get(default.lower())
        if not found:
            raise LookupError(f"no templates for {primary or '(none)'} nor for {default}")
        return found


@dataclass(frozen=True)
class Recipient:
    """What rendering needs to know of one reply (a :class:`PublishReply` is one)."""

    text: str
    language: str | None
    platform: Platform
    handle: str
    standalone: bool = False

    @classmethod
    def of(cls, request: PublishReply) -> Recipient:
        return cls(
            request.text,
            request.language,
            request.platform,
            request.author.handle,
            request.standalone,
        )


#: The longest post each platform takes: X in its weighted characters
#: (:func:`x_length`), Bluesky in graphemes and Mastodon in characters (both
#: counted here as code points, never fewer; Mastodon's default instance limit).
MAX_LENGTH: dict[Platform, int] = {Platform.X: 280, Platform.BLUESKY: 300, Platform.MASTODON: 500}

#: Code points X counts once; every other counts twice (twitter-text's v3 weights:
#: Latin, Greek, Cyrillic, Arabic, Hebrew, Devanagari... once; CJK and emoji twice).
_X_LIGHT = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
#: What X counts for a link, whatever its length (t.co).
_X_LINK_LENGTH = 23


def x_length(text: str) -> int:
    """A post's length as X counts it against its 280: NFC, a link 23, a code point
    in a light range 1, any other 2 (an emoji sequence X counts as 2 counts more
    here: never less than X)."""
    text = unicodedata.normalize("NFC", text)
    length, at = 0, 0
    for start, end in [*x_links(text), (len(text), len(text))]:
        length += sum(
            1 if any(low <= ord(c) <= high for low, high in _X_LIGHT) else 2 for c in text[at:start]
        )
        length += _X_LINK_LENGTH if end > start else 0
        at = end
    return length


def post_length(platform: Platform, text: str) -> int:
    """``text``'s length as ``platform`` counts it against :data:`MAX_LENGTH`."""
    return x_length(text) if platform is Platform.X else len(text)


def render(
    template: Template,
    request: PublishReply | Recipient,
    *,
    address: bool = False,
    allow_urls: bool = False,
) -> str:
    """``template`` filled in; on Mastodon (always) or when ``address``, it starts
    with the asker's ``@handle`` unless the template names them already.

    On X a reply never starts with an ``@handle`` (X restricts programmatic
    mentions; the reply is threaded under the asker's post anyway): addressed,
    it ends with the asker's name instead, and links are taken out unless
    ``allow_urls`` (a post with a URL costs 20 times more).

    A reply longer than its platform takes (:data:`MAX_LENGTH`) has the answer's
    text cut short, at a word where it can, with an ellipsis: the platform would
    refuse it whole, and the video carries the answer."""
    reply = request if isinstance(request, Recipient) else Recipient.of(request)
    text = _filled(template, reply, address=address, allow_urls=allow_urls)
    limit = MAX_LENGTH[reply.platform]
    if post_length(reply.platform, text) <= limit:
        return text
    words = reply.text
    for end in range(len(words) - 1, 0, -1):
        cut = words[:end]
        if end < len(words) and not words[end].isspace() and " " in cut:
            continue  # not in the middle of a word while a space is left to cut at
        shorter = dataclasses.replace(reply, text=cut.rstrip(" ,;:-") + "…")
        text = _filled(template, shorter, address=address, allow_urls=allow_urls)
        if post_length(reply.platform, text) <= limit:
            return text
    return text  # the template alone is too long: the platform says so


def _filled(template: Template, reply: Recipient, *, address: bool, allow_urls: bool) -> str:
    text = template.text.format(text=reply.text, handle=reply.handle)
    if reply.platform is Platform.X:
        named = reply.handle if address else None
        return x_text(text, named, allow_urls=allow_urls)
    addressed = (address or reply.platform is Platform.MASTODON) and not reply.standalone
    if addressed and "{handle}" not in template.text:
        text = f"@{reply.handle} {text}"  # how the asker is told on Mastodon
    return text


_LEADING_MENTIONS = re.compile(r"^(?:\s*@[\w.\-]+(?:@[\w.\-]+)?[,:;]?)+\s*")


_LINKIFY = threading.local()


def x_links(text: str) -> list[tuple[int, int]]:
    """Where X makes a link of ``text`` (start, end): a URL with a scheme, or a bare
    domain of a known top-level domain (``unhcr.org/kenya``, ``www.amnesty.org``,
    ``kakuma.ke``), not ``Node.js`` nor ``e.g.``; a sentence's last mark is not part
    of it, and an e-mail address is not a link. Found by linkify-it, whose fuzzy
    links follow much the rules of X's twitter-text (a known top-level domain, a
    valid boundary before and after); a link it sees that X would not (a scheme
    before a made-up domain) is taken out and billed as a link all the same."""
    linkify = getattr(_LINKIFY, "linkify", None)
    if linkify is None:  # it keeps per-match state: one per thread
        linkify = _LINKIFY.linkify = LinkifyIt()
    return [
        (match.index, match.last_index)
        for match in linkify.match(text) or ()
        if match.schema != "mailto:"
    ]


def without_x_links(text: str) -> str:
    """``text`` less every link X would make, with the space before each."""
    kept: list[str] = []
    at = 0
    for start, end in x_links(text):
        kept.append(text[at:start].rstrip())
        at = end
    kept.append(text[at:])
    return "".join(kept)


def x_text(text: str, handle: str | None = None, *, allow_urls: bool = False) -> str:
    """An X reply's text: no leading ``@handle``, no link unless ``allow_urls`` (a
    bare domain is a link on X too); ``handle`` (the asker, without ``@``) is named
    at the end when given."""
    if not allow_urls:
        text = without_x_links(text)
    text = _LEADING_MENTIONS.sub("", text).strip()
    if handle and handle.lower() not in text.lower():
        text = f"{text} ({handle.lstrip('@')})"
    return text


def answer_key(request: PublishReply | Recipient) -> str:
    """What every reply of one answer shares (its approved text, in its language): the
    template is chosen by it, so every asker of a cluster, on every platform, gets the
    same wrapping of the text the moderator approved."""
    return f"{(request.language or '').lower()}\n{request.text}"


def ordered(
    request: PublishReply | Recipient, templates: Templates, default_language: str
) -> list[Template]:
    """The templates of the reply's language, the answer's own first (then the others
    in the file's order, wrapping round)."""
    candidates = templates.for_language(request.language, default_language)
    digest = hashlib.sha256(answer_key(request).encode()).digest()[:8]
    start = int.from_bytes(digest, "big") % len(candidates)
    return [candidates[(start + i) % len(candidates)] for i in range(len(candidates))]


def first_choice(
    request: PublishReply | Recipient,
    templates: Templates,
    default_language: str,
    *,
    allow_urls: bool = False,
) -> tuple[str, str]:
    """(text, template id) the publisher posts unless that text would repeat the
    account's previous reply or a recent one still up: the answer's template, plain."""
    template = ordered(request, templates, default_language)[0]
    return render(template, request, allow_urls=allow_urls), template.id
