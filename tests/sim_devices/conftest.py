"""Fixtures for the device simulator tests: a ramp truth whose values are known at every second,
scenarios built from sim.spec records, stations on real ptys and TCP sockets, raw-byte clients."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import serial

from roadside.clock import ManualClock
from sim.spec import BusSpec, DeviceSpec, FaultSpec, Scenario, SiteSpec, TruthSample
from sim.station import SimStation

START = datetime(2026, 7, 21, 12, 0, tzinfo=UTC)


@dataclass
class RampTruth:
    """Rain at a steady rate, wind and water rising linearly: every value known in closed form."""

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


RTU = BusSpec("rs485-1", "rtu", 9600, link="ttyRS485-1", pacing=False)
ASCII = BusSpec("rs232-1", "ascii", 9600, link="ttyRS232-1", pacing=False)
WXT_BUS = BusSpec("rs485-2", "ascii", 19200, link="ttyRS485-2", pacing=False)
TCP = BusSpec("tcp-1", "tcp")
DEVICES = (
    DeviceSpec("rain", "dfrobot-sen0575", "rs485-1", 192),
    DeviceSpec("level", "hlk-ld8001h", "rs485-1", 1),
    DeviceSpec("anemo", "generic-rs485-anemometer", "rs485-1", 2),
    DeviceSpec("wind", "gill-windsonic", "rs232-1"),
    DeviceSpec("wxt", "vaisala-wxt530", "rs485-2"),
    DeviceSpec("rain2", "generic-rain-gauge", "tcp-1", 1),
)


def scenario(
    buses: tuple[BusSpec, ...] = (RTU, ASCII, WXT_BUS, TCP),
    devices: tuple[DeviceSpec, ...] = DEVICES,
    faults: tuple[FaultSpec, ...] = (),
    truth: RampTruth | None = None,
    site: SiteSpec | None = None,
) -> Scenario:
    truth = truth or RampTruth()
    return Scenario(
        name="test",
        seed=3,
        start=START,
        duration_s=truth.duration_s,
        speed=1.0,
        site=site or SiteSpec(),
        truth=truth,
        buses=buses,
        devices=devices,
        faults=faults,
    )


@pytest.fixture
def make_scenario() -> Callable[..., Scenario]:
    """Build a scenario from sim.spec records (defaults: the full test station)."""
    return scenario


@pytest.fixture
def ramp() -> RampTruth:
    """The truth the default test scenario serves."""
    return RampTruth()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def make_station(tmp_path: Path) -> Iterator[Callable[..., SimStation]]:
    started: list[SimStation] = []

    def make(sc: Scenario | None = None, clock=None, pacing: bool | None = None) -> SimStation:
        st = SimStation(
            sc or scenario(), clock or ManualClock(START), tmp_path / "dev", pacing=pacing
        )
        started.append(st.start())
        return st

    yield make
    for st in started:
        st.stop()


@pytest.fixture
def station(make_station: Callable[..., SimStation], clock: ManualClock) -> SimStation:
    """The full test station on a manual clock, pacing off."""
    return make_station(scenario(), clock)


class RawPort:
    """A driver-side view of a pty: write bytes, read what comes back within a time."""

    def __init__(self, path: str, baudrate: int = 9600) -> None:
        self.ser = serial.Serial(path, baudrate, timeout=0)

    def transact(self, frame: bytes, wait_s: float = 0.3, quiet_s: float = 0.02) -> bytes:
        """Send ``frame``; collect bytes until ``quiet_s`` of silence after some, or ``wait_s``."""
        self.ser.reset_input_buffer()
        self.ser.write(frame)
        return self.read(wait_s, quiet_s)

    def read(self, wait_s: float, quiet_s: float = 0.05) -> bytes:
        out = b""
        deadline = time.monotonic() + wait_s
        last = None
        while time.monotonic() < deadline:
            chunk = self.ser.read(4096)
            now = time.monotonic()
            if chunk:
                out += chunk
                last = now
            elif last is not None and now - last >= quiet_s:
                break
            time.sleep(0.002)
        return out

    def close(self) -> None:
        self.ser.close()


@pytest.fixture
def raw() -> Iterator[Callable[..., RawPort]]:
    ports: list[RawPort] = []

    def open_(path: str, baudrate: int = 9600) -> RawPort:
        ports.append(RawPort(path, baudrate))
        return ports[-1]

    yield open_
    for p in ports:
        p.close()
