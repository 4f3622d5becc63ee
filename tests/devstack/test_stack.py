from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common import topics
from services.common.codec import encode, encode_key
from services.common.kafka import KafkaSettings, make_producer
from services.common.messages import Author, Consent, Platform, PublishReply, mention_id
from services.common.signing import SigningSettings
from services.devstack import specs as devspecs
from services.devstack import stack
from services.devstack.broker import free_port
from services.ingest.config import IngestSettings
from services.publish.config import PublishSettings
from services.sandbox import SandboxSettings
from tests.helpers.media import ENGLISH_SPEECH, X265, make_clip, speak, wav_seconds


def test_credentials_are_generated_once_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "var" / "credentials.env"
    first = stack.ensure_credentials(path, {"INGEST_API_KEY": None, "TRIAGE_ADMIN_USER": "admin"})
    assert len(first["INGEST_API_KEY"]) >= 24
    assert first["TRIAGE_ADMIN_USER"] == "admin"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    second = stack.ensure_credentials(path, {"INGEST_API_KEY": None, "NEW_SECRET": None})
    assert second["INGEST_API_KEY"] == first["INGEST_API_KEY"]
    assert second["NEW_SECRET"]
    assert stack.load_env_file(path) == second


def test_env_file_parsing_ignores_comments_and_quotes(tmp_path: Path) -> None:
    path = tmp_path / "c.env"
    path.write_text("# comment\n\nA=1\nB = 'two'\nnot a pair\nC=\"x=y\"\n")
    assert stack.load_env_file(path) == {"A": "1", "B": "two", "C": "x=y"}


PORTS = {
    "broker": 9092, "ingest": 8001, "triage_worker": 8010, "triage_web": 8000,
    "publish": 8002, "sandbox": 8003, "media": 8011,
}  # fmt: skip


def _specs(tmp_path: Path) -> dict[str, devspecs.ProcessSpec]:
    credentials = stack.ensure_credentials(
        tmp_path / "credentials.env", {**stack.demo_accounts(), **stack.CREDENTIALS}
    )
    specs = devspecs.services(PORTS, var=tmp_path / "var", credentials=credentials)
    return {spec.name: spec for spec in specs}


def test_every_service_has_a_distinct_port_and_a_module(tmp_path: Path) -> None:
    specs = list(_specs(tmp_path).values())
    ports = [s.port for s in specs if s.port]
    assert len(ports) == len(set(ports))
    for spec in specs:
        assert spec.argv[1] == "-m"
        assert spec.urls


def test_the_publisher_posts_to_the_sandbox_started_before_it(tmp_path: Path) -> None:
    specs = _specs(tmp_path)
    credentials = stack.load_env_file(tmp_path / "credentials.env")
    names = list(specs)
    sandbox, publish = specs["sandbox"], specs["publish"]

    assert names.index("sandbox") < names.index("publish")
    assert publish.argv[2:] == ("services.publish", "serve")
    assert sandbox.argv[2:] == ("services.sandbox",)
    assert (sandbox.port, publish.port) == (8003, 8002)
    assert (sandbox.env["PUBLISH_SANDBOX_PORT"], publish.env["PUBLISH_PORT"]) == ("8003", "8002")
    for name in ("PUBLISH_X_API_BASE_URL", "PUBLISH_X_WEB_BASE_URL", "PUBLISH_MASTODON_BASE_URL"):
        assert publish.env[name] == "http://127.0.0.1:8003"
    tokens = json.loads(sandbox.env["PUBLISH_SANDBOX_TOKENS"])
    assert tokens == {
        credentials["PUBLISH_X_ACCESS_TOKEN"]: devspecs.SANDBOX_ACCOUNT,
        credentials["PUBLISH_MASTODON_ACCESS_TOKEN"]: devspecs.SANDBOX_ACCOUNT,
        credentials["INGEST_X_BEARER_TOKEN"]: devspecs.SANDBOX_ACCOUNT,
        credentials["INGEST_MASTODON_ACCESS_TOKEN"]: devspecs.SANDBOX_ACCOUNT,
        credentials["PUBLISH_BLUESKY_APP_PASSWORD"]: devspecs.SANDBOX_ACCOUNT,
        credentials["INGEST_BLUESKY_APP_PASSWORD"]: devspecs.SANDBOX_ACCOUNT,
    }
    for name in ("PUBLISH_X_ACCESS_TOKEN", "PUBLISH_MASTODON_ACCESS_TOKEN", "PUBLISH_API_KEY"):
        assert publish.env[name] == credentials[name]
        assert len(credentials[name]) >= 24  # generated
    var = tmp_path / "var"
    assert publish.env["PUBLISH_DATABASE_URL"] == f"sqlite+aiosqlite:///{var}/publish/ledger.db"
    assert sandbox.env["PUBLISH_SANDBOX_POSTS_FILE"] == str(var / "sandbox" / "posts.json")
    assert sandbox.env["PUBLISH_SANDBOX_MEDIA_DIR"] == str(var / "sandbox")


