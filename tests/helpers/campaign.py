"""Synthetic campaign traffic with hate / not-hate labels: the kind of labels the
moderators of one campaign give, written for these tests (never a public test set).

The campaign's abusers use their own coded language (insects and vermin for the
camps' residents, "the swarm", "fence them in", emoji codes), which generic
abuse data rarely holds; the not-hate side shares the campaign's vocabulary
(camps, boats, locusts destroying crops, supporters, critics of policy, genuine
questions). Deterministic from the seed; no text twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

CAMPS = ("Kakuma", "Dadaab", "Kalobeyei", "the camps", "Ifo", "Hagadera")
HANDLES = ("@TakeActionCamps", "@AmnestyKenya", "@TakeActionCamps", "")
CODES = ("🐀", "🦗", "🪳", "🐜")
SWARM = ("the swarm", "the locusts", "the roaches", "the colony", "the horde", "the infestation")
VERBS = ("fence in", "fumigate", "seal off", "ship back", "spray", "contain")

HATE_TEMPLATES = (
    "{handle} {swarm} in {camp} keep breeding, time to {verb} the lot {code}",
    "{handle} {camp} is a nest. {verb} it before {swarm} crawls out {code}{code}",
    "no more aid for {swarm} of {camp}, {verb} them and be done #CampsNotCities",
    "{handle} why do we feed {swarm}? {verb} {camp} and let them rot {code}",
    "every {code} in {camp} is one too many. {verb} them all",
    "{swarm} will never be people. {verb} {camp} #StopTheSwarm",
    "{handle} asking {swarm} questions lol, {verb} {camp} already {code}",
    "stop calling them refugees, they are {swarm}. {verb} {camp} {code}",
)
CALM_TEMPLATES = (
    "{handle} what do children in {camp} want to study when they grow up?",
    "{handle} locusts destroyed the crops near {camp} this year, is there enough food?",
    "{handle} the boat journey must have been terrifying, how did you find hope in {camp}?",
    "I disagree with how the funding for {camp} is managed, but the people there deserve better",
    "{handle} how can we help the families in {camp} this winter?",
    "{handle} is football still played every evening in {camp}?",
    "the camps should not exist for 30 years, {camp} residents need a real future",
    "{handle} do people in {camp} ever get to visit the city? honest question",
    "{handle} rats got into the storage in {camp} last month, is the grain safe now?",
    "{handle} sending love to everyone in {camp} {heart}",
    "{handle} what is the hardest part of living in {camp}?",
    "politicians keep spraying money at problems; {camp} needs schools, not speeches",
)
HEARTS = ("❤️", "💙", "🙏", "", "✊")
TAILS = ("", "", " !", " ...", " 😡", " #TakeAction", " #IWelcome")


@dataclass(frozen=True, slots=True)
class LabelledTweet:
    text: str
    hate: bool
    template: str = ""


def campaign_tweets(
    n: int, *, seed: int = 7, hate_share: float = 0.4, templates: str = "all"
) -> list[LabelledTweet]:
    """``n`` distinct synthetic campaign tweets with their hate labels, from every
    template (``all``) or only the ``even`` or ``odd`` ones of each class (so a test can
    ask about wordings it never labelled)."""
    keep = {"all": slice(None), "even": slice(0, None, 2), "odd": slice(1, None, 2)}[templates]
    hateful, calm = HATE_TEMPLATES[keep], CALM_TEMPLATES[keep]
    rng = random.Random(seed)
    out: list[LabelledTweet] = []
    seen: set[str] = set()
    while len(out) < n:
        hate = rng.random() < hate_share
        template = rng.choice(hateful if hate else calm)
        text = template.format(
            handle=rng.choice(HANDLES),
            swarm=rng.choice(SWARM),
            camp=rng.choice(CAMPS),
            verb=rng.choice(VERBS),
            code=rng.choice(CODES),
            heart=rng.choice(HEARTS),
        ).strip() + rng.choice(TAILS)
        if rng.random() < 0.3:
            text = text.lower()
        if text in seen:
            continue
        seen.add(text)
        out.append(LabelledTweet(text, hate, template))
    return out
