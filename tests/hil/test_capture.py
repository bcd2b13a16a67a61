"""Capture a bus's traffic while the drivers read it, replay it as a device, read the same."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from hil_configs import dut_configs

from drivers.bus import open_buses
from roadside.clock import ManualClock
from sim.devices.capture import load_capture
from sim.devices.errors import CaptureError
from sim.devices.replay import replay_bus
from sim.devices.tap import Tap
from sim.spec import BusSpec, DeviceSpec, FaultSpec
from sim.station import SimStation
from sim.testing import START, RampTruth, build_scenario

# unpaced: answers at once, so a loaded machine does not turn a reply into a driver timeout in
# one run and not the other (the paced bound line is covered in test_bind and the bench)
RTU = BusSpec("rs485-1", "rtu", 9600, link="ttyRS485-1", pacing=False)  # the profiles' line
DEVICES = (
    DeviceSpec("rain", "dfrobot-sen0575", "rs485-1", 192),
    DeviceSpec("level", "hlk-ld8001h", "rs485-1", 1),
)
# the level sensor answers with a bad CRC for a while: the replay must bring that back too
FAULTS = (FaultSpec("level", "crc_error", 590.0, 30.0),)
TIMES = (0, 300, 600, 900, 1200)


def scenario():
    return build_scenario(RampTruth(), buses=(RTU,), devices=DEVICES, faults=FAULTS)


def polls(station, clock, port=None):
    configs = dut_configs(station, {"rs485-1": port} if port else {})
    buses = open_buses(configs, station="st-1", clock=clock, sink=lambda b: None)
    by = {d: bus for bus in buses for d in bus.devices}
    out = []
    try:
        for t in TIMES:
            clock.advance(t - (clock.now() - START).total_seconds())
            for name in ("rain", "level"):
                out += [(t, r.channel, r.value, r.status) for r in by[name].poll_once(name)]
    finally:
        for bus in buses:
            bus.stop()
    return out


def test_a_capture_replayed_gives_the_same_readings(tmp_path):
    cap = tmp_path / "rs485-1.capture"
    clock = ManualClock(START)
    with SimStation(scenario(), clock, tmp_path / "live", capture={"rs485-1": cap}) as st:
        live = polls(st, clock)
    assert {r[3].value for r in live} == {"ok", "crc_error"}  # the fault was on the wire
    recorded = load_capture(cap)
    assert recorded.bus == RTU
    assert {c.dir for c in recorded.chunks} == {"rx", "tx"}
    assert all(b.t >= a.t for a, b in zip(recorded.chunks, recorded.chunks[1:], strict=False))

    clock2 = ManualClock(START)
    line = replay_bus(recorded, tmp_path / "lab" / "ttyRS485-1", lambda: 0.0)
    line.start()
    try:
        with SimStation(scenario(), ManualClock(START), tmp_path / "ep") as ep_station:
            endpoints = ep_station  # same device addresses and profiles as the live run
            replayed = polls(endpoints, clock2, port=line.path)
    finally:
        line.stop()
    assert replayed == live


def test_a_bad_capture_is_one_error_naming_file_and_line(tmp_path):
    bad = tmp_path / "x.capture"
    bad.write_text(
        '{"format": "roadside-capture/1", "bus": {"name": "b", "kind": "rtu"}}\n{"t": 1}\n'
    )
    with pytest.raises(CaptureError, match=r"x.capture: line 2: bad chunk"):
        load_capture(bad)
    bad.write_text("hello\n")
    with pytest.raises(CaptureError, match=r"x.capture: line 1: not JSON"):
        load_capture(bad)


def test_replay_cli_serves_a_capture(tmp_path):
    cap = tmp_path / "c.capture"
    clock = ManualClock(START)
    with SimStation(scenario(), clock, tmp_path / "live", capture={"rs485-1": cap}) as st:
        polls(st, clock)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sim",
            "replay",
            str(cap),
            "--link-dir",
            str(tmp_path / "r"),
            "--json",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        doc = json.loads(proc.stdout.readline())
        assert doc["port"].endswith("ttyRS485-1") and doc["kind"] == "rtu"
        deadline = time.monotonic() + 10
        while not (tmp_path / "r" / "ttyRS485-1").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (tmp_path / "r" / "ttyRS485-1").exists()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    bad = subprocess.run(
        [sys.executable, "-m", "sim", "replay", str(tmp_path / "none.capture")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "none.capture" in bad.stderr and "Traceback" not in bad.stderr


def test_a_tap_records_a_sensor_it_does_not_simulate_and_the_replay_reads_the_same(
    tmp_path, serial_pair
):
    """The 'real sensor' is a simulator behind a serial cable; the tap sits between it and the
    driver on two more cables, as a laptop between a field gateway and its sensor line would."""
    field, lab = serial_pair("field"), serial_pair("lab")  # sensor side, master side
    cap = tmp_path / "field.capture"
    clock = ManualClock(START)
    with SimStation(scenario(), clock, tmp_path / "s", bind={"rs485-1": field.sim}) as sensor:
        tap = Tap(RTU, lab.sim, field.dut, cap).start()
        try:
            live = polls(sensor, clock, port=str(lab.dut))
        finally:
            tap.stop()
        assert tap.counts["rx"] > 0 and tap.counts["tx"] > 0
    assert {r[3].value for r in live} == {"ok", "crc_error"}
    line = replay_bus(load_capture(cap), tmp_path / "lab2" / "ttyRS485-1", lambda: 0.0)
    line.start()
    try:
        with SimStation(scenario(), ManualClock(START), tmp_path / "ep") as endpoints:
            replayed = polls(endpoints, ManualClock(START), port=line.path)
    finally:
        line.stop()
    assert replayed == live
