"""`roadside-provision scan` against a simulator in its own process, on real ptys and TCP."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests.provisioning.conftest import SimRun


def _scan(*args: str) -> tuple[int, Any, str]:
    out = subprocess.run(
        [sys.executable, "-m", "provisioning", "scan", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=110,
    )
    return out.returncode, json.loads(out.stdout) if out.stdout else None, out.stderr


def _devices(doc: Any) -> set[tuple[Any, ...]]:
    return {(d["profile"], d["slave"], d["baudrate"], d["parity"]) for d in doc["devices"]}


SWEEP = (
    "--timeout",
    "0.3",
    "--baud",
    "9600",
    "--baud",
    "19200",
    "--parity",
    "N",
    "--parity",
    "E",
    "--parity",
    "O",
)


def test_scan_finds_rtu_devices_on_their_address_baud_and_parity(sim_run: SimRun) -> None:
    # Modbus only on these lines: no ASCII listening or polling (the ASCII test below does it)
    code, doc, err = _scan(sim_run.port("rain"), *SWEEP, "--no-ascii", "--ids", "1-3,191-192")
    assert code == 0, err
    assert _devices(doc) == {
        ("dfrobot-sen0575", 192, 9600, "N"),
        ("hlk-ld8001h", 1, 9600, "N"),
        ("generic-rs485-anemometer", 2, 9600, "N"),
    }
    # 19200 8O1: a radar off its default address is found by the full sweep the beacon triggers
    code, doc, err = _scan(sim_run.port("level2"), *SWEEP, "--no-ascii", "--ids", "6-10")
    assert code == 0, err
    assert _devices(doc) == {("hlk-ld8001h", 7, 19200, "O"), ("warning-light", 10, 19200, "O")}


def test_scan_listens_for_and_polls_ascii_sensors(sim_run: SimRun) -> None:
    line = ("--timeout", "0.3", "--baud", "9600", "--baud", "19200", "--parity", "N")  # 8N1 only
    code, doc, err = _scan(sim_run.port("wind"), *line, "--ids", "1-3")
    assert code == 0, err
    assert _devices(doc) == {("gill-windsonic", None, 9600, "N")}
    code, doc, err = _scan(sim_run.port("weather"), *line, "--ids", "1-3")
    assert code == 0, err
    assert _devices(doc) == {("vaisala-wxt530", 0, 19200, "N")}


def test_scan_tcp_asks_every_unit(sim_run: SimRun) -> None:
    host_port = sim_run.port("rain2").removeprefix("tcp://")
    code, doc, err = _scan("--tcp", host_port, "--ids", "1-20", "--timeout", "0.5")
    assert code == 0, err
    assert _devices(doc) == {("generic-rain-gauge", 3, None, None)}


def test_scan_errors_are_one_line_with_exit_codes(sim_run: SimRun, tmp_path: Any) -> None:
    code, _, err = _scan(str(tmp_path / "ttyNOPE"))
    assert code == 5 and err.strip().splitlines() == [
        f"Error: {tmp_path}/ttyNOPE: port does not exist"
    ]
    # a quiet line: nothing anywhere, exit 1 after the quick probes only
    code, _, err = _scan(sim_run.port("rain"), "--baud", "4800", "--ids", "1-247", "--no-ascii")
    assert code == 1 and "no device answered" in err
    code, _, err = _scan(sim_run.port("rain"), "--ids", "300")
    assert code == 2
