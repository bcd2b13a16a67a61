"""Fixtures for the driver tests: a simulated station (sim.station) on real ptys and TCP sockets,
with a truth known in closed form, and device configurations pointing the drivers at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.bus import DeviceConfig
from drivers.profile import load_profile
from roadside.clock import ManualClock
from sim.spec import BusSpec, DeviceSpec, Scenario
from sim.station import SimStation
from sim.testing import BUSES, DEVICES, START, RampTruth, Stations, build_scenario


def scenario(
    buses: tuple[BusSpec, ...] = BUSES,
    devices: tuple[DeviceSpec, ...] = DEVICES,
    truth: RampTruth | None = None,
) -> Scenario:
    truth = truth or _ramp()
    return build_scenario(truth, name="drivers-test", seed=5, buses=buses, devices=devices)


def _ramp() -> RampTruth:
    return RampTruth(duration_s=6 * 3600.0, depth_mm_per_h=360.0)


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
def ramp() -> RampTruth:
    return _ramp()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def make_station(tmp_path: Path) -> Iterator[Stations]:
    """``make_station(scenario=None, clock=None, pacing=False)``: a started station."""
    stations = Stations(tmp_path / "dev", scenario(), pacing=False)
    yield stations
    stations.close()


@pytest.fixture
def station(make_station: Stations, clock: ManualClock) -> SimStation:
    """The whole test station on the manual clock, pacing off."""
    return make_station(scenario(), clock)
