"""Scenario validation: each kind of mistake is one line naming the file and the key."""

from pathlib import Path

import pytest

from sim.errors import ScenarioError
from sim.scenario import load_scenario

BASE = """
[scenario]
name = "t"
seed = 3
start = 2026-07-21T12:00:00Z
duration_min = 180
speed = 60

[storm]
kind = "chicago"
return_period_y = 5
duration_min = 120
start_min = 20

[wind]
kind = "gusty"
mean_ms = 5.0

[site]
drain_capacity_mmh = 36.0

[[buses]]
name = "rs485-1"
kind = "rtu"
link = "ttyRS485-1"

[[buses]]
name = "rs232-1"
kind = "ascii"
link = "ttyRS232-1"

[[devices]]
name = "rain"
profile = "dfrobot-sen0575"
bus = "rs485-1"
slave = 192

[[devices]]
name = "level"
profile = "hlk-ld8001h"
bus = "rs485-1"
slave = 1

[[devices]]
name = "wind"
profile = "gill-windsonic"
bus = "rs232-1"

[[faults]]
device = "rain"
kind = "stuck"
start_min = 30
duration_min = 5
"""


def _load(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "storm.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str) -> str:
    path = _load(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message[len(f"{path}: ") :]


def test_base_is_valid(tmp_path: Path) -> None:
    scenario = load_scenario(_load(tmp_path, BASE))
    assert [d.name for d in scenario.devices] == ["rain", "level", "wind"]
    assert scenario.faults[0].start_s == 1800.0 and scenario.faults[0].duration_s == 300.0


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # unknown keys, anywhere
        ("speed = 60", "speed = 60\ncolour = 1", "scenario.colour: unknown key"),
        ("start_min = 20", "start_min = 20\nsplit = 0.5", "storm.split: unknown key"),
        ("mean_ms = 5.0", "mean_ms = 5.0\npeak_ms = 9", "wind.peak_ms: unknown key"),
        ("drain_capacity_mmh = 36.0", "drain_mmh = 36.0", "site.drain_mmh: unknown key"),
        ('link = "ttyRS485-1"', 'link = "ttyRS485-1"\nbaud = 9600', "buses[0].baud: unknown key"),
        ("slave = 192", "slave = 192\naddress = 3", "devices[0].address: unknown key"),
        ("duration_min = 5", "duration_min = 5\nlength = 3", "faults[0].length: unknown key"),
        ("[site]", "[sight]", "sight: unknown key"),
        # wrong types
        (
            "seed = 3",
            'seed = "three"',
            "scenario.seed: expected an integer, got the string 'three'",
        ),
        ("speed = 60", "speed = true", "scenario.speed: expected a number, got a boolean"),
        (
            "return_period_y = 5",
            'return_period_y = "5"',
            "storm.return_period_y: expected a number",
        ),
        ("slave = 192", "slave = 192.5", "devices[0].slave: expected an integer"),
        ('kind = "rtu"', 'kind = "rtu"\npacing = "yes"', "buses[0].pacing: expected true or false"),
        # missing and out-of-range values
        ("start = 2026-07-21T12:00:00Z", "", "scenario.start: required key is missing"),
        (
            "start = 2026-07-21T12:00:00Z",
            "start = 2026-07-21T12:00:00",
            "scenario.start: needs a date-time with a UTC offset",
        ),
        ("return_period_y = 5", "return_period_y = 500", "storm.return_period_y: must be <= 100"),
        ("duration_min = 120", "duration_min = 30", "storm.duration_min: must be >= 60"),
        ("start_min = 20", "start_min = 90", "storm.duration_min: the storm ends at 210 min"),
        ('kind = "chicago"', 'kind = "hail"', "storm.kind: must be one of"),
        ('kind = "gusty"', 'kind = "tornado"', "wind.kind: must be one of"),
        ("mean_ms = 5.0", "mean_ms = -2", "wind.mean_ms: must be >= 0"),
        ('kind = "rtu"', 'kind = "usb"', "buses[0].kind: must be one of 'rtu', 'ascii', 'tcp'"),
        ("slave = 192", "slave = 300", "devices[0].slave: must be <= 247"),
        # references
        ('bus = "rs232-1"', 'bus = "rs485-9"', "devices[2].bus: unknown bus 'rs485-9'"),
        ('device = "rain"', 'device = "rian"', "faults[0].device: unknown device 'rian'"),
        ('profile = "hlk-ld8001h"', 'profile = "acme-9000"', "devices[1].profile: unknown profile"),
        ('kind = "stuck"', 'kind = "melted"', "faults[0].kind: must be one of"),
        ("start_min = 30", "start_min = 200", "faults[0].start_min: starts at 200 min"),
    ],
)
def test_each_mistake_names_file_and_key(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in BASE
    assert _error(tmp_path, BASE.replace(old, new, 1)).startswith(expected)


def test_device_profile_must_suit_the_bus(tmp_path: Path) -> None:
    text = BASE.replace('bus = "rs232-1"', 'bus = "rs485-1"')
    assert _error(tmp_path, text).startswith(
        "devices[2].bus: profile 'gill-windsonic' speaks windsonic"
    )
    text = BASE.replace('bus = "rs485-1"\nslave = 1\n', 'bus = "rs232-1"\nslave = 1\n')
    assert _error(tmp_path, text).startswith("devices[1].bus: profile 'hlk-ld8001h' speaks modbus")


def test_duplicates_are_refused(tmp_path: Path) -> None:
    text = BASE.replace('name = "level"', 'name = "rain"')
    assert _error(tmp_path, text) == "devices[1].name: device 'rain' is declared twice"
    text = BASE.replace("slave = 192", "slave = 1")
    assert _error(tmp_path, text).startswith("devices[1].slave: address 1 on bus 'rs485-1'")
    text = BASE.replace('name = "rs232-1"', 'name = "rs485-1"')
    assert _error(tmp_path, text) == "buses[1].name: bus 'rs485-1' is declared twice"
    text = BASE.replace('link = "ttyRS232-1"', 'link = "ttyRS485-1"')
    assert _error(tmp_path, text).startswith("buses[1].link: link 'ttyRS485-1' is already used")


def test_bus_settings_must_fit_the_bus_kind(tmp_path: Path) -> None:
    text = BASE.replace('kind = "ascii"\nlink = "ttyRS232-1"', 'kind = "tcp"\nlink = "x"')
    assert _error(tmp_path, text).startswith("buses[1].link: tcp buses have no serial settings")
    text = BASE.replace('kind = "rtu"\nlink = "ttyRS485-1"', 'kind = "rtu"\nport = 5020')
    assert _error(tmp_path, text).startswith("buses[0].port: only tcp buses have a port")


def test_faults_must_suit_the_device(tmp_path: Path) -> None:
    text = BASE.replace(
        'device = "rain"\nkind = "stuck"', 'device = "level"\nkind = "counter_reset"'
    )
    assert _error(tmp_path, text).startswith(
        "faults[0].kind: counter_reset needs a counter channel"
    )
    stuck = 'device = "rain"\nkind = "stuck"'
    text = BASE.replace(stuck, 'device = "rain"\nkind = "spike"\nparams = { magnitude = [1, 2] }')
    assert _error(tmp_path, text).startswith("faults[0].params.magnitude: expected a number")
    text = BASE.replace(stuck, stuck + "\nparams = { delay_s = 1.0 }")
    assert _error(tmp_path, text).startswith("faults[0].params.delay_s: unknown key")
    text = BASE.replace(stuck, stuck + '\nparams = { channel = "wind_speed" }')
    assert _error(tmp_path, text).startswith(
        "faults[0].params.channel: 'dfrobot-sen0575' has no channel 'wind_speed'"
    )
    text = BASE.replace(stuck, 'device = "level"\nkind = "wrong_slave"\nparams = { address = "R" }')
    assert _error(tmp_path, text).startswith("faults[0].params.address: a Modbus address")
    text = BASE.replace(stuck, 'device = "wind"\nkind = "wrong_slave"\nparams = { address = "R" }')
    assert load_scenario(_load(tmp_path, text)).faults[0].params == {"address": "R"}
    text = BASE.replace(stuck, 'device = "wind"\nkind = "crc_error"\nparams = { status = "01" }')
    assert load_scenario(_load(tmp_path, text)).faults[0].params == {"status": "01"}


def test_storm_coefficients_are_checked(tmp_path: Path) -> None:
    text = BASE.replace("start_min = 20", "start_min = 20\ncoeffs = { A = 1600, C = 0.846, b = 7 }")
    assert _error(tmp_path, text) == "storm.coeffs.n: required key is missing"
    text = BASE.replace(
        "start_min = 20",
        "start_min = 20\ncoeffs = { A = 1600, C = 0.846, b = 7, n = 0.656, k = 1 }",
    )
    assert _error(tmp_path, text).startswith("storm.coeffs.k: unknown key")


def test_file_level_problems(tmp_path: Path) -> None:
    text = "site = 3\n" + BASE.replace("[site]\ndrain_capacity_mmh = 36.0", "")
    assert _error(tmp_path, text) == "site: expected a table, got int 3"
    assert _error(tmp_path, "[scenario\nname = 1").startswith("not valid TOML")
    assert _error(tmp_path, "[storm]\nkind = 'dry'\n") == "scenario: required table is missing"
    with pytest.raises(ScenarioError, match=r"missing\.toml: scenario file not found"):
        load_scenario(tmp_path / "missing.toml")
    with pytest.raises(ScenarioError, match=r"unknown scenario 'no-such' \(shipped: .*storm-5y-2h"):
        load_scenario("no-such")
