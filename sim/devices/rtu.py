"""A Modbus RTU multidrop bus: several slaves behind one pseudo-terminal, frames cut by silence.

With pacing on, the bus keeps a wire timeline: bytes a driver writes occupy the line for their
character time, a frame ends after 3.5 characters of silence, the addressed slave answers after
its turnaround and its answer leaves at the character rate. A request that starts less than 3.5
characters after the previous frame, or two requests written back to back, merge into one frame
whose CRC fails, and nobody answers: as on a real bus. With pacing off, requests are cut by their
function code's length and answered at once. A slow slave (``slow_answer``) sends its late answer
when due while the bus goes on serving the others, so the late frame can land in another
transaction, as it would on a real line.
"""

from __future__ import annotations

import heapq
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

from sim.devices import modbus
from sim.devices.device import SimDevice
from sim.devices.faults import answering_address, mangle, reply_delay_s, silenced
from sim.devices.line import SerialLine
from sim.spec import BusSpec

UNPACED_GAP_S = 0.02  # without pacing, a frame of unknown length ends after this much silence


class RtuBus(SerialLine):
    """Modbus RTU slaves sharing one serial line."""

    def __init__(
        self,
        spec: BusSpec,
        devices: list[SimDevice],
        link: Path,
        now_s: Callable[[], float],
        pacing: bool,
        device: Path | None = None,
    ) -> None:
        super().__init__(spec, link, now_s, pacing, device)
        self.slaves = {d.slave: d for d in devices}
        # "gapped": answers this line broke itself, its thread (descheduled) pausing a silence or
        # more inside them: a master may take the frame as ended there (see paced_write's cut)
        self.counts = dict.fromkeys(
            ("frames", "bad_crc", "merged", "answered", "ignored", "gapped"), 0
        )
        self._buf = bytearray()
        self._wire_end = 0.0  # when the last received byte finished crossing the wire
        self._last_frame_end = -math.inf  # end of the last frame on the line (ours included)
        self._after_silence = True
        self._last_rx = 0.0
        self._late: list[tuple[float, bytes]] = []  # slow answers not yet sent: (due, frame)

    @property
    def pending(self) -> int:
        """Bytes received that no frame has taken yet (waiting for the silence that ends it)."""
        return len(self._buf)

    def on_reopen(self) -> None:
        self._buf.clear()
        self._late.clear()

    def next_deadline(self) -> float:
        late = self._late[0][0] if self._late else math.inf
        if not self._buf:
            return min(super().next_deadline(), late)
        if self.pacing:
            return min(self._wire_end + self.silence_s, late)
        return min(self._last_rx + UNPACED_GAP_S, late)

    def on_bytes(self, data: bytes, now: float) -> None:
        self._last_rx = now
        if not self.pacing:
            self._buf += data
            return
        if self.port.uart:  # the UART hands bytes over once they have crossed the wire
            start = end = now
        else:
            start = max(now, self._wire_end)
            end = start + len(data) * self.char_s
        if not self._buf:
            self._after_silence = start - self._last_frame_end >= self.silence_s
        self._wire_end = end
        self._buf += data

    def on_idle(self, now: float) -> None:
        while self._late and self._late[0][0] <= now:
            when, reply = heapq.heappop(self._late)
            self._transmit(reply, when)
        if not self._buf:
            return
        if self.pacing:
            if now >= self._wire_end + self.silence_s:
                frame, merged = bytes(self._buf), not self._after_silence
                self._buf.clear()
                self._last_frame_end = self._wire_end
                if merged:
                    self.counts["merged"] += 1
                else:
                    self._handle(frame, self._wire_end + self.silence_s)
            return
        while self._buf:
            n = modbus.request_length(bytes(self._buf))
            if n is None or len(self._buf) < n:
                break
            frame = bytes(self._buf[:n])
            del self._buf[:n]
            self._handle(frame, now)
        if self._buf and now - self._last_rx >= UNPACED_GAP_S:
            frame = bytes(self._buf)
            self._buf.clear()
            self._handle(frame, now)

    def _handle(self, frame: bytes, detected: float) -> None:
        self.counts["frames"] += 1
        if not modbus.crc_ok(frame):
            self.counts["bad_crc"] += 1
            return
        address, pdu = frame[0], frame[1:-2]
        t_s = self.now_s()
        if address == 0:  # broadcast: writes are applied, nobody answers
            for dev in self.slaves.values():
                if pdu[:1] and pdu[0] in modbus.WRITES and not silenced(dev.frame_faults(t_s)):
                    modbus.respond(dev, pdu, t_s, self.spec.baudrate)
            return
        target = self.slaves.get(address)
        if target is None:
            self.counts["ignored"] += 1
            return
        dev = target
        faults = dev.frame_faults(t_s)
        if silenced(faults):
            return
        reply = modbus.rtu_frame(
            answering_address(address, faults), modbus.respond(dev, pdu, t_s, self.spec.baudrate)
        )
        if any(f.kind == "crc_error" for f in faults):
            reply = reply[:-2] + bytes([reply[-2] ^ 0xA5, reply[-1] ^ 0x5A])
        reply = mangle(reply, faults, dev.rng)
        turnaround = self.turnaround_s if self.pacing else 0.0
        delay = reply_delay_s(faults)
        if delay > 0:  # a slow slave answers later; the bus keeps serving the others meanwhile
            heapq.heappush(self._late, (detected + turnaround + delay, reply))
            return
        self._transmit(reply, detected + turnaround)

    def _transmit(self, reply: bytes, when: float) -> None:
        sent = self.send(reply, when, listen=True)
        self.counts["answered"] += 1
        if sent.gap >= self.silence_s:  # the simulator's fault: HIL scoring excuses the minute
            self.counts["gapped"] += 1
            self.late.append((self.now_s(), sent.gap))
        if self.port.uart:  # the master hears the answer only once it is off the wire: it
            return  # cannot talk over it, and the UART does not say when it ended anyway
        self._last_frame_end = sent.end if self.pacing else time.monotonic()
        self._collect_during(sent.end, sent.heard)

    def _collect_during(self, end: float, heard: bool) -> None:
        """Take bytes a master wrote over the answer, or in the silence after it, as early.

        Early only when the line can tell: input was waiting while the answer was still going out
        (``heard``), or it is read less than a silence after the answer's end. Bytes read later
        may have been written after a proper silence while this thread was not running, so they
        count from when they are read, as any other bytes do.
        """
        fd = self.port.master_fd
        if fd is None or not self.pacing:
            return
        try:
            data = os.read(fd, 4096)
        except OSError:  # nothing waiting (non-blocking) or port gone
            return
        if not data:
            return
        if heard:  # a collision: the garbled frame lasts past the answer's end
            self._last_rx = end
            self._buf += data
            self._after_silence = False
            self._wire_end = max(end, self._wire_end) + len(data) * self.char_s
            return
        self.on_bytes(data, time.monotonic())
