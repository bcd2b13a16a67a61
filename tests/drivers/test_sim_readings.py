"""Drivers against the simulated station over real ptys and TCP: values, time, units, raw."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.bus import BusScheduler, open_buses
from drivers.errors import DeviceError, ProfileError
from roadside.records import DriverStatus

BEACON = "warning-light"  # shipped in drivers/profiles


@pytest.fixture
def buses(station, clock, make_configs):
    out = open_buses(make_configs(station), station="st-1", clock=clock, sink=lambda b: None)
    yield {d: bus for bus in out for d in bus.devices}
    for bus in out:
        bus.stop()


def values(readings):
    assert all(r.status is DriverStatus.OK for r in readings), readings
    return {r.channel: r.value for r in readings}


def test_one_scheduler_per_port(buses, station):
    ports = {bus.port for bus in buses.values()}
    assert ports == {ep.port for ep in station.endpoints.values()}
    assert buses["rain"] is buses["level"] is buses["anemo"]


def test_every_device_reads_the_truth(buses, clock, ramp):
    clock.advance(1800)
    truth = ramp.sample(1800)
    rain = buses["rain"].poll_once("rain")
    assert {r.channel for r in rain} == {"rain_total", "tip_count", "uptime"}
    v = values(rain)
    assert v["rain_total"] == pytest.approx(truth.rain_total_mm, abs=0.1)
    assert v["tip_count"] == pytest.approx(truth.rain_total_mm / 0.1, abs=1)
    assert v["uptime"] == 30
    level = values(buses["level"].poll_once("level"))
    assert level["water_depth"] == pytest.approx(truth.water_depth_mm, abs=6)
    assert level["water_distance"] == pytest.approx(3000 - truth.water_depth_mm, abs=6)
    anemo = values(buses["anemo"].poll_once("anemo"))
    assert anemo["wind_speed"] == pytest.approx(truth.wind_speed_ms, abs=0.1)
    assert anemo["wind_dir"] == pytest.approx(135, abs=1)
    assert anemo["wind_gust"] == pytest.approx(truth.wind_gust_ms, abs=0.1)
    wind = values(buses["wind"].poll_once("wind"))
    assert wind["wind_speed"] == pytest.approx(truth.wind_speed_ms, abs=0.5)
    assert wind["wind_dir"] == pytest.approx(135, abs=1)
    wxt = values(buses["wxt"].poll_once("wxt"))
    assert wxt["rain_total"] == pytest.approx(truth.rain_total_mm, abs=0.05)
    assert wxt["rain_intensity"] == pytest.approx(36.0)
    assert wxt["wind_speed"] == pytest.approx(truth.wind_speed_ms, abs=0.1)
    gauge = values(buses["gauge"].poll_once("gauge"))
    assert gauge["rain_total"] == pytest.approx(truth.rain_total_mm, abs=0.1)
    assert gauge["rain_intensity"] == pytest.approx(36.0, abs=6)


def test_a_reading_carries_station_sensor_time_unit_and_raw(buses, clock):
    start = clock.now()
    clock.advance(600)
    [total, tips, uptime] = buses["rain"].poll_once("rain")
    assert (total.station, total.sensor, total.channel) == ("st-1", "rain", "rain_total")
    assert total.time == clock.now() and total.time.tzinfo is not None
    assert total.unit == "mm" and uptime.unit == "min" and tips.unit == "count"
    assert total.raw == round(total.value / 0.0001)  # the 32-bit register value, unscaled
    assert (total.time - start).total_seconds() == 600


def test_rain_total_survives_a_power_cycle_and_a_restart(buses, station, clock, make_configs):
    clock.advance(600)
    before = values(buses["rain"].poll_once("rain"))["rain_total"]
    station.inject("rain", "counter_reset")
    clock.advance(1)
    reset = {r.channel: r for r in buses["rain"].poll_once("rain")}
    assert (
        reset["rain_total"].status is DriverStatus.COUNTER_RESET
        and reset["rain_total"].value is None
    )
    assert "reset" in reset["rain_total"].detail
    clock.advance(600)
    after = values(buses["rain"].poll_once("rain"))["rain_total"]
    assert after == pytest.approx(before + 6.0, abs=0.2)  # 10 min at 36 mm/h, nothing twice
    saved = buses["rain"].counter_state()
    fresh = BusScheduler(
        buses["rain"].port,
        make_configs(station, 1.0, "rain"),
        station="st-1",
        clock=clock,
        sink=lambda b: None,
    )
    buses["rain"].stop()  # the port has one owner at a time
    fresh.restore_counters(saved)
    clock.advance(600)
    later = values(fresh.poll_once("rain"))["rain_total"]
    fresh.stop()
    assert later == pytest.approx(after + 6.0, abs=0.2)


def test_write_a_setting_through_the_bus(buses, clock):
    clock.advance(60)
    depth0 = values(buses["level"].poll_once("level"))["water_depth"]
    buses["level"].write_register("level", "installation_height", 310)  # cm
    depth1 = values(buses["level"].poll_once("level"))["water_depth"]
    assert depth1 == pytest.approx(depth0 + 100, abs=12)


def test_switch_a_warning_light_by_its_coil(make_station, make_scenario, clock, make_configs):
    """The shipped actuator profile: coils switched and read back through the bus."""
    from sim.spec import BusSpec, DeviceSpec

    bus_spec = BusSpec("rs485-1", "rtu", 9600, link="ttyRS485-1", pacing=False)
    sc = make_scenario(
        buses=(bus_spec,),
        devices=(
            DeviceSpec("beacon", str(BEACON), "rs485-1", 10),
            DeviceSpec("level", "hlk-ld8001h", "rs485-1", 1),
        ),
    )
    station = make_station(sc, clock)
    [bus] = open_buses(make_configs(station), station="st-1", clock=clock, sink=lambda b: None)
    try:
        assert values(bus.poll_once("beacon")) == {"light_on": 0, "siren_on": 0}
        bus.write_register("beacon", "light", 1)
        assert values(bus.poll_once("beacon")) == {"light_on": 1, "siren_on": 0}
        bus.write_register("beacon", "siren", 1)
        bus.write_register("beacon", "light", 0)
        assert values(bus.poll_once("beacon")) == {"light_on": 0, "siren_on": 1}
        assert values(bus.poll_once("level"))["water_depth"] is not None
        with pytest.raises(ProfileError, match="no writable setting 'strobe'"):
            bus.write_register("beacon", "strobe", 1)
        station.inject("beacon", "no_answer")
        with pytest.raises(DeviceError) as failed:
            bus.write_register("beacon", "light", 1)
        assert failed.value.status is DriverStatus.TIMEOUT
    finally:
        bus.stop()


def test_a_device_refusing_reads_across_its_gaps_is_read_field_by_field(
    make_station, make_scenario, clock, make_configs
):
    from sim.spec import BusSpec, DeviceSpec

    sparse = Path(__file__).parent / "cases" / "sparse-sensor.toml"
    rtu = BusSpec("rs485-1", "rtu", 9600, link="ttyRS485-1", pacing=False)
    sc = make_scenario(buses=(rtu,), devices=(DeviceSpec("sparse", str(sparse), "rs485-1", 7),))
    station = make_station(sc, clock)
    [bus] = open_buses(
        make_configs(station), station="st-1", clock=clock, sink=lambda b: None, max_gap=20
    )
    try:
        first = bus.poll_once("sparse")  # one merged read, refused, then the fields apart
        assert values(first) == {"rain_intensity": 36, "wind_speed": 2.0}
        assert values(bus.poll_once("sparse")) == {"rain_intensity": 36, "wind_speed": 2.0}
        assert station.buses["rs485-1"].counts["frames"] == 3 + 2  # refused once, then apart
    finally:
        bus.stop()
