"""A serial line served by one thread: a pty that can vanish, paced output, a byte-event loop.

:class:`SerialLine` is the common half of the RTU bus and the ASCII bus: it owns the
:class:`~sim.devices.pty.PtyLink`, opens and closes it on request (port vanishing), waits for bytes
with a deadline and writes answers at the line's character rate when pacing is on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sim.devices.capture import CaptureWriter
from sim.devices.pty import PtyLink
from sim.devices.serialport import SerialDevice
from sim.devices.timing import Written, char_time_s, paced_write, silence_s, write_some
from sim.devices.uart import LineCheck, garble
from sim.spec import BusSpec

log = logging.getLogger(__name__)


LATE_S = 0.1  # an answer sent this much later than due is the simulator's fault, not the DUT's


class SerialLine:
    """Base of a simulated serial bus: subclasses implement :meth:`on_bytes` and :meth:`on_idle`."""

    IDLE_S = 0.2  # longest wait when nothing is due

    def __init__(
        self,
        spec: BusSpec,
        link: Path,
        now_s: Callable[[], float],
        pacing: bool,
        device: Path | None = None,
    ) -> None:
        self.spec = spec
        self.port: PtyLink | SerialDevice = (
            PtyLink(link) if device is None else SerialDevice(device, spec)
        )
        self.now_s = now_s
        self.pacing = pacing
        self.char_s = char_time_s(spec)
        self.silence_s = silence_s(spec)
        self.turnaround_s = spec.turnaround_ms / 1000.0
        self._uart = LineCheck(spec)
        self._stop = threading.Event()
        self._want_open = True
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"sim-bus-{spec.name}", daemon=True)
        self.capture: CaptureWriter | None = None  # records both directions when set
        self.late: list[tuple[float, float]] = []  # (scenario s, real s behind) of late answers

    @property
    def path(self) -> str:
        return str(self.port.link)

    @property
    def present(self) -> bool:
        return self.port.is_open

    def start(self) -> None:
        self.port.open()
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the port (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self.port.is_open:
            self.port.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def set_present(self, present: bool, wait_s: float = 2.0) -> None:
        """Make the port vanish (False) or come back (True); returns once done."""
        self._want_open = present
        self._wake()
        deadline = time.monotonic() + wait_s
        while (
            self.port.is_open != present and time.monotonic() < deadline and self._thread.is_alive()
        ):
            time.sleep(0.002)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    def _sync_port(self) -> None:
        if self._want_open and not self.port.is_open:
            try:
                self.port.open()
            except OSError as exc:  # a bound adapter unplugged: try again on the next pass
                log.warning("bus %s: cannot reopen %s: %s", self.spec.name, self.path, exc)
                self._stop.wait(self.IDLE_S)
                return
            self.on_reopen()
        elif not self._want_open and self.port.is_open:
            self.port.close()

    def send(self, data: bytes, not_before: float, listen: bool = False) -> Written:
        """Put ``data`` on the line no earlier than ``not_before`` (monotonic).

        Returns when its last byte was released and, with ``listen`` on a paced pty, whether the
        driver talked while it was still going out (see :func:`paced_write`).
        """
        fd = self.port.master_fd
        if fd is None or not data:
            return Written(time.monotonic())
        self.port.drop_stale()
        self._sleep_until(not_before)
        if not self.port.uart and not self._uart.matches(fd):  # driver at other settings: noise
            data = garble(data)
        behind = time.monotonic() - not_before
        if behind > LATE_S:  # starved of CPU: the device answered later than it should have
            self.late.append((self.now_s(), behind))
        if self.capture is not None:
            self.capture.record("tx", data)
        if not self.pacing:
            write_some(fd, data)
            return Written(time.monotonic())
        if self.port.uart:  # the UART sends the frame at the baud rate, no gap inside it
            start = time.monotonic()
            write_some(fd, data)
            return Written(start + len(data) * self.char_s)
        listen_s = self.silence_s if listen else None
        return paced_write(fd, data, self.char_s, time.monotonic(), self._stop, listen_s)

    def _sleep_until(self, when: float) -> None:
        delay = when - time.monotonic()
        if delay > 0:
            self._stop.wait(delay)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sync_port()
            fd = self.port.master_fd
            timeout = self.next_deadline() - time.monotonic()
            watch = [self._wake_r] + ([fd] if fd is not None else [])
            ready, _, _ = select.select(watch, [], [], max(0.0, min(timeout, self.IDLE_S)))
            if self._wake_r in ready:
                os.read(self._wake_r, 64)
            if fd is not None and fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    data = b""
                if data and not self.port.uart and not self._uart.matches(fd):
                    data = garble(data)
                if data:
                    if self.capture is not None:
                        self.capture.record("rx", data)
                    self._guard(self.on_bytes, data, time.monotonic())
            self._guard(self.on_idle, time.monotonic())

    def _guard(self, handler: Callable[..., None], *args: object) -> None:
        """Run a handler; a bug in one device model must not take the whole bus down."""
        try:
            handler(*args)
        except Exception:
            log.exception("bus %s: device model failed; line keeps running", self.spec.name)

    # -- for subclasses ------------------------------------------------------------------------
    def next_deadline(self) -> float:
        """Monotonic time by which :meth:`on_idle` must run next."""
        return time.monotonic() + self.IDLE_S

    def on_bytes(self, data: bytes, now: float) -> None:
        """Bytes a driver wrote arrived at ``now``."""

    def on_idle(self, now: float) -> None:
        """Called after every wait: finish frames whose silence has passed, emit what is due."""

    def on_reopen(self) -> None:
        """The port came back on a new pty."""
