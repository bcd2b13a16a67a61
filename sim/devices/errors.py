"""Errors raised by the simulated devices and the station that hosts them.

    SimError (sim.errors)
    └── SimDeviceError      anything the device simulator refuses or cannot do
        ├── StationConfigError  the scenario's buses and devices do not fit together (names device)
        ├── PortOpenError       a bus's pty, link or TCP port cannot be opened (names bus and port)
        ├── FaultRequestError   inject/clear asked for an unknown device, kind or parameter
        ├── ControlError        a running simulator's control socket is unreachable or refused
        └── CaptureError        a capture file cannot be written, read or replayed (names line)

Bad bytes from a driver never raise: a slave that cannot parse a frame stays silent, as on a bus.
"""

from __future__ import annotations

from sim.errors import SimError


class SimDeviceError(SimError):
    """Base of all device-simulator errors."""


class StationConfigError(SimDeviceError):
    """The scenario's buses and devices do not fit together."""


class PortOpenError(SimDeviceError):
    """A bus's pseudo-terminal, link or TCP port cannot be opened."""


class FaultRequestError(SimDeviceError):
    """A fault request names an unknown device, kind or parameter, or a bad parameter value."""


class ControlError(SimDeviceError):
    """The control socket of a running simulator cannot be reached or refused a command."""


class CaptureError(SimDeviceError):
    """A capture file cannot be written, read or replayed."""
