"""The committed demo file: every line is a valid mention, the generator
reproduces it byte for byte, and it holds every kind of traffic moderators see."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from services.common.messages import MentionReceived, Source
from services.devstack.demo.generate import (
    BASE,
    CAMPAIGN_HANDLE,
    CATEGORY_SHARES,
    DEFAULT_OUT,
    REFUGEES,
    SPAN,
    DemoMention,
    allocate,
    dumps,
    generate,
    main,
)
from services.ingest.domain import MentionIn, parse_item, to_mention, x_payload_to_item
from tests.helpers import ROOT

DEMO_FILE = ROOT / "services" / "devstack" / "demo" / "mentions.jsonl"


def to_item(obj: Any) -> MentionIn:
    return x_payload_to_item(obj) if "data" in obj else parse_item(obj)


@pytest.fixture(scope="module")
def raw_lines() -> list[str]:
    return DEMO_FILE.read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def objects(raw_lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in raw_lines]


@pytest.fixture(scope="module")
def mentions(objects: list[dict[str, Any]]) -> list[MentionReceived]:
    return [to_mention(to_item(obj), source=Source.REPLAY, received_at=BASE) for obj in objects]


@pytest.fixture(scope="module")
def generated() -> list[tuple[DemoMention, str]]:
    return generate()


def test_the_committed_file_is_the_default_output() -> None:
    assert DEFAULT_OUT == DEMO_FILE


def test_every_line_is_a_valid_mention(
    raw_lines: list[str], mentions: list[MentionReceived]
) -> None:
    assert len(raw_lines) == 1000
    assert len(mentions) == 1000
    assert all(line.strip() for line in raw_lines)


def test_the_generator_reproduces_the_committed_file_byte_for_byte() -> None:
    assert dumps(1000).encode("utf-8") == DEMO_FILE.read_bytes()


def test_the_generator_is_deterministic_and_seeded() -> None:
    assert dumps(300, seed=7) == dumps(300, seed=7)
    assert dumps(300, seed=7) != dumps(300, seed=8)
    assert dumps(25, seed=7).count("\n") == 25
    assert dumps(0) == ""


def test_the_cli_writes_the_same_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo.jsonl"
    assert main(["--count", "40", "--seed", "3", "--out", str(out)]) == 0
    assert out.read_bytes() == dumps(40, seed=3).encode("utf-8")
    assert main(["--count", "5", "--seed", "3", "--out", "-"]) == 0
    assert capsys.readouterr().out == dumps(5, seed=3)


def test_allocate_sums_exactly() -> None:
    for count in (0, 1, 7, 99, 1000, 1234):
        counts = allocate(count, CATEGORY_SHARES)
        assert sum(counts.values()) == count
    assert allocate(1000, CATEGORY_SHARES)["question"] == 490


def test_the_mix_holds_every_category(generated: list[tuple[DemoMention, str]]) -> None:
    counts = Counter(m.category for m, _ in generated)
    assert counts == Counter(allocate(1000, CATEGORY_SHARES))
    assert set(counts) == {
        "question",
        "near_duplicate",
        "reply",
        "support",
        "spam",
        "abuse",
        "retweet",
        "duplicate",
    }
    # The categories are the file's lines, in order.
    assert "".join(f"{line}\n" for _, line in generated) == DEMO_FILE.read_text(encoding="utf-8")


def test_questions_dominate_and_some_address_a_named_refugee(
    generated: list[tuple[DemoMention, str]],
) -> None:
    questions = [m for m, _ in generated if m.category == "question"]
    assert sum("?" in m.text or "؟" in m.text for m in questions) > 0.9 * len(questions)
    named = [m for m in questions if any(name in m.text for name in REFUGEES)]
    assert len(named) >= 30


def test_abuse_and_spam_look_like_abuse_and_spam(
    generated: list[tuple[DemoMention, str]],
) -> None:
    abuse = " ".join(m.text for m, _ in generated if m.category == "abuse").lower()
    phrases = ("go back", "parasites", "send them all back", "freeloaders", "deport", "invasion")
    assert sum(phrase in abuse for phrase in phrases) >= 4
    assert len({m.text for m, _ in generated if m.category == "abuse"}) >= 50
    spam = [m.text for m, _ in generated if m.category == "spam"]
    assert sum("https://" in text for text in spam) > len(spam) / 3
    assert any("$" in text for text in spam)
    spammers = [m.persona.followers for m, _ in generated if m.category == "spam"]
    assert statistics.median(spammers) < 100


def test_retweets_replies_and_near_duplicates(
    mentions: list[MentionReceived], objects: list[dict[str, Any]]
) -> None:
    retweets = [m for m in mentions if m.text.startswith("RT @")]
    assert len(retweets) >= 30
    assert {m.platform.value for m in retweets} == {"x"}
    replies = [m for m in mentions if m.in_reply_to]
    assert len(replies) >= 25
    assert all(m.conversation_id for m in replies)
    assert {m.platform.value for m in replies} == {"x", "mastodon"}
    copy_paste = Counter(m.text for m in mentions if not m.text.startswith("RT @"))
    assert copy_paste.most_common(1)[0][1] >= 10  # a copy-paste campaign
    reworded = [
        m.text.lower() for m in mentions if "miss" in m.text.lower() and "home" in m.text.lower()
    ]
    assert len(set(reworded)) >= 5


def test_webhook_retries_repeat_a_line_exactly(
    raw_lines: list[str], mentions: list[MentionReceived]
) -> None:
    ids = Counter(m.id for m in mentions)
    repeated = [mention_id for mention_id, n in ids.items() if n > 1]
    assert len(repeated) >= 20
    for mention_id in repeated:
        lines = {line for line, m in zip(raw_lines, mentions, strict=True) if m.id == mention_id}
        assert len(lines) == 1, f"{mention_id} repeated with different content"


def test_languages_platforms_and_shapes(
    mentions: list[MentionReceived], objects: list[dict[str, Any]]
) -> None:
    langs = Counter(m.lang for m in mentions)
    assert {"en", "fr", "es", "de", "sw", "ar", "so"} <= set(langs)
    assert langs["en"] > sum(langs.values()) / 2
    platforms = Counter(m.platform.value for m in mentions)
    assert set(platforms) == {"x", "mastodon"}
    assert platforms["x"] > platforms["mastodon"]
    x_stream = sum("data" in obj for obj in objects)
    assert 70 <= x_stream <= 130  # about 10%
    assert all(obj["data"]["text"] != "" for obj in objects if "data" in obj)


def test_every_mention_is_about_the_campaign(mentions: list[MentionReceived]) -> None:
    for m in mentions:
        text = m.text.lower()
        if not text.startswith("rt @"):  # X cuts retweets; the rule matched the original
            assert (
                f"@{CAMPAIGN_HANDLE}".lower() in text
                or "#takeaction" in text
                or "#iwelcome" in text
            ), m.text
        assert m.matched_rules, m.text
        assert set(m.matched_rules) <= {"campaign-handle", "hashtag-takeaction", "hashtag-iwelcome"}


def test_times_and_audiences_are_realistic(mentions: list[MentionReceived]) -> None:
    assert all(BASE - SPAN <= m.created_at < BASE for m in mentions)
    followers = [m.author.followers for m in mentions if m.author.followers is not None]
    assert len(followers) > 900
    assert statistics.median(followers) < statistics.mean(followers) / 2  # skewed
    assert max(followers) > 100_000
    assert sum(f < 50 for f in followers) > 100
