"""Fixtures for the driver tests: a simulated station (sim.station) on real ptys and TCP sockets,
with a truth known in closed form, and device configurations pointing the drivers at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.bus import DeviceConfig
from drivers.profile import load_profile
from roadside.clock import Clock, ManualClock
from sim.spec import BusSpec, DeviceSpec, Scenario, SiteSpec, TruthSample
from sim.station import SimStation

START = datetime(2026, 7, 21, 12, tzinfo=UTC)


@dataclass
class Ramp:
    """Steady rain, wind and water rising linearly: every value known at every second."""

    duration_s: float = 6 * 3600.0
    rain_mmh: float = 36.0
    wind0_ms: float = 2.0
    wind_rise_ms_per_h: float = 6.0
    dir_deg: float = 135.0
    depth_mm_per_h: float = 360.0

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
WXT = BusSpec("rs485-2", "ascii", 19200, link="ttyRS485-2", pacing=False)
TCP = BusSpec("tcp-1", "tcp")
DEVICES = (
    DeviceSpec("rain", "dfrobot-sen0575", "rs485-1", 192),
    DeviceSpec("level", "hlk-ld8001h", "rs485-1", 1),
    DeviceSpec("anemo", "generic-rs485-anemometer", "rs485-1", 2),
    DeviceSpec("wind", "gill-windsonic", "rs232-1"),
    DeviceSpec("wxt", "vaisala-wxt530", "rs485-2"),
    DeviceSpec("gauge", "generic-rain-gauge", "tcp-1", 1),
)


def scenario(
    buses: tuple[BusSpec, ...] = (RTU, ASCII, WXT, TCP),
    devices: tuple[DeviceSpec, ...] = DEVICES,
    truth: Ramp | None = None,
) -> Scenario:
    truth = truth or Ramp()
    return Scenario(
        name="drivers-test",
        seed=5,
        start=START,
        duration_s=truth.duration_s,
        speed=1.0,
        site=SiteSpec(),
        truth=truth,
        buses=buses,
        devices=devices,
    )


def configs(station: SimStation, interval_s: float = 1.0, *names: str) -> list[DeviceConfig]:
    """Driver configurations for the station's devices (all, or those named)."""
    return [
        DeviceConfig(name, load_profile(ep.profile), ep.port, slave=ep.slave, interval_s=interval_s)
        for name, ep in station.endpoints.items()
        if not names or name in names
    ]


@pytest.fixture
def make_configs() -> Callable[..., list[DeviceConfig]]:
    """``make_configs(station, interval_s=1.0, *names)``: driver configurations for its devices."""
    return configs


@pytest.fixture
def make_scenario() -> Callable[..., Scenario]:
    return scenario


@pytest.fixture
def ramp() -> Ramp:
    return Ramp()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def make_station(tmp_path: Path) -> Iterator[Callable[..., SimStation]]:
    started: list[SimStation] = []

    def make(
        sc: Scenario | None = None, clock: Clock | None = None, pacing: bool | None = False
    ) -> SimStation:
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
    """The whole test station on the manual clock, pacing off."""
    return make_station(scenario(), clock)
