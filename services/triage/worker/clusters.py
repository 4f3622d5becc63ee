"""Clusters of near-duplicate questions: a bounded, in-memory index per worker
(:class:`ClusterIndex`), joined by cosine similarity of the embeddings within a
language (or across languages, in a multilingual embedding space), or by the
exact text. One recorded answer serves a whole cluster."""

from __future__ import annotations

import hashlib
import logging
import math
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from services.triage.rules import Clusters

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ClusterAssignment:
    """Where a question landed: its cluster, how many asked it, and how."""

    cluster_id: str
    #: Askers in the cluster, this one included.
    size: int
    #: This question started the cluster.
    new: bool
    #: ``exact`` (same text), ``similar`` (cosine ≥ threshold) or ``new``.
    how: str
    #: Cosine similarity to the centroid it joined (``similar`` only).
    similarity: float | None = None
    #: The cluster's language ("" when unknown): what a question that came without
    #: one (many Mastodon posts) is routed by.
    language: str = ""


class _Cluster:
    __slots__ = (
        "answered",
        "assigned",
        "bridged",
        "cluster_id",
        "group",
        "last_seen",
        "size",
        "slot",
    )

    def __init__(self, cluster_id: str, slot: int, last_seen: float, group: str) -> None:
        self.cluster_id = cluster_id
        self.slot = slot
        self.group = group
        self.size = 0
        self.last_seen = last_seen
        self.assigned = False
        self.answered = False
        #: Its centroid holds a bridged (approximate) embedding: the bridged threshold.
        self.bridged = False


