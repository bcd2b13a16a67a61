"""Fixtures for the device simulator tests: a ramp truth whose values are known at every second,
scenarios built from sim.spec records, stations on real ptys and TCP sockets, raw-byte clients."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import serial

from roadside.clock import ManualClock
from sim.spec import BusSpec, DeviceSpec, FaultSpec, Scenario, SiteSpec
from sim.station import SimStation
from sim.testing import BUSES, DEVICES, START, RampTruth, Stations, build_scenario


def scenario(
    buses: tuple[BusSpec, ...] = BUSES,
    devices: tuple[DeviceSpec, ...] = DEVICES,
    faults: tuple[FaultSpec, ...] = (),
    truth: RampTruth | None = None,
    site: SiteSpec | None = None,
) -> Scenario:
    return build_scenario(
        truth or RampTruth(), buses=buses, devices=devices, faults=faults, site=site
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
def make_station(tmp_path: Path) -> Iterator[Stations]:
    """``make_station(scenario=None, clock=None, pacing=None)``: a started station."""
    stations = Stations(tmp_path / "dev", scenario(), pacing=None)
    yield stations
    stations.close()


@pytest.fixture
def station(make_station: Stations, clock: ManualClock) -> SimStation:
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
