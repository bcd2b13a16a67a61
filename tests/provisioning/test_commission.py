"""scan -> init -> check on the simulator; the checklist's rules on readings it did not make."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from agent.config import load_config
from agent.flags import Flag, FlaggedReading
from provisioning.commission import Observations, checklist
from roadside.records import DriverStatus, Reading
from tests.provisioning.conftest import SimRun


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provisioning", *args], capture_output=True, text=True, timeout=110
    )


def _scans(sim_run: SimRun, tmp_path: Path, real: bool) -> list[str]:
    """``scan --json`` files for the RS-485 and RS-232 lines: really scanned, or written from
    the simulator's endpoints (what a scan finds, as test_scan shows) to save the sweep."""
    scans: list[str] = []
    for device, ids in (("rain", "1-3,192"), ("wind", "1")):
        path = tmp_path / f"scan-{device}.json"
        if real:
            out = _cli(
                "scan",
                sim_run.port(device),
                "--baud",
                "9600",
                "--parity",
                "N",
                "--timeout",
                "0.3",
                "--ids",
                ids,
                "--json",
            )
            assert out.returncode == 0, out.stderr
            path.write_text(out.stdout)
        else:
            port = sim_run.port(device)
            devices = [
                {"profile": e["profile"], "slave": e["slave"]}
                for e in sim_run.endpoints.values()
                if e["port"] == port and e["profile"] != "warning-light"
            ]
            path.write_text(json.dumps({"port": port, "devices": devices}))
        scans += ["--scan", str(path)]
    return scans


def _init(sim_run: SimRun, tmp_path: Path, real_scan: bool = False) -> Path:
    scans = _scans(sim_run, tmp_path, real_scan)
    config = tmp_path / "etc" / "station.toml"
    out = _cli(
        "init",
        *scans,
        "--id",
        "bs-test-07",
        "--lat",
        "31.39",
        "--lon",
        "121.44",
        "--grid-cell",
        "310113-G042",
        "--buffer-path",
        str(tmp_path / "buffer.db"),
        "--out",
        str(config),
    )
    assert out.returncode == 0, out.stderr
    return config


def test_init_writes_a_config_the_agent_loads(sim_run: SimRun, tmp_path: Path) -> None:
    config = load_config(_init(sim_run, tmp_path, real_scan=True))
    assert config.station_id == "bs-test-07"
    assert {(s.name, s.profile, s.slave) for s in config.sensors} == {
        ("rain", "dfrobot-sen0575", 192),
        ("level", "hlk-ld8001h", 1),
        ("wind", "generic-rs485-anemometer", 2),
        ("wind2", "gill-windsonic", None),
    }


def test_init_refuses_what_the_agent_would_refuse(tmp_path: Path) -> None:
    scan = tmp_path / "scan.json"
    scan.write_text(
        json.dumps(
            {
                "port": "/dev/ttyX",
                "devices": [
                    {"profile": "hlk-ld8001h", "slave": 1, "baudrate": 9600, "parity": "N"}
                ],
            }
        )
    )
    out = _cli(
        "init",
        "--scan",
        str(scan),
        "--id",
        "bad id!",
        "--lat",
        "31",
        "--lon",
        "121",
        "--grid-cell",
        "G1",
        "--out",
        str(tmp_path / "s.toml"),
    )
    assert out.returncode == 2
    assert "s.toml: key station.id" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s.toml").exists()


def test_check_reports_live_values_and_the_datum(sim_run: SimRun, tmp_path: Path) -> None:
    config = _init(sim_run, tmp_path)
    record = tmp_path / "check.json"
    out = _cli(
        "check",
        "--config",
        str(config),
        "--polls",
        "2",
        "--north-offset",
        "4",
        "--installation-height",
        "300",
        "--record",
        str(record),
        "--json",
    )
    doc = json.loads(out.stdout)
    items = {(i["sensor"], i["check"]): i for i in doc["items"]}
    assert items[("level", "datum at road surface")]["status"] == "pass"
    assert items[("level", "installation height")]["status"] == "pass"
    assert items[("rain", "tips when water is poured")]["status"] == "todo"
    assert items[("wind2", "north offset")]["value"] == "4 deg"
    assert [items[(s, "answers")]["status"] for s in ("rain", "level", "wind2")] == ["pass"] * 3
    assert out.returncode == 0, out.stdout
    assert json.loads(record.read_text())["station"] == "bs-test-07"
    # the radar set to the wrong height: the datum check fails and says what to write
    w = _cli(
        "write",
        sim_run.port("level"),
        "installation_height",
        "280",
        "--profile",
        "hlk-ld8001h",
        "--slave",
        "1",
    )
    assert w.returncode == 0, w.stderr
    out = _cli("check", "--config", str(config), "--polls", "1", "--installation-height", "300")
    assert out.returncode == 1
    assert "[FAIL] level      datum at road surface" in out.stdout
    assert "set installation_height to 300 cm" in out.stdout


