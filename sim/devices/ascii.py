"""An ASCII serial line: WindSonic frames sent unsolicited, WXT transmitters answering polls.

WindSonic output is one frame per scenario second (at most as fast as the line can carry it when
paced). Polls are lines ending in LF (CR LF accepted); each is answered after the poll has crossed
the wire and the device's turnaround.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from roadside.clock import Clock
from sim.devices.device import SimDevice
from sim.devices.line import SerialLine
from sim.devices.windsonic import WindSonic
from sim.devices.wxt import Wxt
from sim.spec import BusSpec

FRAME_BYTES = 22  # a typical WindSonic line, for the fastest rate a paced line carries
MAX_LINE = 256  # a poll longer than this without a newline is noise and dropped


class AsciiBus(SerialLine):
    """WindSonic and WXT devices sharing one serial line."""

    def __init__(
        self,
        spec: BusSpec,
        devices: list[SimDevice],
        link: Path,
        now_s: Callable[[], float],
        pacing: bool,
        clock: Clock,
        device: Path | None = None,
    ) -> None:
        super().__init__(spec, link, now_s, pacing, device)
        self.sonics = [WindSonic(d) for d in devices if d.profile.device.protocol == "windsonic"]
        self.polled = [Wxt(d) for d in devices if d.profile.device.protocol == "wxt"]
        fastest = FRAME_BYTES * self.char_s * 1.05 if pacing else 0.002
        self.period_s = max(1.0 / clock.speed, fastest)
        self._line = bytearray()
        self._wire_end = 0.0
        self._next_emit = time.monotonic() + self.period_s

    def on_reopen(self) -> None:
        self._line.clear()

    def next_deadline(self) -> float:
        return self._next_emit if self.sonics else super().next_deadline()

    def on_bytes(self, data: bytes, now: float) -> None:
        wire = 0.0 if self.port.uart else len(data) * self.char_s  # a UART delivers them crossed
        self._wire_end = max(now, self._wire_end) + wire
        self._line += data
        while b"\n" in self._line:
            raw, _, rest = bytes(self._line).partition(b"\n")
            self._line = bytearray(rest)
            line = raw.decode("ascii", "replace").strip()
            if line:
                self._poll(line)
        if len(self._line) > MAX_LINE:
            self._line.clear()

    def _poll(self, line: str) -> None:
        t_s = self.now_s()
        for wxt in self.polled:
            reply, delay = wxt.answer(line, t_s)
            if reply:
                ready = self._wire_end if self.pacing else time.monotonic()
                turnaround = self.turnaround_s if self.pacing else 0.0
                self.send(reply, ready + turnaround + delay)

    def on_idle(self, now: float) -> None:
        if not self.sonics or now < self._next_emit:
            return
        self._next_emit += self.period_s
        if self._next_emit < now:  # fell behind (line busy, slow answer): do not burst
            self._next_emit = now + self.period_s
        t_s = self.now_s()
        for sonic in self.sonics:
            out, delay = sonic.emit(t_s)
            if out:
                self.send(out, time.monotonic() + delay)
