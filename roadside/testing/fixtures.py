"""pytest fixtures for a real broker; import them into a conftest.py::

    from roadside.testing.fixtures import broker, pki, sink  # noqa: F401

``pki``: a test CA per session (per xdist worker). ``broker``: a fresh Mosquitto per test, with the
shipped configuration and ACL on a free loopback port. ``sink``: a minimal committing controller
(:class:`roadside.testing.sink.CommittingSink`) connected to that broker. ``wait_for``:
:func:`wait_until`, for tests that wait on a condition (never on a fixed sleep).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from roadside.testing.sink import CommittingSink
from sim.broker import MosquittoBroker
from sim.pki import CONTROLLER_IDENTITY, TestPKI


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    return TestPKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def broker(tmp_path: Path, pki: TestPKI) -> Iterator[MosquittoBroker]:
    b = MosquittoBroker(tmp_path / "broker", pki)
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def sink(tmp_path: Path, broker: MosquittoBroker) -> Iterator[CommittingSink]:
    s = CommittingSink(broker.settings(CONTROLLER_IDENTITY), tmp_path / "sink.db")
    s.start()
    try:
        yield s
    finally:
        s.stop()


def wait_until(cond: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``cond`` every 50 ms until it is true; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def wait_for() -> Callable[..., None]:
    """``wait_for(cond, timeout=30, what=...)``: :func:`wait_until` as a fixture."""
    return wait_until