def test_the_publisher_and_sandbox_settings_read_what_the_stack_sets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The names in the specs are the settings' real variables (a typo would be ignored)."""
    specs = _specs(tmp_path)
    for key, value in {**specs["publish"].env, **specs["sandbox"].env}.items():
        monkeypatch.setenv(key, value)

    publish = PublishSettings()
    sandbox = SandboxSettings()

    assert publish.x_api_base_url == publish.mastodon_base_url == sandbox.base_url
    assert publish.x_access_token is not None
    assert publish.mastodon_access_token is not None
    assert {
        publish.x_access_token.get_secret_value(),
        publish.mastodon_access_token.get_secret_value(),
    } <= set(sandbox.tokens)  # and ingest's (the next test)
    assert publish.api_key is not None
    assert publish.database_url.endswith("/var/publish/ledger.db")
    # The publisher reads replies' media where the web and the media worker write them.
    assert publish.media_root == Path(specs["triage-web"].env["TRIAGE_MEDIA_DIR"])
    assert publish.media_root == Path(specs["media"].env["MEDIA_MEDIA_DIR"])
    assert sandbox.posts_file == tmp_path / "var" / "sandbox" / "posts.json"


def test_private_credentials_are_not_printed_nor_handed_to_every_process(tmp_path: Path) -> None:
    path = tmp_path / "var" / "credentials.env"
    credentials = stack.ensure_credentials(path, stack.CREDENTIALS)
    demo = stack.Stack(var=tmp_path / "var", demo_file=None, demo_rate=None, port_base=PORTS)

    printed = "\n".join(stack.banner(demo, path))

    assert f"INGEST_API_KEY={credentials['INGEST_API_KEY']}" in printed
    for name in stack.PRIVATE_CREDENTIALS:
        assert credentials[name] not in printed
        assert name in printed  # named, with where to find it
    specs = devspecs.services(PORTS, var=tmp_path / "var", credentials=credentials)
    holders = {name: {s.name for s in specs if name in s.env} for name in stack.PRIVATE_CREDENTIALS}
    assert holders == {
        name: {name.split("_")[0].lower()} for name in stack.PRIVATE_CREDENTIALS
    }  # the publisher's to the publisher, ingest's to ingest


def test_leftover_processes_from_a_killed_run_are_stopped(tmp_path: Path) -> None:
    leftover = subprocess.Popen(  # a child that looks like one of ours
        [sys.executable, "-c", "import time; time.sleep(60)", "services.fake"],
        start_new_session=True,
    )
    cmdline = Path(f"/proc/{leftover.pid}/cmdline")
    deadline = time.monotonic() + 10
    while b"services.fake" not in cmdline.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)  # until the child has exec'd
    (tmp_path / "ingest.pid").write_text(str(leftover.pid))
    (tmp_path / "garbage.pid").write_text("not a pid")
    stack.stop_leftovers(tmp_path)
    assert leftover.wait(5) == -signal.SIGTERM
    assert list(tmp_path.glob("*.pid")) == []


