"""What a UART at the wrong line settings makes of the bytes: framing errors, i.e. garbage.

A pseudo-terminal carries bytes whatever the baud rate, so the simulator reads the line settings
the driver set on the slave side (Linux reports the slave's termios on the master) and garbles
traffic when they differ from the bus's: a request at the wrong baud rate is noise to the devices,
and their output is noise to the driver. The pty keeps the baud rate, two stop bits and odd
parity; it clears ``PARENB``, so "none" and "even" cannot be told apart on a pty.
"""

from __future__ import annotations

import termios
import time

from sim.spec import BusSpec

RECHECK_S = 0.005  # line settings are read again after this long (a driver switching settings
#                    waits longer than this before it talks)

SPEEDS = {getattr(termios, f"B{b}"): b for b in (1200, 2400, 4800, 9600, 19200, 38400, 57600)}
SPEEDS |= {getattr(termios, f"B{b}"): b for b in (115200, 230400)}


def line_matches(fd: int, spec: BusSpec) -> bool:
    """Whether the driver's side of the pty at ``fd`` is set to the bus's baud rate and framing.

    A line whose settings cannot be read (no termios) counts as matching.
    """
    try:
        attrs = termios.tcgetattr(fd)
    except (termios.error, OSError):
        return True
    baud = SPEEDS.get(attrs[4])
    if baud is not None and baud != spec.baudrate:
        return False
    odd = bool(attrs[2] & termios.PARODD)
    two_stop = bool(attrs[2] & termios.CSTOPB)
    return odd == (spec.parity == "O") and two_stop == (spec.stopbits == 2)


def garble(data: bytes) -> bytes:
    """Bytes as a UART at the wrong baud rate receives them (deterministic noise)."""
    return bytes(((b * 37) ^ 0xA5) & 0xFF for b in data)


class LineCheck:
    """:func:`line_matches` for one bus, read again at most every :data:`RECHECK_S`."""

    def __init__(self, spec: BusSpec) -> None:
        self.spec = spec
        self._at = -1.0
        self._ok = True

    def matches(self, fd: int) -> bool:
        now = time.monotonic()
        if now - self._at >= RECHECK_S:
            self._ok, self._at = line_matches(fd, self.spec), now
        return self._ok
