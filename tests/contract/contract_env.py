"""What the contract tests share besides fixtures: the stations' cells, a condition wait, a
running station (a module of its own: ``conftest`` is not a unique module name to import)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.runner import Agent
from sim.station import SimStation

CELLS = {"bs-a": "G1", "bs-b": "G1", "bs-c": "G2"}


def wait_for(cond: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``cond`` until true; fail naming ``what`` (no fixed sleeps: the machine is busy)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Station:
    """A running agent and its simulated devices."""

    id: str
    cell: str
    agent: Agent
    sim: SimStation
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def loop(self) -> None:
        while not self.stop.is_set():
            self.agent.step(timeout_s=0.1)
