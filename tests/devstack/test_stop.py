"""Every service stops within 10 s of SIGTERM with its broker gone, and ``make run``
leaves nothing behind when its supervisor is SIGKILLed.

Each service runs as ``make run`` runs it (its :class:`~services.devstack.devspecs.ProcessSpec`),
against an embedded broker that is SIGKILLed once the service is up: its consumers
and producers are then reconnecting to nothing (the state in which faust's consumer
thread used to die and hold the triage worker's stop for minutes)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.devstack import specs as devspecs
from services.devstack import stack
from services.devstack.broker import EmbeddedBroker, free_port
from tests.devstack.test_stack import _read_until, _share_the_speech_model

#: What the issue asks: gone within 10 s of SIGTERM.
STOP_LIMIT_S = 10.0
SERVICES = ("ingest", "triage-worker", "triage-web", "sandbox", "media", "publish")


def _ports() -> dict[str, int]:
    return {name: free_port() for _, _, _, name in stack.PORT_OPTIONS}


@pytest.mark.integration
@pytest.mark.timeout(400)
@pytest.mark.parametrize("name", SERVICES)
def test_sigterm_with_the_broker_down_exits_within_10_s(name: str, tmp_path: Path) -> None:
    var = tmp_path / "var"
    _share_the_speech_model(var)
    ports = _ports()
    credentials = stack.ensure_credentials(
        var / "credentials.env", {**stack.demo_accounts(), **stack.CREDENTIALS}
    )
    specs = {s.name: s for s in devspecs.services(ports, var=var, credentials=credentials)}
    broker = EmbeddedBroker(ports["broker"], log_path=var / "log" / "broker.log").start()
    env = {
        **{k: v for k, v in credentials.items() if k not in stack.PRIVATE_CREDENTIALS},
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "TAKEACTION_VAR": str(var),
        "PYTHONUNBUFFERED": "1",
    }
    # The media worker's job table is the web's to migrate (make run starts the web first).
    before = ["triage-web"] if name == "media" else []
    (var / "run").mkdir(parents=True, exist_ok=True)
    started = [stack.Process(specs[n], env, var / "log", var / "run") for n in [*before, name]]
    try:
        for process in started:
            process.start()
            process.wait_healthy(timeout=240)
        service = started[-1]
        os.kill(broker.pid or 0, signal.SIGKILL)
        broker.stop()
        time.sleep(5)  # the clients notice: reconnecting, consumer threads failing
        assert service.popen is not None
        assert service.popen.poll() is None, service.tail()
        asked = time.monotonic()
        service.popen.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.popen.wait(STOP_LIMIT_S + 20)
        took = time.monotonic() - asked
        print(f"STOP {name}: exited {took:.1f} s after SIGTERM (broker down)")
        assert took <= STOP_LIMIT_S, f"{name} took {took:.1f} s:\n{service.tail(40)}"
    finally:
        for process in reversed(started):
            process.stop(timeout=5)
        broker.stop()


@pytest.mark.integration
@pytest.mark.timeout(400)
def test_make_run_leaves_nothing_behind_when_its_supervisor_is_killed(tmp_path: Path) -> None:
    """SIGKILL the supervisor (no cleanup of its own): the services and the broker,
    whose parent it was, are gone within 20 s."""
    var = tmp_path / "var"
    _share_the_speech_model(var)
    ports = _ports()
    argv = [sys.executable, "-m", "services.devstack.stack", "run", "--no-demo", "--var", str(var)]
    for option, _, _, name in stack.PORT_OPTIONS:
        argv += [option, str(ports[name])]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"},
        cwd=stack.ROOT,
    )
    pids: list[int] = []
    try:
        _read_until(proc, "takeaction is running", timeout_s=240)
        pids = [int(p.read_text()) for p in (var / "run").glob("*.pid")]
        assert len(pids) == len(SERVICES) + 1  # and the broker
        proc.kill()
        proc.wait(10)
        killed = time.monotonic()
        while [p for p in pids if _alive(p)] and time.monotonic() - killed < 30:
            time.sleep(0.2)
        took = time.monotonic() - killed
        left = [p for p in pids if _alive(p)]
        print(f"STOP make run: supervisor SIGKILLed, all gone after {took:.1f} s")
        assert left == [], f"still running after {took:.0f} s: {left}"
        assert took <= 20
        deadline = time.monotonic() + 10  # the kernel closes the sockets of the dead
        while time.monotonic() < deadline:
            busy = {n: p for n, p in ports.items() if not stack.port_free(p)}
            if not busy:
                break
            time.sleep(0.2)
        listening = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True, check=False)
        assert busy == {}, listening.stdout
    finally:
        if proc.poll() is None:
            proc.kill()
        stack.stop_leftovers(var / "run")
        if proc.stdout is not None:
            proc.stdout.close()


def _alive(pid: int) -> bool:
    """Running (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
