"""Demo accounts for ``make run``: the recording teams named in the rules
file's language routing (``kakuma-a`` speaks en and sw, …), each with one
member whose name and password come from ``TEAM_<SLUG>_USER`` /
``TEAM_<SLUG>_PASSWORD`` (slug upper-cased, ``-`` as ``_``), the variables
``make run`` writes to ``var/credentials.env``. The admin comes from
``TRIAGE_ADMIN_USER`` / ``TRIAGE_ADMIN_PASSWORD`` (see ``app.bootstrap_admin``)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping

from services.triage.rules import Rules
from services.triage.web.auth import Accounts
from services.triage.web.models import Role
from services.triage.web.store import Actor, TriageStore

log = logging.getLogger(__name__)

#: Questions a demo team takes per day.
DEMO_CAPACITY = 25


def env_prefix(slug: str) -> str:
    """``kakuma-a`` → ``TEAM_KAKUMA_A``."""
    return "TEAM_" + slug.upper().replace("-", "_")


def teams_from_rules(rules: Rules) -> dict[str, list[str]]:
    """Each routed team and the languages routed to it."""
    teams: dict[str, list[str]] = defaultdict(list)
    for language, team in sorted(rules.routing.teams.items()):
        teams[str(team)].append(str(language))
    if rules.routing.fallback:
        teams.setdefault(str(rules.routing.fallback), [])
    return dict(teams)


async def seed_demo(
    store: TriageStore, accounts: Accounts, rules: Rules, environ: Mapping[str, str]
) -> list[str]:
    """Create (or refresh) the demo teams and their members; the slugs seeded."""
    actor = Actor.system("demo")
    seeded = []
    for slug, languages in teams_from_rules(rules).items():
        await store.teams.upsert(
            slug,
            name=slug.replace("-", " ").title(),
            languages=languages,
            capacity=DEMO_CAPACITY,
            actor=actor,
        )
        prefix = env_prefix(slug)
        user, password = environ.get(f"{prefix}_USER"), environ.get(f"{prefix}_PASSWORD")
        if user and password:
            await accounts.upsert_user(user, password, Role.TEAM, team=slug, actor=actor)
        else:
            log.warning("demo team %s has no member (%s_USER/_PASSWORD unset)", slug, prefix)
        seeded.append(slug)
    log.info("demo teams ready: %s", ", ".join(seeded))
    return seeded
