"""Gill WindSonic-style ASCII anemometer: unsolicited frames ``<STX>Q,ddd,sss.ss,M,nn,<ETX>cc``.

Three layers, each testable alone: :class:`FrameReader` cuts the byte stream into frames and
checks the XOR checksum, resynchronising after garbage or a cut frame; :func:`decode` turns a
frame body into a :class:`WindSonicMessage`; :class:`WindSonicDriver` reads the line at each poll
and reports the newest good frame. Nothing here raises on bad bytes: they become statuses.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.errors import DeviceError, ProfileError
from drivers.line import SerialLine
from drivers.profile import ASCII_FIELDS, AsciiField
from drivers.samples import Sample, failed
from roadside.records import DriverStatus

STX, ETX = b"\x02", b"\x03"
MAX_FRAME = 96  # longer than any WindSonic frame; a start without an end past this is dropped
STATUS_TEXT = {
    0x01: "axis 1 failed",
    0x02: "axis 2 failed",
    0x04: "both axes failed",
    0x08: "NVM checksum failed",
    0x09: "ROM checksum failed",
}
SPEED_UNITS = {"M": 1.0, "N": 1852 / 3600, "K": 1 / 3.6, "P": 0.44704, "F": 0.00508}  # to m/s
CALM_MS = 0.05  # below this the direction field is empty
UNIT_ID = "Q"  # the factory-set unit identifier
_WHITESPACE = b"\r\n \t"


@dataclass(frozen=True)
class Framed:
    """One piece cut from the stream: a frame body whose checksum matched, or what was wrong."""

    status: DriverStatus
    body: bytes = b""
    detail: str = ""
    stray: bool = False  # bytes outside any frame (not a frame gone wrong)


@dataclass(frozen=True)
class WindSonicMessage:
    unit_id: str
    direction: float | None  # degrees; None when calm
    speed: float  # m/s
    status: int
    raw_direction: str
    raw_speed: str


def checksum(body: bytes) -> int:
    """XOR of the bytes between STX and ETX."""
    out = 0
    for b in body:
        out ^= b
    return out


def encode(body: str) -> bytes:
    """A complete frame for ``body`` (used by tests and the simulator)."""
    raw = body.encode("ascii")
    return STX + raw + ETX + f"{checksum(raw):02X}\r\n".encode("ascii")


class FrameReader:
    """Cuts a byte stream into checked frames, resynchronising on the next STX after trouble."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Framed]:
        self._buf += data
        out: list[Framed] = []
        while self._step(out):
            pass
        return out

    def _step(self, out: list[Framed]) -> bool:
        """Take one thing off the buffer; False when more bytes are needed."""
        buf = self._buf
        start = buf.find(STX)
        junk = bytes(buf if start < 0 else buf[:start]).strip(_WHITESPACE)
        if junk:
            stray = f"{len(junk)} stray byte(s) outside frames"
            out.append(Framed(DriverStatus.BAD_FRAME, detail=stray, stray=True))
        if start < 0:
            buf.clear()
            return False
        del buf[:start]
        end = buf.find(ETX, 1)
        again = buf.find(STX, 1)
        if again >= 0 and (end < 0 or again < end or again < end + 3):
            out.append(Framed(DriverStatus.BAD_FRAME, detail="frame cut short"))
            del buf[:again]
            return True
        if end < 0 or len(buf) < end + 3:
            if len(buf) > MAX_FRAME:
                out.append(Framed(DriverStatus.BAD_FRAME, detail="frame too long, no ETX"))
                buf.clear()
            return False
        body, cc = bytes(buf[1:end]), bytes(buf[end + 1 : end + 3])
        del buf[: end + 3]
        if not re.fullmatch(rb"[0-9A-Fa-f]{2}", cc):
            out.append(Framed(DriverStatus.BAD_FRAME, detail=f"checksum field {cc!r} is not hex"))
        elif int(cc, 16) != checksum(body):
            got, want = int(cc, 16), checksum(body)
            detail = f"checksum {got:02X}, frame gives {want:02X}"
            out.append(Framed(DriverStatus.CHECKSUM_ERROR, detail=detail))
        else:
            out.append(Framed(DriverStatus.OK, body=body))
        return True


