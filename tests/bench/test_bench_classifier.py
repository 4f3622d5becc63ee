"""The benchmark's duplicate stream: realistic repeats, in the promised mix."""

from __future__ import annotations

import threading

import pytest

from tests.bench.bench_classifier import (
    VIRAL_POST,
    on_a_passing_thread,
    with_duplicates,
    with_viral_post,
)


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


def test_the_viral_profile_is_one_post_among_the_unique_tweets_in_order() -> None:
    from services.triage.worker.cache import cache_key  # noqa: PLC0415 - the worker's key

    texts = [f"unique question {n} about the camp?" for n in range(3000)]
    viral = with_viral_post(texts, 0.3)
    assert len(viral) == len(texts)
    spread = [t for t in viral if VIRAL_POST in t]
    assert 0.27 < len(spread) / len(viral) < 0.33
    others = [t for t in viral if VIRAL_POST not in t]
    assert others == texts[: len(others)]  # the unique tweets keep their order
    assert sum(t.startswith("RT @") for t in spread) > len(spread) / 4  # retweets
    assert sum(t == VIRAL_POST for t in spread) > len(spread) / 4  # verbatim
    # exact copies and retweets share one prediction-cache key; copy-pastes with their
    # own mention and link differ only by those (normalised to @user / URL)
    keys = {cache_key(t) for t in spread if not t.startswith("@fan")}
    assert len(keys) == 1
    assert len({cache_key(t) for t in spread}) == 2


def test_the_baselines_run_on_a_thread_that_is_gone_afterwards() -> None:
    seen: list[str] = []
    on_a_passing_thread(lambda: seen.append(threading.current_thread().name))
    assert seen == ["baselines"]
    assert "baselines" not in {t.name for t in threading.enumerate()}


def test_a_failing_baseline_fails_the_bench() -> None:
    def fail() -> None:
        raise RuntimeError("the naive pipeline broke")

    with pytest.raises(RuntimeError, match="naive pipeline broke"):
        on_a_passing_thread(fail)
