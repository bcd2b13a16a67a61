"""Gill WindSonic ASCII output: ``<STX>Q,ddd,sss.ss,M,nn,<ETX>cc`` CR LF, unsolicited at 1 Hz.

``ddd`` direction (empty below 0.05 m/s), ``sss.ss`` speed in m/s, ``nn`` status (00 ok, 01 axis 1
failed, 02 axis 2, 04 both, 08 NVM checksum, 09 ROM checksum), ``cc`` the XOR of the bytes between
STX and ETX as two hex digits.
"""

from __future__ import annotations

from functools import reduce

from sim.devices.device import SimDevice
from sim.devices.faults import answering_name, mangle, reply_delay_s, silenced

STX, ETX = b"\x02", b"\x03"
CALM_MS = 0.05  # below this speed the direction field is empty
UNIT_ID = "Q"


def checksum(body: str) -> str:
    """XOR of the bytes of ``body`` (what lies between STX and ETX), two upper-case hex digits."""
    return f"{reduce(lambda a, b: a ^ b, body.encode('ascii'), 0):02X}"


def body(speed_ms: float, direction_deg: float, status: str = "00", unit: str = UNIT_ID) -> str:
    """The text between STX and ETX for one measurement."""
    direction = "" if speed_ms < CALM_MS else f"{round(direction_deg) % 360:03d}"
    return f"{unit},{direction},{max(0.0, speed_ms):06.2f},M,{status},"


def frame(text: str, check: str | None = None) -> bytes:
    """A complete output line around ``text``; ``check`` overrides the checksum (faults)."""
    cs = checksum(text) if check is None else check
    return STX + text.encode("ascii") + ETX + cs.encode("ascii") + b"\r\n"


class WindSonic:
    """A WindSonic on an ASCII line: one frame per scenario second."""

    def __init__(self, device: SimDevice) -> None:
        self.device = device

    def emit(self, t_s: float) -> tuple[bytes | None, float]:
        """The frame due at ``t_s`` (None when silenced) and the extra delay before sending it."""
        dev = self.device
        faults = dev.frame_faults(t_s)
        if silenced(faults):
            return None, 0.0
        v = dev.values(t_s)
        status = next(
            (str(f.params["status"]) for f in dev.faults.active(t_s) if "status" in f.params), "00"
        )
        unit = answering_name(UNIT_ID, faults, "R")
        text = body(v.get("wind_speed", 0.0), v.get("wind_dir", 0.0), f"{status:0>2}", unit)
        check = None
        if any(f.kind == "crc_error" for f in faults):
            check = f"{int(checksum(text), 16) ^ 0x5A:02X}"
        return mangle(frame(text, check), faults, dev.rng), reply_delay_s(faults)
