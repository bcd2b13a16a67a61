"""Vaisala WXT-style polled ASCII weather transmitter: ``0R1`` -> ``0R1,Dn=236D,...,Sx=2.2M``.

:func:`command` builds a poll, :func:`parse_answer` splits an answer into :class:`WxtValue`
fields (a ``#`` in place of, or after, the unit letter marks an invalid value), and
:class:`WxtDriver` polls each message its channels need and converts units to the profile's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.errors import DeviceError, ProfileError
from drivers.line import SerialLine
from drivers.profile import AsciiField
from drivers.samples import Sample, failed
from roadside.records import DriverStatus

_FIELD = re.compile(r"([A-Za-z]{2})=([-+]?\d+(?:\.\d+)?)?([A-Za-z#]?)(#?)")
# (profile unit, WXT unit letter) -> factor to the profile unit
CONVERT: dict[tuple[str, str], float] = {
    ("deg", "D"): 1.0,
    ("m/s", "M"): 1.0,
    ("m/s", "K"): 1 / 3.6,
    ("m/s", "S"): 0.44704,
    ("m/s", "N"): 1852 / 3600,
    ("mm", "M"): 1.0,
    ("mm", "I"): 25.4,
    ("mm/h", "M"): 1.0,
    ("mm/h", "I"): 25.4,
    ("s", "s"): 1.0,
}


@dataclass(frozen=True)
class WxtValue:
    """One ``key=value<unit>`` field; ``number`` is None when the device marked it invalid."""

    raw: str
    number: float | None
    unit: str


def command(address: str, message: str) -> bytes:
    """The poll for one message (``R1`` wind, ``R3`` precipitation, ...)."""
    return f"{address}{message}\r\n".encode("ascii")


def parse_answer(data: bytes, address: str, message: str) -> dict[str, WxtValue]:
    """Fields of an answer line; raises :class:`DeviceError` when the line is not the answer."""
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise DeviceError(DriverStatus.BAD_FRAME, "non-ASCII bytes in answer") from None
    if not text:
        raise DeviceError(DriverStatus.TIMEOUT, "empty answer")
    head, _, rest = text.partition(",")
    if head != f"{address}{message}":
        if len(head) == 1 + len(message) and head[1:] == message:
            raise DeviceError(
                DriverStatus.WRONG_DEVICE, f"address {head[0]} answered, polled {address}"
            )
        raise DeviceError(
            DriverStatus.BAD_FRAME, f"answer starts {head[:16]!r}, polled {address}{message}"
        )
    out: dict[str, WxtValue] = {}
    for token in rest.split(",") if rest else []:
        m = _FIELD.fullmatch(token)
        if m is None:
            continue
        key, number, unit, hashed = m.groups()
        invalid = unit == "#" or hashed == "#" or number is None
        value = None if invalid else float(number)
        if value is not None and not math.isfinite(value):
            value = None
        out[key] = WxtValue(token.partition("=")[2], value, "" if unit == "#" else unit)
    return out


class WxtDriver:
    """Polls a WXT at one address for the messages its channels come from."""

    def __init__(
        self, line: SerialLine, address: int | str, channels: Sequence[AsciiField]
    ) -> None:
        for c in channels:
            if not c.message:
                raise ProfileError(f"channel {c.name!r}: a wxt channel needs 'message' (R1, R3...)")
        self.line = line
        self.address = str(address)
        self.fields = list(channels)
        self.channels = tuple(c.name for c in channels)
        self.messages = sorted({c.message for c in channels})

    def poll(self) -> list[Sample]:
        out: list[Sample] = []
        for i, message in enumerate(self.messages):
            fields = [c for c in self.fields if c.message == message]
            try:
                values = self._ask(message)
            except DeviceError as exc:
                out += failed((c.name for c in fields), exc.status, exc.detail)
                if exc.status in (DriverStatus.TIMEOUT, DriverStatus.PORT_UNAVAILABLE):
                    rest = [c.name for c in self.fields if c.message in self.messages[i + 1 :]]
                    out += failed(rest, exc.status, f"not asked after: {exc.detail}")
                    break
                continue
            out += [self._sample(c, values.get(c.field)) for c in fields]
        return out

    def _ask(self, message: str) -> dict[str, WxtValue]:
        self.line.write(command(self.address, message))
        answer = self.line.read_line(self.line.timeout_s)
        if not answer.endswith(b"\n"):
            if not answer:
                self.line.check_still_there()
                detail = f"no answer to {self.address}{message} within {self.line.timeout_s:g} s"
                raise DeviceError(DriverStatus.TIMEOUT, detail)
            raise DeviceError(DriverStatus.BAD_FRAME, f"answer cut short: {answer[:40]!r}")
        return parse_answer(answer, self.address, message)

    @staticmethod
    def _sample(c: AsciiField, v: WxtValue | None) -> Sample:
        if v is None:
            return Sample(c.name, None, None, DriverStatus.BAD_FRAME, f"field {c.field} missing")
        if v.number is None:
            return Sample(
                c.name, v.raw, None, DriverStatus.DEVICE_FAULT, f"{c.field} marked invalid"
            )
        factor = CONVERT.get((c.unit, v.unit)) if c.unit else 1.0
        if factor is None:
            detail = f"{c.field} in unit {v.unit!r}, profile wants {c.unit!r}"
            return Sample(c.name, v.raw, None, DriverStatus.BAD_FRAME, detail)
        return Sample(c.name, v.raw, v.number * factor)

    def write(self, setting: str, value: float) -> None:
        raise ProfileError(f"the WXT driver has no writable setting {setting!r}")

    def skipped(self) -> dict[str, int]:
        return {}