def test_the_backlog_workers_run_below_the_pages(tmp_path: Path) -> None:
    specs = _specs(tmp_path)
    assert {name for name, spec in specs.items() if spec.nice} == {"triage-worker", "media"}
    assert specs["triage-worker"].nice == devspecs.BATCH_NICE > 0
    spec = devspecs.ProcessSpec(
        name="niced",
        argv=(sys.executable, "-c", "import os; print('nice', os.nice(0))"),
        port=1,
        nice=7,
    )
    process = stack.Process(spec, {}, tmp_path / "log", tmp_path)
    process.start()
    assert process.popen is not None
    process.popen.wait(10)
    assert f"nice {os.nice(0) + 7}" in (tmp_path / "log" / "niced.log").read_text()


def test_a_process_that_dies_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    spec = devspecs.ProcessSpec(
        name="broken", argv=(sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"), port=1
    )
    process = stack.Process(spec, {}, tmp_path / "log", tmp_path)
    process.start()
    with pytest.raises(stack.StackError, match="boom"):
        process.wait_healthy(timeout=10)
    process.stop()


#: A service whose /healthz answers what the file named by argv[1] says.
_LIVENESS_SERVICE = """
import http.server, json, pathlib, sys
state, port = pathlib.Path(sys.argv[1]), int(sys.argv[2])
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        said = state.read_text()
        body = json.dumps({"status": said}).encode()
        self.send_response(200 if said == "ok" else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def test_a_service_that_says_it_is_dead_is_restarted_and_one_starting_is_not(
    tmp_path: Path,
) -> None:
    """The supervisor reads each service's liveness as Kubernetes does: 503 ``dead``
    three times in a row (a worker up but reading nothing) and it is stopped, for the
    watch to start again; ``starting`` (a web waiting for its broker) never."""
    state = tmp_path / "state"
    state.write_text("ok")
    port = free_port()
    spec = devspecs.ProcessSpec(
        name="liveness",
        argv=(sys.executable, "-c", _LIVENESS_SERVICE, str(state), str(port)),
        port=port,
    )
    process = stack.Process(spec, {}, tmp_path / "log", tmp_path)
    process.start()
    try:
        process.wait_healthy(timeout=20)
        state.write_text("starting")
        assert [process.check_liveness() for _ in range(5)] == [False] * 5
        assert process.alive()
        state.write_text("dead")
        assert [process.check_liveness() for _ in range(2)] == [False, False]
        state.write_text("ok")  # came back: the count starts again
        assert process.check_liveness() is False
        state.write_text("dead")
        assert [process.check_liveness() for _ in range(3)] == [False, False, True]
        assert process.popen is not None
        assert process.popen.wait(10) == -signal.SIGTERM
    finally:
        process.stop()


@pytest.mark.integration
@pytest.mark.timeout(540)
def test_make_run_stack_comes_up_serves_and_stops_cleanly_twice(tmp_path: Path) -> None:
    """What `make run` does, end to end, run twice on the same var/ directory.

    Started as a shell starts a background job, with SIGINT ignored: the SIGINT
    that ends each run must stop it all the same."""
    broker_port, ingest_port, worker_port = free_port(), free_port(), free_port()
    publish_port, sandbox_port, web_port = free_port(), free_port(), free_port()
    media_port = free_port()
    var = tmp_path / "var"
    _share_the_speech_model(var)
    for attempt in (1, 2):
        proc = subprocess.Popen(
            [
                "sh",
                "-c",
                'trap \'\' INT; exec "$0" "$@"',
                sys.executable,
                "-m",
                "services.devstack.stack",
                "run",
                "--var",
                str(tmp_path / "var"),
                "--broker-port",
                str(broker_port),
                "--ingest-port",
                str(ingest_port),
                "--triage-worker-port",
                str(worker_port),
                "--triage-port",
                str(web_port),
                "--publish-port",
                str(publish_port),
                "--sandbox-port",
                str(sandbox_port),
                "--media-port",
                str(media_port),
                "--triage-internal-port",
                str(free_port()),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"},
            cwd=stack.ROOT,
        )
        try:
            output = _read_until(proc, "takeaction is running", timeout_s=180)
            credentials = stack.load_env_file(tmp_path / "var" / "credentials.env")
            assert credentials["INGEST_API_KEY"] in output
            assert f"http://127.0.0.1:{ingest_port}/v1/mentions" in output
            assert "replay" in output.lower()
            if attempt == 1:
                first_key = credentials["INGEST_API_KEY"]
            else:
                assert credentials["INGEST_API_KEY"] == first_key
            assert stack.http_ok(f"http://127.0.0.1:{ingest_port}/readyz")
            sandbox = f"http://127.0.0.1:{sandbox_port}"
            for url in (f"{sandbox}/ ", f"{sandbox}/sandbox/posts", f":{publish_port}/metrics"):
                assert url in output
            assert stack.http_ok(f"http://127.0.0.1:{publish_port}/readyz")
            assert stack.http_ok(f"{sandbox}/healthz")
            _private_credentials_stay_private(var, output)
            assert credentials["TRIAGE_ADMIN_PASSWORD"] in output
            assert credentials["TEAM_KAKUMA_A_PASSWORD"] in output
            assert stack.http_ok(f"http://127.0.0.1:{web_port}/readyz")
            if attempt == 1:
                _every_demo_mention_is_classified(worker_port, expected=970)
                _an_approved_answer_is_posted_on_the_sandbox(
                    f"http://127.0.0.1:{web_port}", credentials, sandbox
                )
                asyncio.run(
                    _a_reply_goes_out_on_the_sandbox(
                        bootstrap=f"127.0.0.1:{broker_port}",
                        ingest=f"http://127.0.0.1:{ingest_port}",
                        ingest_key=credentials["INGEST_API_KEY"],
                        sandbox=sandbox,
                    )
                )
                _forged_commands_are_dead_lettered(broker_port, sandbox, publish_port)
                posted_in_run_1 = len(httpx.get(f"{sandbox}/sandbox/posts").json())
            if attempt == 2:
                replies = httpx.get(f"{sandbox}/sandbox/posts").json()
                assert len(replies) == posted_in_run_1  # kept in var/sandbox/posts.json
                _kill_the_broker_and_see_it_come_back(tmp_path / "var" / "run", ingest_port)

            proc.send_signal(signal.SIGINT)
            assert _exit_code(proc, 60) == 0
            assert proc.stdout is not None
            proc.stdout.close()
            for port in (
                ingest_port,
                broker_port,
                publish_port,
                sandbox_port,
                web_port,
                media_port,
            ):
                assert stack.port_free(port)
            assert list((tmp_path / "var" / "run").glob("*.pid")) == []
            logs = {p.name for p in (tmp_path / "var" / "log").glob("*.log")}
            assert {"broker.log", "ingest.log", "triage-worker.log"} <= logs
            assert {"publish.log", "sandbox.log", "triage-web.log", "media.log"} <= logs
            assert (var / "publish" / "ledger.db").exists()
        except BaseException:
            _stop(proc, var / "run")
            _show_log_tails(var / "log")
            raise
    _private_credentials_stay_private(var, "")  # nor in the logs of the whole run


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_make_run_uses_a_real_kafka_when_one_is_configured(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """With KAFKA_BOOTSTRAP_SERVERS set, no embedded broker starts: topics and
    services go to that Kafka."""
    ingest_port, worker_port, publish_port, sandbox_port, web_port, media_port = (
        free_port() for _ in range(6)
    )
    _share_the_speech_model(tmp_path / "var")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.devstack.stack",
            "run",
            "--no-demo",
            "--var",
            str(tmp_path / "var"),
            "--ingest-port",
            str(ingest_port),
            "--triage-worker-port",
            str(worker_port),
            "--triage-port",
            str(web_port),
            "--publish-port",
            str(publish_port),
            "--sandbox-port",
            str(sandbox_port),
            "--media-port",
            str(media_port),
            "--triage-internal-port",
            str(free_port()),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        cwd=stack.ROOT,
    )
    try:
        output = _read_until(proc, "takeaction is running", timeout_s=180)
    finally:
        _stop(proc, tmp_path / "var" / "run")
    assert f"using Kafka at {kafka_bootstrap}" in output
    assert "Tansu" not in output
    assert not (tmp_path / "var" / "log" / "broker.log").exists()
    assert proc.returncode == 0


def _share_the_speech_model(var: Path) -> None:
    """The stack's media worker finds the Whisper folder ``make whisper-model`` joined
    (else it joins one itself, 145 MB, at start)."""
    joined = stack.ROOT / "var" / "models" / "whisper-base"
    if joined.is_dir():
        (var / "models").mkdir(parents=True, exist_ok=True)
        link = var / "models" / "whisper-base"
        if not link.exists():
            link.symlink_to(joined)


def _an_approved_answer_is_posted_on_the_sandbox(
    web: str, credentials: dict[str, str], sandbox: str
) -> None:
    """The whole loop on the demo: the queue is populated; a moderator assigns an
    English question; the team uploads a phone's video (HEVC, stored turned, English
    speech) with consent; the media worker transcribes it (the transcript comes back
    through the API, nobody typed it) and makes the X version; the moderator approves
    it; a threaded reply with that version (H.264/AAC, upright, moov first) and its
    subtitles appears on the sandbox."""

    def token(user: str, password: str) -> dict[str, str]:
        response = httpx.post(f"{web}/api/token", data={"username": user, "password": password})
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    admin = token(credentials["TRIAGE_ADMIN_USER"], credentials["TRIAGE_ADMIN_PASSWORD"])
    team = token(credentials["TEAM_KAKUMA_A_USER"], credentials["TEAM_KAKUMA_A_PASSWORD"])
    deadline = time.monotonic() + 120
    items: list[dict[str, Any]] = []
    while not items and time.monotonic() < deadline:
        listed = httpx.get(
            f"{web}/api/questions", params={"status": "new", "language": "en"}, headers=admin
        )
        # One the answer can go under as a reply (X: the post summoned the account; a
        # hashtag-only post is answered standalone, which this does not follow).
        items = [i for i in listed.json()["items"] if i["platform"] == "x" and i["can_reply"]]
        if not items:
            time.sleep(1)
    assert items, "the demo replay left no English question to reply to in the queue"
    question = items[0]
    assigned = httpx.post(
        f"{web}/api/questions/{question['id']}/assign", json={"team": "kakuma-a"}, headers=admin
    )
    assert assigned.status_code == 200, assigned.text
    with tempfile.TemporaryDirectory() as folder:
        speech = speak(ENGLISH_SPEECH, Path(folder) / "speech.wav")
        video = make_clip(
            Path(folder) / "answer.mov",
            size=(96, 160),
            fps=30,
            seconds=wav_seconds(speech) + 0.5,
            vcodec="libx265",
            vopts=X265,
            codec_tag="hvc1",
            vfilter="transpose=cclock",
            rotation=-90,
            speech=speech,
        ).read_bytes()
    answered = httpx.post(
        f"{web}/api/questions/{question['id']}/answer",
        files={"video": ("answer.mov", video, "video/quicktime")},
        data={
            "language": "en",
            "caption": "Thank you for asking.",
            "consent_given_by": "Amina, filmed in Kakuma",
            "consent_scope": "campaign-social",
        },
        headers=team,
    )
    assert answered.status_code == 201, answered.text
    deadline = time.monotonic() + 180
    while True:  # the media worker: transcript, then the X version
        approved = httpx.post(f"{web}/api/questions/{question['id']}/answer/approve", headers=admin)
        if approved.status_code != 409 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert approved.status_code == 200, approved.text
    [answer] = httpx.get(f"{web}/api/questions/{question['id']}/answers", headers=team).json()
    assert answer["transcript_source"] == "machine"
    said = set(re.findall(r"[a-z]+", answer["transcript"].lower()))
    assert {"clean", "water", "schools", "children"} <= said, answer["transcript"]
    native_id = question["mention_id"].split(":", 1)[1]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        posts = httpx.get(f"{sandbox}/sandbox/posts").json()
        threaded = [p for p in posts if p["in_reply_to"] == native_id]
        if threaded:
            [media] = threaded[0]["media"]
            facts = media["facts"]
            assert (facts["video_codec"], facts["video_profile"]) == ("h264", "High")
            assert (facts["audio_codec"], facts["pix_fmt"], facts["faststart"]) == (
                "aac", "yuv420p", True,
            )  # fmt: skip
            assert (facts["width"], facts["height"]) == (96, 160)  # upright portrait
            assert media["alt_text"] == "Thank you for asking."
            assert [s["language_code"] for s in media["subtitles"]] == ["EN"]
            return
        time.sleep(0.5)
    timeline = httpx.get(f"{web}/api/questions/{question['id']}/timeline", headers=admin)
    raise AssertionError(
        f"no reply to {native_id} on the sandbox within 120 s; timeline: {timeline.text}"
    )


def _every_demo_mention_is_classified(worker_port: int, expected: int) -> None:
    """The triage worker decides every mention the demo replay put on mentions.raw."""
    url = f"http://127.0.0.1:{worker_port}/metrics"
    decided = 0.0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
            decided = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("triage_decisions_total{")
            )
            if decided >= expected:
                return
        time.sleep(1)
    pytest.fail(f"only {decided:.0f} of {expected} demo mentions were classified")


def _private_credentials_stay_private(var: Path, output: str) -> None:
    """The publisher's tokens and API key: not printed, not in any log, and in the
    environment of the publisher only."""
    credentials = stack.load_env_file(var / "credentials.env")
    private = {credentials[name] for name in stack.PRIVATE_CREDENTIALS}
    logs = "".join(p.read_text(errors="replace") for p in (var / "log").glob("*.log"))
    assert [value for value in private if value in output or value in logs] == []
    for name, holds in (("publish", True), ("sandbox", False), ("ingest", False)):
        pid_file = var / "run" / f"{name}.pid"
        if not pid_file.exists():
            continue  # the run is over
        environ = Path(f"/proc/{pid_file.read_text().strip()}/environ").read_bytes()
        assert (b"PUBLISH_X_ACCESS_TOKEN=" in environ) is holds, name
        assert (b"PUBLISH_API_KEY=" in environ) is holds, name


async def _a_reply_goes_out_on_the_sandbox(
    *, bootstrap: str, ingest: str, ingest_key: str, sandbox: str
) -> None:
    """A mention of the campaign sent to ingest's webhook, then a reply request for
    it on replies.requested (what the triage web will send), come out as one reply
    threaded under the mention on the sandbox, on X and on Mastodon.

    The publisher learns the mention engaged the campaign from mentions.raw while
    the request may come first (then it is refused as not engaged): the request is
    sent again, for the same question, until the reply is out."""
    now = datetime.now(UTC)
    base = 1_790_000_000_000_000_000 + uuid.uuid4().int % 10**12 * 10
    natives = {Platform.X: str(base), Platform.MASTODON: str(base + 1)}
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    keys = SigningSettings().command_keys()
    async with httpx.AsyncClient(timeout=10) as http:
        items = [
            {
                "platform": platform.value,
                "id": native,
                "author": {"id": f"stack-{platform.value}", "handle": "stack_asker"},
                "text": "@TakeActionCamps what do you miss most from home? #TakeAction",
                "created_at": now.isoformat(),
                "lang": "en",
            }
            for platform, native in natives.items()
        ]
        sent = await http.post(
            f"{ingest}/v1/mentions",
            json={"mentions": items},
            headers={"Authorization": f"Bearer {ingest_key}"},
        )
        assert sent.is_success, sent.text
        producer = make_producer(kafka)
        await producer.start()
        try:
            posted: list[dict[str, Any]] = []
            waiting = dict(natives)
            deadline = time.monotonic() + 90
            for attempt in range(1, 100):
                for platform, native in waiting.items():
                    request = PublishReply(
                        reply_id=f"stack-{native}-{attempt}",
                        question_id=f"stack-q-{native}",
                        mention_id=mention_id(platform, native),
                        platform=platform,
                        in_reply_to=native,
                        author=Author(id=f"stack-{platform.value}", handle="stack_asker"),
                        text="The bread my grandmother baked.",
                        language="en",
                        consent=Consent(
                            speaker_ref="stack-speaker",
                            scope="campaign-social",
                            recorded_by="team-a",
                            at=now - timedelta(hours=1),
                        ),
                        approved_by="moderator",
                        requested_at=datetime.now(UTC),
                    )
                    await producer.send_and_wait(
                        kafka.topic(topics.REPLIES_REQUESTED),
                        # Signed as the web signs (the stack runs with the same keys).
                        keys.sign(topics.REPLIES_REQUESTED, encode(request)),
                        key=encode_key(request.question_id),
                    )
                for _ in range(6):
                    await asyncio.sleep(0.5)
                    posted = (await http.get(f"{sandbox}/sandbox/posts")).json()
                    answered = {p["in_reply_to"] for p in posted}
                    waiting = {p: n for p, n in waiting.items() if n not in answered}
                    if not waiting:
                        break
                if not waiting or time.monotonic() > deadline:
                    break
        finally:
            await producer.stop()
    assert waiting == {}, f"no reply on the sandbox after {attempt} requests: {posted}"
    mine = set(natives.values())
    assert sorted(
        (p["platform"], p["in_reply_to"]) for p in posted if p["in_reply_to"] in mine
    ) == sorted(
        (p.value, n) for p, n in natives.items()
    )  # one reply each, whatever the number of requests


def _kill_the_broker_and_see_it_come_back(run_dir: Path, ingest_port: int) -> None:
    pid_file = run_dir / "broker.pid"
    old_pid = int(pid_file.read_text())
    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new_pid = pid_file.read_text() if pid_file.exists() else ""
        if (
            new_pid
            and int(new_pid) != old_pid
            and stack.http_ok(f"http://127.0.0.1:{ingest_port}/readyz")
        ):
            return
        time.sleep(0.5)
    pytest.fail("the supervisor did not bring the broker back")


#: The output of each stack under test (by pid), still pumped after the banner, so
#: a stack that does not stop can show what its supervisor said while stopping.
_OUTPUT: dict[int, queue.Queue[str | None]] = {}


def _forged_commands_are_dead_lettered(broker_port: int, sandbox: str, publish_port: int) -> None:
    """Issue 17, from outside: ``python -m services.devstack.forge`` writes forged
    replies.requested straight to the stack's broker; none is posted, each comes back
    as a dead letter with its reason, and the publisher counts it."""
    posted = httpx.get(f"{sandbox}/sandbox/posts").json()
    reply = next(p for p in posted if p.get("in_reply_to"))
    target = ["--platform", reply["platform"], "--in-reply-to", reply["in_reply_to"]]
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{broker_port}"}
    for kind in ("unsigned", "bad-signature", "outside-media", "second-reply"):
        done = subprocess.run(
            [sys.executable, "-m", "services.devstack.forge", kind, "--wait-s", "60", *target],
            env=env,
            cwd=stack.ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "dead-lettered: stage=publish.verify" in done.stdout, done.stdout
    assert len(httpx.get(f"{sandbox}/sandbox/posts").json()) == len(posted)
    metrics = httpx.get(f"http://127.0.0.1:{publish_port}/metrics").text
    for reason in ("unsigned", "bad_signature", "media_outside_root", "post_already_answered"):
        assert f'reason="{reason}"' in metrics, reason


def _read_until(proc: subprocess.Popen[str], marker: str, timeout_s: float) -> str:
    """Lines of ``proc``'s output up to the end of the banner that follows ``marker``."""
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    _OUTPUT[proc.pid] = lines
    stdout = proc.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    in_banner = False
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        in_banner = in_banner or marker in line
        if in_banner and "logs:" in line:
            return "".join(seen)
    pytest.fail("stack did not come up:\n" + "".join(seen))


