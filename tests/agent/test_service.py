"""The sd_notify protocol against a real AF_UNIX datagram socket, and journald/stderr logging."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.service import Notifier, notify, setup_logging, watchdog_interval_s


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def received(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines())


def test_notify_sends_one_datagram_to_notify_socket(
    notify_socket: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, sock = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert notify("READY=1\nSTATUS=polling 3 devices")
    assert received(sock) == {"READY": "1", "STATUS": "polling 3 devices"}


def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"roadside-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("WATCHDOG=1")
        assert received(sock) == {"WATCHDOG": "1"}


def test_no_socket_is_a_quiet_no_op(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False
    assert notify("READY=1", str(tmp_path / "nobody-listens.sock")) is False


def test_notifier_sends_ready_once_and_status_on_change(
    notify_socket: tuple[str, socket.socket],
) -> None:
    path, sock = notify_socket
    n = Notifier(path)
    n.ready("ok: 3/3 devices")
    assert received(sock) == {"READY": "1", "STATUS": "ok: 3/3 devices"}
    n.ready("again")
    n.status("ok: 3/3 devices")  # unchanged: nothing sent
    n.watchdog()
    assert received(sock) == {"WATCHDOG": "1"}
    n.status("degraded: wind timeout")
    assert received(sock) == {"STATUS": "degraded: wind timeout"}
    n.stopping()
    assert received(sock)["STOPPING"] == "1"


def test_watchdog_interval_is_half_of_watchdog_sec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval_s() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")  # meant for another process
    assert watchdog_interval_s() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert watchdog_interval_s() is None


def test_logging_goes_to_stderr_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    handler = setup_logging()
    try:
        assert type(handler) is logging.StreamHandler
    finally:
        logging.getLogger().removeHandler(handler)


def test_logging_goes_to_the_journal_under_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    journal = pytest.importorskip("systemd.journal")
    monkeypatch.setenv("INVOCATION_ID", "0123456789abcdef")
    handler = setup_logging(station="bs-01")
    try:
        assert isinstance(handler, journal.JournalHandler)
        assert handler._extra["STATION"] == "bs-01"  # type: ignore[attr-defined]
    finally:
        logging.getLogger().removeHandler(handler)
