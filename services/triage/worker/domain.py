"""Where a mention is decided: :class:`Triage` applies the rules that need no
model first (:meth:`Triage.prejudge`), then the classifier's scores
(:meth:`Triage.decide`); each decision is taken by a named rule (the table is in
the triage README, "Decisions"), with its priority (:mod:`.priority`) and, for a
question, its cluster (:mod:`.clusters`). Pure: no I/O (the rules come from
:class:`~services.triage.rules.RulesFile`, which the composition root owns).
Not thread-safe: one :class:`Triage` per worker loop.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from services.common.messages import (
    Decision,
    MentionClassified,
    MentionReceived,
    ModelPath,
    PriorityReason,
    Scores,
)
from services.common.replyability import replyability
from services.triage.classifier.base import CampaignRelevance, Classifier, Prediction
from services.triage.classifier.bridge import Bridge, bridge_for
from services.triage.classifier.textbits import content_words, language
from services.triage.classifier.thread import on_classifier_thread
from services.triage.rules import Rules, RulesFile, normalise
from services.triage.worker.clusters import ClusterAssignment, ClusterIndex
from services.triage.worker.multilingual import MultilingualEmbedder
from services.triage.worker.priority import priority_parts, reason, scores_of, settle
from services.triage.worker.questions import cue_for_decision, with_question_cue
from services.triage.worker.text import (
    HASHTAG,
    URL,
    aims_at_someone,
    exact_key,
    is_pure_retweet,
    text_for_model,
)

log = logging.getLogger(__name__)

_WORD = re.compile(r"\w")
#: Most mentions :meth:`Triage.prejudge` remembers as cleared for :meth:`Triage.decide`
#: (a stream batch's worth many times over: one whose classification failed is never
#: asked about).
MAX_CLEARED = 8192


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
    hashtags = len(HASHTAG.findall(raw_text))
    if hashtags > rules.max_hashtags:
        return Verdict(
            Decision.DROP, "spam_hashtags", f"{hashtags} hashtags > {rules.max_hashtags}"
        )
    links = len(URL.findall(raw_text))
    if links > rules.max_links:
        return Verdict(Decision.DROP, "spam_links", f"{links} links > {rules.max_links}")
    return None


def abuse_verdict(
    scores: Scores, rules: Rules, text: str, lang: str | None = None, path: str = "en"
) -> tuple[Verdict | None, str]:
    """(quarantine verdict or None, why an offensive score is *not* abuse or "").

    Hate at or above its threshold quarantines. Offensive at or above its
    threshold quarantines too, except (when the rules say so) a mention on the
    campaign's subject (relevance at least ``offensive_exempt_relevance``) —
    supporters and askers name refugees, and only hate should hide them — on
    the model paths whose relevance is trusted (``offensive_exempt_paths``), and
    profanity aimed at no one (``offensive_needs_target``).
    """
    q = rules.decisions.quarantine
    if scores.hate >= q.hate:
        return Verdict(Decision.QUARANTINE, "hate", f"hate {scores.hate:.2f} ≥ {q.hate:.2f}"), ""
    if scores.offensive < q.offensive:
        return None, ""
    offensive = f"offensive {scores.offensive:.2f} ≥ {q.offensive:.2f}"
    hate = f"hate {scores.hate:.2f} < {q.hate:.2f}"
    exempt = q.offensive_exempt_relevance
    if exempt is not None and path in q.offensive_exempt_paths and scores.relevance >= exempt:
        return None, (
            f"{offensive} but on the campaign's subject (relevance {scores.relevance:.2f} ≥ "
            f"{exempt:.2f}) and {hate}: not quarantined on offensive alone"
        )
    if q.offensive_needs_target and not aims_at_someone(text, lang):
        return None, f"{offensive} but aimed at no one (profanity, not abuse) and {hate}"
    return Verdict(Decision.QUARANTINE, "offensive", offensive), ""


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
        # Used once clustering is multilingual (:meth:`cluster_multilingually`).
        self._english = self.clusters
        self._bridge: Bridge | None = None
        self._english_to_multi: OrderedDict[str, str] = OrderedDict()
        #: Mentions :meth:`prejudge` found no rule for, by id: the mention itself and the
        #: rules it read, so :meth:`decide` does not run the same rules on it again.
        self._cleared: OrderedDict[str, tuple[MentionReceived, Rules]] = OrderedDict()

    @property
    def multilingual_clusters(self) -> bool:
        """Questions are clustered in the multilingual (e5) space, across languages."""
        return self.clusters.multilingual

    def cluster_multilingually(self, bridge: Bridge | None = None) -> None:
        """From now on cluster in the e5 space (the composition root's call, when the
        classifier can embed every question there); the clusters so far are forgotten
        (another space) and the e5 threshold applies. With ``bridge``, an English-path
        question's e5 embedding is its MiniLM one bridged (no e5 pass)."""
        self._bridge = bridge
        settings = self._rules.current().clusters
        self.clusters = ClusterIndex(
            capacity=settings.max_clusters,
            similarity=settings.multilingual_similarity,
            idle_ttl_s=settings.idle_ttl_hours * 3600.0,
            max_answered=settings.max_answered,
        )
        self.clusters.multilingual = True
        self.clusters.bridged_similarity = settings.bridged_similarity
        # English-path questions are also indexed by their MiniLM embedding: one that
        # joins a known cluster there needs no e5 pass (only a cluster's first question
        # pays one), the worker's throughput on a mixed stream depends on it.
        self._english = ClusterIndex(
            capacity=settings.max_clusters,
            similarity=settings.similarity,
            idle_ttl_s=settings.idle_ttl_hours * 3600.0,
            max_answered=settings.max_answered,
        )
        #: English (MiniLM) cluster id -> the multilingual cluster it belongs to.
        self._english_to_multi = OrderedDict()

    def use_model(self, classifier: Classifier) -> None:
        """Record ``classifier``'s version from now on, and measure relevance with it
        (the campaign is embedded again by the new model at the next decision)."""
        self.model_version = classifier.version
        if isinstance(classifier, MultilingualEmbedder) and not self.multilingual_clusters:
            self.cluster_multilingually(bridge_for(classifier))
        elif self._bridge is not None and bridge_for(classifier) is None:
            self._bridge = None  # another English model: its embeddings are elsewhere
        if self._campaign is not None and isinstance(classifier, CampaignRelevance):
            self._campaign = classifier
            self._campaign_texts = None

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

    def wants_multilingual_embedding(
        self, mention: MentionReceived, prediction: Prediction
    ) -> bool:
        """Whether the mention will be clustered and lacks the e5 embedding that
        clusters across languages (an English question scored on the MiniLM path):
        only questions that are not abuse, so the extra e5 pass stays rare."""
        if (
            not self.multilingual_clusters
            or prediction.multilingual_embedding is not None
            or self._bridge is not None
        ):
            return False
        rules = self._rules.current()
        d = rules.decisions
        if prediction.hate >= d.quarantine.hate:
            return False
        question = (
            prediction.question >= d.question
            or cue_for_decision(mention.text, mention.lang, prediction.question, d) is not None
        )
        return question and self._known_english_cluster(mention, prediction) is None

    def _known_english_cluster(
        self, mention: MentionReceived, prediction: Prediction
    ) -> str | None:
        """The multilingual cluster an English-path question joins by its MiniLM
        embedding (or exact text), when that cluster is still known."""
        found = self._english.find(
            exact_key(mention.text), prediction.embedding, group=language(mention.lang)
        )
        target = self._english_to_multi.get(found) if found is not None else None
        return target if target is not None and target in self.clusters else None

    def _cluster(
        self, mention: MentionReceived, prediction: Prediction, now: datetime
    ) -> ClusterAssignment:
        """Put a question in its cluster: across languages in the e5 space when the
        worker clusters multilingually (exact duplicates only for a question whose
        e5 embedding is missing), else within its language by the MiniLM embedding."""
        key = exact_key(mention.text)
        group = language(mention.lang)
        if not self.multilingual_clusters:
            return self.clusters.assign(
                key, prediction.embedding, mention.id, now.timestamp(), group=group
            )
        at = now.timestamp()
        embedding = prediction.multilingual_embedding
        if prediction.path == ModelPath.MULTI.value:
            if embedding is None:  # the multilingual path gives one; else exact text only
                embedding = np.zeros(0, dtype=np.float32)
            return self.clusters.assign(
                key, embedding, mention.id, at, group=group, across_languages=True
            )
        # The English path: a known English cluster (by MiniLM) is joined as it is;
        # a new one is placed in the e5 space, where it may join another language's.
        english = self._english.assign(key, prediction.embedding, mention.id, at, group=group)
        target = self._english_to_multi.get(english.cluster_id)
        if not english.new and target is not None:
            joined = self.clusters.join(target, key, embedding, mention.id, at)
            if joined is not None:
                return replace(joined, how=english.how, similarity=english.similarity)
        bridged = embedding is None and self._bridge is not None
        if bridged and self._bridge is not None:
            embedding = self._bridge.project(prediction.embedding)[0]
        if embedding is None:
            embedding = np.zeros(0, dtype=np.float32)  # exact duplicates only
        assignment = self.clusters.assign(
            key, embedding, mention.id, at, group=group, across_languages=True, bridged=bridged
        )
        self._english_to_multi[english.cluster_id] = assignment.cluster_id
        self._english_to_multi.move_to_end(english.cluster_id)
        while len(self._english_to_multi) > 4 * self._english.capacity:
            self._english_to_multi.popitem(last=False)
        return assignment

    def _with_campaign_relevance(self, prediction: Prediction, rules: Rules) -> Prediction:
        if self._campaign is None:
            return prediction
        texts = tuple(rules.campaign_examples)
        if texts != self._campaign_texts:
            # A forward pass: on the classifier's thread (classifier/thread.py).
            on_classifier_thread(self._campaign.set_campaign, texts)
            if self._campaign_texts is not None:
                log.info("campaign texts changed: re-embedded %d text(s)", len(texts))
            self._campaign_texts = texts
        relevance = self._campaign.relevance(
            prediction.embedding[np.newaxis, :], path=prediction.path
        )
        return replace(prediction, relevance=float(relevance[0]))

    def prejudge(self, mention: MentionReceived, *, now: datetime) -> MentionClassified | None:
        """Decide without the model when a rule can; ``None`` when the model is needed.

        Scores in these results are set by the rule, not measured: quarantine →
        offensive 1; spam → spam 1; everything else 0 (said in the reasons).
        """
        rules = self._rules.current()
        verdict = rule_verdict(mention, rules)
        if verdict is None:
            self._cleared[mention.id] = (mention, rules)
            self._cleared.move_to_end(mention.id)
            while len(self._cleared) > MAX_CLEARED:
                self._cleared.popitem(last=False)
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

    def _first_verdict(
        self, mention: MentionReceived, rules: Rules, abuse: Verdict | None
    ) -> Verdict | None:
        """The block lists, then abuse, then the drops: the first that applies. The
        block lists and drops are not read again for a mention :meth:`prejudge` just
        cleared under these very rules (asked once, then forgotten)."""
        seen = self._cleared.pop(mention.id, None)
        if seen is not None and seen[0] is mention and seen[1] is rules:
            return abuse
        return block_verdict(mention, rules) or abuse or drop_verdict(mention, rules)

    def decide(
        self, mention: MentionReceived, prediction: Prediction, *, now: datetime
    ) -> MentionClassified:
        """Apply every rule in order to a mention and its classifier prediction."""
        rules = self._rules.current()
        self.clusters.configure(rules.clusters)
        if self.multilingual_clusters:
            self._english.configure(rules.clusters)
        prediction = self._with_campaign_relevance(prediction, rules)
        scores = scores_of(prediction)
        model = _model_of(prediction, self.model_version)

        def finish(
            verdict: Verdict,
            *,
            cluster: ClusterAssignment | None = None,
            priority: int = 0,
            parts: list[PriorityReason] | None = None,
        ) -> MentionClassified:
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
                model=model,
            )

        abuse, not_abuse = abuse_verdict(scores, rules, mention.text, mention.lang, prediction.path)
        verdict = self._first_verdict(mention, rules, abuse)
        if verdict is not None:
            return finish(verdict)

        d = rules.decisions
        scores, cue = with_question_cue(scores, mention.text, mention.lang, d)
        is_question = scores.question >= d.question
        cluster: ClusterAssignment | None = None
        if is_question:
            cluster = self._cluster(mention, prediction, now)
            if self.clusters.is_answered(cluster.cluster_id):
                verdict = Verdict(
                    Decision.DROP,
                    "answered_cluster",
                    f"near-duplicate of answered question {cluster.cluster_id} "
                    f"({cluster.how} match)",
                )
                return finish(verdict, cluster=cluster)

        age_minutes = (now - mention.created_at).total_seconds() / 60.0
        parts = priority_parts(
            scores,
            followers=mention.author.followers,
            age_minutes=age_minutes,
            cluster=cluster,
            weights=rules.priority,
            offensive_counts=not not_abuse,
        )
        if not_abuse:
            parts.append(reason("abuse", 0.0, not_abuse))
        # A mention without a language is routed by the language of the cluster it joined.
        team = rules.routing.team_for(mention.lang or (cluster.language if cluster else None))
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
                return finish(verdict)
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
            verdict = self._assign_verdict(scores, team, cluster, rules, mention)
            if verdict.decision is Decision.AUTO_ASSIGN and cluster is not None:
                self.clusters.mark_assigned(cluster.cluster_id)
        replyable = replyability(mention.platform, mention.summoned)
        not_replyable_cap = None if replyable.can_reply else d.not_replyable.priority_cap
        if not_replyable_cap is not None and (cap is None or not_replyable_cap < cap):
            cap, cap_why = not_replyable_cap, "not replyable"

        priority, parts = settle(parts, cap=cap, cap_why=cap_why)
        if cue is not None:
            parts.append(reason("question_cue", 0.0, cue))
        parts.append(reason("team", 0.0, team or f"none for language {mention.lang or '?'}"))
        return finish(verdict, cluster=cluster, priority=priority, parts=parts)

    # --- helpers -----------------------------------------------------------------

    def _assign_verdict(
        self,
        scores: Scores,
        team: str | None,
        cluster: ClusterAssignment | None,
        rules: Rules,
        mention: MentionReceived,
    ) -> Verdict:
        aa = rules.decisions.auto_assign
        unmet: list[tuple[str, str]] = []
        if not aa.enabled:
            unmet.append(("review_auto_assign_off", "auto-assign is off"))
        replyable = replyability(mention.platform, mention.summoned)
        if not replyable.can_reply and not rules.decisions.not_replyable.auto_assign:
            unmet.append(("review_not_replyable", f"not replyable: {replyable.reason}"))
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
        model: tuple[ModelPath, str] | None = None,
    ) -> MentionClassified:
        decision_reason = reason(
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
            model_version=model[1] if model is not None else self.model_version,
            model_path=model[0] if model is not None else None,
            model_language=language(mention.lang) or None,
            rule=verdict.rule,
            rules_version=rules.version,
            cluster_id=cluster.cluster_id if cluster is not None else None,
            team=rules.routing.team_for(
                mention.lang or (cluster.language if cluster is not None else None)
            ),
            classified_at=now,
        )


def _model_of(prediction: Prediction, classifier_version: str) -> tuple[ModelPath, str]:
    """The path that scored ``prediction`` and its model's version (the classifier's
    own when the prediction names none)."""
    path = ModelPath.MULTI if prediction.path == ModelPath.MULTI.value else ModelPath.EN
    return path, (prediction.model_version or classifier_version)[:256]
