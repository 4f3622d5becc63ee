from __future__ import annotations

import numpy as np
import pytest

from services.triage.classifier.base import Prediction
from services.triage.worker.cache import PredictionCache, cache_key


def prediction(offensive: float = 0.1) -> Prediction:
    return Prediction(
        offensive=offensive,
        hate=0.0,
        question=0.5,
        relevance=0.5,
        embedding=np.zeros(4, dtype=np.float32),
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What do you miss most?", "What do you miss most?"),
        ("What do you miss most?", "RT @amina_k: What do you miss most?"),
        ("What do you miss most?", "rt @amina_k What do you miss most?"),
        ("What do you miss most?", "RT @a: RT @b: What do you miss most?"),
        ("What do you miss   most?\n", "  What do you miss most?"),
        ("Is it safe &amp; warm?", "Is it safe & warm?"),
        ("@IWelcomeRefugees hello?", "@someone_else hello?"),
        ("read https://t.co/abc please", "read https://t.co/xyz please"),
    ],
)
def test_duplicates_and_retweets_share_a_key(a: str, b: str) -> None:
    assert cache_key(a) == cache_key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What do you miss most?", "What do you miss least?"),
        ("What do you miss most?", "What do you miss most"),
        ("ART @x: hello", "hello"),
        ("He said RT @x: hello", "He said hello"),
    ],
)
def test_different_texts_get_different_keys(a: str, b: str) -> None:
    assert cache_key(a) != cache_key(b)


def test_get_returns_what_was_put_and_counts() -> None:
    cache = PredictionCache(10)
    assert cache.get("k") is None
    p = prediction()
    cache.put("k", p)
    assert cache.get("k") is p
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)


def test_least_recently_used_is_evicted_first() -> None:
    cache = PredictionCache(2)
    cache.put("a", prediction())
    cache.put("b", prediction())
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("c", prediction())
    assert len(cache) == 2
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.get("c") is not None


def test_put_replaces_an_existing_entry_without_growing() -> None:
    cache = PredictionCache(2)
    cache.put("a", prediction(0.1))
    cache.put("a", prediction(0.9))
    found = cache.get("a")
    assert found is not None
    assert found.offensive == 0.9
    assert len(cache) == 1


def test_size_zero_disables_the_cache() -> None:
    cache = PredictionCache(0)
    cache.put("a", prediction())
    assert cache.get("a") is None
    assert len(cache) == 0


def test_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        PredictionCache(-1)
