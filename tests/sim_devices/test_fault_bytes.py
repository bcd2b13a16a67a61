"""Every fault kind is visible at the byte level on a Modbus RTU bus (pacing off, manual clock)."""

from __future__ import annotations

import os
import struct
import time

import pytest
import serial

from sim.devices.modbus import crc, crc_ok, rtu_frame
from sim.spec import FAULT_KINDS, FaultSpec

READ_TIPS = rtu_frame(192, bytes([4, 0, 0x0A, 0, 3]))  # tip count (2 words) + uptime
READ_RADAR = rtu_frame(1, bytes([3, 0, 1, 0, 3]))  # distance, gap, depth
REPLY_S = 5.0  # real seconds an expected reply may take on a busy machine (returns when complete)


@pytest.fixture
def bus(station, raw):
    return raw(station.endpoints["rain"].port)


def tips(reply: bytes) -> tuple[int, int]:
    lo, hi, uptime = struct.unpack(">3H", reply[3:9])
    return hi << 16 | lo, uptime


def wait_for(cond, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.01)


def distance(reply: bytes) -> int:
    return struct.unpack(">H", reply[3:5])[0]


def test_every_fault_kind_is_covered_here():
    tested = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    assert set(FAULT_KINDS) <= tested


def test_crc_error(station, bus):
    station.inject("rain", "crc_error")
    reply = bus.transact(READ_TIPS)
    assert len(reply) == 11 and reply[0] == 192
    assert reply[-2:] != crc(reply[:-2])
    assert len(bus.transact(READ_RADAR)) == 11  # the other slave is fine
    assert crc_ok(bus.transact(READ_RADAR, wait_s=REPLY_S))


def test_truncated(station, bus):
    station.inject("rain", "truncated")
    reply = bus.transact(READ_TIPS)
    assert 0 < len(reply) < 11 and not crc_ok(reply)


def test_garbage(station, bus):
    good = bus.transact(READ_TIPS)
    station.inject("rain", "garbage", length=20)
    junk = bus.transact(READ_TIPS)
    assert len(junk) == 20 and junk[:3] != good[:3] and not crc_ok(junk)


def test_no_answer(station, bus):
    station.inject("rain", "no_answer", duration_s=60)
    assert bus.transact(READ_TIPS) == b""
    assert crc_ok(bus.transact(READ_RADAR, wait_s=REPLY_S))  # the bus is alive
    station.clock.advance(61)  # the fault has run its course
    assert crc_ok(bus.transact(READ_TIPS, wait_s=REPLY_S))


def test_slow_answer(station, bus):
    assert crc_ok(bus.transact(READ_TIPS, wait_s=REPLY_S))
    station.inject("rain", "slow_answer", delay_s=1.0)
    assert bus.transact(READ_TIPS, wait_s=0.5) == b""  # nothing before the delay is up...
    assert crc_ok(bus.read(REPLY_S))  # ...then the whole answer


def test_wrong_slave(station, bus):
    station.inject("level", "wrong_slave", address=7)
    reply = bus.transact(READ_RADAR)
    assert reply[0] == 7 and crc_ok(reply)  # a well-formed answer from the wrong address
    station.clear("level")
    assert bus.transact(READ_RADAR)[0] == 1


def test_counter_reset(station, bus, clock):
    clock.advance(3600)  # 36 mm = 360 tips, uptime 60 min
    assert tips(bus.transact(READ_TIPS, wait_s=REPLY_S)) == (360, 60)
    station.inject("rain", "counter_reset")
    assert tips(bus.transact(READ_TIPS, wait_s=REPLY_S)) == (
        0,
        0,
    )  # power cycle: counters and uptime from 0
    clock.advance(600)
    assert tips(bus.transact(READ_TIPS, wait_s=REPLY_S)) == (60, 10)


def test_counter_rolls_over_at_32_bits(station, bus, clock):
    station.inject("rain", "counter_reset", start_mm=429496.0)  # raw 4294960000 of 2^32
    reply = bus.transact(rtu_frame(192, bytes([4, 0, 8, 0, 2])))
    lo, hi = struct.unpack(">2H", reply[3:7])
    assert hi << 16 | lo == 4294960000
    clock.advance(100)  # +1.0 mm = +10000 raw: wraps
    reply = bus.transact(rtu_frame(192, bytes([4, 0, 8, 0, 2])))
    lo, hi = struct.unpack(">2H", reply[3:7])
    assert hi << 16 | lo == (4294960000 + 10000) % 2**32


def test_stuck(station, bus, clock):
    clock.advance(600)
    station.inject("level", "stuck")
    frozen = distance(bus.transact(READ_RADAR))
    clock.advance(1800)  # the water rose 60 mm
    assert distance(bus.transact(READ_RADAR)) == frozen
    station.clear("level", "stuck")
    assert distance(bus.transact(READ_RADAR)) < frozen - 40


def test_spike(station, bus, clock):
    clock.advance(1800)
    normal = distance(bus.transact(READ_RADAR))
    station.inject("level", "spike", magnitude=-1000.0, probability=1.0)
    spiked = distance(bus.transact(READ_RADAR))
    assert abs(spiked - (normal - 1000)) <= 10  # noise differs by at most +-5 each


