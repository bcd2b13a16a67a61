"""Serial wire time: character time, inter-frame silence, paced output, theoretical cycle times.

A character on an asynchronous line costs start + data + parity + stop bits; Modbus RTU frames are
separated by 3.5 characters of silence, fixed at 1.75 ms above 19200 baud (Modbus over serial line
spec, section 2.5.1.1). The drivers' benchmark uses :func:`min_cycle_s` as the theoretical limit.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from typing import NamedTuple

from sim.spec import BusSpec

FAST_SILENCE_S = 0.00175  # fixed inter-frame silence above 19200 baud


def char_bits(spec: BusSpec) -> int:
    """Bits on the wire per character: start + data + parity + stop."""
    return 1 + spec.bytesize + (0 if spec.parity == "N" else 1) + spec.stopbits


def char_time_s(spec: BusSpec) -> float:
    """Seconds one character occupies the wire."""
    return char_bits(spec) / spec.baudrate


def silence_s(spec: BusSpec) -> float:
    """The 3.5-character silence that ends an RTU frame."""
    return FAST_SILENCE_S if spec.baudrate > 19200 else 3.5 * char_time_s(spec)


def frame_time_s(spec: BusSpec, nbytes: int) -> float:
    """Wire time of ``nbytes`` characters sent back to back."""
    return nbytes * char_time_s(spec)


def min_cycle_s(spec: BusSpec, request_len: int, response_len: int) -> float:
    """Theoretical minimum time of one request/response pair on the bus.

    Request on the wire, the silence that ends it, the device turnaround, the response, and the
    silence the master must leave before its next request.
    """
    ct = char_time_s(spec)
    return (request_len + response_len) * ct + 2 * silence_s(spec) + spec.turnaround_ms / 1000.0


def read_registers_cycle_s(spec: BusSpec, count: int) -> float:
    """Minimum cycle of an FC 03/04 read of ``count`` registers (8-byte request, 5+2n response)."""
    return min_cycle_s(spec, 8, 5 + 2 * count)


def max_polls_per_s(spec: BusSpec, count: int) -> float:
    """Theoretical maximum register reads per second of ``count`` registers on one bus."""
    return 1.0 / read_registers_cycle_s(spec, count)


class Written(NamedTuple):
    """What a write put on the line and what it noticed meanwhile."""

    end: float  # monotonic time the last byte was released to the reader
    heard: bool = False  # the reader talked over the output (within a silence of a byte)
    gap: float = 0.0  # longest time between two bytes released (one character on schedule)
    cut: bool = False  # the rest was not sent: the reader talked after a pause of a silence


def paced_write(
    fd: int,
    data: bytes,
    char_s: float,
    start: float | None = None,
    stop: threading.Event | None = None,
    listen: float | None = None,
) -> Written:
    """Write ``data`` to ``fd`` at one character per ``char_s`` seconds.

    Byte *i* is released when it has fully crossed the wire (``start + (i + 1) * char_s`` on
    ``time.monotonic``), so a reader never sees it earlier than a real line would deliver it.
    Bytes the reader has no room for are dropped, as an overrun UART would. The end returned is
    when the last byte was actually released: its nominal time, or later when this thread fell
    behind (a reader cannot have seen it sooner).

    With ``listen`` (the silence that ends a frame), the waits between bytes watch ``fd`` for
    input. Input seen within a silence of the last byte released means the reader talked over
    the output (``heard``), however late this thread runs afterwards. Input seen after this
    thread fell silent for a silence or more mid-frame (descheduled) may have been written after
    a proper silence: a pause that long ends a frame on a real line, so the output ends there
    (``cut``) and the reader's bytes are a new frame.
    """
    t0 = time.monotonic() if start is None else start
    sent = 0
    last = t0  # when the last byte out was released
    heard = False
    gap = 0.0
    while sent < len(data):
        if stop is not None and stop.is_set():
            break
        now = time.monotonic()
        due = min(len(data), int((now - t0) / char_s))
        if due > sent:
            if sent:
                quiet = now - last
                if listen is not None and not heard and quiet >= listen and _readable(fd, 0.0):
                    return Written(last, gap=max(gap, quiet), cut=True)
                gap = max(gap, quiet)
            write_some(fd, data[sent:due])
            sent, last = due, now
            continue
        delay = max(0.0, t0 + (sent + 1) * char_s - now)
        if listen is None or heard:
            time.sleep(delay)
        elif _readable(fd, delay):
            quiet = time.monotonic() - last
            if sent and quiet >= listen:
                return Written(last, gap=max(gap, quiet), cut=True)
            heard = True
    return Written(last, heard, gap)


def _readable(fd: int, timeout: float) -> bool:
    """Wait up to ``timeout`` for input on ``fd``; a port gone meanwhile just waits."""
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    except (OSError, ValueError):
        time.sleep(timeout)
        return False


def write_some(fd: int, data: bytes) -> None:
    """Write to a non-blocking pty master; what does not fit is lost (nobody is listening)."""
    with contextlib.suppress(BlockingIOError, OSError):
        os.write(fd, data)
