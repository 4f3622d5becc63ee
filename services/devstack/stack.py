"""The embedded stack: ``make run`` on one machine, no Docker.

Starts the Tansu broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` points at a real
Kafka), creates the topics, starts one process per service with its log in
``var/log/<name>.log``, waits for each to be healthy, replays the demo
mentions, prints the URLs and the demo credentials (kept in
``var/credentials.env`` and reused by later runs), then watches the processes:
one that dies is restarted with backoff. Ctrl-C stops everything cleanly.

The publisher posts to the local sandbox platform, never to X or Mastodon: both
base URLs point at it, with tokens generated for the sandbox alone.

A service joins the stack by adding a :meth:`ProcessSpec.python` to :func:`services`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.common.bootstrap import ensure_topics
from services.common.kafka import KafkaSettings
from services.common.lifecycle import pdeathsig_preexec
from services.devstack.broker import BrokerError, EmbeddedBroker

log = logging.getLogger("stack")

ROOT = Path(__file__).resolve().parents[2]
DEMO_FILE = ROOT / "services" / "devstack" / "demo" / "mentions.jsonl"


@dataclass(frozen=True)
class ProcessSpec:
    """One service process of the embedded stack."""

    name: str
    argv: tuple[str, ...]
    port: int | None = None
    health_path: str = "/healthz"
    env: Mapping[str, str] = field(default_factory=dict)
    #: Lines printed under "URLs" once the stack is up.
    urls: tuple[str, ...] = ()

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
        )


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


# --- credentials ---------------------------------------------------------------


def shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (shorter to read)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def load_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


def ensure_credentials(path: Path, wanted: Mapping[str, str | None]) -> dict[str, str]:
    """Read ``path``; add any wanted key that is missing (value or a random secret).

    Keys already present are kept, so a second ``make run`` reuses the same
    credentials. The file is written with mode 0600.
    """
    values = load_env_file(path)
    changed = False
    for key, default in wanted.items():
        if not values.get(key):
            values[key] = default if default is not None else secrets.token_urlsafe(24)
            changed = True
    if changed or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        body = "# Demo credentials generated by `make run` (local use only).\n" + "".join(
            f"{k}={v}\n" for k, v in values.items()
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
    return values


def demo_accounts() -> dict[str, str | None]:
    """The triage page's demo admin, and one member per team the rules file routes
    to (``TEAM_<SLUG>_USER`` / ``_PASSWORD``; passwords generated)."""
    from services.triage.config import TriageSettings  # noqa: PLC0415 - only here
    from services.triage.rules import load_rules  # noqa: PLC0415
    from services.triage.web.seed import env_prefix, teams_from_rules  # noqa: PLC0415

    accounts: dict[str, str | None] = {"TRIAGE_ADMIN_USER": "admin", "TRIAGE_ADMIN_PASSWORD": None}
    for slug in teams_from_rules(load_rules(TriageSettings().rules_path)):
        accounts[f"{env_prefix(slug)}_USER"] = slug
        accounts[f"{env_prefix(slug)}_PASSWORD"] = None
    return accounts


#: Credentials the stack needs; None means "generate a random secret".
CREDENTIALS: dict[str, str | None] = {
    "INGEST_API_KEY": None,
    "PUBLISH_API_KEY": None,
    "PUBLISH_X_ACCESS_TOKEN": None,
    "PUBLISH_MASTODON_ACCESS_TOKEN": None,
    "INGEST_X_BEARER_TOKEN": None,
    "INGEST_MASTODON_ACCESS_TOKEN": None,
    "PUBLISH_BLUESKY_APP_PASSWORD": None,
    "INGEST_BLUESKY_APP_PASSWORD": None,
}
#: Credentials only the processes whose :class:`ProcessSpec` names them get, and
#: that are never printed (the banner names them and points at the file).
PRIVATE_CREDENTIALS = frozenset(
    {
        "PUBLISH_API_KEY",
        "PUBLISH_X_ACCESS_TOKEN",
        "PUBLISH_MASTODON_ACCESS_TOKEN",
        "INGEST_X_BEARER_TOKEN",
        "INGEST_MASTODON_ACCESS_TOKEN",
        "PUBLISH_BLUESKY_APP_PASSWORD",
        "INGEST_BLUESKY_APP_PASSWORD",
    }
)


# --- processes -----------------------------------------------------------------


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) != 0


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - localhost
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


#: How long the services get to stop, all together, before SIGKILL (they exit by
#: themselves within 10 s of SIGTERM: services.common.lifecycle).
STOP_TIMEOUT_S = 12.0


class Process:
    """A supervised child: started in its own session, logs appended to a file."""

    def __init__(
        self,
        spec: ProcessSpec,
        env: Mapping[str, str],
        log_dir: Path,
        run_dir: Path,
        resend_dir: Path | None = None,
    ):
        self.spec = spec
        self.env = dict(env)
        if resend_dir is not None:  # the embedded broker: keep what it sends (epochs)
            self.env["KAFKA_RESEND_LOG"] = str(resend_dir / f"{spec.name}.db")
        self.log_path = log_dir / f"{spec.name}.log"
        self.pid_path = run_dir / f"{spec.name}.pid"
        self.popen: subprocess.Popen[bytes] | None = None
        self.restarts: list[float] = []

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.popen = subprocess.Popen(  # noqa: S603 - our own argv, no shell
                list(self.spec.argv),
                env={**os.environ, **self.env, **self.spec.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=ROOT,
                # Gone with the supervisor, even one killed with SIGKILL.
                preexec_fn=pdeathsig_preexec(signal.SIGTERM),  # noqa: PLW1509 - one thread here
            )
        self.pid_path.write_text(str(self.popen.pid))

    @property
    def health_url(self) -> str | None:
        if self.spec.port is None:
            return None
        return f"http://127.0.0.1:{self.spec.port}{self.spec.health_path}"

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise StackError(f"{self.spec.name} exited; last lines:\n{self.tail()}")
            if self.health_url is None or http_ok(self.health_url):
                return
            time.sleep(0.25)
        raise StackError(f"{self.spec.name} not healthy after {timeout:.0f}s:\n{self.tail()}")

    def terminate(self) -> None:
        """SIGTERM to the process's group (it stops within its exit deadline)."""
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)

    def reap(self, deadline: float) -> None:
        """Wait until ``deadline`` (monotonic) for the process to exit, then SIGKILL its
        group; forget it."""
        popen, self.popen = self.popen, None
        if popen is not None:
            try:
                popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", self.spec.name)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait(10)
            # Whatever it started in its group goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(popen.pid, signal.SIGKILL)
        self.pid_path.unlink(missing_ok=True)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        self.terminate()
        self.reap(time.monotonic() + timeout)

    def tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class StackError(RuntimeError):
    pass