def test_spike_probability_is_partial(station, bus, clock):
    station.inject("anemo", "spike", magnitude=40.0, probability=0.5)
    speeds = []
    for _ in range(30):
        clock.advance(1)
        reply = bus.transact(rtu_frame(2, bytes([3, 0, 0, 0, 1])))
        speeds.append(struct.unpack(">H", reply[3:5])[0])
    high = sum(s > 300 for s in speeds)
    assert 5 < high < 25


def test_drift(station, bus, clock):
    station.inject("anemo", "drift", rate_per_h=12.0, channel="wind_speed")
    clock.advance(1800)  # truth 5.0 m/s; drift +6.0 m/s
    reply = bus.transact(rtu_frame(2, bytes([3, 0, 0, 0, 3])))
    speed, direction, gust = struct.unpack(">3H", reply[3:9])
    assert (speed, direction, gust) == (110, 135, 75)  # only the named channel drifts


def test_port_vanish(station, clock):
    link = station.endpoints["rain"].port
    station.inject("rain", "port_vanish", duration_s=30)
    assert not os.path.lexists(link)
    clock.advance(31)
    wait_for(lambda: os.path.lexists(link), "the port back")
    assert os.path.lexists(link)
    assert os.readlink(link).startswith("/dev/pts/")


def test_port_vanish_cuts_an_open_port_and_it_comes_back(station, raw, clock):
    port = raw(station.endpoints["rain"].port)
    assert crc_ok(port.transact(READ_TIPS, wait_s=REPLY_S))
    station.inject("rain", "port_vanish")
    with pytest.raises((serial.SerialException, OSError)):  # the driver sees a hang-up
        port.ser.write(READ_TIPS)
        port.ser.read(16)
        port.ser.write(READ_TIPS)
        port.ser.read(16)
    station.clear("rain", "port_vanish")
    again = raw(station.endpoints["rain"].port)
    assert crc_ok(again.transact(READ_TIPS, wait_s=REPLY_S))


def test_scheduled_faults_follow_scenario_time(make_station, make_scenario, raw, clock):
    sc = make_scenario(faults=(FaultSpec("rain", "no_answer", start_s=600, duration_s=300),))
    st = make_station(sc, clock)
    port = raw(st.endpoints["rain"].port)
    assert crc_ok(port.transact(READ_TIPS, wait_s=REPLY_S))
    clock.advance(700)
    assert port.transact(READ_TIPS) == b""
    clock.advance(300)
    assert crc_ok(port.transact(READ_TIPS, wait_s=REPLY_S))


def test_scheduled_port_vanish_and_counter_reset(make_station, make_scenario, raw, clock):
    sc = make_scenario(
        faults=(
            FaultSpec("rain", "counter_reset", start_s=1200),
            FaultSpec("level", "port_vanish", start_s=1800, duration_s=60),
        )
    )
    st = make_station(sc, clock)
    link = st.endpoints["rain"].port
    clock.advance(1500)  # reset at 1200: 300 s of rain since = 3 mm = 30 tips
    port = raw(link)
    assert tips(port.transact(READ_TIPS, wait_s=REPLY_S)) == (30, 5)
    clock.advance(330)
    wait_for(lambda: not os.path.lexists(link), "the level port gone")  # monitor: every 20 ms
    clock.advance(60)
    wait_for(lambda: os.path.lexists(link), "the level port back")


def test_slow_slave_does_not_hold_up_the_bus(station, bus):
    rtu = station.buses["rs485-1"]
    station.inject("rain", "slow_answer", delay_s=2.0)
    frames = rtu.counts["frames"]
    bus.ser.write(READ_TIPS)  # the master gives up on the rain gauge at once...
    wait_for(lambda: rtu.counts["frames"] > frames, "the rain request taken off the line")
    other = bus.transact(READ_RADAR, wait_s=REPLY_S)  # ...and the radar answers in its turn,
    assert crc_ok(other) and other[0] == 1  # before the rain gauge's late answer
    late = bus.read(REPLY_S)  # which then arrives on the line
    assert crc_ok(late) and late[0] == 192


def test_bundled_faults_all_scenario_schedules(make_station, raw):
    from roadside.clock import ScaledClock
    from sim.scenario import load_scenario

    sc = load_scenario("faults-all")  # rain: no_answer from minute 10 for 5 minutes
    clock = ScaledClock(sc.start, speed=1.0, anchor=time.time() - 12 * 60)
    st = make_station(sc, clock, pacing=False)
    port = raw(st.endpoints["rain"].port)
    assert port.transact(READ_TIPS) == b""
    assert crc_ok(port.transact(READ_RADAR, wait_s=REPLY_S))


def test_ascii_port_vanishes_and_returns(station, clock):
    link = station.endpoints["wind"].port
    station.inject("wind", "port_vanish", duration_s=5)
    assert not os.path.lexists(link)
    clock.advance(6)
    wait_for(lambda: os.path.lexists(link), "the port back")
    assert os.readlink(link).startswith("/dev/pts/")
