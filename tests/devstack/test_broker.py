from __future__ import annotations

import socket
from pathlib import Path

import pytest

from services.devstack.broker import (
    BrokerError,
    EmbeddedBroker,
    free_port,
    metadata_brokers,
    wait_until_ready,
)

pytestmark = pytest.mark.integration


def test_start_answers_metadata_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    broker = EmbeddedBroker(port, log_path=tmp_path / "broker.log")
    with broker:
        assert broker.pid is not None
        brokers = metadata_brokers("127.0.0.1", port)
        assert [b[1:] for b in brokers] == [("127.0.0.1", port)]
    with pytest.raises(OSError):  # noqa: PT011 - any socket error means "stopped"
        metadata_brokers("127.0.0.1", port, timeout=0.5)
    assert (tmp_path / "broker.log").exists()


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(BrokerError, match="already in use"):
            EmbeddedBroker(port, log_path=tmp_path / "b.log").start()


def test_wait_until_ready_times_out_on_a_silent_port() -> None:
    with pytest.raises(BrokerError, match="no Kafka metadata"):
        wait_until_ready("127.0.0.1", free_port(), timeout=0.5)


def test_something_that_is_not_kafka_is_not_ready() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with pytest.raises(BrokerError):
            wait_until_ready("127.0.0.1", port, timeout=0.5)


def test_a_free_port_is_below_the_ephemeral_range_and_free() -> None:
    """Outgoing connections take ports of the ephemeral range: a port picked there for
    a service to bind later can be taken meanwhile."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(20000 <= port < low for port in ports)
    assert len(ports) > 1
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))
