"""Deterministic, entirely fictional campaign mentions for ``make run`` and the tests.

``python -m services.devstack.demo.generate [--count N] [--seed S] [--out PATH]``

Every handle, name, id and link is invented (links use ``.example`` domains or
made-up ``t.co`` codes); nothing comes from a real account. The same count and
seed always give the same bytes: times are relative to a fixed base date
(:data:`BASE`), never to the clock, and one seeded ``random.Random`` drives all
choices. The committed ``mentions.jsonl`` is ``--count 1000`` with the default seed.
The category mix is in the devstack README.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final, TypeVar

from services.devstack.demo.material import (
    ABUSE,
    ABUSE_LANGS,
    COPY_PASTE,
    EN_PREFIXES,
    FOLLOW_UPS,
    GREETINGS,
    QUESTION_LANGS,
    QUESTIONS_EN,
    QUESTIONS_OTHER,
    REPLIES_TO_CAMPAIGN,
    REPLIES_TO_OTHERS,
    REWORDINGS,
    SPAM,
    SUFFIXES,
    SUPPORT,
    SUPPORT_LANGS,
)

T = TypeVar("T")

#: Everything happens in the three days before this instant.
BASE: Final = datetime(2026, 11, 20, tzinfo=UTC)
SPAN: Final = timedelta(days=3)
DEFAULT_SEED: Final = 20261120
DEFAULT_COUNT: Final = 1000
DEFAULT_OUT: Final = Path(__file__).resolve().parent / "mentions.jsonl"

CAMPAIGN_HANDLE: Final = "TakeActionCamps"
CAMPAIGN_INSTANCE: Final = "mastodon.example"
HASHTAGS: Final = ("#TakeAction", "#IWelcome")

CATEGORY_SHARES: Final[dict[str, float]] = {
    "question": 0.49,
    "near_duplicate": 0.08,
    "reply": 0.05,
    "support": 0.12,
    "spam": 0.08,
    "abuse": 0.09,
    "retweet": 0.06,
    "duplicate": 0.03,
}
#: Share of mentions posted on X (the rest on Mastodon); retweets are always X.
X_SHARE: Final = 0.65
#: Share of X mentions written as raw filtered-stream lines (≈10% of all lines).
X_STREAM_SHARE: Final = 0.145

#: X filtered-stream rules (ids are invented).
X_RULES: Final = {
    "campaign-handle": "1861000000000000001",
    "hashtag-takeaction": "1861000000000000002",
    "hashtag-iwelcome": "1861000000000000003",
}
#: Campaign posts (not in the file) that people reply to: platform → ids.
CAMPAIGN_POSTS: Final = {
    "x": ("1858811234567890001", "1859172345678900002", "1859533456789000003"),
    "mastodon": ("113529876543210001", "113541234567890002"),
}
_TWITTER_EPOCH_MS: Final = 1_288_834_974_657

CAMPS: Final = ("Kakuma", "Dadaab", "Kalobeyei")
CAMPS_AR: Final = {"Kakuma": "كاكوما", "Dadaab": "داداب", "Kalobeyei": "كالوبيي"}
#: Fictional young people the campaign has introduced (first names only).
REFUGEES: Final = (
    "Amani", "Halima", "Deng", "Nyakim", "Abdi", "Fartun", "Esperance", "Jean-Paul",
    "Achol", "Ibrahim", "Ruth", "Khadija", "Mustafa", "Grace", "Bol", "Hodan",
)  # fmt: skip
CITIES: Final = (
    "Manchester", "Leeds", "Glasgow", "Cork", "Dublin", "Lyon", "Madrid", "Berlin",
    "Toronto", "Chicago", "Melbourne", "Oslo", "Nairobi", "Mombasa", "Utrecht", "Porto",
)  # fmt: skip
COUNTRIES: Final = ("the UK", "Ireland", "Canada", "the US", "Australia", "Europe", "Kenya")
FIRST_NAMES: Final = (
    "maria", "jonas", "amina", "liam", "sofia", "noah", "chloe", "mateo", "fatima", "oliver",
    "ines", "lukas", "wanjiru", "kofi", "ella", "hugo", "priya", "sam", "leila", "tom",
    "aoife", "emre", "nadia", "ben", "lucia", "jakob", "zara", "finn", "mercy", "omar",
    "hannah", "diego", "rosa", "ali", "megan", "pablo", "ingrid", "kwame", "lena", "yusuf",
)  # fmt: skip
LAST_NAMES: Final = (
    "walsh", "weber", "moreau", "garcia", "okoro", "lindqvist", "brennan", "rossi", "kamau",
    "nguyen", "schulz", "dubois", "murphy", "haddad", "otieno", "fischer", "costa", "byrne",
)  # fmt: skip
INSTANCES: Final = (
    CAMPAIGN_INSTANCE, "fediverse.example.org", "toot.example.net", "social.example.eu",
    "mstdn.example.ca", "kind.example.social",
)  # fmt: skip
TEACHERS: Final = ("Ms Okafor's Year 5", "Mr Lindqvist's Grade 6", "Mrs Byrne's 4th class")

# --- model ---------------------------------------------------------------------


@dataclass
class Persona:
    platform: str
    id: str
    handle: str  # X username, or Mastodon acct ("user" or "user@instance")
    display_name: str | None
    followers: int
    following: int
    posts: int
    instance: str | None = None

    @property
    def url_user(self) -> str:
        return self.handle.split("@", 1)[0]


@dataclass
class DemoMention:
    """One generated mention: its category (for tests and the docs) and its line."""

    category: str
    platform: str
    id: str
    persona: Persona
    text: str
    created_at: datetime
    lang: str | None
    conversation_id: str | None = None
    in_reply_to: str | None = None
    retweet_of: str | None = None
    #: The text the stream rules matched (a retweet's original, before X cut it).
    matched_text: str | None = None
    x_stream: bool = False
    #: UTC offset (hours) the webhook writes created_at in.
    utc_offset_h: int = 0


def allocate(count: int, shares: dict[str, float]) -> dict[str, int]:
    """Split ``count`` by ``shares`` with largest-remainder rounding (sums exactly)."""
    total = sum(shares.values())
    exact = {name: count * share / total for name, share in shares.items()}
    counts = {name: math.floor(value) for name, value in exact.items()}
    by_remainder = sorted(shares, key=lambda name: (-(exact[name] - counts[name]), name))
    for name in by_remainder[: count - sum(counts.values())]:
        counts[name] += 1
    return counts


class _Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - demo data, not security
        self.used_ids: set[str] = set()
        self.personas: dict[str, list[Persona]] = {"x": [], "mastodon": []}
        self.trolls: dict[str, list[Persona]] = {"x": [], "mastodon": []}
        self.mentions: list[DemoMention] = []

    # --- building blocks ---------------------------------------------------

    def pick(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]

    def weighted(self, weights: dict[str, int]) -> str:
        return self.rng.choices(list(weights), weights=list(weights.values()))[0]

    def fill(self, template: str) -> str:
        return template.format(
            camp=self.pick(CAMPS),
            city=self.pick(CITIES),
            country=self.pick(COUNTRIES),
            name=self.pick(REFUGEES),
            teacher=self.pick(TEACHERS),
            code="".join(
                self.rng.choices("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", k=10)
            ),
        )

    def snowflake(self, platform: str, at: datetime) -> str:
        ms = int(at.timestamp() * 1000)
        while True:
            if platform == "x":
                value = ((ms - _TWITTER_EPOCH_MS) << 22) | self.rng.getrandbits(22)
            else:
                value = (ms << 16) | self.rng.getrandbits(16)
            native = str(value)
            if native not in self.used_ids:
                self.used_ids.add(native)
                return native

    def followers(self) -> int:
        """Skewed like real audiences: most accounts small, a few very large."""
        if self.rng.random() < 0.015:  # a journalist, an athlete, a public figure
            return self.rng.randint(100_000, 2_500_000)
        return min(2_500_000, int(self.rng.lognormvariate(5.2, 1.7)))

    def new_persona(self, platform: str, kind: str = "regular") -> Persona:
        rng = self.rng
        first, last = self.pick(FIRST_NAMES), self.pick(LAST_NAMES)
        if kind == "spam":
            user = self.pick(("crypto_", "earn_", "growth", "promo_", "deals4u_")) + (
                f"{first}{rng.randint(10, 9999)}"
            )
            display: str | None = self.pick(
                ("💰 Crypto Signals 💰", "Growth Hacks", "Daily Deals 🔥", f"{first.title()} 💸")
            )
            followers = rng.randint(0, 40) if rng.random() < 0.8 else rng.randint(20_000, 60_000)
        elif kind == "troll":
            user = self.pick(
                ("patriot_", "truthseeker", "nomorehandouts", "realtalk_", "wakeup")
            ) + str(rng.randint(1, 999))
            display = self.pick(("Real Talk", "Just Saying", "Taxpayer", None, "Common Sense"))
            followers = int(rng.lognormvariate(4.0, 1.4))
        else:
            style = rng.randrange(5)
            user = (
                f"{first}_{last}",
                f"{first}{rng.randint(1, 99)}",
                f"{first}{last[:1]}{rng.randint(70, 99)}",
                f"the{first}{last[:3]}",
                f"{first}writes",
            )[style]
            display = self.pick(
                (f"{first.title()} {last.title()}", f"{first.title()} {last[:1].upper()}.",
                 f"{first.title()} 🌻", f"Teacher {first.title()}", first.title())
            )  # fmt: skip
            followers = self.followers()
        user = user[:15] if platform == "x" else user[:30]
        at = BASE - timedelta(days=rng.randint(30, 4000))
        if platform == "x":
            native = (
                str(rng.randint(10**7, 10**10)) if rng.random() < 0.4 else self.snowflake("x", at)
            )
            handle, instance = user, None
        else:
            native = (
                str(rng.randint(10**4, 10**6))
                if rng.random() < 0.3
                else self.snowflake("mastodon", at)
            )
            instance = self.pick(INSTANCES)
            handle = user if instance == CAMPAIGN_INSTANCE else f"{user}@{instance}"
        return Persona(
            platform=platform,
            id=native,
            handle=handle,
            display_name=display,
            followers=followers,
            following=rng.randint(20, 3000),
            posts=rng.randint(10, 60_000),
            instance=instance,
        )

    def author(self, platform: str, *, reuse: float = 0.25, kind: str = "regular") -> Persona:
        pool = self.trolls[platform] if kind == "troll" else self.personas[platform]
        if pool and self.rng.random() < reuse:
            return self.pick(pool)
        persona = self.new_persona(platform, kind)
        if kind in ("regular", "troll"):
            pool.append(persona)
        return persona

    def platform(self) -> str:
        return "x" if self.rng.random() < X_SHARE else "mastodon"

    def typos(self, text: str) -> str:
        rng = self.rng
        if rng.random() > 0.35:
            return text
        for _ in range(rng.randint(1, 2)):
            kind = rng.randrange(7)
            if kind == 0:
                text = text.lower()
            elif kind == 1:
                text = text.replace("'", "")
            elif kind == 2:
                text = text.replace(" you ", " u ").replace("You ", "U ")
            elif kind == 3:
                text = text.replace("?", "??", 1)
            elif kind == 4:
                text = text.rstrip("?")
            elif kind == 5:
                words = text.split(" ")
                long = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
                if long:
                    i = long[rng.randrange(len(long))]
                    w = words[i]
                    j = rng.randrange(1, len(w) - 2)
                    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
                text = " ".join(words)
            else:
                text = text.replace(" your ", " ur ")
        return text

    def campaign_tag(
        self, text: str, platform: str, *, lead: float = 0.5, extra_tags: bool = True
    ) -> str:
        """Make sure the text mentions the campaign (handle and/or hashtags)."""
        rng = self.rng
        handle = f"@{CAMPAIGN_HANDLE}"
        if platform == "mastodon" and rng.random() < 0.4:
            handle = f"@{CAMPAIGN_HANDLE}@{CAMPAIGN_INSTANCE}"
        has_tag = any(tag.lower() in text.lower() for tag in HASHTAGS)
        if f"@{CAMPAIGN_HANDLE}".lower() not in text.lower():
            roll = rng.random()
            if roll < lead:
                text = f"{handle} {text}"
            elif roll < lead + 0.2 or not has_tag:
                text = f"{text} {handle}"
        if not has_tag:
            roll = rng.random()
            if roll < 0.45:
                text = f"{text} {self.pick(HASHTAGS)}"
            elif extra_tags and roll < 0.55:
                text = f"{text} #TakeAction #IWelcome #RefugeesWelcome"
        return text

    # --- categories --------------------------------------------------------

    def question(self, at: datetime) -> DemoMention:
        rng = self.rng
        platform = self.platform()
        lang = self.weighted(QUESTION_LANGS)
        if lang == "en":
            question = self.fill(self.pick(QUESTIONS_EN))
            if rng.random() < 0.18:
                name = self.pick(REFUGEES)
                form = rng.randrange(3)
                if form == 0:
                    text = f"Question for {name} in {self.pick(CAMPS)}: {question}"
                elif form == 1:
                    text = f"{name}, {question[:1].lower()}{question[1:]}"
                else:
                    text = f"Hi {name}! {question}"
            else:
                text = self.fill(self.pick(EN_PREFIXES)) + question
            text = self.typos(text) + self.pick(SUFFIXES)
        else:
            template = self.pick(QUESTIONS_OTHER[lang])
            camp = self.pick(CAMPS)
            question = template.format(camp=CAMPS_AR[camp] if lang == "ar" else camp)
            text = self.pick(GREETINGS[lang]) + question
            if rng.random() < 0.3:
                text += self.pick((" 🙏", " ❤️", " 😊"))
        text = self.campaign_tag(text, platform)
        return self.mention("question", platform, self.author(platform), text, at, lang=lang)

    def near_duplicate(self, at: datetime) -> DemoMention:
        rng = self.rng
        platform = self.platform()
        if rng.random() < 0.55:
            family = REWORDINGS[rng.randrange(len(REWORDINGS))]
            text = self.fill(self.pick(family)) + self.pick(SUFFIXES)
            text = self.campaign_tag(text, platform)
        else:
            # Copy-paste: identical text, filled once per campaign so it really is the same.
            index = rng.randrange(len(COPY_PASTE))
            text = COPY_PASTE[index].format(teacher=TEACHERS[index], city=CITIES[index + 3])
        return self.mention("near_duplicate", platform, self.author(platform), text, at, lang="en")

    def reply(self, at: datetime) -> DemoMention:
        rng = self.rng
        platform = self.platform()
        earlier = [
            m
            for m in self.mentions[-200:]
            if m.platform == platform and m.category in ("question", "near_duplicate", "reply")
        ]
        roll = rng.random()
        if earlier and roll < 0.35:
            parent = self.pick(earlier)
            persona = parent.persona  # a follow-up in one's own thread
            text = self.campaign_tag(self.pick(FOLLOW_UPS), platform, lead=0.0)
        elif earlier and roll < 0.7:
            parent = self.pick(earlier)
            persona = self.author(platform)
            text = f"@{parent.persona.handle} {self.pick(REPLIES_TO_OTHERS)}"
            text = self.campaign_tag(text, platform, lead=0.0)
        else:
            parent = None
            persona = self.author(platform)
            text = f"@{CAMPAIGN_HANDLE} {self.fill(self.pick(REPLIES_TO_CAMPAIGN))}"
        if parent is not None:
            in_reply_to = parent.id
            conversation = parent.conversation_id or parent.id
        else:
            in_reply_to = conversation = self.pick(CAMPAIGN_POSTS[platform])
        mention = self.mention("reply", platform, persona, text, at, lang="en")
        mention.in_reply_to = in_reply_to
        mention.conversation_id = conversation
        return mention

    def support(self, at: datetime) -> DemoMention:
        platform = self.platform()
        lang = self.weighted(SUPPORT_LANGS)
        text = self.fill(self.pick(SUPPORT[lang]))
        if lang == "en":
            text = self.typos(text)
        text = self.campaign_tag(text, platform, lead=0.2)
        return self.mention("support", platform, self.author(platform), text, at, lang=lang)

    def spam(self, at: datetime) -> DemoMention:
        platform = "x" if self.rng.random() < 0.8 else "mastodon"
        text = self.campaign_tag(self.fill(self.pick(SPAM)), platform, lead=0.3)
        if self.rng.random() < 0.4:
            text += " #Kakuma #Dadaab #refugees"
        persona = self.new_persona(platform, "spam")
        return self.mention("spam", platform, persona, text, at, lang="en")

    def abuse(self, at: datetime) -> DemoMention:
        platform = self.platform()
        lang = self.weighted(ABUSE_LANGS)
        text = self.fill(self.pick(ABUSE[lang]))
        shout = self.rng.random()
        if shout < 0.1:
            text = text.upper()
        elif shout < 0.25:
            text = text.lower()
        text = self.campaign_tag(text, platform, lead=0.6, extra_tags=False)
        persona = self.author(platform, reuse=0.4, kind="troll")
        return self.mention("abuse", platform, persona, text, at, lang=lang)

    def retweet(self, at: datetime) -> DemoMention:
        rng = self.rng
        originals = [
            m
            for m in self.mentions
            if m.platform == "x" and m.category in ("question", "support", "near_duplicate")
        ]
        if originals and rng.random() < 0.75:
            original = self.pick(originals)
            source_handle, source_text, source_id = (
                original.persona.handle,
                original.text,
                original.id,
            )
            lang = original.lang
        else:  # a retweet of a popular post that is not in the stream itself
            persona = self.new_persona("x")
            source_handle = persona.handle
            source_text = self.campaign_tag(self.fill(self.pick(SUPPORT["en"])), "x")
            source_id = self.snowflake("x", at - timedelta(hours=rng.randint(1, 48)))
            lang = "en"
        body = f"RT @{source_handle}: {source_text}"
        if len(body) > 140:
            body = body[:139].rstrip() + "…"
        mention = self.mention("retweet", "x", self.author("x"), body, at, lang=lang)
        mention.retweet_of = source_id
        mention.matched_text = source_text
        return mention

    def mention(
        self,
        category: str,
        platform: str,
        persona: Persona,
        text: str,
        at: datetime,
        *,
        lang: str | None,
    ) -> DemoMention:
        rng = self.rng
        native = self.snowflake(platform, at)
        if platform == "x":
            if len(text) < 25 and rng.random() < 0.5:
                lang = "und"
        elif rng.random() < 0.2:
            lang = None  # many Mastodon clients send no language
        elif rng.random() < 0.05:
            lang = "en"  # ... or the account default, whatever the text
        mention = DemoMention(
            category=category,
            platform=platform,
            id=native,
            persona=persona,
            text=text,
            created_at=at,
            lang=lang,
            x_stream=platform == "x" and rng.random() < X_STREAM_SHARE,
            utc_offset_h=self.pick((0, 0, 0, 0, 0, 0, 1, 3, -5)),
        )
        if platform == "x" and mention.x_stream:
            mention.conversation_id = native
        self.mentions.append(mention)
        return mention

    # --- the whole file ------------------------------------------------------

    def times(self, n: int) -> list[datetime]:
        """Sorted times in the three days before :data:`BASE`, with a launch-day burst."""
        rng = self.rng
        span_s = SPAN.total_seconds()
        burst_at = span_s * 0.55
        seconds = []
        for _ in range(n):
            if rng.random() < 0.3:
                value = rng.gauss(burst_at, 2.5 * 3600)
            else:
                value = rng.uniform(0, span_s)
            seconds.append(min(span_s - 1, max(0.0, value)))
        start = BASE - SPAN
        return [start + timedelta(seconds=round(s, 3)) for s in sorted(seconds)]

    def generate(self, count: int) -> list[tuple[DemoMention, str]]:
        counts = allocate(count, CATEGORY_SHARES)
        duplicates = counts.pop("duplicate")
        plan = [name for name, n in counts.items() for _ in range(n)]
        self.rng.shuffle(plan)
        makers = {
            "question": self.question,
            "near_duplicate": self.near_duplicate,
            "reply": self.reply,
            "support": self.support,
            "spam": self.spam,
            "abuse": self.abuse,
            "retweet": self.retweet,
        }
        for category, at in zip(plan, self.times(len(plan)), strict=True):
            makers[category](at)
        lines = [(m, render(m)) for m in self.mentions]
        # Webhook retries: the same line again, a few lines after the original.
        keyed: list[tuple[float, int, tuple[DemoMention, str]]] = [
            (float(i), 0, line) for i, line in enumerate(lines)
        ]
        for k in range(duplicates if lines else 0):
            i = self.rng.randrange(len(lines))
            mention, line = lines[i]
            repeat = replace(mention, category="duplicate")
            keyed.append((i + 1 + self.rng.randint(0, 15) - 0.5, k + 1, (repeat, line)))
        keyed.sort(key=lambda entry: (entry[0], entry[1]))
        return [entry[2] for entry in keyed]


def _matched_rules(text: str) -> list[str]:
    lowered = text.lower()
    rules = []
    if f"@{CAMPAIGN_HANDLE}".lower() in lowered:
        rules.append("campaign-handle")
    if "#takeaction" in lowered:
        rules.append("hashtag-takeaction")
    if "#iwelcome" in lowered:
        rules.append("hashtag-iwelcome")
    return rules


def _iso(at: datetime, offset_h: int = 0) -> str:
    local = at.astimezone(timezone(timedelta(hours=offset_h)))
    text = local.isoformat(timespec="seconds")
    return text.replace("+00:00", "Z") if offset_h == 0 else text


def render(mention: DemoMention) -> str:
    """One JSON line: a webhook item, or a raw X API v2 filtered-stream object."""
    persona = mention.persona
    if mention.x_stream:
        tweet: dict[str, Any] = {
            "author_id": persona.id,
            "conversation_id": mention.conversation_id or mention.id,
            "created_at": mention.created_at.strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{mention.created_at.microsecond // 1000:03d}Z",
            "edit_history_tweet_ids": [mention.id],
            "id": mention.id,
            "lang": mention.lang or "und",
            "text": html.escape(mention.text, quote=False),  # X escapes &, < and >
        }
        if mention.in_reply_to:
            tweet["referenced_tweets"] = [{"type": "replied_to", "id": mention.in_reply_to}]
        elif mention.retweet_of:
            tweet["referenced_tweets"] = [{"type": "retweeted", "id": mention.retweet_of}]
        payload: dict[str, Any] = {
            "data": tweet,
            "includes": {
                "users": [
                    {
                        "id": persona.id,
                        "name": persona.display_name or persona.handle,
                        "username": persona.handle,
                        "public_metrics": {
                            "followers_count": persona.followers,
                            "following_count": persona.following,
                            "tweet_count": persona.posts,
                            "listed_count": persona.followers // 200,
                        },
                    }
                ]
            },
            "matching_rules": [
                {"id": X_RULES[tag], "tag": tag}
                for tag in _matched_rules(mention.matched_text or mention.text)
            ],
        }
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    author: dict[str, Any] = {"id": persona.id, "handle": persona.handle}
    if persona.display_name:
        author["display_name"] = persona.display_name
    if persona.followers % 17:  # a few sources leave the count out
        author["followers"] = persona.followers
    if mention.platform == "x":
        url = f"https://x.com/{persona.handle}/status/{mention.id}"
    else:
        url = f"https://{persona.instance}/@{persona.url_user}/{mention.id}"
    item: dict[str, Any] = {
        "platform": mention.platform,
        "id": mention.id,
        "author": author,
        "text": mention.text,
        "created_at": _iso(mention.created_at, mention.utc_offset_h),
    }
    if mention.lang:
        item["lang"] = mention.lang
    if mention.conversation_id:
        item["conversation_id"] = mention.conversation_id
    if mention.in_reply_to:
        item["in_reply_to"] = mention.in_reply_to
    item["url"] = url
    rules = _matched_rules(mention.matched_text or mention.text)
    if rules:
        item["matched_rules"] = rules
    return json.dumps(item, ensure_ascii=False, separators=(",", ":"))


def generate(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> list[tuple[DemoMention, str]]:
    """``count`` mentions in file order, each with its JSON line."""
    if count < 0:
        raise ValueError("count must be >= 0")
    return _Generator(seed).generate(count)


def dumps(count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED) -> str:
    """The whole file's text (one JSON object per line, newline-terminated)."""
    return "".join(f"{line}\n" for _, line in generate(count, seed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.devstack.demo.generate",
        description="Write deterministic, fictional campaign mentions as JSON Lines.",
    )
    parser.add_argument(
        "--count", type=int, default=DEFAULT_COUNT, help="lines (default %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="default %(default)s")
    parser.add_argument(
        "--out",
        default=str(DEFAULT_OUT),
        help="output file, '-' for stdout (default: the committed demo file)",
    )
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error("--count must be >= 0")
    text = dumps(args.count, args.seed)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8", newline="\n")
        sys.stderr.write(f"wrote {args.count} mentions to {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
