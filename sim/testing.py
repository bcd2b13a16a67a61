"""Test support for code that runs against the simulator (drivers, devices, agent tests).

A truth known in closed form at every second (:class:`RampTruth`), the full test station's buses
and devices (every shipped profile on every kind of bus, pacing off), scenarios built from
:mod:`sim.spec` records, :class:`Stations`, which starts stations and stops them all after, and
:class:`SerialPair`, two cabled serial devices the simulator did not make (socat), for ``--bind``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from roadside.clock import Clock, ManualClock
from sim.spec import BusSpec, DeviceSpec, FaultSpec, Scenario, SiteSpec, TruthSample
from sim.station import SimStation

START = datetime(2026, 7, 21, 12, tzinfo=UTC)

RTU = BusSpec("rs485-1", "rtu", 9600, link="ttyRS485-1", pacing=False)
ASCII = BusSpec("rs232-1", "ascii", 9600, link="ttyRS232-1", pacing=False)
WXT_BUS = BusSpec("rs485-2", "ascii", 19200, link="ttyRS485-2", pacing=False)
TCP = BusSpec("tcp-1", "tcp")
BUSES = (RTU, ASCII, WXT_BUS, TCP)
DEVICES = (
    DeviceSpec("rain", "dfrobot-sen0575", "rs485-1", 192),
    DeviceSpec("level", "hlk-ld8001h", "rs485-1", 1),
    DeviceSpec("anemo", "generic-rs485-anemometer", "rs485-1", 2),
    DeviceSpec("wind", "gill-windsonic", "rs232-1"),
    DeviceSpec("wxt", "vaisala-wxt530", "rs485-2"),
    DeviceSpec("gauge", "generic-rain-gauge", "tcp-1", 1),
)


@dataclass
class RampTruth:
    """Steady rain, wind and water rising linearly: every value known in closed form."""

    duration_s: float = 3 * 3600.0
    rain_mmh: float = 36.0  # 0.01 mm per second
    wind0_ms: float = 2.0
    wind_rise_ms_per_h: float = 6.0
    dir_deg: float = 135.0
    depth_mm_per_h: float = 120.0

    def sample(self, t_s: float) -> TruthSample:
        t = min(max(t_s, 0.0), self.duration_s)
        speed = self.wind0_ms + self.wind_rise_ms_per_h * t / 3600.0
        return TruthSample(
            rain_total_mm=self.rain_mmh * t / 3600.0,
            rain_intensity_mmh=self.rain_mmh,
            wind_speed_ms=speed,
            wind_dir_deg=self.dir_deg,
            wind_gust_ms=1.5 * speed,
            water_depth_mm=self.depth_mm_per_h * t / 3600.0,
        )


def build_scenario(
    truth: RampTruth,
    *,
    name: str = "test",
    seed: int = 3,
    buses: tuple[BusSpec, ...] = BUSES,
    devices: tuple[DeviceSpec, ...] = DEVICES,
    faults: tuple[FaultSpec, ...] = (),
    site: SiteSpec | None = None,
) -> Scenario:
    """A scenario serving ``truth`` on the given buses and devices (default: the test station)."""
    return Scenario(
        name=name,
        seed=seed,
        start=START,
        duration_s=truth.duration_s,
        speed=1.0,
        site=site or SiteSpec(),
        truth=truth,
        buses=buses,
        devices=devices,
        faults=faults,
    )


class Stations:
    """Starts simulated stations in ``link_dir`` and stops every one of them on :meth:`close`."""

    def __init__(self, link_dir: Path, default: Scenario, pacing: bool | None = False) -> None:
        self.link_dir = link_dir
        self.default = default
        self.pacing = pacing
        self.started: list[SimStation] = []

    def __call__(
        self, sc: Scenario | None = None, clock: Clock | None = None, pacing: bool | None = None
    ) -> SimStation:
        st = SimStation(
            sc or self.default,
            clock or ManualClock(START),
            self.link_dir,
            pacing=self.pacing if pacing is None else pacing,
        )
        self.started.append(st.start())
        return st

    def close(self) -> None:
        for st in self.started:
            st.stop()


class SerialPair:
    """Two cabled serial devices (a socat pty pair): ``sim`` for the simulator, ``dut`` for the
    device under test, as a USB–RS485 adapter wired to a gateway's would be.

    socat ends when the last holder of either end closes it; a cable does not, so both ends are
    held open here while the simulator or the DUT closes and reopens theirs.
    """

    def __init__(self, root: Path, name: str = "cable") -> None:
        if shutil.which("socat") is None:
            raise RuntimeError("socat is not installed (make sysdeps installs it)")
        root.mkdir(parents=True, exist_ok=True)
        self.sim, self.dut = root / f"{name}-sim", root / f"{name}-dut"
        self.proc = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={self.sim}", f"pty,raw,echo=0,link={self.dut}"],
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not (self.sim.exists() and self.dut.exists()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("socat did not create its pty pair")
            time.sleep(0.01)
        self._held = [os.open(p, os.O_RDWR | os.O_NOCTTY) for p in (self.sim, self.dut)]

    def close(self) -> None:
        for fd in self._held:
            os.close(fd)
        self.proc.terminate()
        self.proc.wait(5)
