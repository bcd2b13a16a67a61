"""Station configuration: validation errors name file, key and expectation; version and hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import main
from agent.config import config_from_dict, load_config
from agent.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "agent" / "examples" / "sim-station.toml"

GOOD = """
version = "7"
[station]
id = "st-1"
lat = 31.4
lon = 121.4
grid_cell = "310113-G1"
[[sensors]]
name = "rain"
profile = "dfrobot-sen0575"
port = "${LINKS:-/dev}/ttyUSB0"
slave = 192
channels = ["rain_total"]
interval_s = 30
wet_interval_s = 5
[[sensors]]
name = "level"
profile = "hlk-ld8001h"
port = "tcp://127.0.0.1:5020"
[buffer]
path = "state/buffer.db"
max_mb = 8
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    message = str(exc.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    return message


def test_good_config_loads_with_defaults_and_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LINKS", raising=False)
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.version == "7" and cfg.station_id == "st-1"
    assert cfg.sensors[0].port == "/dev/ttyUSB0"
    assert cfg.sensors[1].port == "tcp://127.0.0.1:5020"
    assert cfg.sensors[1].interval_s == 10.0 and cfg.sensors[1].slave is None
    assert cfg.buffer.path == str(tmp_path / "state" / "buffer.db")
    assert cfg.max_bytes == 8 * 1024 * 1024
    assert cfg.status_path == Path(str(tmp_path / "state" / "buffer.db") + ".status.json")
    assert cfg.sampling.adaptive and cfg.metrics.port == 9108
    monkeypatch.setenv("LINKS", "/run/sim")
    assert load_config(tmp_path / "station.toml").sensors[0].port == "/run/sim/ttyUSB0"


def test_content_hash_ignores_comments_and_order_but_not_values(tmp_path: Path) -> None:
    a = load_config(write(tmp_path, GOOD)).content_hash
    b = load_config(
        write(tmp_path, "# a comment\n" + GOOD.replace("max_mb = 8", "max_mb=8"))
    ).content_hash
    c = load_config(write(tmp_path, GOOD.replace("max_mb = 8", "max_mb = 9"))).content_hash
    assert a == b != c and len(a) == 64


@pytest.mark.parametrize(
    ("change", "key", "expected"),
    [
        (('version = "7"', ""), "key version", "missing"),
        (("lat = 31.4", "lat = 131.4"), "key station.lat", "less than or equal to 90"),
        (("interval_s = 30", "interval_s = 0.05"), "key sensors[0].interval_s", "greater than"),
        (("interval_s = 30", "interval_s = 900"), "key sensors[0].interval_s", "less than"),
        (("slave = 192", "slave = 300"), "key sensors[0].slave", "247"),
        (("slave = 192", 'slave = "x"'), "key sensors[0].slave", "integer"),
        (
            ('profile = "hlk-ld8001h"', 'profile = "nope"'),
            "key sensors[1].profile",
            "unknown profile",
        ),
        (('["rain_total"]', '["rain_totl"]'), "key sensors[0].channels", "expected one of"),
        (
            ("tcp://127.0.0.1:5020", "tcp://127.0.0.1:99999"),
            "key sensors[1].port",
            "tcp://host:port",
        ),
        (("max_mb = 8", "max_mb = 8\nmax_gb = 1"), "key buffer.max_gb", "unknown key"),
        (('name = "level"', 'name = "rain"'), "key sensors[1].name", "used twice"),
        (
            ("${LINKS:-/dev}", "${ROADSIDE_NO_SUCH_VAR}"),
            "key sensors[0].port",
            "ROADSIDE_NO_SUCH_VAR",
        ),
    ],
)
def test_errors_name_the_key_and_the_expectation(
    tmp_path: Path, change: tuple[str, str], key: str, expected: str
) -> None:
    assert change[0] in GOOD
    message = error_of(tmp_path, GOOD.replace(change[0], change[1], 1))
    assert key in message and expected in message, message


def test_no_sensors_is_an_error(tmp_path: Path) -> None:
    text = GOOD.split("[[sensors]]")[0]
    assert "key sensors" in error_of(tmp_path, text)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    assert "not valid TOML" in error_of(tmp_path, "version = ")


def test_from_dict_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^fleet document 12: key station: missing"):
        config_from_dict({"version": "1", "sensors": []}, "fleet document 12")


def test_the_shipped_example_is_valid() -> None:
    cfg = load_config(EXAMPLE)
    names = {s.name: s for s in cfg.sensors}
    assert names["rain"].profile == "dfrobot-sen0575" and names["rain"].slave == 192
    assert names["level"].profile == "hlk-ld8001h" and names["level"].slave == 1
    assert names["wind"].profile == "gill-windsonic"
    assert names["rain"].port.endswith("/ttyRS485-1") and names["wind"].port.endswith("/ttyRS232-1")


def test_check_config_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["check-config", str(EXAMPLE)])
    assert ok.exit_code == 0 and "ok: station bs-demo-01" in ok.output
    as_json = runner.invoke(main, ["check-config", str(EXAMPLE), "--json"])
    doc = json.loads(as_json.output)
    assert doc["version"] == "2026-07-21.1" and len(doc["content_hash"]) == 64
    bad = write(tmp_path, GOOD.replace("lat = 31.4", "lat = 131.4"))
    result = runner.invoke(main, ["check-config", str(bad)])
    assert result.exit_code == 2
    assert result.output.strip().startswith(f"Error: {bad}: key station.lat")
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ('[qc]\nrain_suspect_mm_min = "x"', "key qc.rain_suspect_mm_min"),
        ("[derived]\nno_such = 1", "key derived.no_such: unknown key"),
        ('[warnings.rainstorm]\npreset = "atlantis"', "key warnings.rainstorm.preset"),
    ],
)
def test_qc_derived_and_warning_tables_are_validated_at_load(
    tmp_path: Path, section: str, expected: str
) -> None:
    message = error_of(tmp_path, GOOD.replace("[buffer]", section + "\n[buffer]"))
    assert expected in message, message


def test_uplink_with_a_host_needs_its_tls_files(tmp_path: Path) -> None:
    text = GOOD + '[uplink]\nhost = "fleet.example.net"\nca = "ca.crt"\ncert = "st.crt"\n'
    assert "key uplink.key: missing" in error_of(tmp_path, text)
    text = GOOD + '[uplink]\nhost = "h"\nport = 0\nca = "a"\ncert = "b"\nkey = "c"\n'
    assert "key uplink.port" in error_of(tmp_path, text)


def test_run_refuses_a_bad_configuration_with_exit_2(tmp_path: Path) -> None:
    bad = write(tmp_path, GOOD.replace("interval_s = 30", "interval_s = 0"))
    result = CliRunner().invoke(main, ["run", "--config", str(bad)])
    assert result.exit_code == 2
    assert "key sensors[0].interval_s" in result.output and "Traceback" not in result.output
