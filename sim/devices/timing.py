"""Serial wire time: character time, inter-frame silence, paced output, theoretical cycle times.

A character on an asynchronous line costs start + data + parity + stop bits; Modbus RTU frames are
separated by 3.5 characters of silence, fixed at 1.75 ms above 19200 baud (Modbus over serial line
spec, section 2.5.1.1). The drivers' benchmark uses :func:`min_cycle_s` as the theoretical limit.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

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


def paced_write(
    fd: int,
    data: bytes,
    char_s: float,
    start: float | None = None,
    stop: threading.Event | None = None,
) -> float:
    """Write ``data`` to ``fd`` at one character per ``char_s`` seconds; return the end time.

    Byte *i* is released when it has fully crossed the wire (``start + (i + 1) * char_s`` on
    ``time.monotonic``), so a reader never sees it earlier than a real line would deliver it.
    Bytes the reader has no room for are dropped, as an overrun UART would.
    """
    t0 = time.monotonic() if start is None else start
    sent = 0
    while sent < len(data):
        if stop is not None and stop.is_set():
            break
        due = min(len(data), int((time.monotonic() - t0) / char_s))
        if due > sent:
            write_some(fd, data[sent:due])
            sent = due
            continue
        time.sleep(max(0.0, t0 + (sent + 1) * char_s - time.monotonic()))
    return t0 + len(data) * char_s


def write_some(fd: int, data: bytes) -> None:
    """Write to a non-blocking pty master; what does not fit is lost (nobody is listening)."""
    with contextlib.suppress(BlockingIOError, OSError):
        os.write(fd, data)
