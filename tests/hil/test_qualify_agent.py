"""The project's own agent qualified end to end through a run file, with the roadside.hil plugin.

The agent reads a rain gauge and a radar level sensor on an RS-485 line the simulator serves on a
serial device it did not make (``--bind``, a socat pair: the agent opens the other end) and a
counter behind a Modbus TCP gateway listening on every interface (``--listen 0.0.0.0``); a broker
carries its uplink; the run file injects a spike, a silent device, bad CRCs and a vanished port
and sets the checkpoints. About a minute of wall time (90 scenario minutes at x120), so it runs in
``make soak``; ``make test`` qualifies through the same code in ``tests/hil/test_sources.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.soak

RUN = """\
[run]
scenario = "{scenario}"
speed = 120
duration_min = 90

[ports]
bind = {{ "rs485-1" = "{sim_end}" }}

[[faults]]
device = "level"
kind = "spike"
start_min = 20
duration_min = 5
params = {{ magnitude = 500.0, probability = 0.3 }}

[[faults]]
device = "rain"
kind = "no_answer"
start_min = 30
duration_min = 3

[[faults]]
device = "gauge"
kind = "crc_error"
start_min = 40
duration_min = 3

[[faults]]
device = "level"
kind = "port_vanish"
start_min = 60
duration_min = 1

[[checkpoints]]
kind = "warning"
signal = "waterlogging"
by_min = 70

# the agent's breaker backs off from 2 poll intervals, doubling: a device silent for 60 s is
# probed again at most 80 s after it is back (20 + 40 + 80 s from its first failure)
[[checkpoints]]
kind = "resume"
device = "level"
after = "port_vanish"
within_s = 90

[dut]
station = "bs-hil-01"
source = "mqtt"

[dut.agent]
ports = {{ "rs485-1" = "{dut_end}" }}
interval_s = 10

[scorecard]
lead_target_min = {{ waterlogging = 0 }}
"""


@pytest.fixture(scope="module")
def hil_run_file(bench_cable, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("run") / "qualify-agent.toml"
    text = RUN.format(scenario="hil-bench", sim_end=bench_cable.sim, dut_end=bench_cable.dut)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def hil_listen() -> str:
    return "0.0.0.0"


def test_the_simulator_serves_the_bound_device_and_the_lan_address(hil_sim, bench_cable):
    eps = hil_sim.station.endpoints
    assert eps["level"].port == str(bench_cable.sim) and eps["rain"].port == str(bench_cable.sim)
    assert eps["gauge"].port.startswith("tcp://0.0.0.0:")
    config = (hil_sim.work / "station.toml").read_text()
    assert f'port = "{bench_cable.dut}"' in config  # the agent sits at the cable's other end


def test_the_truth_is_the_scenario_s(hil_truth, hil_sim):
    assert hil_truth.sample(0).water_depth_mm == 0.0
    assert hil_truth is hil_sim.run.scenario.truth


def test_every_injected_fault_kind_is_detected(hil_scorecard):
    assert hil_scorecard["run"]["first_reading_min"] < 20.0  # up before the first fault
    qc = hil_scorecard["qc"]
    injected = {k for k, v in qc.items() if v["injected"]}
    assert injected == {"spike", "no_answer", "crc_error", "port_vanish"}
    assert {k: v["missed"] for k, v in qc.items() if v["injected"]} == dict.fromkeys(injected, 0)
    assert all(f["detected"] and f["first_flag_min"] is not None for f in hil_scorecard["faults"])


def test_no_false_flag_on_clean_minutes(hil_scorecard):
    ff = hil_scorecard["false_flags"]
    assert ff["clean_minutes"] > 100  # three sensors, most of 90 minutes clean
    assert ff["flagged_minutes"] == 0, ff


def test_the_waterlogging_warning_comes_within_its_lead_target(hil_scorecard):
    rows = {(w["signal"], w["level"]): w for w in hil_scorecard["warnings"]}
    blue = rows[("waterlogging", "blue")]
    assert blue["dut_min"] is not None and blue["lead_min"] >= blue["target_min"] == 0
    assert blue["met"] is True
    assert not [u for u in hil_scorecard["unfounded_warnings"] if u["signal"] == "waterlogging"]


def test_checkpoints_pass_and_the_device_tracks_the_truth(hil_scorecard):
    assert [c["passed"] for c in hil_scorecard["checkpoints"]] == [True, True], hil_scorecard[
        "checkpoints"
    ]
    ch = {(c["sensor"], c["channel"]): c for c in hil_scorecard["channels"]}
    depth = ch[("level", "water_depth")]
    assert depth["rmse"] < 10.0 and abs(depth["bias"]) < 5.0  # radar +-5 mm, 1 mm resolution
    assert abs(depth["lag_s"]) <= 30.0
    for key in (("rain", "rain_total"), ("gauge", "rain_total"), ("level", "water_depth")):
        assert ch[key]["missing_share"] < 0.15, ch[key]
    assert hil_scorecard["passed"]


def test_the_scorecard_is_written_as_json_and_html(hil_scorecard, hil_sim):
    page = (hil_sim.work / "scorecard.html").read_text()
    assert "<svg" in page and "level.water_depth" in page and "spike on level" in page
    assert (hil_sim.work / "scorecard.json").stat().st_size > 500
