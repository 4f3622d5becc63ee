"""What the embedded stack runs: one :class:`ProcessSpec` per service, in start order.

A service joins ``make run`` by adding a :meth:`ProcessSpec.python` to :func:`services`;
:mod:`.stack` starts, watches and stops them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ProcessSpec:
    """One service process of the embedded stack."""

    name: str
    argv: tuple[str, ...]
    port: int | None = None
    health_path: str = "/healthz"
    #: Liveness: 503 here means "up but useless, restart me" (every service's
    #: ``/healthz``; a broker or database being down is ``/readyz``'s).
    live_path: str = "/healthz"
    env: Mapping[str, str] = field(default_factory=dict)
    #: Lines printed under "URLs" once the stack is up.
    urls: tuple[str, ...] = ()
    #: CPU priority below the supervisor's (``nice``): :data:`BATCH_NICE` for the
    #: services that work through a backlog, so the pages people wait on come first.
    nice: int = 0

    @classmethod
    def python(
        cls,
        name: str,
        module: tuple[str, ...],
        *,
        port: int,
        env_prefix: str,
        env: Mapping[str, str],
        health_path: str = "/healthz",
        urls: tuple[str, ...] = (),
        nice: int = 0,
    ) -> ProcessSpec:
        """``python -m <module…>`` serving on 127.0.0.1:``port``, which its settings
        read from ``<env_prefix>HOST`` and ``<env_prefix>PORT``."""
        return cls(
            name=name,
            argv=(sys.executable, "-m", *module),
            port=port,
            health_path=health_path,
            env={f"{env_prefix}HOST": "127.0.0.1", f"{env_prefix}PORT": str(port), **env},
            urls=urls,
            nice=nice,
        )


#: How far below the pages the backlog workers run (the triage worker, the media
#: worker): on one shared machine the classifier's two torch threads otherwise take the
#: cores the triage web needs to answer a moderator during a spike. A backlog drains
#: the same once the web is idle; a page waits for nobody. (Under Kubernetes the pods'
#: CPU requests do this.)
BATCH_NICE = 10


def sqlite_url(path: Path) -> str:
    """The async SQLite URL of the database file at ``path``."""
    return f"sqlite+aiosqlite:///{path}"


#: The account the sandbox says the publisher's tokens belong to (its page shows it).
SANDBOX_ACCOUNT = "takeaction_sandbox"
#: The campaign's accounts: the sandbox's own, and the one the demo mentions name.
CAMPAIGN_HANDLES = [SANDBOX_ACCOUNT, "TakeActionCamps"]
#: The X stream rules, as a campaign would write them: the account mention first (a
#: post that summons the account can be answered by reply), the hashtags tagged
#: listen-only (X lets an app reply only when summoned) and parenthesised (X
#: evaluates AND before OR).
X_STREAM_RULES = [
    {"value": f"@{SANDBOX_ACCOUNT} -is:retweet", "tag": "account"},
    {"value": "(#TakeAction OR #IWelcome) -is:retweet", "tag": "listen-only:hashtag"},
]


def services(
    port_base: Mapping[str, int], *, var: Path, credentials: Mapping[str, str]
) -> list[ProcessSpec]:
    """Every service of the embedded stack, in start order. ``credentials`` are those
    of ``var/credentials.env``; the private ones go only into the specs that use them."""
    ingest = port_base["ingest"]
    worker = port_base["triage_worker"]
    web = port_base["triage_web"]
    web_internal = port_base.get("triage_web_internal", 8020)
    sandbox = port_base["sandbox"]
    publish = port_base["publish"]
    media = port_base["media"]
    sandbox_url = f"http://127.0.0.1:{sandbox}"
    platform_tokens = {
        name: credentials[name]
        for name in (
            "PUBLISH_X_ACCESS_TOKEN",
            "PUBLISH_MASTODON_ACCESS_TOKEN",
            "PUBLISH_BLUESKY_APP_PASSWORD",
        )
    }
    # Ingest hears the sandbox as it would hear the networks: X's filtered stream and
    # the campaign account's Mastodon notifications, with tokens of its own.
    intake_tokens = {
        name: credentials[name]
        for name in (
            "INGEST_X_BEARER_TOKEN",
            "INGEST_MASTODON_ACCESS_TOKEN",
            "INGEST_BLUESKY_APP_PASSWORD",
        )
    }
    return [
        ProcessSpec.python(
            "ingest",
            ("services.ingest", "serve"),
            port=ingest,
            env_prefix="INGEST_",
            env={
                "INGEST_CAMPAIGN_HANDLES": json.dumps(CAMPAIGN_HANDLES),
                "INGEST_X_API_BASE_URL": sandbox_url,
                "INGEST_X_RULES": json.dumps(X_STREAM_RULES),
                "INGEST_MASTODON_BASE_URL": sandbox_url,
                "INGEST_BLUESKY_SERVICE_URL": sandbox_url,
                "INGEST_BLUESKY_IDENTIFIER": SANDBOX_ACCOUNT,
                "INGEST_BLUESKY_CURSOR_FILE": str(var / "ingest" / "bluesky-cursor"),
                **intake_tokens,
            },
            urls=(
                f"ingest webhook    POST http://127.0.0.1:{ingest}/v1/mentions"
                "  (Bearer $INGEST_API_KEY)",
                f"ingest API docs   http://127.0.0.1:{ingest}/docs",
                f"ingest metrics    http://127.0.0.1:{ingest}/metrics",
            ),
        ),
        ProcessSpec.python(
            "triage-worker",
            ("services.triage", "worker"),
            port=worker,
            env_prefix="TRIAGE_WORKER_",
            env={},
            urls=(f"triage worker     http://127.0.0.1:{worker}/metrics  (classifier)",),
            nice=BATCH_NICE,
        ),
        ProcessSpec.python(
            "triage-web",
            ("services.triage", "web"),
            port=web,
            env_prefix="TRIAGE_",
            health_path="/readyz",  # up: migrated, and Kafka and its database answer
            env={
                "TRIAGE_INTERNAL_PORT": str(web_internal),
                "TRIAGE_DATABASE_URL": sqlite_url(var / "triage" / "triage.db"),
                "TRIAGE_MEDIA_DIR": str(var / "triage" / "media"),
                "TRIAGE_DEMO_ACCOUNTS": "true",
            },
            urls=(
                f"triage page       http://127.0.0.1:{web}/  (moderators: $TRIAGE_ADMIN_USER;"
                " teams: $TEAM_<SLUG>_USER)",
                f"replies to our answers  http://127.0.0.1:{web}/replies  (hidden, kept, alerts)",
                f"triage API docs   http://127.0.0.1:{web}/docs",
                f"triage metrics    http://127.0.0.1:{web_internal}/metrics  (internal port)",
            ),
        ),
        # Before the publisher: it is where the publisher's replies go.
        ProcessSpec.python(
            "sandbox",
            ("services.sandbox",),
            port=sandbox,
            env_prefix="PUBLISH_SANDBOX_",
            env={
                "PUBLISH_SANDBOX_MEDIA_DIR": str(var / "sandbox"),
                "PUBLISH_SANDBOX_POSTS_FILE": str(var / "sandbox" / "posts.json"),
                # Only the publisher's tokens are accepted (any would be, unset).
                "PUBLISH_SANDBOX_TOKENS": json.dumps(
                    dict.fromkeys(
                        [*platform_tokens.values(), *intake_tokens.values()], SANDBOX_ACCOUNT
                    )
                ),
            },
            urls=(
                f'sandbox platform  {sandbox_url}/  (the replies "posted"; not X, not Mastodon)',
                f"sandbox posts     {sandbox_url}/sandbox/posts",
            ),
        ),
        # After the web (it migrates the job table) and the sandbox (its Mastodon limits).
        ProcessSpec.python(
            "media",
            ("services.media", "serve"),
            port=media,
            env_prefix="MEDIA_",
            health_path="/readyz",
            env={
                "MEDIA_DATABASE_URL": sqlite_url(var / "triage" / "triage.db"),
                "MEDIA_MEDIA_DIR": str(var / "triage" / "media"),
                "MEDIA_WHISPER_MODEL_DIR": str(var / "models" / "whisper-base"),
                "MEDIA_MASTODON_INSTANCE_URL": sandbox_url,
            },
            urls=(
                f"media worker      http://127.0.0.1:{media}/readyz  (posters, transcripts,"
                " renditions)",
            ),
            nice=BATCH_NICE,
        ),
        ProcessSpec.python(
            "publish",
            ("services.publish", "serve"),
            port=publish,
            env_prefix="PUBLISH_",
            health_path="/readyz",  # up: started, and Kafka and its ledger answer
            env={
                "PUBLISH_DATABASE_URL": sqlite_url(var / "publish" / "ledger.db"),
                "PUBLISH_MEDIA_ROOT": str(var / "triage" / "media"),
                "PUBLISH_X_API_BASE_URL": sandbox_url,
                "PUBLISH_X_WEB_BASE_URL": sandbox_url,
                "PUBLISH_MASTODON_BASE_URL": sandbox_url,
                "PUBLISH_BLUESKY_SERVICE_URL": sandbox_url,
                "PUBLISH_BLUESKY_VIDEO_URL": sandbox_url,
                "PUBLISH_BLUESKY_IDENTIFIER": SANDBOX_ACCOUNT,
                **platform_tokens,
                "PUBLISH_API_KEY": credentials["PUBLISH_API_KEY"],
                "PUBLISH_CAMPAIGN_HANDLES": json.dumps(CAMPAIGN_HANDLES),
                # The sandbox costs nothing to read: the replies under the answers are
                # read every 5 s (30 s by default, where each X read is billed).
                "PUBLISH_PROTECT_POLL_S": "5",
            },
            urls=(
                f"publish metrics   http://127.0.0.1:{publish}/metrics",
                f"publish opt-outs  http://127.0.0.1:{publish}/v1/opt-outs"
                "  (Bearer $PUBLISH_API_KEY)",
            ),
        ),
    ]