def stop_leftovers(run_dir: Path) -> None:
    """Stop processes a previous run left behind (e.g. its terminal was killed)."""
    for pid_file in run_dir.glob("*.pid"):
        try:
            pid = int(pid_file.read_text().strip())
        except ValueError:
            pid_file.unlink(missing_ok=True)
            continue
        if pid != os.getpid() and _is_ours(pid):
            log.info("stopping %s left over from a previous run (pid %d)", pid_file.stem, pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)
            for _ in range(50):
                if not _is_ours(pid):
                    break
                time.sleep(0.1)
            else:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)


def _is_ours(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"services." in cmdline or b"tansu" in cmdline


# --- the stack -------------------------------------------------------------------


@dataclass
class Stack:
    var: Path
    demo_file: Path | None
    demo_rate: str | None
    port_base: dict[str, int]
    processes: list[Process] = field(default_factory=list)
    broker: EmbeddedBroker | None = None

    @property
    def log_dir(self) -> Path:
        return self.var / "log"

    @property
    def run_dir(self) -> Path:
        return self.var / "run"

    def up(self) -> dict[str, str]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        stop_leftovers(self.run_dir)
        credentials = ensure_credentials(
            self.var / "credentials.env", {**demo_accounts(), **CREDENTIALS}
        )
        specs = services(self.port_base, var=self.var, credentials=credentials)
        busy = [f"{s.name}:{s.port}" for s in specs if s.port and not port_free(s.port)]
        if busy:
            raise StackError(f"ports already in use: {', '.join(busy)}; stop whatever holds them")

        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            self.broker = EmbeddedBroker(
                self.port_base["broker"], log_path=self.log_dir / "broker.log"
            )
            self.broker.start()
            (self.run_dir / "broker.pid").write_text(str(self.broker.pid))
            bootstrap = self.broker.bootstrap_servers
            log.info("embedded Tansu broker on %s (memory only)", bootstrap)
        else:
            log.info("using Kafka at %s", bootstrap)
        shared = {k: v for k, v in credentials.items() if k not in PRIVATE_CREDENTIALS}
        env = {
            **shared,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "TAKEACTION_VAR": str(self.var),
            "PYTHONUNBUFFERED": "1",
        }
        os.environ.update(env)
        created = asyncio.run(ensure_topics(KafkaSettings()))
        log.info("topics ready (%d created)", len(created))

        # With the embedded broker (memory only), each producer keeps what it sent in
        # var/resend/<service>.db and sends it again to a restarted broker.
        resend_dir = self.var / "resend" if self.broker is not None else None
        for spec in specs:
            process = Process(spec, env, self.log_dir, self.run_dir, resend_dir)
            self.processes.append(process)
            process.start()
            process.wait_healthy(timeout=90)
            log.info("%s is up (log: %s)", spec.name, shown(process.log_path))
        return env

    def replay_demo(self, env: Mapping[str, str]) -> None:
        if self.demo_file is None:
            return
        ingest_port = self.port_base["ingest"]
        argv = [sys.executable, "-m", "services.ingest", "replay", str(self.demo_file)]
        if self.demo_rate:
            argv += ["--rate", self.demo_rate]
        log.info("replaying demo mentions from %s", shown(self.demo_file))
        result = subprocess.run(  # noqa: S603 - our own argv
            argv,
            env={**os.environ, **env, "INGEST_URL": f"http://127.0.0.1:{ingest_port}"},
            check=False,
            cwd=ROOT,
            preexec_fn=pdeathsig_preexec(signal.SIGTERM),
        )
        if result.returncode != 0:
            log.warning("demo replay exited with %d; the stack keeps running", result.returncode)

    def watch(self, stop: asyncio.Event | None = None) -> None:
        """Restart a process that died (at most 5 times in 5 minutes)."""
        while True:
            for process in self.processes:
                if process.alive():
                    continue
                now = time.monotonic()
                process.restarts = [t for t in process.restarts if now - t < 300]
                if len(process.restarts) >= 5:
                    raise StackError(f"{process.spec.name} keeps dying:\n{process.tail()}")
                delay = 2 ** len(process.restarts)
                log.warning(
                    "%s exited; restarting in %ds\n%s", process.spec.name, delay, process.tail(5)
                )
                time.sleep(delay)
                process.restarts.append(now)
                process.start()
            if self.broker is not None and not self.broker.running:
                self.restart_broker()
            time.sleep(1.0)

    def restart_broker(self) -> None:
        """The embedded broker died: start a new one on the same port.

        It comes back empty (memory only) with a new cluster id, so the topics
        are created again; the services reconnect on their own, see the new
        epoch, send what they sent in the last window again and read the topics
        from the beginning (:mod:`services.common.epoch`).
        """
        assert self.broker is not None
        log.warning("the embedded broker exited; restarting it (its data is gone: memory only)")
        self.broker.stop()
        self.broker.start()
        (self.run_dir / "broker.pid").write_text(str(self.broker.pid))
        asyncio.run(ensure_topics(KafkaSettings()))
        log.info("broker back on %s, topics recreated", self.broker.bootstrap_servers)

    def down(self) -> None:
        """Stop every service at once (each within its exit deadline), then the broker."""
        for process in reversed(self.processes):
            log.info("stopping %s", process.spec.name)
            process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in reversed(self.processes):
            process.reap(deadline)
        if self.broker is not None:
            log.info("stopping the broker")
            self.broker.stop()
            (self.run_dir / "broker.pid").unlink(missing_ok=True)


def banner(stack: Stack, credentials_path: Path) -> Iterator[str]:
    yield ""
    yield "takeaction is running (embedded). Ctrl-C stops everything."
    yield ""
    for process in stack.processes:
        yield from (f"  {url}" for url in process.spec.urls)
    if stack.broker is not None:
        yield f"  Kafka (Tansu, in memory)  {stack.broker.bootstrap_servers}"
    yield ""
    yield f"  demo credentials: {shown(credentials_path)}"
    credentials = load_env_file(credentials_path)
    for key, value in credentials.items():
        if key not in PRIVATE_CREDENTIALS:
            yield f"    {key}={value}"
    private = [key for key in credentials if key in PRIVATE_CREDENTIALS]
    if private:
        yield f"    (not shown, in the file: {', '.join(private)})"
    yield f"  logs: {shown(stack.log_dir)}/"
    yield ""


#: Port options of ``make run``: (option, environment variable, default, name in port_base).
PORT_OPTIONS = (
    ("--broker-port", "BROKER_PORT", "9092", "broker"),
    ("--ingest-port", "INGEST_PORT", "8001", "ingest"),
    ("--triage-worker-port", "TRIAGE_WORKER_PORT", "8010", "triage_worker"),
    ("--triage-port", "TRIAGE_PORT", "8000", "triage_web"),
    ("--triage-internal-port", "TRIAGE_INTERNAL_PORT", "8020", "triage_web_internal"),
    ("--publish-port", "PUBLISH_PORT", "8002", "publish"),
    ("--sandbox-port", "PUBLISH_SANDBOX_PORT", "8003", "sandbox"),
    ("--media-port", "MEDIA_PORT", "8011", "media"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.devstack.stack")
    parser.add_argument("command", choices=["run"], nargs="?", default="run")
    parser.add_argument("--var", type=Path, default=ROOT / "var")
    parser.add_argument("--demo-file", type=Path, default=DEMO_FILE)
    parser.add_argument("--no-demo", action="store_true", help="skip the demo replay")
    parser.add_argument("--demo-rate", default=None, help="replay rate, e.g. 200/s")
    for option, variable, default, _ in PORT_OPTIONS:
        parser.add_argument(option, type=int, default=int(os.environ.get(variable, default)))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )

    stack = Stack(
        var=args.var.resolve(),
        demo_file=None if args.no_demo else args.demo_file.resolve(),
        demo_rate=args.demo_rate,
        port_base={
            name: getattr(args, option[2:].replace("-", "_")) for option, _, _, name in PORT_OPTIONS
        },
    )

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # Both stop the stack, whatever the dispositions inherited: a shell starts a
    # background job (`make run &`, nohup) with SIGINT ignored, and Python then
    # never raises KeyboardInterrupt, so a `kill -INT` would be lost.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        env = stack.up()
        stack.replay_demo(env)
        sys.stdout.write("\n".join(banner(stack, stack.var / "credentials.env")) + "\n")
        sys.stdout.flush()
        stack.watch()
    except KeyboardInterrupt:
        log.info("stopping (Ctrl-C)")
        return 0
    except (StackError, BrokerError) as exc:
        log.error("%s", exc)  # noqa: TRY400 - the message is the whole story
        return 1
    finally:
        stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