class ClusterIndex:
    """Bounded, in-memory index of near-duplicate question clusters.

    Each cluster keeps the sum of its members' (L2-normalised) embeddings in
    a row of a numpy matrix and the normalised centroid in another, so finding
    the nearest cluster is one matrix-vector product. A question joins the
    nearest cluster when cosine ≥ ``similarity``, else starts one. Exact
    duplicates (:func:`exact_key`) always share a cluster, even after it was
    forgotten (it is started again under the same id).

    Bounded: at most ``capacity`` clusters (the least recently joined is
    forgotten first) and clusters idle for ``idle_ttl_s`` are forgotten; the
    exact-text map and the answered set are bounded too.

    Cluster ids are ``c-`` + sha256(first member's mention id)[:12], so the
    same input in the same order always gives the same ids.
    """

    def __init__(
        self,
        *,
        capacity: int,
        similarity: float,
        idle_ttl_s: float,
        max_answered: int = 100_000,
    ) -> None:
        self.capacity = capacity
        self.similarity = similarity
        self.idle_ttl_s = idle_ttl_s
        self.max_answered = max_answered
        #: The embeddings are multilingual (e5): ``configure`` takes that threshold.
        self.multilingual = False
        #: The threshold for bridged embeddings (and the clusters holding one).
        self.bridged_similarity = similarity
        self._dim: int | None = None
        self._sums: npt.NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)
        self._centroids: npt.NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)
        self._high = 0  # rows in use are below this
        self._free: list[int] = []
        self._slots: list[_Cluster | None] = []  # row -> cluster
        self._clusters: OrderedDict[str, _Cluster] = OrderedDict()  # least recent first
        self._exact: OrderedDict[str, str] = OrderedDict()
        self._answered: OrderedDict[str, None] = OrderedDict()
        #: Which cluster each recent question joined (mention id -> cluster id), so an
        #: answer to any one of them marks its cluster answered.
        self._member_of: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clusters)

    def __contains__(self, cluster_id: object) -> bool:
        return cluster_id in self._clusters

    def size_of(self, cluster_id: str) -> int:
        cluster = self._clusters.get(cluster_id)
        return cluster.size if cluster is not None else 0

    def configure(self, settings: Clusters) -> None:
        """Apply (re)loaded rules: threshold, TTL, and capacity (shrinking forgets LRU)."""
        self.similarity = (
            settings.multilingual_similarity if self.multilingual else settings.similarity
        )
        self.bridged_similarity = (
            settings.bridged_similarity if self.multilingual else settings.similarity
        )
        self.idle_ttl_s = settings.idle_ttl_hours * 3600.0
        self.max_answered = settings.max_answered
        while len(self._answered) > self.max_answered:
            self._answered.popitem(last=False)
        if settings.max_clusters != self.capacity:
            self._resize(settings.max_clusters)

    # --- answered / assigned ---------------------------------------------------

    def mark_answered(self, cluster_id: str) -> None:
        self._answered[cluster_id] = None
        self._answered.move_to_end(cluster_id)
        while len(self._answered) > self.max_answered:
            self._answered.popitem(last=False)
        cluster = self._clusters.get(cluster_id)
        if cluster is not None:
            cluster.answered = True

    def is_answered(self, cluster_id: str) -> bool:
        return cluster_id in self._answered

    def cluster_of(self, mention_id: str) -> str | None:
        """The cluster a recent question joined (``None`` once forgotten)."""
        return self._member_of.get(mention_id)

    def mark_assigned(self, cluster_id: str) -> None:
        cluster = self._clusters.get(cluster_id)
        if cluster is not None:
            cluster.assigned = True

    def is_assigned(self, cluster_id: str) -> bool:
        cluster = self._clusters.get(cluster_id)
        return cluster is not None and cluster.assigned

    # --- assignment --------------------------------------------------------------

    def assign(
        self,
        key: str,
        embedding: npt.NDArray[np.float32],
        mention_id: str,
        now: float,
        *,
        group: str = "",
        across_languages: bool = False,
        bridged: bool = False,
    ) -> ClusterAssignment:
        """Put one question in a cluster; ``key`` from :func:`exact_key`, ``now`` in seconds.

        Only clusters of the same ``group`` (the language) are joined by
        similarity, except by a question without a language (``group`` ""),
        which joins the nearest of any, and with ``across_languages`` (the
        embeddings are multilingual: the same question in French and English
        lie close), where any cluster is joined; exact duplicates join whatever
        their group. A cluster keeps the language of the question that started it.
        ``bridged``: the embedding is an approximation (an English question's MiniLM
        embedding bridged to e5: ``classifier/bridge.py``), compared at
        ``bridged_similarity``, as is every cluster that holds one.
        """
        assignment = self._assign(
            key, embedding, mention_id, now, "" if across_languages else group, bridged=bridged
        )
        if across_languages and assignment.new:
            # Started by this question: the cluster is in its language.
            cluster = self._clusters[assignment.cluster_id]
            cluster.group = group
            assignment = replace(assignment, language=group)
        self._member_of[mention_id] = assignment.cluster_id
        self._member_of.move_to_end(mention_id)
        while len(self._member_of) > self.max_answered:
            self._member_of.popitem(last=False)
        return assignment

    def _assign(
        self,
        key: str,
        embedding: npt.NDArray[np.float32],
        mention_id: str,
        now: float,
        group: str,
        *,
        bridged: bool = False,
    ) -> ClusterAssignment:
        vector = self._unit(embedding)
        self._expire(now)
        known = self._exact.get(key)
        if known is not None:
            self._exact.move_to_end(key)
            cluster = self._clusters.get(known)
            if cluster is not None:
                self._join(cluster, vector, now)
                return ClusterAssignment(
                    known, cluster.size, new=False, how="exact", language=cluster.group
                )
            cluster = self._create(known, vector, now, group)
            return ClusterAssignment(
                known, cluster.size, new=False, how="exact", language=cluster.group
            )
        if vector is not None and self._high:
            sims = self._centroids[: self._high] @ vector
            above = np.flatnonzero(sims >= min(self.similarity, self.bridged_similarity))
            for row in above[np.argsort(-sims[above], kind="stable")]:
                cluster = self._by_slot(int(row))
                # A question without a language (many Mastodon posts) joins the
                # nearest cluster of any language; the others stay within theirs.
                if group and cluster.group != group:
                    continue
                approximate = bridged or cluster.bridged
                if sims[row] < (self.bridged_similarity if approximate else self.similarity):
                    continue
                cluster.bridged = approximate
                self._join(cluster, vector, now)
                self._remember(key, cluster.cluster_id)
                return ClusterAssignment(
                    cluster.cluster_id,
                    cluster.size,
                    new=False,
                    how="similar",
                    similarity=float(sims[row]),
                    language=cluster.group,
                )
        cluster_id = self._new_id(mention_id)
        cluster = self._create(cluster_id, vector, now, group)
        cluster.bridged = bridged
        self._remember(key, cluster_id)
        return ClusterAssignment(cluster_id, cluster.size, new=True, how="new", language=group)

    def find(self, key: str, embedding: npt.NDArray[np.float32], *, group: str = "") -> str | None:
        """The cluster a question would join (exact text, or the nearest of its
        ``group`` at or above the threshold) without joining it; ``None``: it would
        start one. Read-only: expiry waits for the next assignment."""
        known = self._exact.get(key)
        if known is not None and known in self._clusters:
            return known
        vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
        norm = math.sqrt(float(vector @ vector)) if vector.size else 0.0
        if not self._high or self._dim != vector.size or not math.isfinite(norm) or norm == 0:
            return None
        sims = self._centroids[: self._high] @ (vector / norm)
        above = np.flatnonzero(sims >= self.similarity)
        for row in above[np.argsort(-sims[above], kind="stable")]:
            cluster = self._by_slot(int(row))
            if not group or cluster.group == group:
                return cluster.cluster_id
        return None

    def join(
        self,
        cluster_id: str,
        key: str,
        embedding: npt.NDArray[np.float32] | None,
        mention_id: str,
        now: float,
    ) -> ClusterAssignment | None:
        """Count one more asker in a known cluster (found in another index: its
        centroid moves only when ``embedding`` is in this index's space); ``None``
        when the cluster is forgotten."""
        self._expire(now)
        cluster = self._clusters.get(cluster_id)
        if cluster is None:
            return None
        vector = self._unit(embedding) if embedding is not None else None
        self._join(cluster, vector, now)
        self._remember(key, cluster_id)
        self._member_of[mention_id] = cluster_id
        self._member_of.move_to_end(mention_id)
        while len(self._member_of) > self.max_answered:
            self._member_of.popitem(last=False)
        return ClusterAssignment(
            cluster_id, cluster.size, new=False, how="similar", language=cluster.group
        )

    # --- internals ---------------------------------------------------------------

    def _unit(self, embedding: npt.NDArray[np.float32]) -> npt.NDArray[np.float32] | None:
        vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
        norm = math.sqrt(float(vector @ vector))
        if vector.size == 0 or not math.isfinite(norm) or norm == 0.0:
            return None  # exact duplicates only
        if self._dim != vector.size:
            if self._dim is not None:
                log.warning(
                    "embedding size changed %s -> %s: forgetting %d clusters",
                    self._dim,
                    vector.size,
                    len(self._clusters),
                )
            self._reset(vector.size)
        return vector / norm

    def _reset(self, dim: int) -> None:
        # The first embedding fixes the size; a later change (another model) starts afresh.
        if self._dim is not None:
            self._clusters.clear()
        self._dim = dim
        self._sums = np.zeros((self.capacity, dim), dtype=np.float32)
        self._centroids = np.zeros((self.capacity, dim), dtype=np.float32)
        self._slots = [None] * self.capacity
        self._high = 0
        self._free = []

    def _resize(self, capacity: int) -> None:
        while len(self._clusters) > capacity:
            self._evict_oldest()
        self.capacity = capacity
        if self._dim is None:
            return
        old_sums, old_centroids = self._sums, self._centroids
        self._sums = np.zeros((capacity, self._dim), dtype=np.float32)
        self._centroids = np.zeros((capacity, self._dim), dtype=np.float32)
        self._slots = [None] * capacity
        row = 0
        for cluster in self._clusters.values():
            if cluster.slot >= 0:
                self._sums[row] = old_sums[cluster.slot]
                self._centroids[row] = old_centroids[cluster.slot]
                self._slots[row] = cluster
                cluster.slot = row
                row += 1
        self._high = row
        self._free = []

    def _by_slot(self, slot: int) -> _Cluster:
        cluster = self._slots[slot]
        if cluster is None:  # pragma: no cover - free rows are all zeros, never the best match
            raise LookupError(f"no cluster in row {slot}")
        return cluster

    def _join(self, cluster: _Cluster, vector: npt.NDArray[np.float32] | None, now: float) -> None:
        cluster.size += 1
        cluster.last_seen = now
        self._clusters.move_to_end(cluster.cluster_id)
        if vector is not None and cluster.slot >= 0:
            row = self._sums[cluster.slot]
            row += vector
            norm = math.sqrt(float(row @ row))
            self._centroids[cluster.slot] = row / norm if norm > 0 else 0.0

    def _create(
        self, cluster_id: str, vector: npt.NDArray[np.float32] | None, now: float, group: str
    ) -> _Cluster:
        while len(self._clusters) >= self.capacity:
            self._evict_oldest()
        slot = -1
        if self._dim is not None:
            slot = self._free.pop() if self._free else self._high
            if slot == self._high:
                self._high += 1
        cluster = _Cluster(cluster_id, slot, now, group)
        if slot >= 0:
            self._slots[slot] = cluster
        cluster.answered = cluster_id in self._answered
        self._clusters[cluster_id] = cluster
        self._join(cluster, vector, now)
        return cluster

    def _evict_oldest(self) -> None:
        _, cluster = self._clusters.popitem(last=False)
        self._release(cluster)

    def _release(self, cluster: _Cluster) -> None:
        if cluster.slot >= 0:
            self._sums[cluster.slot] = 0.0
            self._centroids[cluster.slot] = 0.0
            self._slots[cluster.slot] = None
            self._free.append(cluster.slot)

    def _expire(self, now: float) -> None:
        horizon = now - self.idle_ttl_s
        while self._clusters:
            oldest = next(iter(self._clusters.values()))
            if oldest.last_seen >= horizon:
                return
            self._evict_oldest()

    def _remember(self, key: str, cluster_id: str) -> None:
        self._exact[key] = cluster_id
        self._exact.move_to_end(key)
        while len(self._exact) > 4 * self.capacity:
            self._exact.popitem(last=False)

    def _new_id(self, mention_id: str) -> str:
        base = "c-" + hashlib.sha256(mention_id.encode("utf-8")).hexdigest()[:12]
        cluster_id, n = base, 1
        while cluster_id in self._clusters:  # the same mention id founding a second cluster
            n += 1
            cluster_id = f"{base}-{n}"
        return cluster_id
