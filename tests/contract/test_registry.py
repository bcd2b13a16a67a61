"""The registry: one entry and one profile line make a new channel; products per source."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.derived import DerivedValue, select_inputs
from agent.flags import Flag
from agent.qc import QCEngine, QCParams
from drivers.profile import load_profile
from roadside import registry
from roadside.records import Reading

T0 = datetime(2026, 7, 21, 12, tzinfo=UTC)

PROFILE = """
[device]
model = "test-thermometer"
kind = "weather_transmitter"
protocol = "modbus"

[serial]
baudrate = 9600
parity = "N"
stopbits = 1
default_slave = 3

[[channels]]
name = "air_temperature"
table = "input"
register = 0x0000
type = "int16"
scale = 0.1
unit = "degC"
"""


def test_adding_a_channel_is_one_registry_entry_plus_its_profile_mapping(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    channel = registry.Channel(
        "air_temperature", "degC", None, -40.0, 60.0, -20.0, 45.0, 5.0, plausible=(-10.0, 42.0)
    )
    monkeypatch.setitem(registry.CHANNELS, channel.name, channel)  # the one entry
    path = tmp_path / "thermo.toml"
    path.write_text(PROFILE)  # the one mapping
    profile = load_profile(str(path))
    assert "air_temperature" in {c.name for c in profile.channels}
    assert registry.units()["air_temperature"] == "degC"
    qc = QCEngine(QCParams())  # QC's default limits come from the registry
    readings = [
        Reading("st", "thermo", "air_temperature", T0, 25.0, "degC", 250),
        Reading("st", "thermo", "air_temperature", T0.replace(minute=1), 85.0, "degC", 850),
    ]
    flagged = qc.process(readings)
    assert [(f.flag, f.reason) for f in flagged][1] == (Flag.WRONG, "range")
    assert flagged[0].flag == Flag.CORRECT


def _dv(sensor: str, value: float | None, flag: Flag) -> DerivedValue:
    return DerivedValue("rain_1h", T0, value, "mm", flag, 1.0, 3600.0, sensor)


def test_the_primary_source_feeds_the_warnings_and_qc_decides_the_fallback() -> None:
    products = {
        ("r1", "rain_1h"): _dv("r1", 10.0, Flag.CORRECT),
        ("r2", "rain_1h"): _dv("r2", 50.0, Flag.CORRECT),
        ("r3", "rain_1h"): _dv("r3", 90.0, Flag.SUSPECT),
    }
    order = ("r1", "r2", "r3")
    # the configured primary, when QC passed it
    assert select_inputs(products, {"rain": "r2"}, order)["rain_1h"].sensor == "r2"
    # none configured: the first source of the configuration
    assert select_inputs(products, {}, order)["rain_1h"].sensor == "r1"
    # the primary flagged wrong: the next correct one, then a suspect one, then the primary's
    products[("r2", "rain_1h")] = _dv("r2", 50.0, Flag.WRONG)
    assert select_inputs(products, {"rain": "r2"}, order)["rain_1h"].sensor == "r1"
    products[("r1", "rain_1h")] = _dv("r1", None, Flag.MISSING)
    assert select_inputs(products, {"rain": "r2"}, order)["rain_1h"].sensor == "r3"
    products[("r3", "rain_1h")] = _dv("r3", 90.0, Flag.WRONG)
    assert select_inputs(products, {"rain": "r2"}, order)["rain_1h"].sensor == "r2"
