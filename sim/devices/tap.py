"""A tap between a master and a real sensor: forward both ways, record everything.

``roadside-sim capture`` puts the simulator's machine in the middle of a field line: one serial
device towards the master (gateway, data logger), one towards the sensor. Every byte is forwarded
at once and recorded as a capture (:mod:`sim.devices.capture`; ``rx`` from the master, ``tx`` from
the sensor), so a field problem can be replayed in the lab with ``roadside-sim replay``.
"""

from __future__ import annotations

import os
import select
import threading
import time
from pathlib import Path

from sim.devices.capture import CaptureWriter
from sim.devices.serialport import SerialDevice
from sim.devices.timing import write_some
from sim.spec import BusSpec


class Tap:
    """Forwards between ``master`` and ``sensor`` (serial devices by path) and records."""

    def __init__(self, bus: BusSpec, master: Path, sensor: Path, capture: Path) -> None:
        self.bus = bus
        self.master, self.sensor = SerialDevice(master, bus), SerialDevice(sensor, bus)
        self.capture_path = capture
        self.counts = {"rx": 0, "tx": 0}
        self._t0 = time.monotonic()
        self._writer: CaptureWriter | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-tap", daemon=True)

    def start(self) -> Tap:
        """Open both devices (OSError names the one that fails) and start forwarding."""
        self.master.open()
        try:
            self.sensor.open()
        except OSError:
            self.master.close()
            raise
        self._writer = CaptureWriter(self.capture_path, self.bus, self._elapsed)
        self._thread.start()
        return self

    def _elapsed(self) -> float:
        return time.monotonic() - self._t0

    def _run(self) -> None:
        assert self._writer is not None
        a, b = self.master.master_fd, self.sensor.master_fd
        assert a is not None and b is not None
        route = {a: (b, "rx"), b: (a, "tx")}
        while not self._stop.is_set():
            ready, _, _ = select.select([a, b], [], [], 0.1)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                if data:
                    out, direction = route[fd]
                    write_some(out, data)
                    self._writer.record("rx" if direction == "rx" else "tx", data)
                    self.counts[direction] += len(data)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._writer is not None:
            self._writer.close()
        self.master.close()
        self.sensor.close()
