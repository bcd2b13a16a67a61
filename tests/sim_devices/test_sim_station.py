"""SimStation: endpoints, state file, configuration errors, the control socket, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import pytest
from click.testing import CliRunner
from pymodbus.client import ModbusSerialClient

from roadside.clock import ScaledClock
from sim.cli import main
from sim.devices import control
from sim.devices.errors import ControlError, FaultRequestError, StationConfigError
from sim.scenario import load_scenario
from sim.spec import BusSpec, DeviceSpec
from sim.station import SimStation


def test_state_file_names_endpoints_and_clock(station, tmp_path):
    station.serve_control(tmp_path / "c.sock")
    station.write_state(tmp_path / "state.json")
    doc = json.loads((tmp_path / "state.json").read_text())
    assert doc["endpoints"]["level"] == {
        "device": "level",
        "profile": "hlk-ld8001h",
        "port": str(tmp_path / "dev" / "ttyRS485-1"),
        "slave": 1,
        "bus": "rs485-1",
        "protocol": "modbus",
    }
    assert doc["endpoints"]["gauge"]["port"].startswith("tcp://127.0.0.1:")
    assert doc["endpoints"]["wind"]["slave"] is None
    clock = ScaledClock(
        datetime.fromisoformat(doc["clock"]["start"]), doc["clock"]["speed"], doc["clock"]["anchor"]
    )
    assert abs((clock.now() - station.clock.now()).total_seconds()) < 1.0
    assert doc["control"] == str(tmp_path / "c.sock")


def test_scaled_clock_is_shared_through_the_state(make_station, make_scenario, tmp_path):
    sc = make_scenario()
    clock = ScaledClock(sc.start, speed=60)
    st = make_station(sc, clock)
    st.write_state(tmp_path / "s.json")
    c = json.loads((tmp_path / "s.json").read_text())["clock"]
    other = ScaledClock(datetime.fromisoformat(c["start"]), c["speed"], c["anchor"])
    assert abs(other.elapsed() - st.scenario_time()) < 0.5  # half a scenario second at x60


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ((DeviceSpec("x", "hlk-ld8001h", "nowhere"),), "bus 'nowhere' is not declared"),
        ((DeviceSpec("x", "gill-windsonic", "rs485-1"),), "cannot sit on rtu bus"),
        ((DeviceSpec("x", "no-such-profile", "rs485-1"),), "unknown profile"),
        (
            (DeviceSpec("a", "hlk-ld8001h", "rs485-1"), DeviceSpec("b", "hlk-ld8001h", "rs485-1")),
            "address 1 used by two devices",
        ),
    ],
)
def test_configuration_errors_are_one_line(make_scenario, clock, tmp_path, devices, message):
    bus = BusSpec("rs485-1", "rtu", link="ttyRS485-1")
    with pytest.raises(StationConfigError, match=message) as err:
        SimStation(make_scenario(buses=(bus,), devices=devices), clock, tmp_path)
    assert "\n" not in str(err.value)


def test_inject_refuses_unknown_targets(station):
    with pytest.raises(FaultRequestError, match="no device 'ghost'"):
        station.inject("ghost", "stuck")
    with pytest.raises(FaultRequestError, match="unknown fault kind 'melt'"):
        station.inject("rain", "melt")


@pytest.mark.parametrize(
    ("device", "kind", "params", "message"),
    [
        ("level", "spike", {"magnitude": "big"}, "magnitude: expected float, got 'big'"),
        ("level", "spike", {"probability": 2}, "probability must be within 0..1"),
        ("level", "stuck", {"channel": "wind_speed"}, "no channel 'wind_speed'"),
        ("level", "stuck", {"colour": "red"}, "unknown fault parameter 'colour'"),
        ("level", "wrong_slave", {"address": "R"}, "a Modbus address is an integer"),
        ("wxt", "stuck", {"invalid": "yes"}, "invalid: expected bool"),
    ],
)
def test_inject_refuses_bad_parameters(station, device, kind, params, message):
    with pytest.raises(FaultRequestError, match=message):
        station.inject(device, kind, **params)
    with pytest.raises(FaultRequestError, match="duration must be positive"):
        station.inject("level", "stuck", duration_s=0)


def test_control_socket_injects_and_clears(station, tmp_path, raw):
    path = station.serve_control(tmp_path / "ctl.sock")
    from sim.devices.modbus import rtu_frame

    port = raw(station.endpoints["rain"].port)
    req = rtu_frame(192, bytes([4, 0, 0xC, 0, 1]))
    control.request(path, {"op": "inject", "device": "rain", "kind": "no_answer"})
    assert port.transact(req) == b""
    status = control.request(path, {"op": "status"})
    assert status["devices"]["rain"]["faults"][0]["kind"] == "no_answer"
    assert control.request(path, {"op": "clear", "device": "rain"})["cleared"] == 1
    assert len(port.transact(req)) == 7
    with pytest.raises(ControlError, match="no device"):
        control.request(path, {"op": "clear", "device": "ghost"})
    with pytest.raises(ControlError, match=r"absent.sock: (No such file|Connection refused)"):
        control.request(tmp_path / "absent.sock", {"op": "status"})


def test_demo_scenario_serves_the_truth(make_station, tmp_path):
    sc = load_scenario("storm-5y-2h")
    clock = ScaledClock(sc.start, speed=1.0, anchor=time.time() - 3600)  # an hour into the storm
    st = make_station(sc, clock, pacing=False)
    c = ModbusSerialClient(st.endpoints["level"].port, baudrate=9600, timeout=1, retries=0)
    assert c.connect()
    try:
        t = st.scenario_time()
        truth = sc.truth.sample(t)
        r = c.read_holding_registers(1, count=3, device_id=1).registers
        assert abs(r[0] - (3000 - truth.water_depth_mm)) <= 6
        rain = c.read_input_registers(8, count=2, device_id=192).registers
        total = (rain[1] << 16 | rain[0]) / 10000
        assert truth.rain_total_mm - 0.1 - 1e-6 <= total <= sc.truth.sample(t + 1).rain_total_mm
        assert total > 1.0  # it is raining an hour in
    finally:
        c.close()


def test_cli_list():
    out = CliRunner().invoke(main, ["list", "--json"])
    assert out.exit_code == 0
    doc = json.loads(out.output)
    assert "storm-5y-2h" in doc["scenarios"]
    assert doc["profiles"]["hlk-ld8001h"]["protocol"] == "modbus"


def test_cli_errors_are_one_line(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(main, ["run", "no-such-scenario", "--link-dir", str(tmp_path)])
    assert bad.exit_code == 1 and "unknown scenario" in bad.output
    assert bad.output.count("\n") == 1
    missing = runner.invoke(main, ["fault", str(tmp_path / "none.json"), "rain", "stuck"])
    assert missing.exit_code == 1 and "no state file" in missing.output
    param = runner.invoke(
        main, ["fault", str(tmp_path / "none.json"), "rain", "stuck", "--param", "oops"]
    )
    assert param.exit_code == 2


def test_cli_run_fault_clear(tmp_path):
    state = tmp_path / "state.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sim",
            "run",
            "storm-5y-2h",
            "--link-dir",
            str(tmp_path / "dev"),
            "--state-file",
            str(state),
            "--no-pacing",
            "--speed",
            "60",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        announced = json.loads(proc.stdout.readline())
        assert announced["endpoints"]["rain"]["slave"] == 192
        assert state.exists()
        runner = CliRunner()
        out = runner.invoke(
            main, ["fault", str(state), "level", "port_vanish", "--duration", "600"]
        )
        assert out.exit_code == 0, out.output
        assert not os.path.lexists(announced["endpoints"]["level"]["port"])
        out = runner.invoke(main, ["clear", str(state), "level"])
        assert out.exit_code == 0 and "1 fault(s) cleared" in out.output
        time.sleep(0.1)
        assert os.path.lexists(announced["endpoints"]["level"]["port"])
        out = runner.invoke(main, ["fault", str(state), "ghost", "stuck"])
        assert out.exit_code == 1 and "no device 'ghost'" in out.output
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    assert proc.returncode == 0
    assert not state.exists()
    assert not os.path.lexists(announced["endpoints"]["level"]["port"])


def test_cli_run_stops_after_duration(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sim",
            "run",
            "storm-5y-2h",
            "--link-dir",
            str(tmp_path),
            "--speed",
            "600",
            "--duration-min",
            "1",
            "--no-pacing",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "ttyRS485-1" in out.stdout and "slave 192" in out.stdout


def test_stop_removes_links_and_is_idempotent(make_scenario, clock, tmp_path):
    st = SimStation(make_scenario(), clock, tmp_path / "dev").start()
    links = [ep.port for ep in st.endpoints.values() if not ep.port.startswith("tcp://")]
    assert all(os.path.lexists(p) for p in links)
    st.stop()
    st.stop()
    assert not any(os.path.lexists(p) for p in links)


def test_a_port_in_use_is_one_clear_error(make_scenario, clock, tmp_path):
    import socket

    from sim.devices.errors import PortOpenError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        bus = BusSpec("tcp-9", "tcp", port=port)
        sc = make_scenario(buses=(bus,), devices=(DeviceSpec("g", "generic-rain-gauge", "tcp-9"),))
        st = SimStation(sc, clock, tmp_path)
        with pytest.raises(PortOpenError, match=f"bus 'tcp-9': cannot open tcp://127.0.0.1:{port}"):
            st.start()
