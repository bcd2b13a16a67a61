"""Ports: serial device paths and ``tcp://host:port`` endpoints, opened with clear errors.

Opening a port that is missing, not permitted or not a port raises :class:`PortError` naming the
port, with ``reason`` telling which (the provisioning CLI maps reasons to exit codes).
:func:`identity` lets a driver notice that a port path now leads to another device (a USB
adapter or pseudo-terminal that vanished and came back).
"""

from __future__ import annotations

import errno
import os
import socket
from urllib.parse import urlsplit

import serial

from drivers.errors import PortError
from drivers.profile import SerialDefaults


def is_tcp(port: str) -> bool:
    return port.startswith("tcp://")


def tcp_address(port: str) -> tuple[str, int]:
    """(host, port) of a ``tcp://host:port`` endpoint."""
    parts = urlsplit(port)
    try:
        number = parts.port
    except ValueError:
        number = None
    if parts.scheme != "tcp" or not parts.hostname or number is None:
        raise PortError(f"{port}: not a tcp://host:port address", reason="unusable")
    return parts.hostname, number


def char_time(settings: SerialDefaults) -> float:
    """Seconds one character takes on the wire (start, data, parity, stop bits)."""
    bits = 1 + settings.bytesize + (settings.parity != "N") + settings.stopbits
    return bits / settings.baudrate


def silence_time(settings: SerialDefaults) -> float:
    """Modbus RTU inter-frame silence: 3.5 characters, fixed 1.75 ms above 19200 baud."""
    return 3.5 * char_time(settings) if settings.baudrate <= 19200 else 0.00175


def identity(port: str) -> int | None:
    """The device number a serial port path leads to now (None when it is missing)."""
    try:
        return os.stat(port).st_rdev
    except OSError:
        return None


def check_path(port: str) -> None:
    """Raise :class:`PortError` if a serial port path is missing or not readable and writable."""
    try:
        os.stat(port)
    except PermissionError:
        raise PortError(
            f"{port}: permission denied (cannot reach the path)", "permission"
        ) from None
    except OSError:
        reason = "vanished (dangling link)" if os.path.islink(port) else "does not exist"
        raise PortError(f"{port}: port {reason}", reason="missing") from None
    if not os.access(port, os.R_OK | os.W_OK):
        raise PortError(f"{port}: permission denied (need read and write access)", "permission")


def open_serial(port: str, settings: SerialDefaults, timeout_s: float) -> serial.Serial:
    """Open a serial port path (or ``tcp://`` as a raw socket) with the profile's settings."""
    if is_tcp(port):
        host, number = tcp_address(port)
        url = f"socket://{host}:{number}"
    else:
        check_path(port)
        url = port
    try:
        return serial.serial_for_url(
            url,
            baudrate=settings.baudrate,
            bytesize=settings.bytesize,
            parity=settings.parity,
            stopbits=settings.stopbits,
            timeout=timeout_s,
            write_timeout=timeout_s,
            exclusive=not is_tcp(port),
        )
    except (OSError, ValueError) as exc:
        raise _port_error(port, exc) from None


def probe(port: str, settings: SerialDefaults | None = None, timeout_s: float = 2.0) -> None:
    """Check that ``port`` can be opened; raise :class:`PortError` otherwise."""
    if is_tcp(port):
        host, number = tcp_address(port)
        try:
            socket.create_connection((host, number), timeout=timeout_s).close()
        except OSError as exc:
            raise _port_error(port, exc) from None
        return
    open_serial(port, settings or SerialDefaults(), timeout_s).close()


def _port_error(port: str, exc: Exception) -> PortError:
    code = getattr(exc, "errno", None)
    text = getattr(exc, "strerror", None) or str(exc)
    if code in (errno.EACCES, errno.EPERM):
        return PortError(f"{port}: permission denied", reason="permission")
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return PortError(f"{port}: port does not exist", reason="missing")
    if "Errno 13" in text or "Permission denied" in text:
        return PortError(f"{port}: permission denied", reason="permission")
    if "Errno 2" in text or "No such file" in text:
        return PortError(f"{port}: port does not exist", reason="missing")
    return PortError(f"{port}: cannot open: {text}", reason="unusable")
