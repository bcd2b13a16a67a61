"""The scorecard's figures on DUT results whose right answers are known (a ramp truth)."""

from __future__ import annotations

import pytest

from sim.hil.observe import Observed, Value, WarningEvent
from sim.hil.runfile import Checkpoint, DutSpec, RunSpec, ScorecardSpec
from sim.hil.score import scorecard
from sim.spec import BusSpec, DeviceSpec, FaultSpec
from sim.testing import RampTruth, build_scenario

TRUTH = RampTruth(duration_s=3 * 3600.0, depth_mm_per_h=120.0)  # 150 mm at minute 75
BUS = BusSpec("rs485-1", "rtu")
DEVICES = (DeviceSpec("level", "hlk-ld8001h", "rs485-1", 1),)
FAULTS = (
    FaultSpec("level", "spike", 1200.0, 300.0),  # minutes 20-25
    FaultSpec("level", "port_vanish", 3000.0, 60.0),  # minute 50
    FaultSpec("level", "stuck", 6000.0, 300.0),  # minutes 100-105: the DUT misses it
)
END_S = 2 * 3600.0


def spec(checkpoints=(), lead=0.0) -> RunSpec:
    sc = build_scenario(TRUTH, buses=(BUS,), devices=DEVICES, faults=FAULTS)
    return RunSpec(
        source="t.toml",
        scenario=sc,
        speed=60.0,
        duration_s=END_S,
        pacing=True,
        lead_in_s=0.0,
        bind={},
        listen="127.0.0.1",
        timeline=(),
        checkpoints=tuple(checkpoints),
        dut=DutSpec("st-1", "sqlite"),
        scorecard=ScorecardSpec(grace_min=2.0, lead_target_min={"waterlogging": lead}),
    )


def dut(lag_s: float = 0.0, offset: float = 0.0, flag_clean_at: float | None = None) -> Observed:
    """A DUT reading depth every 10 s: the truth ``lag_s`` late, flagged inside the spike and
    the vanished port, silent for the vanished port's minute and 20 s after."""
    obs = Observed()
    for i in range(int(END_S // 10)):
        t = i * 10.0
        if 3000.0 <= t < 3080.0:
            continue
        value = TRUTH.sample(t - lag_s).water_depth_mm + offset
        flag, reason = 0, ""
        if 1200.0 <= t < 1500.0 and i % 3 == 0:
            flag, reason, value = 2, "rise_rate", value + 500.0
        if t == 3080.0:
            flag, reason = 1, "gap"
        if flag_clean_at is not None and t == flag_clean_at:
            flag, reason = 1, "step"
        obs.readings.append(Value(t, "level", "water_depth", value, flag, reason))
    obs.warnings.append(WarningEvent(70 * 60.0, "waterlogging", "blue", "raise", "Likely"))
    obs.warnings.append(WarningEvent(80 * 60.0, "rainstorm", "red", "raise", "Observed"))
    return obs


def test_a_faithful_dut_scores_zero_error_and_full_detection_of_what_it_flagged():
    card = scorecard(spec(), dut())
    [depth] = card["channels"]
    assert (depth["bias"], depth["rmse"], depth["lag_s"]) == (0.0, 0.0, 0.0)
    assert depth["missing_share"] == pytest.approx(1 / 120, abs=1e-3)  # minute 50 only
    assert card["qc"]["spike"] == {"injected": 1, "detected": 1, "missed": 0, "falsely_flagged": 0}
    assert card["qc"]["port_vanish"]["detected"] == 1
    assert card["qc"]["stuck"] == {"injected": 1, "detected": 0, "missed": 1, "falsely_flagged": 0}
    assert card["false_flags"]["flagged_minutes"] == 0
    assert [f["reasons"] for f in card["faults"]] == [["rise_rate"], ["gap"], []]


def test_lag_and_bias_are_recovered():
    [late] = scorecard(spec(), dut(lag_s=60.0))["channels"]
    assert late["lag_s"] == 60.0
    assert late["bias"] == pytest.approx(-2.0, abs=0.05)  # 60 s late on a 2 mm/min rise
    [high] = scorecard(spec(), dut(offset=3.0))["channels"]
    assert (high["bias"], high["rmse"]) == (3.0, 3.0)


def test_a_flag_on_a_clean_minute_is_a_false_flag_of_the_kinds_with_that_reason():
    card = scorecard(spec(), dut(flag_clean_at=600.0))
    assert card["false_flags"]["flagged_minutes"] == 1
    assert card["false_flags"]["by_sensor"] == {"level": [10]}
    assert (
        card["qc"]["spike"]["falsely_flagged"] == 1 and card["qc"]["drift"]["falsely_flagged"] == 1
    )


def test_warning_lead_against_the_truth_crossing_and_unfounded_warnings():
    card = scorecard(spec(lead=10.0), dut())
    blue = next(
        w for w in card["warnings"] if (w["signal"], w["level"]) == ("waterlogging", "blue")
    )
    assert (blue["truth_min"], blue["dut_min"], blue["lead_min"]) == (75.0, 70.0, 5.0)
    assert blue["met"] is False and not card["passed"]  # 5 min ahead, 10 wanted
    rows = scorecard(spec(lead=0.0), dut())["warnings"]
    assert next(w["met"] for w in rows if w["signal"] == "waterlogging") is True
    assert {"signal": "rainstorm", "level": "red", "dut_min": 80.0} in card["unfounded_warnings"]


def test_checkpoints():
    cps = (
        Checkpoint("early", "warning", signal="waterlogging", level="blue", by_min=60.0),
        Checkpoint("in time", "warning", signal="waterlogging", level="blue", by_min=75.0),
        Checkpoint("quick", "resume", device="level", after="port_vanish", within_s=10.0),
        Checkpoint("slow ok", "resume", device="level", after="port_vanish", within_s=30.0),
    )
    card = scorecard(spec(cps), dut())
    got = {c["name"]: (c["passed"], c["detail"]) for c in card["checkpoints"]}
    assert got["early"] == (False, "raised at minute 70.0")
    assert got["in time"][0] is True
    assert got["quick"] == (False, "readings resumed after 20 s")
    assert got["slow ok"] == (True, "readings resumed after 20 s")


def test_minutes_the_simulator_answered_late_are_not_clean():
    flagged = dut(flag_clean_at=600.0)
    card = scorecard(spec(), flagged, sim_late={"level": [605.0, 610.0]})
    assert card["false_flags"]["flagged_minutes"] == 0
    assert card["false_flags"]["sim_late_minutes"] == {"level": [10]}
    assert (
        card["false_flags"]["clean_minutes"]
        == scorecard(spec(), flagged)["false_flags"]["clean_minutes"] - 1
    )
