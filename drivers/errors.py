"""Errors raised by the drivers package.

    DriverError         anything a driver refuses or cannot do
    ├── ProfileError    a profile file is missing, unknown or malformed (names file and field)
    ├── PortError       a port is missing, vanished or not permitted (names the port; ``reason``)
    └── DeviceError     a device answered badly or not at all; carries a DriverStatus

A user's mistake (bad profile, missing port) is reported as one line from the message; a device's
bad bytes become a reading status, never an exception out of the poller.
"""

from __future__ import annotations

from roadside.errors import InputError, RoadsideError
from roadside.records import DriverStatus


class DriverError(RoadsideError):
    """Base of all driver errors."""


class ProfileError(DriverError, InputError):
    """A profile file is missing, unknown or malformed."""


class PortError(DriverError):
    """A serial port or TCP endpoint cannot be opened or vanished.

    ``reason`` is one of ``missing``, ``permission``, ``unusable`` (opens but is not a port,
    refused connection, ...) or ``config`` (devices on one port disagree on its settings).
    """

    def __init__(self, message: str, reason: str = "unusable") -> None:
        super().__init__(message)
        self.reason = reason


class DeviceError(DriverError):
    """A device failed to answer correctly; ``status`` says how (``code``: a Modbus exception)."""

    def __init__(self, status: DriverStatus, detail: str, code: int | None = None) -> None:
        super().__init__(f"{status.value}: {detail}")
        self.status = status
        self.detail = detail
        self.code = code
