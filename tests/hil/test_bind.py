"""Buses served on serial devices the simulator did not create, TCP devices on a chosen address."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import serial
from hil_configs import dut_configs

from drivers.bus import open_buses
from roadside.clock import ManualClock
from roadside.records import DriverStatus
from sim.devices.errors import PortOpenError, StationConfigError
from sim.spec import BusSpec, DeviceSpec
from sim.station import SimStation
from sim.testing import START, RampTruth, build_scenario

RTU = BusSpec("rs485-1", "rtu", 19200, stopbits=2, link="ttyRS485-1", pacing=True)
ASCII = BusSpec("rs232-1", "ascii", 9600, link="ttyRS232-1", pacing=True)
TCP = BusSpec("tcp-1", "tcp")
DEVICES = (
    DeviceSpec("rain", "dfrobot-sen0575", "rs485-1", 192),
    DeviceSpec("level", "hlk-ld8001h", "rs485-1", 1),
    DeviceSpec("wind", "gill-windsonic", "rs232-1"),
    DeviceSpec("gauge", "generic-rain-gauge", "tcp-1", 1),
)


def scenario(rtu: BusSpec = RTU):
    return build_scenario(RampTruth(), buses=(rtu, ASCII, TCP), devices=DEVICES)


def values(readings):
    assert all(r.status is DriverStatus.OK for r in readings), readings
    return {r.channel: r.value for r in readings}


@pytest.fixture
def bound(tmp_path, serial_pair):
    rs485, rs232 = serial_pair("rs485"), serial_pair("rs232")
    clock = ManualClock(START)
    st = SimStation(
        scenario(),
        clock,
        tmp_path / "links",
        bind={"rs485-1": rs485.sim, "rs232-1": rs232.sim},
    ).start()
    ports = {"rs485-1": str(rs485.dut), "rs232-1": str(rs232.dut)}
    buses = open_buses(dut_configs(st, ports), station="st-1", clock=clock, sink=lambda b: None)
    yield st, clock, {d: bus for bus in buses for d in bus.devices}
    for bus in buses:
        bus.stop()
    st.stop()


def test_a_bound_bus_serves_the_truth_through_the_device(bound):
    st, clock, buses = bound
    assert st.endpoints["rain"].port.endswith("rs485-sim")  # the simulator's end of the cable
    assert not (st.link_dir / "ttyRS485-1").exists()  # no pty of its own for a bound bus
    clock.advance(1800)
    truth = RampTruth().sample(1800)
    rain = values(buses["rain"].poll_once("rain"))
    assert rain["rain_total"] == pytest.approx(truth.rain_total_mm, abs=0.1)
    level = values(buses["level"].poll_once("level"))
    assert level["water_depth"] == pytest.approx(truth.water_depth_mm, abs=6)
    wind = values(buses["wind"].poll_once("wind"))
    assert wind["wind_speed"] == pytest.approx(truth.wind_speed_ms, abs=0.5)


def test_the_device_is_opened_at_the_bus_line_settings(bound, tmp_path, serial_pair):
    st = bound[0]
    port = st.buses["rs485-1"].port
    tty = port._serial  # type: ignore[union-attr]
    assert (tty.baudrate, tty.parity, tty.stopbits, tty.bytesize) == (19200, "N", 2, 8)
    assert port.uart
    even = serial_pair("even")
    rtu = replace(RTU, baudrate=9600, parity="E", stopbits=1)
    with SimStation(scenario(rtu), ManualClock(START), tmp_path, bind={"rs485-1": even.sim}) as st:
        tty = st.buses["rs485-1"].port._serial  # type: ignore[union-attr]
        assert (tty.baudrate, tty.parity, tty.stopbits) == (9600, "E", 1)


def test_port_vanish_on_a_bound_bus_silences_it_then_it_answers_again(bound):
    st, clock, buses = bound
    st.inject("level", "port_vanish", duration_s=60)
    gone = buses["level"].poll_once("level")
    assert {r.status for r in gone} == {DriverStatus.TIMEOUT}
    clock.advance(61)
    deadline = time.monotonic() + 10
    while not st.buses["rs485-1"].present and time.monotonic() < deadline:
        time.sleep(0.02)
    assert values(buses["level"].poll_once("level"))


def test_bind_names_an_unknown_bus_or_a_tcp_bus(tmp_path):
    with pytest.raises(StationConfigError, match=r"--bind rs485-9: no such bus"):
        SimStation(scenario(), ManualClock(START), tmp_path, bind={"rs485-9": tmp_path / "x"})
    with pytest.raises(StationConfigError, match=r"--bind tcp-1: a Modbus TCP bus"):
        SimStation(scenario(), ManualClock(START), tmp_path, bind={"tcp-1": tmp_path / "x"})


def test_a_missing_device_is_one_error_naming_bus_and_path(tmp_path):
    st = SimStation(
        scenario(), ManualClock(START), tmp_path, bind={"rs485-1": tmp_path / "ttyUSB7"}
    )
    with pytest.raises(PortOpenError, match=r"bus 'rs485-1': cannot open .*ttyUSB7"):
        st.start()


def test_a_busy_device_is_refused(tmp_path, serial_pair):
    pair = serial_pair("busy")
    with serial.Serial(str(pair.sim), exclusive=True):
        st = SimStation(scenario(), ManualClock(START), tmp_path, bind={"rs485-1": pair.sim})
        with pytest.raises(PortOpenError, match="rs485-1"):
            st.start()


def read_holding(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(struct.pack(">HHHBBHH", 1, 0, 6, 1, 3, 0, 1))
        return s.recv(256)


def test_tcp_devices_listen_on_the_chosen_address(tmp_path):
    sc = scenario()
    with SimStation(sc, ManualClock(START), tmp_path, listen="0.0.0.0") as st:
        assert st.endpoints["gauge"].port.startswith("tcp://0.0.0.0:")
        port = st.buses["tcp-1"].tcp_port  # type: ignore[union-attr]
        assert read_holding("127.0.0.1", port)[7] == 3
    with SimStation(replace(sc), ManualClock(START), tmp_path) as st:
        assert st.endpoints["gauge"].port.startswith("tcp://127.0.0.1:")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", *args], capture_output=True, text=True, timeout=60
    )


def test_cli_refuses_a_bad_listen_address_and_a_bad_bind(tmp_path):
    bad = cli("run", "dry", "--link-dir", str(tmp_path), "--listen", "lab-lan")
    assert bad.returncode == 2 and "--listen" in bad.stderr and "Traceback" not in bad.stderr
    bad = cli("run", "dry", "--link-dir", str(tmp_path), "--bind", "rs485-1")
    assert bad.returncode == 2 and "BUS=PATH" in bad.stderr
    gone = cli("run", "dry", "--link-dir", str(tmp_path), "--bind", "rs485-1=/dev/ttyUSB97")
    assert gone.returncode == 1 and "Traceback" not in gone.stderr
    assert "rs485-1" in gone.stderr and "/dev/ttyUSB97" in gone.stderr


def test_capture_cli_names_the_device_it_cannot_open(tmp_path):
    out = tmp_path / "c.capture"
    done = cli("capture", str(out), "--master", "/dev/ttyUSB98", "--sensor", "/dev/ttyUSB99")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "/dev/ttyUSB98" in done.stderr


def test_two_requests_back_to_back_on_a_bound_line_are_one_bad_frame(bound, tmp_path):
    from sim.devices import modbus

    st = bound[0]
    dut_end = st.bind["rs485-1"].with_name("rs485-dut")
    request = modbus.rtu_frame(1, bytes([3, 0, 0, 0, 1]))
    with serial.Serial(str(dut_end), 19200, stopbits=2, timeout=0.5) as ser:
        ser.write(request + request)
        assert ser.read(64) == b""  # merged: the CRC fails, nobody answers
        ser.write(request)
        assert ser.read(5)[:1] == bytes([1])  # alone, it is answered (here: an exception)
    assert st.buses["rs485-1"].counts["bad_crc"] >= 1  # type: ignore[union-attr]


def test_an_answer_sent_late_is_noted_as_the_simulator_s_own_lateness(bound):
    st = bound[0]
    line = st.buses["rs485-1"]
    line.send(b"\x00", time.monotonic() - 0.5)  # type: ignore[union-attr]
    assert st.late_answers()["level"] and st.late_answers()["gauge"] == []


def test_a_stalled_simulator_marks_every_device(tmp_path):
    with SimStation(scenario(), ManualClock(START), tmp_path) as st:
        st.stalls.append(42.0)
        assert all(42.0 in ts for ts in st.late_answers().values())
