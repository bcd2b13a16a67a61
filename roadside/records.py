"""The reading record: what a driver hands to the rest of the station."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec


class DriverStatus(StrEnum):
    """How the driver got (or failed to get) a value. ``OK`` is the only status with a value."""

    OK = "ok"
    TIMEOUT = "timeout"  # no answer within the timeout
    CRC_ERROR = "crc_error"  # Modbus RTU frame with a wrong CRC
    CHECKSUM_ERROR = "checksum_error"  # ASCII frame with a wrong checksum
    BAD_FRAME = "bad_frame"  # truncated, malformed or unparseable frame
    WRONG_DEVICE = "wrong_device"  # answer from another slave address
    EXCEPTION = "modbus_exception"  # device answered with a Modbus exception
    DEVICE_FAULT = "device_fault"  # device reports its own fault (status code, '#' marker)
    PORT_UNAVAILABLE = "port_unavailable"  # port missing, vanished or not permitted
    BREAKER_OPEN = "breaker_open"  # not polled: the device is backing off after failures
    COUNTER_RESET = "counter_reset"  # rain counter went backwards (reset or power cycle)


class Reading(msgspec.Struct, frozen=True):
    """One value of one channel of one sensor at one time.

    ``value`` is in ``unit`` after scaling and is ``None`` whenever ``status`` is not OK.
    ``raw`` is what came off the wire before scaling (register integer, ASCII field), for audit.
    ``time`` is UTC from the clock the caller passed in. A frozen msgspec struct: one is made
    per channel and poll (a frozen dataclass took nine times as long to build).
    """

    station: str
    sensor: str
    channel: str
    time: datetime
    value: float | None
    unit: str
    raw: int | float | str | None
    status: DriverStatus = DriverStatus.OK
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status is DriverStatus.OK and self.value is not None