def _said(proc: subprocess.Popen[str]) -> str:
    """What the supervisor printed since the banner (and was not read yet)."""
    lines = _OUTPUT.get(proc.pid)
    said = []
    while lines is not None and not lines.empty():
        said.append(lines.get_nowait() or "")
    return "".join(said)


def _show_log_tails(log_dir: Path, lines: int = 40, first: tuple[str, ...] = ()) -> None:
    """The end of every service log, for the report of a failed stack test (the
    services named in ``first`` first: a CI report may show only the start)."""
    logs = sorted(log_dir.glob("*.log"), key=lambda log: (log.stem not in first, log.name))
    for log in logs:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"----- {log.name} (last {len(tail)} lines) -----", *tail, sep="\n")


def _exit_code(proc: subprocess.Popen[str], timeout_s: float) -> int | None:
    """The supervisor's exit code, or None after printing why it is still running:
    what it logged since the banner, where its Python is stuck, what is left."""
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        pass
    print(f"----- supervisor still running after {timeout_s:.0f} s; it said -----")
    print(_said(proc))
    spy = Path(sys.executable).with_name("py-spy")
    for command in (
        [str(spy), "dump", "--pid", str(proc.pid)],
        ["ps", "-eo", "pid,pgid,stat,etime,args"],
    ):
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(f"{command[0]}: {exc}")
            continue
        out = done.stdout + done.stderr
        if command[0] == "ps":
            out = "\n".join(x for x in out.splitlines() if "services." in x or "tansu" in x)
        print(f"----- {Path(command[0]).name} -----", out, sep="\n")
    return None


