"""The nowcast and local actions inside the agent, step by step (manual clock, no polling)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from nowcast_station import BEACON_ACTION, STATION

from agent.actions import LocalActions
from agent.buffer import Buffer
from agent.cli import main
from agent.config import ActionConfig, config_from_dict, load_config
from agent.errors import ConfigError
from agent.runner import Agent, _Batch
from agent.warnings import SignalState, WarningState
from drivers.bus import DeviceConfig, open_buses
from drivers.profile import load_profile
from edge_models.runtime import Nowcaster
from roadside.clock import ManualClock, ScaledClock
from roadside.records import Reading
from sim.scenario import load_scenario
from sim.station import SimStation

T0 = datetime(2026, 7, 21, 12, 0, tzinfo=UTC)
BASE = f"""
version = "u-1"
[station]
id = "{STATION}"
lat = 31.4
lon = 121.4
grid_cell = "g1"
[[sensors]]
name = "rain"
profile = "dfrobot-sen0575"
port = "/dev/null"
slave = 192
[[sensors]]
name = "level"
profile = "hlk-ld8001h"
port = "/dev/null"
slave = 1
[[sensors]]
name = "beacon"
profile = "warning-light"
port = "/dev/null"
slave = 10
[metrics]
port = 0
[time]
sync_check = "none"
"""


def make_agent(tmp_path: Path, clock: ManualClock, extra: str = "") -> Agent:
    path = tmp_path / "station.toml"
    path.write_text(BASE + f'[buffer]\npath = "{tmp_path / "b.db"}"\n' + extra)
    agent = Agent(load_config(path), clock, serve_metrics=False)
    agent.buffer = Buffer(tmp_path / "b.db", max_bytes=1 << 24, clock=clock)
    agent._start_nowcast()
    return agent


def storm_minutes(agent: Agent, clock: ManualClock, minutes: int, start_mm: float = 0.0) -> None:
    """Rain at 60 mm/h and water rising 4 mm a minute, one poll a minute."""
    for i in range(minutes):
        clock.advance(60)
        now = clock.now()
        total = start_mm + (i + 1) * 1.0
        depth = 4.0 * (i + 1)
        agent.process(
            [
                _Batch([Reading(STATION, "rain", "rain_total", now, total, "mm", None)], None),
                _Batch([Reading(STATION, "level", "water_depth", now, depth, "mm", None)], None),
            ]
        )


def test_status_and_fleet_status_carry_the_model_and_the_latest_forecast(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    agent = make_agent(tmp_path, clock)
    version = Nowcaster().version
    status = agent.status()
    assert status["nowcast"]["model_version"] == version
    assert status["nowcast"]["backend"] in ("litert", "tflite-runtime", "numpy")
    assert status["forecast"] is None  # nothing forecast yet
    assert agent._fleet_status()["model_version"] == version
    storm_minutes(agent, clock, 20)
    forecast = agent.status()["forecast"]
    assert forecast["model_version"] == version
    assert {"depth_15_mm", "depth_30_mm", "depth_60_mm", "p_15cm", "p_30cm"} <= set(forecast)
    assert forecast["depth_30_mm"] > 80.0  # rising 4 mm/min from 80 mm: deeper in 30 min
    assert agent.buffer is not None
    stored = agent.buffer.where("kind = 'forecast'")
    assert stored and stored[-1].payload["issued"] == forecast["issued"]
    agent.reporter.write_status(agent.status_path)
    agent.buffer.close()
    shown = CliRunner().invoke(main, ["status", "--config", str(tmp_path / "station.toml")])
    assert f"nowcast: {version} on " in shown.output and "P(>15 cm)" in shown.output


def test_rules_use_the_models_tier_thresholds_unless_configured(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    agent = make_agent(tmp_path, clock)
    assert agent.nowcast is not None
    t15, t30 = agent.nowcast.model.tier_thresholds
    assert (agent.rules.tier_probability(0), agent.rules.tier_probability(1)) == (t15, t30)
    assert (t15, t30) != (0.5, 0.5)
    assert agent.buffer is not None
    agent.buffer.close()
    fixed = make_agent(tmp_path, clock, "[warnings]\nforecast_probability = 0.6\n")
    assert (fixed.rules.tier_probability(0), fixed.rules.tier_probability(1)) == (0.6, 0.6)
    assert fixed.buffer is not None
    fixed.buffer.close()


def test_numpy_backend_disabled_nowcast_and_a_bad_model(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    numpy = make_agent(tmp_path, clock, '[nowcast]\nbackend = "numpy"\n')
    assert numpy.status()["nowcast"]["backend"] == "numpy"
    assert numpy.buffer is not None
    numpy.buffer.close()
    off = make_agent(tmp_path, clock, "[nowcast]\nenabled = false\n")
    assert off.nowcast is None and off._fleet_status()["model_version"] == ""
    storm_minutes(off, clock, 3)  # the station records and warns without a forecast
    assert off.buffer is not None and off.buffer.where("kind = 'forecast'") == []
    off.buffer.close()
    (tmp_path / "broken.tflite").write_bytes(b"not a model")
    bad = make_agent(tmp_path, clock, '[nowcast]\nmodel = "broken.tflite"\n')
    assert bad.nowcast is None and bad.status()["nowcast"] is None
    assert bad.buffer is not None
    bad.buffer.close()


def test_a_restart_refills_the_nowcast_history_from_the_buffer(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    first = make_agent(tmp_path, clock)
    storm_minutes(first, clock, 30)
    assert first.nowcast is not None and first.buffer is not None
    before = first.nowcast.runner.history.window(clock.now())
    first.buffer.close()
    again = make_agent(tmp_path, clock)
    assert again.nowcast is not None
    after = again.nowcast.runner.history.window(clock.now())
    assert (after.depth_mm[-30:] == before.depth_mm[-30:]).all()
    assert (after.rain_mm[-29:] == before.rain_mm[-29:]).all()
    assert after.depth_mm[-1] == pytest.approx(120.0)
    assert again.buffer is not None
    again.buffer.close()


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ('sensor = "nope"', "key actions[0].sensor: 'nope' is not a configured sensor"),
        ('setting = "strobe"', "key actions[0].setting: 'strobe' is not a writable setting"),
        ('min_level = "pink"', "key actions[0].min_level"),
        ('signal = "fog"', "key actions[0].signal"),
    ],
)
def test_bad_actions_are_one_line_naming_the_key(action: str, expected: str) -> None:
    key = action.split(" ")[0]
    lines = [line for line in BEACON_ACTION.splitlines() if not line.startswith(f"{key} ")]
    import tomllib

    doc = tomllib.loads(BASE + "\n".join([*lines, action]) + "\n")
    with pytest.raises(ConfigError) as info:
        config_from_dict(doc, "station.toml")
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_a_refused_write_is_an_event_and_is_retried(tmp_path: Path) -> None:
    """Against the simulated light on a real pty: a dead light, then a working one."""
    scenario = load_scenario("storm-50y-3h")
    clock = ScaledClock(scenario.start, speed=1.0, anchor=time.time())
    with SimStation(scenario, clock, tmp_path / "links", pacing=False) as station:
        ep = station.endpoints["beacon"]
        device = DeviceConfig("beacon", load_profile("warning-light"), ep.port, ep.slave, None, 60)
        [bus] = open_buses([device], station=STATION, clock=clock, sink=lambda b: None)
        try:
            actions = LocalActions(
                (ActionConfig(signal="waterlogging", sensor="beacon", setting="light"),),
                bus.write_register,
                retry_s=30.0,
            )
            raised = WarningState({"waterlogging": SignalState(level=1, since=T0)})
            station.inject("beacon", "no_answer")
            [failed] = actions.run(raised, [], T0, mono=0.0)
            assert failed.reason == "action_failed" and failed.payload is not None
            assert failed.payload["ok"] is False and failed.payload["error"]
            assert not station.devices["beacon"].coils[0]
            station.clear("beacon")
            assert actions.run(raised, [], T0, mono=10.0) == []  # waits for the retry time
            [done] = actions.run(raised, [], T0 + timedelta(seconds=40), mono=40.0)
            assert done.payload is not None and done.payload["ok"] and done.value == 1.0
            assert station.devices["beacon"].coils[0]
            assert actions.run(raised, [], T0, mono=50.0) == []  # nothing new to write
            [off] = actions.run(WarningState(), [], T0, mono=60.0)
            assert off.payload is not None and off.payload["state"] == "off"
            assert not station.devices["beacon"].coils[0]
        finally:
            bus.stop()
