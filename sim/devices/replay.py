"""Serve a capture as a simulated device: a field problem brought back to the lab.

The capture's requests and answers become a book: each request (a Modbus RTU frame, or an ASCII
poll line) is answered with the answers recorded for it, in recorded order (the last one repeats
when the replay asks more often than the capture did); a request the device never answered stays
unanswered. Unsolicited output (a WindSonic's stream) is sent again at its recorded intervals.
The bus settings, pacing, silence and turnaround are the capture's.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from sim.devices import modbus
from sim.devices.capture import Capture
from sim.devices.errors import CaptureError
from sim.devices.line import SerialLine
from sim.devices.rtu import RtuBus


class Book:
    """Recorded answers by request, consumed in order; the last answer of each repeats."""

    def __init__(self) -> None:
        self._answers: dict[bytes, deque[bytes | None]] = {}

    def add(self, request: bytes, answer: bytes | None) -> None:
        self._answers.setdefault(request, deque()).append(answer)

    def answer(self, request: bytes) -> bytes | None:
        queue = self._answers.get(request)
        if not queue:
            return None
        return queue.popleft() if len(queue) > 1 else queue[0]

    def __len__(self) -> int:
        return sum(len(q) for q in self._answers.values())


def _split_rtu(buf: bytes) -> list[bytes]:
    """Cut a master's bytes into requests by their function code's length."""
    out = []
    while buf:
        n = modbus.request_length(buf)
        if n is None or n > len(buf):
            out.append(buf)
            break
        out.append(buf[:n])
        buf = buf[n:]
    return out


def rtu_book(capture: Capture) -> Book:
    """Requests and answers of a Modbus RTU capture."""
    book = Book()
    pending, answer = b"", b""
    for c in capture.chunks:
        if c.dir == "rx":
            if answer:
                book.add(pending, answer)
                pending, answer = b"", b""
            pending += c.data
            continue
        if not answer:  # the answer's first frame: requests before the last went unanswered
            *silent, last = _split_rtu(pending) or [b""]
            for req in silent:
                book.add(req, None)
            pending = last
        answer += c.data
    if pending:
        for req in _split_rtu(pending)[: -1 if answer else None]:
            book.add(req, None)
        if answer:
            book.add(_split_rtu(pending)[-1], answer)
    return book


def ascii_book(capture: Capture) -> tuple[Book, list[tuple[float, bytes]]]:
    """Poll lines with their answers, and the unsolicited output with its times."""
    book, stream = Book(), []
    line, poll = b"", None
    for c in capture.chunks:
        if c.dir == "rx":
            line += c.data
            while b"\n" in line:
                raw, _, line = line.partition(b"\n")
                if raw.strip():
                    poll = raw.strip()
        elif poll is not None:
            book.add(poll, c.data)
            poll = None
        else:
            stream.append((c.t, c.data))
    return book, stream


class ReplayRtuBus(RtuBus):
    """A Modbus RTU line whose answers come from a capture."""

    def __init__(
        self, capture: Capture, link: Path, now_s: Callable[[], float], device: Path | None = None
    ) -> None:
        super().__init__(capture.bus, [], link, now_s, capture.bus.pacing, device)
        self.book = rtu_book(capture)

    def _handle(self, frame: bytes, detected: float) -> None:
        self.counts["frames"] += 1
        reply = self.book.answer(frame)
        if reply is None:
            self.counts["ignored"] += 1
            return
        self._transmit(reply, detected + (self.turnaround_s if self.pacing else 0.0))


class ReplayAsciiBus(SerialLine):
    """An ASCII line: polls answered from a capture, unsolicited frames re-sent on their times."""

    def __init__(
        self, capture: Capture, link: Path, now_s: Callable[[], float], device: Path | None = None
    ) -> None:
        super().__init__(capture.bus, link, now_s, capture.bus.pacing, device)
        self.book, self.stream = ascii_book(capture)
        self._line = b""
        self._t0 = time.monotonic()
        self._next = 0

    def next_deadline(self) -> float:
        if self._next < len(self.stream):
            return self._t0 + self.stream[self._next][0]
        return super().next_deadline()

    def on_bytes(self, data: bytes, now: float) -> None:
        self._line += data
        while b"\n" in self._line:
            raw, _, self._line = self._line.partition(b"\n")
            reply = self.book.answer(raw.strip()) if raw.strip() else None
            if reply is not None:
                self.send(reply, now + (self.turnaround_s if self.pacing else 0.0))

    def on_idle(self, now: float) -> None:
        while self._next < len(self.stream) and self._t0 + self.stream[self._next][0] <= now:
            self.send(self.stream[self._next][1], now)
            self._next += 1


def replay_bus(
    capture: Capture, link: Path, now_s: Callable[[], float], device: Path | None = None
) -> ReplayRtuBus | ReplayAsciiBus:
    """The line that replays ``capture`` on a pty at ``link`` (or on a bound ``device``)."""
    if capture.bus.kind == "rtu":
        return ReplayRtuBus(capture, link, now_s, device)
    if capture.bus.kind == "ascii":
        return ReplayAsciiBus(capture, link, now_s, device)
    raise CaptureError(f"{capture.source}: a {capture.bus.kind} bus cannot be replayed")
