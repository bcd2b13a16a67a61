"""Every simulator fault kind on every kind of link: a poll returns readings whose status says what
went wrong (never an exception), value faults read as values, and the device reads well again once
the fault is cleared."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from drivers.bus import open_buses
from roadside.clock import ScaledClock
from roadside.records import DriverStatus
from sim.spec import FAULT_KINDS

START = datetime(2026, 7, 21, 12, tzinfo=UTC)
LINKS = {"rtu": "level", "tcp": "gauge", "windsonic": "wind", "wxt": "wxt"}
FRAME_FAULTS: dict[str, dict[str, str]] = {
    "no_answer": dict.fromkeys(LINKS, "timeout"),
    # a WindSonic that talks late is still read: each poll takes the newest frame
    "slow_answer": {"rtu": "timeout", "tcp": "timeout", "windsonic": "ok", "wxt": "timeout"},
    # TCP and the WXT line have no checksum: a hit byte or header is a bad frame
    "crc_error": {
        "rtu": "crc_error",
        "tcp": "bad_frame",
        "windsonic": "checksum_error",
        "wxt": "bad_frame",
    },
    "truncated": dict.fromkeys(LINKS, "bad_frame"),
    "garbage": dict.fromkeys(LINKS, "bad_frame"),
    "wrong_slave": dict.fromkeys(LINKS, "wrong_device"),
    "port_vanish": dict.fromkeys(LINKS, "port_unavailable"),
}
TIMEOUT_S = 0.3
# (device, channel, truth of the channel at scenario second t, tolerance, spike, drift per hour)
VALUE_FAULTS = {
    "rtu": ("level", "water_distance", lambda t: 3000 - 0.1 * t, 6.0, 500.0, 600.0),
    "tcp": ("gauge", "rain_total", lambda t: 0.01 * t, 0.11, 50.0, 60.0),
    "wxt": ("wxt", "wind_speed", lambda t: 2 + t / 600, 0.1, 20.0, 60.0),
}


def test_the_tables_cover_every_fault_kind():
    assert set(FRAME_FAULTS) | {"stuck", "spike", "drift", "counter_reset"} == set(FAULT_KINDS)


def statuses(readings) -> set[str]:
    return {r.status.value for r in readings}


def value(readings, channel: str) -> float:
    [r] = [r for r in readings if r.channel == channel]
    assert r.status is DriverStatus.OK, r
    assert r.value is not None
    return r.value


@pytest.fixture
def scaled(make_station, make_configs):
    """The test station on a clock running 20x (a WindSonic frame every 50 ms)."""
    clock = ScaledClock(START, speed=20)
    station = make_station(None, clock)
    buses = open_buses(
        make_configs(station), station="st", clock=clock, sink=lambda b: None, timeout_s=TIMEOUT_S
    )
    yield station, {d: bus for bus in buses for d in bus.devices}
    for bus in buses:
        bus.stop()


@pytest.fixture
def manual(station, clock, make_configs):
    buses = open_buses(
        make_configs(station), station="st", clock=clock, sink=lambda b: None, timeout_s=TIMEOUT_S
    )
    yield {d: bus for bus in buses for d in bus.devices}
    for bus in buses:
        bus.stop()


@pytest.mark.parametrize("kind", sorted(FRAME_FAULTS))
@pytest.mark.parametrize("link", sorted(LINKS))
def test_frame_fault_is_named_by_the_readings(scaled, link, kind):
    station, buses = scaled
    device = LINKS[link]
    bus = buses[device]
    assert statuses(bus.poll_once(device)) == {"ok"}
    params = (
        {"delay_s": 0.1 if link == "windsonic" else 2 * TIMEOUT_S} if kind == "slow_answer" else {}
    )
    station.inject(device, kind, **params)
    got = bus.poll_once(device)
    want = FRAME_FAULTS[kind][link]
    assert statuses(got) == {want}, [(r.channel, r.status, r.detail) for r in got]
    if want != "ok":
        assert all(r.value is None and r.detail for r in got)
        assert bus.health()[device].last_error.startswith(want)
    station.clear(device)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:  # a vanished port is reopened, stray bytes flushed
        if statuses(after := bus.poll_once(device)) == {"ok"}:
            break
        time.sleep(0.05)
    assert statuses(after) == {"ok"}, [(r.channel, r.status, r.detail) for r in after]


@pytest.mark.parametrize("kind", ["stuck", "spike", "drift"])
@pytest.mark.parametrize("link", sorted(VALUE_FAULTS))
def test_value_faults_come_through_as_values(manual, station, clock, link, kind):
    device, channel, truth, tol, spike, drift = VALUE_FAULTS[link]
    bus = manual[device]
    clock.advance(60)
    base = value(bus.poll_once(device), channel)
    params = {"stuck": {}, "spike": {"probability": 1.0, "magnitude": spike}}.get(
        kind, {"rate_per_h": drift}
    )
    station.inject(device, kind, channel=channel, **params)
    clock.advance(600)
    got = value(bus.poll_once(device), channel)
    if kind == "stuck":
        assert got == pytest.approx(base, abs=tol)
        assert abs(truth(660) - base) > 5 * tol
    elif kind == "spike":
        assert got == pytest.approx(truth(660) + spike, abs=tol)
    else:
        assert got == pytest.approx(truth(660) + drift * 600 / 3600, abs=2 * tol)
    assert bus.health()[device].state == "ok"  # the driver cannot tell: that is QC's job


@pytest.mark.parametrize(("device", "tip_mm"), [("rain", 0.1), ("gauge", 0.1), ("wxt", 0.01)])
def test_counter_reset_is_reported_once_and_counting_goes_on(
    manual, station, clock, device, tip_mm
):
    bus = manual[device]
    clock.advance(600)
    before = value(bus.poll_once(device), "rain_total")
    station.inject(device, "counter_reset")
    clock.advance(30)
    reset = [r for r in bus.poll_once(device) if r.channel == "rain_total"]
    assert statuses(reset) == {"counter_reset"} and reset[0].value is None
    clock.advance(300)
    after = value(bus.poll_once(device), "rain_total")
    assert after == pytest.approx(before + 3.0, abs=3 * tip_mm)  # 5 min at 36 mm/h, once
    assert bus.health()[device].state == "ok"


def test_a_windsonic_reporting_its_own_fault(scaled):
    station, buses = scaled
    station.inject("wind", "stuck", status="01")
    got = buses["wind"].poll_once("wind")
    for _ in range(3):  # frames sent before the fault may still be in the line
        if statuses(got) != {"ok"}:
            break
        got = buses["wind"].poll_once("wind")
    assert statuses(got) == {"device_fault"}
    assert "axis 1 failed" in got[0].detail
    assert buses["wind"].health()["wind"].state == "degraded"


def test_a_wxt_marking_values_invalid(manual, station):
    station.inject("wxt", "stuck", invalid=True)
    got = manual["wxt"].poll_once("wxt")
    assert statuses(got) == {"device_fault"}
    assert all("invalid" in r.detail and r.raw.endswith("#") for r in got)


def test_a_late_reply_is_not_blamed_on_the_next_slave(
    make_station, make_scenario, make_configs, clock
):
    """On a paced bus with slow (150 ms) turnarounds, level answers at about 0.39 s, after its
    0.3 s timeout, while the master is already busy with anemo: whether the late reply comes
    during anemo's transaction (set aside) or just before the next request (let finish), anemo
    reads well. Only a request that really collided with the late reply on the wire (the
    simulated line saw a merged frame: the master was held up 70-100 ms, or the simulator
    released the reply that much behind schedule, on a loaded machine) may cost anemo that one
    transaction, as on a real half-duplex line, and never a wrong value."""
    from sim.spec import BusSpec, DeviceSpec

    rtu = BusSpec("rs485-1", "rtu", 9600, link="ttyRS485-1", pacing=True, turnaround_ms=150)
    devices = (
        DeviceSpec("level", "hlk-ld8001h", "rs485-1", 1),
        DeviceSpec("anemo", "generic-rs485-anemometer", "rs485-1", 2),
    )
    station = make_station(make_scenario(buses=(rtu,), devices=devices), clock, pacing=True)
    line = station.buses["rs485-1"]
    [bus] = open_buses(
        make_configs(station, 1.0, "level", "anemo"),
        station="st",
        clock=clock,
        sink=lambda b: None,
        timeout_s=TIMEOUT_S,
    )
    try:
        station.inject("level", "slow_answer", delay_s=0.23)  # answers at 0.39 s, after 0.3 s
        assert statuses(bus.poll_once("level")) == {"timeout"}

        def poll_anemo() -> tuple[list, bool]:
            """Anemo's readings, and whether its request collided on the simulated wire."""
            before = line.counts["merged"] + line.counts["bad_crc"]
            got = bus.poll_once("anemo")
            return got, line.counts["merged"] + line.counts["bad_crc"] > before

        got, collided = poll_anemo()
        detail = [(r.channel, r.status, r.detail) for r in got]
        assert statuses(got) <= ({"ok", "timeout"} if collided else {"ok"}), detail
        got, collided = poll_anemo()
        if collided:  # the late reply was released later still and met this request
            assert statuses(got) <= {"ok", "timeout"}, [(r.channel, r.status) for r in got]
            got, _ = poll_anemo()
        assert statuses(got) == {"ok"}, [(r.channel, r.status, r.detail) for r in got]
    finally:
        bus.stop()
