"""Pure decisions of triage: scores, priority, clusters of near-duplicate
questions, and what happens to each mention. No I/O here (the rules come from
:class:`~services.triage.rules.RulesFile`, which the composition root owns).

Two stages, so the model only sees what needs it (the stream worker and the
CLI both call them in this order):

1. :meth:`Triage.prejudge` applies the rules that need no model — block lists
   (→ quarantine), empty text, pure retweets and obvious spam (→ drop) — and
   returns ``None`` when the classifier is needed.
2. :meth:`Triage.decide` takes the classifier's :class:`Prediction` and
   applies the rules in order (the first that applies decides; each has a
   name, recorded in ``MentionClassified.rule``):

   ====================  ============  =============================================
   rule                  decision      when
   ====================  ============  =============================================
   blocked_author        quarantine    author on the block list
   blocked_keyword       quarantine    a blocked keyword/phrase in the text
   blocked_pattern       quarantine    a blocked regex matches
   hate / offensive      quarantine    model score ≥ the quarantine threshold
   empty                 drop          nothing left without @mentions/links/hashtags
   retweet               drop          ``RT @user: …`` with nothing added
   spam_*                drop          spam keyword/pattern, hashtag or link stuffing
   answered_cluster      drop          near-duplicate of an already answered question
   irrelevant_drop       drop          not a question, relevance below
                                       ``drop_irrelevant_below`` (off by default)
   not_question          review        question score below ``decisions.question``
   irrelevant            review        relevance below ``decisions.relevance``
   auto_assign           auto_assign   confident, on-topic, clean, team for its
                                       language, first of its cluster to be assigned
   review_*              review        why it was not auto-assigned
                                       (``review_auto_assign_off``, ``…_low_confidence``,
                                       ``…_no_team``, ``…_cluster_assigned``)
   ====================  ============  =============================================

Priority (0-100) is the sum of explainable parts, each a
:class:`PriorityReason` (see :func:`priority_parts`); a cap or the clamp to
0-100 is listed as a part too, so the points always add up to the priority.
Reasons with 0 points explain the decision (``decision``) and name the
suggested team (``team``, by language). Quarantined and dropped mentions have
priority 0.

Only questions are clustered, and only with questions of the same language
(one recorded answer serves askers of one language). The first question of a
cluster that qualifies is auto-assigned; later ones go to review
(``review_cluster_assigned``) so a team never gets the same question twice,
and once :meth:`Triage.mark_answered` is called they are dropped.

Clusters are per worker process and in memory (:class:`ClusterIndex`); the
stream is keyed by mention id, so near-duplicates may land on different
workers and get different cluster ids there — the triage database merges
clusters across workers. Not thread-safe: one :class:`Triage` per worker loop.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import numpy.typing as npt

from services.common.messages import (
    Decision,
    MentionClassified,
    MentionReceived,
    PriorityReason,
    Scores,
)
from services.triage.classifier.base import CampaignRelevance, Prediction
from services.triage.rules import Clusters, PriorityWeights, Rules, RulesFile, normalise

log = logging.getLogger(__name__)

_URL_RE = r"(?:https?://|www\.)\S+"
_MENTION_RE = r"(?<![\w@])@\w+(?:[.\-]\w+)*(?:@[\w\-]+(?:\.[\w\-]+)+)?"
_HASHTAG_RE = r"(?<![\w#&])#\w+"
_URL = re.compile(_URL_RE, re.IGNORECASE)
_HASHTAG = re.compile(_HASHTAG_RE)
_URL_OR_MENTION = re.compile(f"{_URL_RE}|{_MENTION_RE}", re.IGNORECASE)
_NOT_CONTENT = re.compile(f"{_URL_RE}|{_MENTION_RE}|{_HASHTAG_RE}", re.IGNORECASE)
_RETWEET = re.compile(r"^\s*RT\s+@\w+\s*:", re.IGNORECASE)
_TRAILING_PUNCT = r"[.,:;!…]*"
_ADDRESS_TOKEN = re.compile(f"(?:{_MENTION_RE}){_TRAILING_PUNCT}")
_TAG_TOKEN = re.compile(
    f"(?:{_URL_RE}|{_MENTION_RE}|{_HASHTAG_RE}){_TRAILING_PUNCT}", re.IGNORECASE
)
_WORD = re.compile(r"\w")
_WORDS = re.compile(r"\w+")
_MAX_MODEL_CHARS = 2_000
_MAX_DETAIL = 512
#: An unknown (non-finite) probability from a classifier counts as this: never auto-assigned.
UNKNOWN = 0.5


# --- text -----------------------------------------------------------------------


def strip_addressing(text: str) -> str:
    """The text without what only addresses or tags it: a leading ``RT @user:``,
    leading @mentions and a trailing run of @mentions, hashtags and links.

    Every mention in the stream names the campaign (that is how it was
    heard), so "@TakeActionCamps ... #TakeAction #IWelcome" says nothing about
    the question; left in, it dominates the embedding of a short question and
    keeps near-duplicates apart. Hashtags inside a sentence stay. Token by
    token, so linear in the text's length. Falls back to the whole text when
    nothing else is left.
    """
    tokens = _RETWEET.sub("", text, count=1).split()
    start, end = 0, len(tokens)
    while start < end and _ADDRESS_TOKEN.fullmatch(tokens[start]):
        start += 1
    while end > start and _TAG_TOKEN.fullmatch(tokens[end - 1]):
        end -= 1
    return " ".join(tokens[start:end]) if end > start else " ".join(tokens)


def text_for_model(text: str) -> str:
    """What the classifier sees: :func:`strip_addressing`, links inside the
    text as ``URL`` (the token its training data uses), whitespace collapsed,
    length bounded. Texts that differ only by addressing, tags or link codes
    become equal, which helps duplicate caches as well as clustering.
    """
    return _URL.sub("URL", strip_addressing(text))[:_MAX_MODEL_CHARS]


def content_words(text: str) -> str:
    """The text without @mentions, links and hashtags (what "empty" looks at)."""
    return _NOT_CONTENT.sub(" ", text)


def exact_key(text: str) -> str:
    """Key for exact duplicates: the same words once addressing, tags, links,
    @mentions, case, punctuation and spacing are set aside."""
    body = _URL_OR_MENTION.sub(" ", strip_addressing(text))
    words = " ".join(_WORDS.findall(normalise(body)))
    return hashlib.sha256(words.encode("utf-8")).hexdigest()[:32]


def language(lang: str | None) -> str:
    """The primary language subtag, lower case (``en-GB`` -> ``en``); "" when unknown."""
    return re.split(r"[-_]", lang, maxsplit=1)[0].lower() if lang else ""


def is_pure_retweet(text: str) -> bool:
    """``RT @user: …`` at the start: the retweeter added nothing of their own."""
    return _RETWEET.match(text) is not None


@dataclass(frozen=True, slots=True)
class Verdict:
    """A decision taken by a named rule, with a human-readable reason."""

    decision: Decision
    rule: str
    detail: str


def block_verdict(mention: MentionReceived, rules: Rules) -> Verdict | None:
    """The block lists (-> quarantine): author, keyword, pattern."""
    author = mention.author
    entry = rules.blocked_authors.find(mention.platform, author.id, author.handle)
    if entry is not None:
        return Verdict(Decision.QUARANTINE, "blocked_author", f"author {entry} is blocked")
    text = normalise(mention.text)
    keyword = rules.blocked_keywords.find(text)
    if keyword is not None:
        return Verdict(Decision.QUARANTINE, "blocked_keyword", f"blocked keyword {keyword!r}")
    pattern = rules.blocked_patterns.find(text)
    if pattern is not None:
        return Verdict(Decision.QUARANTINE, "blocked_pattern", f"blocked pattern {pattern!r}")
    return None


def drop_verdict(mention: MentionReceived, rules: Rules) -> Verdict | None:
    """Nothing to answer (-> drop): empty, pure retweet, spam."""
    if not _WORD.search(content_words(mention.text)):
        return Verdict(Decision.DROP, "empty", "nothing but @mentions, links, hashtags or emoji")
    if is_pure_retweet(mention.text):
        return Verdict(Decision.DROP, "retweet", "pure retweet: the original is triaged itself")
    return spam_verdict(mention.text, normalise(mention.text), rules)


def rule_verdict(mention: MentionReceived, rules: Rules) -> Verdict | None:
    """The rules that need no model, in order; ``None``: the model is needed."""
    return block_verdict(mention, rules) or drop_verdict(mention, rules)


def spam_verdict(raw_text: str, normalised_text: str, rules: Rules) -> Verdict | None:
    keyword = rules.spam_keywords.find(normalised_text)
    if keyword is not None:
        return Verdict(Decision.DROP, "spam_keyword", f"spam keyword {keyword!r}")
    pattern = rules.spam_patterns.find(normalised_text)
    if pattern is not None:
        return Verdict(Decision.DROP, "spam_pattern", f"spam pattern {pattern!r}")
    hashtags = len(_HASHTAG.findall(raw_text))
    if hashtags > rules.max_hashtags:
        return Verdict(
            Decision.DROP, "spam_hashtags", f"{hashtags} hashtags > {rules.max_hashtags}"
        )
    links = len(_URL.findall(raw_text))
    if links > rules.max_links:
        return Verdict(Decision.DROP, "spam_links", f"{links} links > {rules.max_links}")
    return None


# --- clusters -------------------------------------------------------------------


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


class _Cluster:
    __slots__ = ("answered", "assigned", "cluster_id", "group", "last_seen", "size", "slot")

    def __init__(self, cluster_id: str, slot: int, last_seen: float, group: str) -> None:
        self.cluster_id = cluster_id
        self.slot = slot
        self.group = group
        self.size = 0
        self.last_seen = last_seen
        self.assigned = False
        self.answered = False


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
        self.similarity = settings.similarity
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
    ) -> ClusterAssignment:
        """Put one question in a cluster; ``key`` from :func:`exact_key`, ``now`` in seconds.

        Only clusters of the same ``group`` (the language: one recorded answer
        serves askers of one language) are joined by similarity; exact
        duplicates join whatever their group.
        """
        assignment = self._assign(key, embedding, mention_id, now, group)
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
    ) -> ClusterAssignment:
        vector = self._unit(embedding)
        self._expire(now)
        known = self._exact.get(key)
        if known is not None:
            self._exact.move_to_end(key)
            cluster = self._clusters.get(known)
            if cluster is not None:
                self._join(cluster, vector, now)
                return ClusterAssignment(known, cluster.size, new=False, how="exact")
            cluster = self._create(known, vector, now, group)
            return ClusterAssignment(known, cluster.size, new=False, how="exact")
        if vector is not None and self._high:
            sims = self._centroids[: self._high] @ vector
            above = np.flatnonzero(sims >= self.similarity)
            for row in above[np.argsort(-sims[above], kind="stable")]:
                cluster = self._by_slot(int(row))
                if cluster.group != group:
                    continue
                self._join(cluster, vector, now)
                self._remember(key, cluster.cluster_id)
                return ClusterAssignment(
                    cluster.cluster_id,
                    cluster.size,
                    new=False,
                    how="similar",
                    similarity=float(sims[row]),
                )
        cluster_id = self._new_id(mention_id)
        cluster = self._create(cluster_id, vector, now, group)
        self._remember(key, cluster_id)
        return ClusterAssignment(cluster_id, cluster.size, new=True, how="new")

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


# --- priority -------------------------------------------------------------------


def _reason(factor: str, points: float, detail: str) -> PriorityReason:
    return PriorityReason(factor=factor, points=round(points, 2), detail=detail[:_MAX_DETAIL])


def priority_parts(
    scores: Scores,
    *,
    followers: int | None,
    age_minutes: float,
    cluster: ClusterAssignment | None,
    weights: PriorityWeights,
) -> list[PriorityReason]:
    """The explainable parts of a priority, before any cap or clamp.

    - ``question``: weight x question score.
    - ``relevance``: weight x relevance to the campaign.
    - ``not_abusive``: points x (1 - abuse) - penalty x abuse, abuse = max(offensive, hate).
    - ``reach``: points x log(1 + followers) / log(1 + followers_for_max), at most points.
    - ``freshness``: points x 0.5 ^ (age / half-life); a future ``created_at`` counts as new.
    - ``novelty``: a new question gets ``new_question``; one joining a cluster of
      k askers gets ``per_doubling`` x log2(k), at most ``max_askers`` (demand: one
      answer serves them all). Absent for mentions that are not clustered.
    """
    parts = [
        _reason("question", weights.question * scores.question, f"question {scores.question:.2f}"),
        _reason(
            "relevance", weights.relevance * scores.relevance, f"relevance {scores.relevance:.2f}"
        ),
    ]
    abuse = max(scores.offensive, scores.hate)
    na = weights.not_abusive
    parts.append(
        _reason(
            "not_abusive",
            na.points * (1.0 - abuse) - na.penalty * abuse,
            f"offensive {scores.offensive:.2f}, hate {scores.hate:.2f}",
        )
    )
    reach = weights.reach
    if followers is None:
        parts.append(_reason("reach", 0.0, "followers unknown"))
    else:
        share = min(1.0, math.log1p(followers) / math.log1p(reach.followers_for_max))
        parts.append(_reason("reach", reach.points * share, f"{followers} followers"))
    fresh = weights.freshness
    age = max(0.0, age_minutes)
    decay = 0.5 ** (age / fresh.half_life_minutes)
    parts.append(_reason("freshness", fresh.points * decay, f"{_age_text(age_minutes)} old"))
    if cluster is not None:
        nov = weights.novelty
        if cluster.new:
            parts.append(
                _reason("novelty", nov.new_question, f"new question ({cluster.cluster_id})")
            )
        else:
            points = min(nov.max_askers, nov.per_doubling * math.log2(cluster.size))
            parts.append(
                _reason(
                    "novelty",
                    points,
                    f"asked by {cluster.size} in {cluster.cluster_id} ({cluster.how} match)",
                )
            )
    return parts


def _age_text(minutes: float) -> str:
    if minutes < 0:
        return f"{-minutes:.0f} min in the future (clock skew), counted as 0 min"
    if minutes < 120:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} days"


def settle(
    parts: list[PriorityReason], *, cap: int | None, cap_why: str
) -> tuple[int, list[PriorityReason]]:
    """Apply an optional cap and the 0-100 clamp, each listed as a part; the
    result's points add up to the priority (to rounding)."""
    parts = list(parts)
    total = sum(p.points for p in parts)
    if cap is not None and total > cap:
        parts.append(_reason("cap", cap - total, f"{cap_why}: at most {cap}"))
        total = cap
    if total > 100:
        parts.append(_reason("clamp", 100 - total, "sum above 100"))
        total = 100
    elif total < 0:
        parts.append(_reason("clamp", -total, "sum below 0"))
        total = 0
    return max(0, min(100, round(total))), parts


