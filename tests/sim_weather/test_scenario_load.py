"""Every bundled scenario loads, and the demo station matches contract C1."""

from datetime import UTC, datetime
from itertools import pairwise

import pytest

from drivers.profile import bundled_profiles
from sim.scenario import bundled_scenarios, load_scenario
from sim.spec import FAULT_KINDS


@pytest.mark.parametrize("name", sorted(bundled_scenarios()))
def test_bundled_scenario_loads(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario.name == name
    truth = scenario.truth
    assert truth.duration_s == scenario.duration_s
    end = truth.sample(scenario.duration_s)
    assert end.rain_total_mm >= truth.sample(0).rain_total_mm >= 0.0


def test_demo_station_is_the_contract() -> None:
    s = load_scenario("storm-5y-2h")
    assert s.start == datetime(2026, 7, 21, 12, tzinfo=UTC)
    assert s.duration_s == 180 * 60 and s.speed == 60
    buses = {b.name: (b.kind, b.baudrate, b.link) for b in s.buses}
    assert buses == {
        "rs485-1": ("rtu", 9600, "ttyRS485-1"),
        "rs232-1": ("ascii", 9600, "ttyRS232-1"),
    }
    devices = {d.name: (d.profile, d.bus, d.slave) for d in s.devices}
    assert devices == {
        "rain": ("dfrobot-sen0575", "rs485-1", 192),
        "level": ("hlk-ld8001h", "rs485-1", 1),
        "wind": ("gill-windsonic", "rs232-1", None),
    }


def test_faults_all_schedules_every_kind_alone() -> None:
    s = load_scenario("faults-all")
    assert sorted(f.kind for f in s.faults) == sorted(FAULT_KINDS)
    spans = sorted((f.start_s, f.start_s + (f.duration_s or s.duration_s)) for f in s.faults)
    assert all(end <= nxt for (_, end), (nxt, _) in pairwise(spans)), "one fault at a time"
    assert spans[-1][1] <= s.duration_s
    devices = {d.name for d in s.devices}
    assert {f.device for f in s.faults} <= devices


def test_full_station_carries_every_shipped_profile() -> None:
    s = load_scenario("full-station")
    assert {d.profile for d in s.devices} == set(bundled_profiles())
    buses = {b.name: b for b in s.buses}
    by_device = {d.profile: d for d in s.devices}
    anemometer = by_device["generic-rs485-anemometer"]
    assert (anemometer.bus, anemometer.slave) == ("rs485-1", 2)
    assert buses[by_device["generic-rain-gauge"].bus].kind == "tcp"
    wxt = buses[by_device["vaisala-wxt530"].bus]
    assert (wxt.kind, wxt.baudrate, wxt.link) == ("ascii", 19200, "ttyRS485-2")


def _peak_depth_mm(name: str) -> float:
    return float(load_scenario(name).truth.water_depth_mm.max())  # type: ignore[attr-defined]


def test_shipped_scenarios_do_what_their_headers_say() -> None:
    assert 100 < _peak_depth_mm("storm-5y-2h") < 150
    assert _peak_depth_mm("storm-50y-3h") > 300, "passes the 30 cm tier"
    assert _peak_depth_mm("drizzle") < 1.0, "the drain keeps up with drizzle"
    dry = load_scenario("dry")
    assert dry.truth.sample(dry.duration_s).rain_total_mm == 0.0
    assert _peak_depth_mm("dry") == 0.0
    for name in ("storm-5y-2h", "storm-50y-3h", "two-peak", "squall", "typhoon", "faults-all"):
        s = load_scenario(name)
        assert s.truth.sample(s.duration_s).water_depth_mm == 0.0, f"{name} drains by its end"