def decode(body: bytes) -> WindSonicMessage:
    """Decode a frame body (between STX and ETX); raises :class:`DeviceError` with the status."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise DeviceError(DriverStatus.BAD_FRAME, "non-ASCII bytes in frame") from None
    parts = text.split(",")
    if len(parts) != 6 or parts[5]:
        raise DeviceError(DriverStatus.BAD_FRAME, f"expected 5 fields, got {text!r}")
    unit_id, ddd, sss, units, nn, _ = parts
    if not re.fullmatch(r"[0-9A-Fa-f]{2}", nn):
        raise DeviceError(DriverStatus.BAD_FRAME, f"status field {nn!r}")
    status = int(nn, 16)
    if status:
        what = STATUS_TEXT.get(status, "unknown fault")
        raise DeviceError(DriverStatus.DEVICE_FAULT, f"status {nn}: {what}")
    if units not in SPEED_UNITS:
        raise DeviceError(DriverStatus.BAD_FRAME, f"unknown speed unit {units!r}")
    if not re.fullmatch(r"\d{1,3}(\.\d+)?", sss):
        raise DeviceError(DriverStatus.BAD_FRAME, f"speed field {sss!r}")
    speed = float(sss) * SPEED_UNITS[units]
    direction: float | None = None
    if ddd:
        if not re.fullmatch(r"\d{1,3}", ddd) or int(ddd) > 360:
            raise DeviceError(DriverStatus.BAD_FRAME, f"direction field {ddd!r}")
        direction = float(int(ddd) % 360)
    elif speed >= CALM_MS:
        raise DeviceError(DriverStatus.BAD_FRAME, f"no direction at {speed:g} m/s")
    if not math.isfinite(speed):
        raise DeviceError(DriverStatus.BAD_FRAME, f"speed field {sss!r}")
    return WindSonicMessage(unit_id, direction, speed, status, ddd, sss)


class WindSonicDriver:
    """Reads a WindSonic's unsolicited frames; each poll reports the newest good one."""

    FIELDS = ASCII_FIELDS["windsonic"]

    def __init__(
        self, line: SerialLine, channels: Sequence[AsciiField], unit_id: str = UNIT_ID
    ) -> None:
        for c in channels:
            if c.field not in self.FIELDS:
                raise ProfileError(
                    f"channel {c.name!r}: WindSonic field must be one of {self.FIELDS}"
                )
        self.line = line
        self.unit_id = unit_id
        self.fields = list(channels)
        self.channels = tuple(c.name for c in channels)
        self.reader = FrameReader()
        self._skipped: Counter[str] = Counter()

    def poll(self) -> list[Sample]:
        """The newest good frame received since the last poll, waiting up to the timeout for one.

        Stray bytes (a frame's tail when the port was opened, line noise) do not end the wait;
        a complete frame does, good or bad.
        """
        results: list[WindSonicMessage | DeviceError] = []
        stray: DeviceError | None = None
        deadline = time.monotonic() + self.line.timeout_s
        try:
            wait = 0.0
            while True:
                for f in self.reader.feed(self.line.read(wait)):
                    if f.stray:
                        stray = DeviceError(f.status, f.detail)
                        self._skipped[f.status.value] += 1
                    else:
                        results.append(self._decode(f))
                wait = deadline - time.monotonic()
                if results or wait <= 0:
                    break
            if not results and stray is None:
                self.line.check_still_there()
        except DeviceError as exc:
            return failed(self.channels, exc.status, exc.detail)
        good = [r for r in results if isinstance(r, WindSonicMessage)]
        chosen = good[-1] if good else (results[-1] if results else stray)
        for r in results:
            if r is not chosen and isinstance(r, DeviceError):
                self._skipped[r.status.value] += 1
        if chosen is None:
            detail = f"no frame within {self.line.timeout_s:g} s"
            return failed(self.channels, DriverStatus.TIMEOUT, detail)
        if isinstance(chosen, DeviceError):
            return failed(self.channels, chosen.status, chosen.detail)
        return [self._sample(c, chosen) for c in self.fields]

    def _decode(self, f: Framed) -> WindSonicMessage | DeviceError:
        if f.status is not DriverStatus.OK:
            return DeviceError(f.status, f.detail)
        try:
            m = decode(f.body)
        except DeviceError as exc:
            return exc
        if m.unit_id != self.unit_id:
            wrong = f"unit {m.unit_id!r} is talking, expected {self.unit_id!r}"
            return DeviceError(DriverStatus.WRONG_DEVICE, wrong)
        return m

    @staticmethod
    def _sample(c: AsciiField, m: WindSonicMessage) -> Sample:
        if c.field == "speed":
            return Sample(c.name, m.raw_speed, m.speed)
        if m.direction is None:
            return Sample(c.name, m.raw_direction, 0.0, detail="calm")
        return Sample(c.name, m.raw_direction, m.direction)

    def write(self, setting: str, value: float) -> None:
        raise ProfileError(f"the WindSonic driver has no writable setting {setting!r}")

    def skipped(self) -> dict[str, int]:
        out, self._skipped = dict(self._skipped), Counter()
        return out