def _stop(proc: subprocess.Popen[str], run_dir: Path) -> None:
    """Stop a stack under test the polite way, and whatever it leaves behind."""
    proc.send_signal(signal.SIGINT)
    if _exit_code(proc, 30) is None:
        proc.kill()
        proc.wait(10)
    stack.stop_leftovers(run_dir)
    if proc.stdout is not None:
        proc.stdout.close()


def test_ingest_hears_the_sandbox_as_it_would_hear_the_networks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ingest reads the sandbox's X stream and Mastodon notifications with tokens the
    sandbox accepts, and the campaign account is the sandbox's own."""
    specs = _specs(tmp_path)
    for key, value in specs["ingest"].env.items():
        monkeypatch.setenv(key, value)
    ingest = IngestSettings()
    for key, value in specs["sandbox"].env.items():
        monkeypatch.setenv(key, value)
    sandbox = SandboxSettings()

    assert ingest.x_api_base_url == ingest.mastodon_base_url == sandbox.base_url
    assert ingest.x_bearer_token is not None
    assert ingest.mastodon_access_token is not None
    assert sandbox.tokens[ingest.x_bearer_token.get_secret_value()] == "takeaction_sandbox"
    assert sandbox.tokens[ingest.mastodon_access_token.get_secret_value()] == "takeaction_sandbox"
    assert "takeaction_sandbox" in ingest.campaign_handles
    assert ingest.bluesky_service_url == sandbox.base_url
    assert ingest.bluesky_app_password is not None
    assert sandbox.tokens[ingest.bluesky_app_password.get_secret_value()] == "takeaction_sandbox"
    # The account mention first; the hashtags listen-only and parenthesised.
    first, hashtags = ingest.x_rules
    assert first.value == "@takeaction_sandbox -is:retweet"
    assert hashtags.tag.startswith("listen-only")
    assert hashtags.value.startswith("(")
