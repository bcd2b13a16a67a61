"""The port layer of the ASCII protocols: one serial line (or raw TCP socket), bytes in and out.

It opens on demand, reports a missing or lost port as ``PORT_UNAVAILABLE`` (a
:class:`DeviceError`), and notices a path that now leads to another device, so a port that
vanished and came back is simply reopened. Framing and decoding live in ``windsonic``/``wxt``.
"""

from __future__ import annotations

import termios
import time
from typing import NoReturn

import serial

from drivers.errors import DeviceError, PortError
from drivers.ports import identity, is_tcp, open_serial
from drivers.profile import SerialDefaults
from roadside.records import DriverStatus

_LOST = (OSError, termios.error)  # pyserial lets termios errors through on a hung-up pty


class SerialLine:
    """One ASCII port shared by the devices on it."""

    def __init__(self, port: str, settings: SerialDefaults, timeout_s: float | None = None) -> None:
        self.port = port
        self.settings = settings
        self.timeout_s = timeout_s or settings.timeout_s
        self._serial: serial.SerialBase | None = None
        self._rdev: int | None = None

    def ensure_open(self) -> serial.SerialBase:
        if self._serial is None:
            try:
                self._serial = open_serial(self.port, self.settings, self.timeout_s)
            except PortError as exc:
                raise DeviceError(DriverStatus.PORT_UNAVAILABLE, str(exc)) from None
            self._rdev = None if is_tcp(self.port) else identity(self.port)
        return self._serial

    def close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            finally:
                self._serial = None

    def read(self, wait_s: float) -> bytes:
        """Everything already received, waiting up to ``wait_s`` for the first byte."""
        port = self.ensure_open()
        try:
            port.timeout = max(wait_s, 0.0)
            data = port.read(1)
            if data and port.in_waiting:
                data += port.read(port.in_waiting)
        except _LOST as exc:
            self._lost(exc)
        return data

    def read_line(self, timeout_s: float, terminator: bytes = b"\n") -> bytes:
        """Bytes up to and including ``terminator``, or what came before ``timeout_s`` ran out."""
        port = self.ensure_open()
        deadline = time.monotonic() + timeout_s
        buf = b""
        try:
            while not buf.endswith(terminator):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                port.timeout = left
                chunk = port.read_until(terminator)
                if not chunk:
                    break
                buf += chunk
        except _LOST as exc:
            self._lost(exc)
        return buf

    def write(self, data: bytes) -> None:
        port = self.ensure_open()
        try:
            port.reset_input_buffer()
            port.write(data)
            port.flush()
        except _LOST as exc:
            self._lost(exc)

    def check_still_there(self) -> None:
        """Raise PORT_UNAVAILABLE (and close) when the port path vanished or was replaced."""
        if self._serial is None or is_tcp(self.port):
            return
        now = identity(self.port)
        if now != self._rdev:
            self.close()
            what = "vanished" if now is None else "was replaced"
            raise DeviceError(DriverStatus.PORT_UNAVAILABLE, f"{self.port}: port {what}")

    def _lost(self, exc: Exception) -> NoReturn:
        self.close()
        raise DeviceError(
            DriverStatus.PORT_UNAVAILABLE, f"{self.port}: port lost ({exc})"
        ) from None
