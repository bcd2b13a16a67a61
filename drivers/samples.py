"""What a protocol driver returns, and how it becomes :class:`~roadside.records.Reading` records.

A driver only talks to its device: one poll gives one :class:`Sample` per channel (the wire value,
its number in the field's units, a status). :func:`to_readings` adds what the driver does not
know: station, sensor, time, profile scale and counter unwrapping.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple, Protocol

from drivers.counter import MAX_RAIN_MM_PER_S, RainCounter
from drivers.profile import AsciiField, RegisterField
from roadside.records import DriverStatus, Reading

Field = RegisterField | AsciiField


class Sample(NamedTuple):
    """One channel's outcome of one poll. ``number`` is None unless ``status`` is OK.

    A named tuple: one is made per channel and poll (a frozen dataclass costs twice as much)."""

    channel: str
    raw: int | float | str | None
    number: float | None
    status: DriverStatus = DriverStatus.OK
    detail: str = ""


def failed(channels: Iterable[str], status: DriverStatus, detail: str) -> list[Sample]:
    """The same failure for every channel (a poll that got no usable answer)."""
    return [Sample(c, None, None, status, detail) for c in channels]


class Driver(Protocol):
    """A protocol driver for one device on a port it shares through its link."""

    channels: tuple[str, ...]

    def poll(self) -> list[Sample]:
        """Ask the device once; never raises for anything the device or port does."""
        ...

    def write(self, setting: str, value: float) -> None:
        """Write a profile setting (register or coil); raises DriverError subclasses."""
        ...

    def skipped(self) -> dict[str, int]:
        """Counts of bad frames skipped since the last call (for health), by status."""
        ...


def make_counter(field: Field) -> RainCounter | None:
    """A counter for a field the profile marks as accumulating."""
    if field.counter is None:
        return None
    max_rate = MAX_RAIN_MM_PER_S / field.scale if field.unit == "mm" else None
    return RainCounter(rollover=field.counter.rollover, max_rate=max_rate)


def to_readings(
    samples: Iterable[Sample],
    fields: dict[str, Field],
    counters: dict[str, RainCounter],
    *,
    station: str,
    sensor: str,
    time: datetime,
) -> list[Reading]:
    """Scale samples into readings; counters turn raw counts into never-decreasing totals."""
    ok = DriverStatus.OK
    out = []
    for s in samples:
        f = fields[s.channel]
        status, detail, value, number = s.status, s.detail, None, s.number
        if status is ok and number is not None:
            if counters:
                counter = counters.get(s.channel)
                if counter is not None:
                    step = counter.update(number, time.timestamp())
                    status, detail, number = step.status, step.detail, step.total
            if status is ok:
                offset = f.offset if isinstance(f, RegisterField) else 0.0
                value = round(number * f.scale + offset, 9)
        out.append(Reading(station, sensor, s.channel, time, value, f.unit, s.raw, status, detail))
    return out
