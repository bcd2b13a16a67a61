"""Vaisala WXT-style polled ASCII: ``0R1`` wind, ``0R3`` precipitation, ``0R0`` composite,
``0R5`` supervisor, ``0XZRU`` rain counter reset, ``?`` address query.

Answers are ``<addr><cmd>,key=value<unit>,...`` CR LF; a value the device does not trust carries
``#`` instead of its unit letter. Only the device's own address answers.
"""

from __future__ import annotations

from sim.devices.device import SimDevice
from sim.devices.faults import Fault, answering_name, mangle, reply_delay_s, silenced

RAIN_ROLLOVER_MM = 100000.0
SUPERVISOR = "Th=25.9C,Vh=12.0N,Vs=12.1V,Vr=3.503V"  # heating and supply: not part of the truth
GUST_SPREAD_DEG = 25.0  # Dn/Dx around the mean direction


class Wxt:
    """One WXT transmitter answering polls on an ASCII line."""

    def __init__(self, device: SimDevice) -> None:
        self.device = device
        self.address = str(device.slave)

    def answer(self, line: str, t_s: float) -> tuple[bytes | None, float]:
        """The reply to one command line (None: not for us or not understood) and its delay."""
        cmd = line.strip()
        dev = self.device
        if cmd != "?" and not (cmd.startswith(self.address) and len(cmd) >= len(self.address)):
            return None, 0.0
        faults = dev.frame_faults(t_s)
        if silenced(faults):
            return None, 0.0
        addr = answering_name(self.address, faults, str((int(self.address) + 1) % 10))
        rest = cmd[len(self.address) :]
        if cmd == "?" or rest == "":
            text = addr
        elif rest == "XZRU":
            dev.reset_rain(t_s)
            text = f"{addr}TX,Rain reset"
        elif rest in ("R0", "R1", "R3", "R5"):
            text = f"{addr}{rest}," + self._fields(rest, t_s, faults)
        else:
            return None, 0.0
        out = text.encode("ascii") + b"\r\n"
        if any(f.kind == "crc_error" for f in faults):  # no checksum on this line: a hit byte
            mid = len(out) // 2
            out = out[:mid] + bytes([out[mid] | 0x80]) + out[mid + 1 :]
        return mangle(out, faults, dev.rng), reply_delay_s(faults)

    def _fields(self, message: str, t_s: float, faults: list[Fault]) -> str:
        dev = self.device
        v = dev.values(t_s)
        bad = any(f.params.get("invalid") for f in dev.faults.active(t_s))

        def u(letter: str) -> str:
            return "#" if bad else letter

        d, s, g = v.get("wind_dir", 0.0), v.get("wind_speed", 0.0), v.get("wind_gust", 0.0)
        rc = v.get("rain_total", 0.0) % RAIN_ROLLOVER_MM
        ri = v.get("rain_intensity", 0.0)
        wind = {
            "Dn": f"{round(d - GUST_SPREAD_DEG) % 360:03d}{u('D')}",
            "Dm": f"{round(d) % 360:03d}{u('D')}",
            "Dx": f"{round(d + GUST_SPREAD_DEG) % 360:03d}{u('D')}",
            "Sn": f"{max(0.0, 2 * s - g):.1f}{u('M')}",
            "Sm": f"{s:.1f}{u('M')}",
            "Sx": f"{g:.1f}{u('M')}",
        }
        rain = {
            "Rc": f"{rc:.2f}{u('M')}",
            "Rd": f"{dev.rain_duration_s(t_s):.0f}{u('s')}",
            "Ri": f"{ri:.1f}{u('M')}",
            "Hc": "0.0M",
            "Hd": "0s",
            "Hi": "0.0M",
        }
        if message == "R1":
            fields = wind
        elif message == "R3":
            fields = rain
        elif message == "R0":
            fields = {k: wind[k] for k in ("Dm", "Sm", "Sx")} | {k: rain[k] for k in ("Rc", "Ri")}
        else:
            return SUPERVISOR
        return ",".join(f"{k}={val}" for k, val in fields.items())
