"""Every bundled scenario loads, and the demo station matches contract C1."""

from datetime import UTC, datetime

import pytest

from sim.scenario import bundled_scenarios, load_scenario


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
