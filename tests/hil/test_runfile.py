"""Run files: a valid one loads with its timeline; each mistake is one line naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.hil.errors import RunFileError
from sim.hil.runfile import load_run_file

GOOD = """\
[run]
scenario = "hil-bench"
speed = 120
duration_min = 90

[ports]
bind = { "rs485-1" = "/dev/ttyUSB0" }

[[faults]]
device = "level"
kind = "port_vanish"
start_min = 50
duration_min = 1

[[checkpoints]]
kind = "warning"
signal = "waterlogging"
by_min = 70

[[checkpoints]]
kind = "resume"
device = "level"
after = "port_vanish"
within_s = 10

[dut]
station = "bs-hil-01"
source = "mqtt"

[dut.mqtt]
host = "192.168.1.10"
ca = "pki/ca.pem"
cert = "pki/fleet-controller.pem"
key = "pki/fleet-controller.key"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "qualify.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_run_file_loads_with_its_timeline_checkpoints_and_source(tmp_path):
    run = load_run_file(write(tmp_path, GOOD))
    assert (run.speed, run.duration_s, run.scenario.speed) == (120.0, 5400.0, 120.0)
    assert run.bind == {"rs485-1": Path("/dev/ttyUSB0")} and run.listen == "127.0.0.1"
    assert [f.kind for f in run.timeline] == ["port_vanish"]
    assert run.scenario.faults[-1] == run.timeline[0]  # on top of the scenario's own
    assert run.timeline[0].start_s == 3000.0 and run.timeline[0].duration_s == 60.0
    warn, resume = run.checkpoints
    assert (warn.signal, warn.level, warn.by_min) == ("waterlogging", "blue", 70.0)
    assert (resume.device, resume.after, resume.within_s) == ("level", "port_vanish", 10.0)
    assert run.dut.mqtt is not None and run.dut.mqtt.port == 8883 and run.dut.mqtt.ack
    assert run.dut.mqtt.ca == tmp_path / "pki/ca.pem"  # relative to the run file


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("speed = 120", 'speed = "fast"', r"run.speed: expected a number"),
        ("duration_min = 90", "duration_min = 900", r"run.duration_min: must be <= 150"),
        ('"rs485-1" = "/dev', '"rs485-9" = "/dev', r"ports.bind.rs485-9: no serial bus"),
        ('kind = "port_vanish"', 'kind = "melted"', r"faults\[0\].kind: must be one of"),
        ('device = "level"\nkind = "port', 'device = "pump"\nkind = "port', r"faults\[0\].device"),
        ("by_min = 70", 'by_min = "soon"', r"checkpoints\[0\].by_min: expected a number"),
        ('signal = "waterlogging"', 'signal = "hail"', r"checkpoints\[0\].signal: must be one"),
        ("within_s = 10", "within_s = 0", r"checkpoints\[1\].within_s: must be > 0"),
        ('after = "port_vanish"', 'after = "vanish"', r"checkpoints\[1\].after: must be one"),
        ('source = "mqtt"', 'source = "carrier-pigeon"', r"dut.source: must be one of"),
        ('host = "192.168.1.10"\n', "", r"dut.mqtt.host: required key is missing"),
        ("[dut]\n", "[dut]\ncolour = 1\n", r"dut.colour: unknown key"),
        ("[ports]\n", '[ports]\nlisten = "0.0.0.0"\n', r"ports.listen: 0.0.0.0 is not loopback"),
        ("scenario = ", 'scenario = "no-such-storm"\nx = ', r"run.scenario: unknown scenario"),
    ],
)
def test_each_mistake_names_the_file_and_the_key(tmp_path, old, new, message):
    assert old in GOOD
    with pytest.raises(RunFileError, match=r"qualify.toml: " + message):
        load_run_file(write(tmp_path, GOOD.replace(old, new, 1)))


def test_missing_or_broken_run_files(tmp_path):
    with pytest.raises(RunFileError, match=r"nothing.toml: run file not found"):
        load_run_file(tmp_path / "nothing.toml")
    with pytest.raises(RunFileError, match=r"qualify.toml: not valid TOML"):
        load_run_file(write(tmp_path, "[run\n"))
    with pytest.raises(RunFileError, match=r"qualify.toml: dut: required table is missing"):
        load_run_file(write(tmp_path, GOOD.split("[dut]")[0]))
