"""Quality flags and reason codes: what QC says about each reading (domain brief section 1).

Flag digits follow CMA practice. A flag stays beside its value; a failed value is never dropped
or overwritten. ``reason`` says which check set the flag (``""`` when correct); for a reading the
driver could not get, the reason is the driver status (``timeout``, ``crc_error``, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum, StrEnum

import msgspec

from roadside.records import Reading


class Flag(IntEnum):
    """CMA quality-control flag digits."""

    CORRECT = 0
    SUSPECT = 1
    WRONG = 2
    CORRECTED = 3
    MODIFIED = 4
    MISSING = 8
    NOT_CHECKED = 9


class Reason(StrEnum):
    """Reason codes set by the QC checks (driver statuses are reasons too, by their value)."""

    FORMAT = "format"  # value is not a finite number
    MISSING = "missing"  # no value although the driver said OK
    RANGE = "range"  # outside the sensor's physical range
    CLIMATE = "climate"  # outside climatological limits
    STEP = "step"  # jump from the previous sample larger than the allowed step
    STUCK = "stuck"  # too little variability over the persistence window
    CONSISTENCY = "consistency"  # contradicts another variable (gust < mean, dir without wind, ...)
    GAP = "gap"  # first sample after a time gap longer than allowed
    TIME = "time"  # timestamp not after the previous sample of the same channel
    COUNTER_RESET = "counter_reset"  # accumulated rain went backwards
    RAIN_RATE = "rain_rate"  # implausible rain per minute (double tips, spikes)
    RISE_RATE = "rise_rate"  # water depth rising faster than water can (blip, obstruction)


# Order of badness used to pick the worst flag: corrected/modified values are still good data,
# not-checked is unknown, missing is the worst because there is no value at all.
_SEVERITY: dict[Flag, int] = {
    Flag.CORRECT: 0,
    Flag.CORRECTED: 1,
    Flag.MODIFIED: 2,
    Flag.SUSPECT: 3,
    Flag.NOT_CHECKED: 4,
    Flag.WRONG: 5,
    Flag.MISSING: 6,
}

USABLE: frozenset[Flag] = frozenset({Flag.CORRECT, Flag.SUSPECT})
"""Flags of readings that passed QC and may feed derived products."""


def severity(flag: Flag) -> int:
    """Rank of ``flag`` from best (0) to worst."""
    return _SEVERITY[flag]


def worst(flags: Iterable[Flag], default: Flag = Flag.MISSING) -> Flag:
    """The worst of ``flags`` (``default`` when there are none)."""
    return max(flags, key=severity, default=default)


def is_usable(flag: Flag) -> bool:
    """True for readings that passed QC (correct or suspect)."""
    return flag in USABLE


class FlaggedReading(msgspec.Struct, frozen=True):
    """A reading with its QC flag and the reason for it (``""`` when correct); a frozen msgspec
    struct, as :class:`~roadside.records.Reading` is."""

    reading: Reading
    flag: Flag
    reason: str = ""

    @property
    def usable(self) -> bool:
        """True when the reading has a value and passed QC."""
        return self.flag in USABLE and self.reading.value is not None
