from __future__ import annotations

import contextlib
import os
import queue
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from services.common import stack
from services.common.broker import free_port


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


def test_every_service_has_a_distinct_port_and_a_module() -> None:
    specs = stack.services({"broker": 9092, "ingest": 8001, "triage_worker": 8010})
    ports = [s.port for s in specs if s.port]
    assert len(ports) == len(set(ports))
    for spec in specs:
        assert spec.argv[1] == "-m"
        assert spec.urls


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


def test_a_process_that_dies_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    spec = stack.ProcessSpec(
        name="broken", argv=(sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"), port=1
    )
    process = stack.Process(spec, {}, tmp_path / "log", tmp_path)
    process.start()
    with pytest.raises(stack.StackError, match="boom"):
        process.wait_healthy(timeout=10)
    process.stop()


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_make_run_stack_comes_up_serves_and_stops_cleanly_twice(tmp_path: Path) -> None:
    """What `make run` does, end to end, run twice on the same var/ directory."""
    broker_port, ingest_port, worker_port = free_port(), free_port(), free_port()
    for attempt in (1, 2):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "services.common.stack",
                "run",
                "--var",
                str(tmp_path / "var"),
                "--broker-port",
                str(broker_port),
                "--ingest-port",
                str(ingest_port),
                "--triage-worker-port",
                str(worker_port),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"},
            cwd=stack.ROOT,
        )
        try:
            output = _read_until(proc, "takeaction is running", timeout_s=180)
        except BaseException:
            _stop(proc, tmp_path / "var" / "run")
            raise
        credentials = stack.load_env_file(tmp_path / "var" / "credentials.env")
        assert credentials["INGEST_API_KEY"] in output
        assert f"http://127.0.0.1:{ingest_port}/v1/mentions" in output
        assert "replay" in output.lower()
        if attempt == 1:
            first_key = credentials["INGEST_API_KEY"]
        else:
            assert credentials["INGEST_API_KEY"] == first_key
        assert stack.http_ok(f"http://127.0.0.1:{ingest_port}/readyz")
        if attempt == 1:
            _every_demo_mention_is_classified(worker_port, expected=970)
        if attempt == 2:
            _kill_the_broker_and_see_it_come_back(tmp_path / "var" / "run", ingest_port)

        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
        assert proc.stdout is not None
        proc.stdout.close()
        assert stack.port_free(ingest_port)
        assert stack.port_free(broker_port)
        assert list((tmp_path / "var" / "run").glob("*.pid")) == []
        logs = {p.name for p in (tmp_path / "var" / "log").glob("*.log")}
        assert {"broker.log", "ingest.log", "triage-worker.log"} <= logs


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_make_run_uses_a_real_kafka_when_one_is_configured(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """With KAFKA_BOOTSTRAP_SERVERS set, no embedded broker starts: topics and
    services go to that Kafka."""
    ingest_port, worker_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.common.stack",
            "run",
            "--no-demo",
            "--var",
            str(tmp_path / "var"),
            "--ingest-port",
            str(ingest_port),
            "--triage-worker-port",
            str(worker_port),
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


def _read_until(proc: subprocess.Popen[str], marker: str, timeout_s: float) -> str:
    """Lines of ``proc``'s output up to the end of the banner that follows ``marker``."""
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
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


def _stop(proc: subprocess.Popen[str], run_dir: Path) -> None:
    """Stop a stack under test the polite way, and whatever it leaves behind."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    stack.stop_leftovers(run_dir)
    if proc.stdout is not None:
        proc.stdout.close()
