"""A real serial device (USB–RS485 adapter, a socat pty) that a simulated bus is bound to.

``roadside-sim run SCENARIO --bind BUS=/dev/ttyUSB0`` serves the bus on this device instead of a
pseudo-terminal of its own. The device is opened by path through pyserial at the bus's baud rate,
byte size, parity and stop bits (termios set, exclusive lock), exactly as a gateway on the bench
opens its end. The UART paces the bytes, so :attr:`uart` tells the line to hand whole frames to
the device and to take received bytes as already off the wire; the line keeps the inter-frame
silence and the turnaround itself.

A bound device cannot be unplugged by the simulator: ``port_vanish`` closes it, so the device under
test sees a silent line; the device going away by itself (adapter pulled) is retried until it is
back.
"""

from __future__ import annotations

import fcntl
import os
import termios
from pathlib import Path

import serial

from sim.spec import BusSpec

PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}


class SerialDevice:
    """A serial device opened by path, with the interface of :class:`sim.devices.pty.PtyLink`."""

    uart = True  # the device paces bytes at the baud rate: send frames whole

    def __init__(self, path: Path, spec: BusSpec) -> None:
        self.link = Path(path)
        self.spec = spec
        self.tty = str(path)
        self._serial: serial.Serial | None = None

    @property
    def master_fd(self) -> int | None:
        return None if self._serial is None else self._serial.fileno()

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def open(self) -> None:
        """Open the device at the bus's line settings (OSError when it is missing or busy)."""
        try:
            port = serial.Serial(
                str(self.link),
                baudrate=self.spec.baudrate,
                bytesize=self.spec.bytesize,
                parity=PARITY[self.spec.parity],
                stopbits=self.spec.stopbits,
                timeout=0,
                exclusive=True,
            )
        except serial.SerialException as exc:  # carries the errno of the failed open
            raise OSError(exc.errno, str(exc)) from None
        except termios.error as exc:  # not a tty, or one that refuses the line settings
            raise OSError(exc.args[0], f"cannot set the line settings: {exc.args[-1]}") from None
        fd = port.fileno()
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        port.reset_input_buffer()
        self._serial = port

    def close(self) -> None:
        """Close the device (it stays where it is: the simulator cannot unplug it)."""
        if self._serial is not None:
            self._serial.close()
            self._serial = None

    def drop_stale(self) -> None:
        """Nothing to do: a UART puts bytes on the wire whether anyone listens or not."""
