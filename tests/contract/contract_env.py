"""What the contract tests share besides fixtures: the stations' cells, a condition wait, a
running station (a module of its own: ``conftest`` is not a unique module name to import)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from agent.runner import Agent
from roadside.testing.fixtures import wait_until as wait_for
from sim.station import SimStation

__all__ = ["CELLS", "Station", "wait_for"]

CELLS = {"bs-a": "G1", "bs-b": "G1", "bs-c": "G2"}


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
