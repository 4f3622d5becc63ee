"""Clusters of near-duplicate questions: joining, eviction, expiry, ids."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pytest

from services.triage.rules import RulesFile
from services.triage.worker.clusters import ClusterIndex
from tests.triage.worker.helpers import (
    DIM,
    E1,
    E1_NEAR,
    E2,
    MISS,
    MISS_2,
    MISS_FR,
    NOW,
    MentionFactory,
    PredictionFactory,
    TriageFactory,
    vec,
)

# --- clusters ----------------------------------------------------------------------------


def index(capacity: int = 10, ttl_s: float = 3600.0) -> ClusterIndex:
    return ClusterIndex(capacity=capacity, similarity=0.86, idle_ttl_s=ttl_s)


def test_near_duplicates_join_one_cluster() -> None:
    ix = index()

    a = ix.assign("k1", E1, "x:1", now=0)
    b = ix.assign("k2", E1_NEAR, "x:2", now=1)

    assert a.new
    assert a.cluster_id == "c-" + hashlib.sha256(b"x:1").hexdigest()[:12]
    assert (b.cluster_id, b.size, b.how, b.new) == (a.cluster_id, 2, "similar", False)
    assert b.similarity == pytest.approx(0.98, abs=0.01)


def test_different_questions_get_different_clusters() -> None:
    ix = index()

    a = ix.assign("k1", E1, "x:1", now=0)
    b = ix.assign("k2", vec(1.0, 1.0), "x:2", now=1)  # cosine 0.71 < 0.86

    assert b.new
    assert b.cluster_id != a.cluster_id
    assert len(ix) == 2


def test_question_joins_the_nearest_cluster() -> None:
    ix = index()
    a = ix.assign("k1", E1, "x:1", now=0)
    b = ix.assign("k2", E2, "x:2", now=0)

    near_b = ix.assign("k3", vec(0.1, 1.0), "x:3", now=1)

    assert near_b.cluster_id == b.cluster_id != a.cluster_id


def test_similar_questions_in_other_languages_do_not_join() -> None:
    ix = index()
    en = ix.assign("k1", E1, "x:1", now=0, group="en")

    so = ix.assign("k2", E1_NEAR, "x:2", now=1, group="so")
    en_again = ix.assign("k3", E1_NEAR, "x:3", now=2, group="en")

    assert so.new
    assert en_again.cluster_id == en.cluster_id


def test_decide_clusters_by_primary_language(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    t = triage()
    first = t.decide(mention_factory(text=MISS, lang="en"), prediction(embedding=E1), now=NOW)

    british = t.decide(
        mention_factory(text=MISS_2, lang="en-GB"), prediction(embedding=E1_NEAR), now=NOW
    )
    french = t.decide(
        mention_factory(text=MISS_FR, lang="fr"), prediction(embedding=E1_NEAR), now=NOW
    )

    assert british.cluster_id == first.cluster_id
    assert french.cluster_id != first.cluster_id


def test_a_question_without_a_language_joins_the_nearest_cluster_of_any() -> None:
    ix = index()
    en = ix.assign("k1", E1, "x:1", now=0, group="en")

    unknown = ix.assign("k2", E1_NEAR, "mastodon:2", now=1, group="")

    assert (unknown.cluster_id, unknown.how, unknown.language) == (en.cluster_id, "similar", "en")
    assert en.language == "en"


def test_decide_routes_a_mention_without_a_language_by_its_cluster(
    triage: TriageFactory, mention_factory: MentionFactory, prediction: PredictionFactory
) -> None:
    t = triage()
    first = t.decide(mention_factory(text=MISS, lang="en"), prediction(embedding=E1), now=NOW)
    unknown = t.decide(
        mention_factory(text=MISS_2, lang=None), prediction(embedding=E1_NEAR), now=NOW
    )

    assert unknown.cluster_id == first.cluster_id
    assert unknown.team == first.team
    assert unknown.team is not None


def test_exact_duplicates_share_a_cluster_whatever_the_embedding() -> None:
    ix = index()
    a = ix.assign("same", E1, "x:1", now=0)

    b = ix.assign("same", E2, "x:2", now=1)

    assert (b.cluster_id, b.how, b.size) == (a.cluster_id, "exact", 2)


def test_least_recently_used_cluster_is_evicted() -> None:
    ix = index(capacity=2)
    a = ix.assign("a", E1, "x:1", now=0)
    b = ix.assign("b", E2, "x:2", now=1)
    ix.assign("a2", E1_NEAR, "x:3", now=2)  # touches a

    ix.assign("c", vec(0, 0, 1.0), "x:4", now=3)

    assert len(ix) == 2
    assert a.cluster_id in ix
    assert b.cluster_id not in ix


def test_evicted_clusters_free_their_rows() -> None:
    ix = index(capacity=3)

    for i in range(50):
        ix.assign(f"k{i}", vec(*([0.0] * (i % DIM)), 1.0), f"x:{i}", now=i)

    assert len(ix) == 3
    assert ix._high <= 3


def test_exact_duplicate_after_eviction_keeps_its_cluster_id() -> None:
    ix = index(capacity=1)
    a = ix.assign("a", E1, "x:1", now=0)
    ix.assign("b", E2, "x:2", now=1)
    assert a.cluster_id not in ix

    again = ix.assign("a", E1, "x:3", now=2)

    assert (again.cluster_id, again.how) == (a.cluster_id, "exact")


def test_idle_clusters_expire() -> None:
    ix = index(ttl_s=100)
    a = ix.assign("a", E1, "x:1", now=0)

    b = ix.assign("b", E1_NEAR, "x:2", now=101)

    assert b.new
    assert b.cluster_id != a.cluster_id
    assert a.cluster_id not in ix


def test_cluster_ids_are_deterministic_for_the_same_input_order() -> None:
    sequence = [("a", E1, "x:1"), ("b", E2, "x:2"), ("c", E1_NEAR, "x:3"), ("d", vec(1, 1), "x:4")]

    runs = [
        [ix.assign(k, e, m, now=0).cluster_id for k, e, m in sequence] for ix in (index(), index())
    ]

    assert runs[0] == runs[1]


def test_same_founder_id_twice_gets_a_distinct_cluster_id() -> None:
    ix = index()
    a = ix.assign("a", E1, "x:1", now=0)

    b = ix.assign("b", E2, "x:1", now=1)

    assert b.cluster_id == a.cluster_id + "-2"


def test_zero_embedding_clusters_by_exact_text_only() -> None:
    ix = index()
    zero = np.zeros(DIM, dtype=np.float32)
    a = ix.assign("a", zero, "x:1", now=0)

    b = ix.assign("b", E1, "x:2", now=1)
    c = ix.assign("a", zero, "x:3", now=2)

    assert b.cluster_id != a.cluster_id
    assert (c.cluster_id, c.how) == (a.cluster_id, "exact")


def test_embedding_size_change_starts_afresh() -> None:
    ix = index()
    ix.assign("a", E1, "x:1", now=0)

    b = ix.assign("b", np.full(4, 0.5, dtype=np.float32), "x:2", now=1)

    assert b.new
    assert len(ix) == 1


def test_shrinking_capacity_keeps_the_most_recent(rules_file: Callable[..., RulesFile]) -> None:
    ix = index(capacity=5)
    ids = [ix.assign(f"k{i}", vec(*([0.0] * i), 1.0), f"x:{i}", now=i).cluster_id for i in range(5)]

    ix.configure(rules_file(clusters={"max_clusters": 2}).current().clusters)
    near_last = ix.assign("k-near", vec(0, 0, 0, 0, 1.0), "x:9", now=10)

    assert [i in ix for i in ids] == [False, False, False, True, True]
    assert near_last.cluster_id == ids[4]
