"""Where a reply under one of our published answers is judged: hidden or kept, and
whether it is a threat or doxxing (escalations). Pure: the rules' ``protection``
section and the classifier's scores in, a :class:`ReplyClassified` out. Pile-ons
are counted by the triage web, which sees every reply under an answer over time.

Order (the first that applies names the rule): ``blocked_author`` /
``blocked_keyword`` / ``blocked_pattern`` (the block lists), ``threat``,
``doxxing``, ``hate``, ``offensive`` (aimed at someone), else ``clean``. A threat
or doxxing found beside another reason still escalates.
"""

from __future__ import annotations

import re
from datetime import datetime

from services.common.messages import (
    Escalation,
    ReplyClassified,
    ReplyReceived,
    ReplyVerdict,
    Scores,
)
from services.triage.rules import Rules, normalise
from services.triage.worker.text import aims_at_someone

#: A speaker ref's first word, when it is made of letters (``Amina, filmed in Kakuma``).
_NAME = re.compile(r"^\s*([^\W\d_]{3,})(?=[\s,;.]|$)")


def speaker_name(speaker_ref: str) -> str | None:
    """The name a speaker ref starts with: a capitalised word of at least 3 letters
    (``speaker-17`` or ``ref 42`` name no one)."""
    found = _NAME.match(speaker_ref)
    return found.group(1) if found and found.group(1)[0].isupper() else None


def names_person(text: str, speaker_ref: str) -> bool:
    name = speaker_name(speaker_ref)
    return name is not None and re.search(rf"\b{re.escape(name.casefold())}\b", text) is not None


def escalations(reply: ReplyReceived, scores: Scores, rules: Rules) -> list[tuple[Escalation, str]]:
    """Threats and doxxing in one reply, each with why."""
    text = normalise(reply.text)
    found: list[tuple[Escalation, str]] = []
    threat = rules.threat_keywords.find(text) or rules.threat_patterns.find(text)
    if threat is not None:
        found.append((Escalation.THREAT, f"threat {threat!r}"))
    doxxing = rules.protection.doxxing
    hostility = max(scores.offensive, scores.hate)
    if hostility >= doxxing.hostility:
        place = rules.doxxing_places.find(text)
        named = names_person(text, reply.speaker_ref)
        if place is not None or named:
            where = f"place {place!r}" if place is not None else "the person's name"
            found.append(
                (
                    Escalation.DOXXING,
                    f"{where} with hostility {hostility:.2f} ≥ {doxxing.hostility:.2f}",
                )
            )
    return found


def _blocked(reply: ReplyReceived, rules: Rules) -> tuple[str, str] | None:
    entry = rules.blocked_authors.find(reply.platform, reply.author.id, reply.author.handle)
    if entry is not None:
        return "blocked_author", f"author {entry} is blocked"
    text = normalise(reply.text)
    keyword = rules.blocked_keywords.find(text)
    if keyword is not None:
        return "blocked_keyword", f"blocked keyword {keyword!r}"
    pattern = rules.blocked_patterns.find(text)
    if pattern is not None:
        return "blocked_pattern", f"blocked pattern {pattern!r}"
    return None


def _abuse(reply: ReplyReceived, scores: Scores, rules: Rules) -> tuple[str, str] | None:
    hide = rules.protection.hide
    if scores.hate >= hide.hate:
        return "hate", f"hate {scores.hate:.2f} ≥ {hide.hate:.2f}"
    if scores.offensive >= hide.offensive:
        offensive = f"offensive {scores.offensive:.2f} ≥ {hide.offensive:.2f}"
        if not hide.offensive_needs_target or aims_at_someone(reply.text, reply.lang):
            return "offensive", offensive
    return None


def judge(
    reply: ReplyReceived,
    scores: Scores,
    rules: Rules,
    *,
    model_version: str,
    now: datetime,
) -> ReplyClassified:
    """Hide or keep one reply, with the rule, the reasons and the escalations."""
    found = escalations(reply, scores, rules) if rules.protection.enabled else []
    reasons = [why for _, why in found]
    decided = _blocked(reply, rules)
    if decided is None and found:
        decided = (found[0][0].value, found[0][1])
    if decided is None:
        decided = _abuse(reply, scores, rules)
    if decided is not None and decided[1] not in reasons:
        reasons.insert(0, decided[1])
    hide = decided is not None and rules.protection.enabled
    if not hide:
        reasons.append(
            f"offensive {scores.offensive:.2f}, hate {scores.hate:.2f}: below what hides"
            if rules.protection.enabled
            else "protection is off in the rules"
        )
    return ReplyClassified(
        reply=reply,
        scores=scores,
        verdict=ReplyVerdict.HIDE if hide else ReplyVerdict.KEEP,
        rule=decided[0] if hide and decided is not None else "clean",
        reasons=tuple(r[:512] for r in reasons),
        escalations=tuple(kind for kind, _ in found),
        model_version=model_version,
        rules_version=rules.version,
        classified_at=now,
    )
