"""Fixtures for the hardware-in-the-loop tests: serial devices the simulator did not make.

``serial_pair`` starts ``socat`` with two linked pseudo-terminals (:class:`sim.testing.SerialPair`),
as a USB–RS485 adapter cabled to a gateway's would be: the simulator binds one end by path
(pyserial, termios set), the device under test opens the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sim.testing import SerialPair


@pytest.fixture(scope="module")
def bench_cable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SerialPair]:
    """One socat pair for a whole module (a qualification run lasts the module)."""
    pair = SerialPair(tmp_path_factory.mktemp("cable"), "rs485")
    yield pair
    pair.close()


@pytest.fixture
def serial_pair(tmp_path: Path) -> Iterator[Callable[[str], SerialPair]]:
    """``serial_pair(name)``: a socat pty pair under tmp_path, stopped after the test."""
    pairs: list[SerialPair] = []

    def make(name: str) -> SerialPair:
        pairs.append(SerialPair(tmp_path, name))
        return pairs[-1]

    yield make
    for p in pairs:
        p.close()
