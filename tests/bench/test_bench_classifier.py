"""The benchmark's duplicate stream: realistic repeats, in the promised mix."""

from __future__ import annotations

from tests.bench.bench_classifier import with_duplicates


def unwrap(text: str) -> str:
    """The original inside retweets and copy-pastes, however deeply nested."""
    while True:
        if text.startswith("RT @fan"):
            text = text.split(": ", 1)[1]
        elif text.startswith("@fan"):
            text = text.split(" ", 1)[1].rsplit(" https://", 1)[0]
        else:
            return text


def test_duplicates_keep_the_length_and_mix_three_kinds() -> None:
    texts = [f"question number {n} about life in the camp?" for n in range(3000)]
    dup = with_duplicates(texts, 0.3)
    assert len(dup) == len(texts)
    assert dup[0] == texts[0]
    originals = set(texts)
    exact = sum(1 for i, t in enumerate(dup) if t in originals and t != texts[i])
    retweets = sum(1 for t in dup if t.startswith("RT @fan"))
    copies = sum(1 for t in dup if t.startswith("@fan") and "https://t.co/x" in t)
    changed = sum(1 for a, b in zip(texts, dup, strict=True) if a != b)
    assert changed == exact + retweets + copies
    assert 0.25 < changed / len(texts) < 0.35
    for kind in (exact, retweets, copies):  # equal thirds, give or take
        assert 0.25 < kind / changed < 0.42
    for t in dup:  # every repeat carries an original (repeats of repeats included)
        assert unwrap(t) in originals


def test_no_share_leaves_the_tweets_alone() -> None:
    texts = ["a", "b", "c"]
    assert with_duplicates(texts, 0.0) == texts