def _row(sensor: str, channel: str, value: float, flag: Flag = Flag.CORRECT) -> FlaggedReading:
    r = Reading(
        "st",
        sensor,
        channel,
        datetime(2026, 7, 21, tzinfo=UTC),
        value,
        "mm",
        value,
        DriverStatus.OK,
    )
    return FlaggedReading(r, flag, "")


def test_pour_check_counts_the_expected_amount(tmp_path: Path) -> None:
    config_path = tmp_path / "s.toml"
    config_path.write_text(
        'version = "1"\n[station]\nid = "st"\nlat = 31\nlon = 121\ngrid_cell = "G1"\n'
        '[[sensors]]\nname = "rain"\nprofile = "dfrobot-sen0575"\nport = "/dev/ttyX"\n'
    )
    config = load_config(config_path)
    seen = Observations(poured_mm=10.0, rain_before_mm={"rain": 2.0})
    good = checklist(config, {"rain": [_row("rain", "rain_total", 11.9)]}, seen)
    assert [(i.check, i.status) for i in good] == [
        ("answers", "pass"),
        ("tips when water is poured", "pass"),
    ]
    short = checklist(config, {"rain": [_row("rain", "rain_total", 7.0)]}, seen)
    assert short[1].status == "fail" and short[1].value == "counted 5.0 mm of 10 mm"
    flagged = checklist(config, {"rain": [_row("rain", "rain_total", 11.9, Flag.WRONG)]}, seen)
    assert flagged[0].status == "fail"


def test_report_html_and_pdf_from_a_real_check(sim_run: SimRun, tmp_path: Path) -> None:
    config = _init(sim_run, tmp_path)
    record = tmp_path / "check.json"
    _cli(
        "check",
        "--config",
        str(config),
        "--polls",
        "1",
        "--installation-height",
        "300",
        "--record",
        str(record),
    )
    out = _cli(
        "report",
        "--config",
        str(config),
        "--record",
        str(record),
        "--out",
        str(tmp_path / "report"),
    )
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "report" / "commissioning-bs-test-07.html").read_text()
    assert "datum at road surface" in page and "hlk-ld8001h" in page and "not enrolled" in page
    assert (tmp_path / "report" / "commissioning-bs-test-07.pdf").read_bytes()[:5] == b"%PDF-"
    other = _cli(
        "report", "--config", str(config), "--record", str(config), "--out", str(tmp_path / "r2")
    )
    assert other.returncode == 2 and "not a check record" in other.stderr


def test_an_intermittent_failure_shows_but_a_dead_channel_fails(tmp_path: Path) -> None:
    config_path = tmp_path / "s.toml"
    config_path.write_text(
        'version = "1"\n[station]\nid = "st"\nlat = 31\nlon = 121\ngrid_cell = "G1"\n'
        '[[sensors]]\nname = "rain"\nprofile = "dfrobot-sen0575"\nport = "/dev/ttyX"\n'
    )
    config = load_config(config_path)
    lost = Reading(
        "st",
        "rain",
        "rain_total",
        datetime(2026, 7, 21, tzinfo=UTC),
        None,
        "mm",
        None,
        DriverStatus.TIMEOUT,
        "no answer",
    )
    once = checklist(
        config,
        {"rain": [_row("rain", "rain_total", 3.0), FlaggedReading(lost, Flag.MISSING, "")]},
        Observations(),
    )
    assert once[0].status == "pass" and once[0].detail == "1 of 2 readings failed (timeout)"
    dead = checklist(config, {"rain": [FlaggedReading(lost, Flag.MISSING, "")]}, Observations())
    assert dead[0].status == "fail" and dead[0].detail == "no answer"
