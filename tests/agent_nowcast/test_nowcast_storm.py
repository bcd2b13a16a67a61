"""The real agent with its nowcast against the simulated storm-50y-3h station over real ptys."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from nowcast_station import BEACON_ACTION, station_toml

from agent.buffer import Buffer, StoredRecord
from agent.config import load_config
from agent.runner import Agent
from roadside.clock import ScaledClock
from sim.scenario import load_scenario
from sim.station import SimStation

SPEED = 420.0  # scenario seconds per real second: minute 25 to the cancel in about 32 s
TIER_MM = 150.0


def minute_of(record: StoredRecord, start: object) -> float:
    return (record.time - start).total_seconds() / 60.0  # type: ignore[operator]


@pytest.mark.parametrize(
    "through_cancel",
    [False, pytest.param(True, marks=pytest.mark.soak)],
    ids=["to-the-water", "through-the-cancel"],
)
def test_forecast_raises_waterlogging_before_the_water_and_drives_the_light(
    tmp_path: Path, through_cancel: bool
) -> None:
    """In ``make test`` the run stops a few minutes after the water came; ``make soak`` follows
    it to the cancellation and the light going off (about 30 s of wall time)."""
    scenario = load_scenario("storm-50y-3h")
    clock = ScaledClock(scenario.start + timedelta(minutes=25), speed=SPEED, anchor=time.time())
    depth = scenario.truth.water_depth_mm  # type: ignore[attr-defined]
    crossing_min = float(scenario.truth.t_s[depth >= TIER_MM][0]) / 60.0  # type: ignore[attr-defined]
    light_on_at = light_off_at = None
    with SimStation(scenario, clock, tmp_path / "links", pacing=False) as station:
        path = tmp_path / "station.toml"
        extra = "[warnings]\nhold_s = 300\n" + BEACON_ACTION  # no [uplink]: offline station
        path.write_text(station_toml(station.endpoints, tmp_path / "buffer.db", extra=extra))
        agent = Agent(load_config(path), clock, serve_metrics=False)
        agent.start()
        coils = station.devices["beacon"].coils
        try:
            assert agent.nowcast is not None
            version = agent.nowcast.model.version
            thresholds = list(agent.nowcast.model.tier_thresholds)  # 0.39, 0.36 (not the 0.5)
            deadline = time.monotonic() + 60
            # until the light goes off after the water came (an early alarm may come and go)
            while time.monotonic() < deadline and light_off_at is None:
                agent.step(timeout_s=0.05)
                minute = (clock.now() - scenario.start).total_seconds() / 60.0
                if not through_cancel and minute > crossing_min + 3 and light_on_at is not None:
                    break
                if coils[0] and light_on_at is None:
                    light_on_at = minute
                elif light_on_at is not None and not coils[0]:
                    if minute > crossing_min:
                        light_off_at = minute
                    else:
                        light_on_at = None
        finally:
            agent.stop()
    buffer = Buffer(tmp_path / "buffer.db", max_bytes=1 << 26, clock=clock)
    try:
        events = [e for e in buffer.where("kind = 'event'") if e.payload]
        warnings = [e.payload for e in events if e.payload.get("signal") == "waterlogging"]
        observed = next(
            r
            for r in buffer.where("kind = 'reading' AND channel = 'water_depth'")
            if r.value is not None and r.value >= TIER_MM and r.flag in (0, 1)
        )
        raised = [  # the raise that stood when the water came
            e
            for e in events
            if e.payload.get("kind") == "raise"
            and e.payload["signal"] == "waterlogging"
            and e.time <= observed.time
        ][-1]
        forecasts = buffer.where("kind = 'forecast'")
        actions = [e.payload for e in events if e.payload.get("kind") == "action"]
        unsynced_events = buffer.where("kind = 'event' AND synced = 0")
    finally:
        buffer.close()

    lead_min = minute_of(observed, scenario.start) - minute_of(raised, scenario.start)
    print(
        f"forecast warning at minute {minute_of(raised, scenario.start):.1f}, observed 15 cm "
        f"at {minute_of(observed, scenario.start):.1f}: lead {lead_min:.1f} min; light on at "
        f"{light_on_at}, off at {light_off_at}"
    )
    # the forecast raised it, marked Likely, with the forecast as its evidence, before the water
    assert raised.payload["certainty"] == "Likely"
    assert raised.payload["evidence"]["basis"] == "forecast"
    assert raised.payload["evidence"]["forecast"]["model_version"] == version
    assert raised.payload["evidence"]["forecast"]["p_thresholds"] == thresholds
    assert lead_min >= 10, f"forecast lead only {lead_min:.1f} min"
    assert light_on_at is not None and light_on_at < minute_of(observed, scenario.start)
    assert len(forecasts) > 10
    assert {f.payload["model_version"] for f in forecasts} == {version}
    assert all(f.channel == "water_depth_30min" and not f.synced for f in forecasts)
    if not through_cancel:
        return
    # the light switched on with the warning and off with its cancellation
    assert light_off_at is not None, (light_on_at, light_off_at)
    kinds = [w.get("kind") for w in warnings if w.get("kind") != "action"]
    assert kinds[0] == "raise" and kinds[-1] == "cancel"
    states = [(a["state"], a["ok"]) for a in actions]  # off at start, then on/off by the signal
    assert states[0] == ("off", True) and len(states) % 2 == 1
    assert states[1:] == [("on", True), ("off", True)] * (len(states) // 2)
    assert actions[-2]["trigger"] == "raise" and actions[-1]["trigger"] == "cancel"
    # forecasts are buffered like readings, with the model version; offline, all stays unsynced
    assert len(forecasts) > 100
    assert len(unsynced_events) == len(events) >= 6