def _probability(value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        return UNKNOWN
    return min(1.0, max(0.0, value))


def scores_of(prediction: Prediction) -> Scores:
    """The classifier's scores, clamped to [0, 1]; a NaN counts as unknown (0.5)."""
    return Scores(
        offensive=_probability(prediction.offensive),
        hate=_probability(prediction.hate),
        question=_probability(prediction.question),
        relevance=_probability(prediction.relevance),
    )


# --- the triage -----------------------------------------------------------------


class Triage:
    """Decides what happens to each mention; see the module docstring.

    Holds the per-process cluster index; rules are read from ``rules`` on
    every call, so a reloaded rules file applies to the next mention.
    """

    def __init__(
        self,
        rules: RulesFile,
        model_version: str,
        *,
        campaign: CampaignRelevance | None = None,
    ) -> None:
        self._rules = rules
        self.model_version = model_version
        #: Re-embeds the campaign when the rules file's campaign changes and scores
        #: relevance at decision time (so a cached prediction follows the edit too).
        #: Without it the prediction's own relevance is used.
        self._campaign = campaign
        self._campaign_texts: tuple[str, ...] | None = None
        settings = rules.current().clusters
        self.clusters = ClusterIndex(
            capacity=settings.max_clusters,
            similarity=settings.similarity,
            idle_ttl_s=settings.idle_ttl_hours * 3600.0,
            max_answered=settings.max_answered,
        )

    def text_for_model(self, mention: MentionReceived) -> str:
        return text_for_model(mention.text)

    def team_for(self, mention: MentionReceived) -> str | None:
        """The recording team for the mention's language under the rules in force."""
        return self._rules.current().routing.team_for(mention.lang)

    def mark_answered(self, cluster_id: str) -> None:
        """A cluster's question got an answer: later near-duplicates are dropped."""
        self.clusters.mark_answered(cluster_id)

    def answer_approved(self, mention_id: str) -> str | None:
        """A reply to ``mention_id`` was requested (a moderator approved an answer to
        its question): its cluster counts as answered. The cluster id, or ``None``
        when this worker does not know the mention (another replica's, or forgotten)."""
        cluster_id = self.clusters.cluster_of(mention_id)
        if cluster_id is not None:
            self.clusters.mark_answered(cluster_id)
        return cluster_id

    def _with_campaign_relevance(self, prediction: Prediction, rules: Rules) -> Prediction:
        if self._campaign is None:
            return prediction
        texts = tuple(rules.campaign_examples)
        if texts != self._campaign_texts:
            self._campaign.set_campaign(texts)
            if self._campaign_texts is not None:
                log.info("campaign texts changed: re-embedded %d text(s)", len(texts))
            self._campaign_texts = texts
        relevance = self._campaign.relevance(prediction.embedding[np.newaxis, :])
        return replace(prediction, relevance=float(relevance[0]))

    def prejudge(self, mention: MentionReceived, *, now: datetime) -> MentionClassified | None:
        """Decide without the model when a rule can; ``None`` when the model is needed.

        Scores in these results are set by the rule, not measured: quarantine →
        offensive 1; spam → spam 1; everything else 0 (said in the reasons).
        """
        rules = self._rules.current()
        verdict = rule_verdict(mention, rules)
        if verdict is None:
            return None
        abusive = verdict.decision is Decision.QUARANTINE
        scores = Scores(
            offensive=1.0 if abusive else 0.0,
            hate=0.0,
            spam=1.0 if verdict.rule.startswith("spam_") else 0.0,
            question=0.0,
            relevance=0.0,
        )
        detail = f"{verdict.detail}; scores set by the rule, model not run"
        return self._result(mention, scores, verdict, detail, rules, now=now)

    def decide(
        self, mention: MentionReceived, prediction: Prediction, *, now: datetime
    ) -> MentionClassified:
        """Apply every rule in order to a mention and its classifier prediction."""
        rules = self._rules.current()
        self.clusters.configure(rules.clusters)
        prediction = self._with_campaign_relevance(prediction, rules)
        scores = scores_of(prediction)
        verdict = (
            block_verdict(mention, rules)
            or self._abuse_verdict(scores, rules)
            or drop_verdict(mention, rules)
        )
        if verdict is not None:
            return self._result(mention, scores, verdict, verdict.detail, rules, now=now)

        d = rules.decisions
        is_question = scores.question >= d.question
        cluster: ClusterAssignment | None = None
        if is_question:
            key = exact_key(mention.text)
            cluster = self.clusters.assign(
                key, prediction.embedding, mention.id, now.timestamp(), group=language(mention.lang)
            )
            if self.clusters.is_answered(cluster.cluster_id):
                verdict = Verdict(
                    Decision.DROP,
                    "answered_cluster",
                    f"near-duplicate of answered question {cluster.cluster_id} "
                    f"({cluster.how} match)",
                )
                return self._result(
                    mention, scores, verdict, verdict.detail, rules, now=now, cluster=cluster
                )

        age_minutes = (now - mention.created_at).total_seconds() / 60.0
        parts = priority_parts(
            scores,
            followers=mention.author.followers,
            age_minutes=age_minutes,
            cluster=cluster,
            weights=rules.priority,
        )
        team = rules.routing.team_for(mention.lang)
        cap: int | None = None
        cap_why = ""
        if not is_question:
            cap, cap_why = d.low_priority_cap, "not a question"
            if d.drop_irrelevant_below is not None and scores.relevance < d.drop_irrelevant_below:
                verdict = Verdict(
                    Decision.DROP,
                    "irrelevant_drop",
                    f"not a question (question {scores.question:.2f} < {d.question:.2f}) and "
                    f"off-topic (relevance {scores.relevance:.2f} < {d.drop_irrelevant_below:.2f})",
                )
                return self._result(mention, scores, verdict, verdict.detail, rules, now=now)
            verdict = Verdict(
                Decision.REVIEW,
                "not_question",
                f"question {scores.question:.2f} < {d.question:.2f}",
            )
        elif scores.relevance < d.relevance:
            cap, cap_why = d.low_priority_cap, "off-topic"
            verdict = Verdict(
                Decision.REVIEW,
                "irrelevant",
                f"relevance {scores.relevance:.2f} < {d.relevance:.2f}",
            )
        else:
            verdict = self._assign_verdict(scores, team, cluster, rules)
            if verdict.decision is Decision.AUTO_ASSIGN and cluster is not None:
                self.clusters.mark_assigned(cluster.cluster_id)

        priority, parts = settle(parts, cap=cap, cap_why=cap_why)
        parts.append(_reason("team", 0.0, team or f"none for language {mention.lang or '?'}"))
        return self._result(
            mention,
            scores,
            verdict,
            verdict.detail,
            rules,
            now=now,
            cluster=cluster,
            priority=priority,
            parts=parts,
        )

    # --- helpers -----------------------------------------------------------------

    @staticmethod
    def _abuse_verdict(scores: Scores, rules: Rules) -> Verdict | None:
        q = rules.decisions.quarantine
        if scores.hate >= q.hate:
            return Verdict(Decision.QUARANTINE, "hate", f"hate {scores.hate:.2f} ≥ {q.hate:.2f}")
        if scores.offensive >= q.offensive:
            return Verdict(
                Decision.QUARANTINE,
                "offensive",
                f"offensive {scores.offensive:.2f} ≥ {q.offensive:.2f}",
            )
        return None

    def _assign_verdict(
        self,
        scores: Scores,
        team: str | None,
        cluster: ClusterAssignment | None,
        rules: Rules,
    ) -> Verdict:
        aa = rules.decisions.auto_assign
        unmet: list[tuple[str, str]] = []
        if not aa.enabled:
            unmet.append(("review_auto_assign_off", "auto-assign is off"))
        low = [
            f"question {scores.question:.2f} < {aa.question:.2f}"
            if scores.question < aa.question
            else "",
            f"relevance {scores.relevance:.2f} < {aa.relevance:.2f}"
            if scores.relevance < aa.relevance
            else "",
            f"offensive {scores.offensive:.2f} > {aa.max_offensive:.2f}"
            if scores.offensive > aa.max_offensive
            else "",
            f"hate {scores.hate:.2f} > {aa.max_hate:.2f}" if scores.hate > aa.max_hate else "",
        ]
        unmet.extend(("review_low_confidence", why) for why in low if why)
        if team is None:
            unmet.append(("review_no_team", "no team for this language"))
        if cluster is not None and self.clusters.is_assigned(cluster.cluster_id):
            unmet.append(
                ("review_cluster_assigned", f"{cluster.cluster_id} already went to a team")
            )
        if not unmet:
            return Verdict(
                Decision.AUTO_ASSIGN,
                "auto_assign",
                f"question {scores.question:.2f}, relevance {scores.relevance:.2f}, "
                f"offensive {scores.offensive:.2f}, hate {scores.hate:.2f} within the "
                f"auto-assign thresholds; team {team}",
            )
        return Verdict(
            Decision.REVIEW,
            unmet[0][0],
            "not auto-assigned: " + "; ".join(why for _, why in unmet),
        )

    def _result(
        self,
        mention: MentionReceived,
        scores: Scores,
        verdict: Verdict,
        detail: str,
        rules: Rules,
        *,
        now: datetime,
        cluster: ClusterAssignment | None = None,
        priority: int = 0,
        parts: list[PriorityReason] | None = None,
    ) -> MentionClassified:
        decision_reason = _reason(
            "decision",
            0.0,
            f"{verdict.decision.value} by rule {verdict.rule} (rules {rules.version}): {detail}",
        )
        return MentionClassified(
            mention=mention,
            scores=scores,
            priority=priority,
            reasons=(*(parts or ()), decision_reason),
            decision=verdict.decision,
            model_version=self.model_version,
            rule=verdict.rule,
            rules_version=rules.version,
            cluster_id=cluster.cluster_id if cluster is not None else None,
            team=rules.routing.team_for(mention.lang),
            classified_at=now,
        )
