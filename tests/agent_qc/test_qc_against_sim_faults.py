"""QC against the simulator: its devices measure its weather truth, with and without faults.

Every value fault the simulator injects (spike, stuck, drift, counter reset) is caught with the
expected flag and reason; on clean storms almost nothing is flagged; derived rain matches the
truth within the gauge's resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cache
from typing import Any

import numpy as np
import pytest
from qc_readings import T0

from agent.derived import DerivedEngine
from agent.flags import Flag, FlaggedReading
from agent.qc import QCEngine
from drivers.profile import load_profile
from roadside.records import Reading
from sim.devices.device import SimDevice
from sim.devices.faults import FaultBoard
from sim.spec import DeviceSpec, SiteSpec
from sim.weather.truth import ArrayTruth, build_truth

SITE = SiteSpec()
STORM = {"kind": "chicago", "return_period_y": 5.0, "duration_min": 120.0, "start_min": 20.0}
WIND = {"kind": "gusty", "mean_ms": 8.0}
CHANNELS = {
    "dfrobot-sen0575": ("rain_total",),
    "hlk-ld8001h": ("water_distance", "water_depth"),
    "gill-windsonic": ("wind_speed", "wind_dir"),
}
DECIMALS = {"rain_total": 4, "water_distance": 0, "water_depth": 0, "wind_speed": 2, "wind_dir": 0}


@cache
def truth(storm: str = "chicago") -> ArrayTruth:
    table = STORM if storm == "chicago" else {"kind": "dry"}
    return build_truth(table, WIND, SITE, seed=7, duration_s=3 * 3600)


def device(name: str, profile: str, *faults: tuple, storm: str = "chicago") -> SimDevice:
    board = FaultBoard()
    for kind, start_s, duration_s, params in faults:
        board.add(kind, start_s, duration_s, params)
    spec = DeviceSpec(name, profile, "bus")
    return SimDevice(spec, load_profile(profile), truth(storm), SITE, 7, board)


def poll(dev: SimDevice, t_s: float) -> list[Reading]:
    """One poll: the device's channel values at t_s, rounded as its registers or frames are."""
    values = dev.values(t_s)
    return [
        Reading(
            "st",
            dev.name,
            ch,
            T0 + timedelta(seconds=t_s),
            round(values[ch], DECIMALS[ch]),
            "",
            None,
        )
        for ch in CHANNELS[dev.profile.device.model]
    ]


def run(
    devices: Sequence[tuple[SimDevice, float]], duration_s: float, engine: QCEngine | None = None
) -> list[FlaggedReading]:
    """Poll each (device, interval) on clock boundaries in time order through one QC engine."""
    engine = engine or QCEngine()
    out: list[FlaggedReading] = []
    for t in np.arange(0.0, duration_s, 1.0):
        for dev, interval in devices:
            if t % interval == 0:
                out += engine.process(poll(dev, float(t)))
    return out


def window(flagged: list[FlaggedReading], channel: str, start_s: float, end_s: float) -> list:
    lo, hi = T0 + timedelta(seconds=start_s), T0 + timedelta(seconds=end_s)
    return [f for f in flagged if f.reading.channel == channel and lo <= f.reading.time < hi]


def faulty(dev: SimDevice, f: FlaggedReading) -> bool:
    """Whether the reading differs from what the device measures without faults."""
    t_s = (f.reading.time - T0).total_seconds()
    clean = dev.measure(t_s)
    if "water_distance" in clean:  # the radar derives depth from its distance
        clean["water_depth"] = dev.height_mm - clean["water_distance"]
    value = round(clean[f.reading.channel], DECIMALS[f.reading.channel])
    return abs(value - (f.reading.value or 0.0)) > 1.0


def test_clean_storm_false_flag_rate_below_half_percent() -> None:
    rain, level = device("rain", "dfrobot-sen0575"), device("level", "hlk-ld8001h")
    wind = device("wind", "gill-windsonic")
    flagged = run([(rain, 10.0), (level, 10.0), (wind, 10.0)], 3 * 3600)
    bad = [f for f in flagged if f.flag is not Flag.CORRECT]
    rate = len(bad) / len(flagged)
    assert rate < 0.005, (rate, sorted({(f.reading.channel, f.reason) for f in bad}))


def test_derived_rain_matches_truth_within_resolution() -> None:
    rain = device("rain", "dfrobot-sen0575")
    qc, derived = QCEngine(), DerivedEngine()
    values: dict[str, Any] = {}
    for t in np.arange(0.0, 3 * 3600, 10.0):
        for d in derived.update(qc.process(poll(rain, float(t))), T0 + timedelta(seconds=t)):
            values[d.name] = d
    total = truth().rain_total_mm
    end = 3 * 3600 - 10
    for name, w in [("rain_1h", 3600), ("rain_3h", 3 * 3600 - 10), ("rain_10min", 600)]:
        assert values[name].value == pytest.approx(total[end] - total[end - w], abs=0.2), name


def test_wind_spikes_are_step_flags() -> None:
    wind = device("wind", "gill-windsonic", ("spike", 600.0, 600.0, {"channel": "wind_speed"}))
    flagged = window(run([(wind, 1.0)], 1500), "wind_speed", 600, 1200)
    spikes = [f for f in flagged if faulty(wind, f)]
    caught = [f for f in spikes if f.flag is Flag.SUSPECT and f.reason == "step"]
    assert len(spikes) > 200 and len(caught) / len(spikes) > 0.9
    clean = [f for f in flagged if not faulty(wind, f)]
    assert sum(f.flag is not Flag.CORRECT for f in clean) / len(clean) < 0.02


def test_rain_spikes_are_wrong_rain_rate() -> None:
    rain = device("rain", "dfrobot-sen0575", ("spike", 1800.0, 1200.0, {"channel": "rain_total"}))
    flagged = window(run([(rain, 10.0)], 3600), "rain_total", 1800, 3000)
    spikes = [f for f in flagged if faulty(rain, f)]
    assert spikes and all(f.flag is Flag.WRONG and f.reason == "rain_rate" for f in spikes)
    assert all(f.flag is Flag.CORRECT for f in flagged if not faulty(rain, f))


def test_level_spikes_are_rise_rate() -> None:
    level = device("level", "hlk-ld8001h", ("spike", 1800.0, 1200.0, {"probability": 0.3}))
    flagged = window(run([(level, 10.0)], 3600), "water_depth", 1800, 3000)
    spikes = [f for f in flagged if faulty(level, f)]
    caught = [f for f in spikes if f.reason == "rise_rate"]
    assert spikes and len(caught) / len(spikes) > 0.9


def test_stuck_anemometer_is_stuck() -> None:
    wind = device("wind", "gill-windsonic", ("stuck", 600.0, None, {}))
    flagged = run([(wind, 10.0)], 600 + 5400)
    late = window(flagged, "wind_speed", 600 + 3600, 6000) + window(
        flagged, "wind_dir", 600 + 3600, 6000
    )
    assert late and all(f.flag is Flag.SUSPECT and f.reason == "stuck" for f in late)
    assert all(f.flag is Flag.CORRECT for f in window(flagged, "wind_speed", 0, 600))


def test_stuck_radar_is_stuck() -> None:
    level = device("level", "hlk-ld8001h", ("stuck", 600.0, None, {}), storm="dry")
    flagged = run([(level, 10.0)], 600 + 2400)
    late = window(flagged, "water_depth", 600 + 1800, 3000)
    assert late and all(f.reason == "stuck" for f in late)


def test_level_drift_without_rain_is_inconsistent() -> None:
    rain = device("rain", "dfrobot-sen0575", storm="dry")
    level = device(
        "level", "hlk-ld8001h", ("drift", 600.0, None, {"rate_per_h": -60.0}), storm="dry"
    )
    flagged = run([(rain, 10.0), (level, 10.0)], 600 + 3600)
    late = window(flagged, "water_depth", 600 + 1800, 600 + 3600)  # risen 30-60 mm
    assert late and all(f.flag is Flag.SUSPECT and f.reason == "consistency" for f in late)


def test_counter_reset_flagged_and_rain_still_counted() -> None:
    rain = device("rain", "dfrobot-sen0575", ("counter_reset", 3600.0, None, {}))
    qc, derived = QCEngine(), DerivedEngine()
    flagged: list[FlaggedReading] = []
    last: dict[str, Any] = {}
    for t in np.arange(0.0, 2 * 3600, 10.0):
        batch = qc.process(poll(rain, float(t)))
        flagged += batch
        for d in derived.update(batch, T0 + timedelta(seconds=t)):
            last[d.name] = d
    reasons = [f.reason for f in window(flagged, "rain_total", 3600, 3700)]
    assert reasons[0] == "counter_reset" and set(reasons[1:]) == {""}
    # what the gauge registered: up to its last count before the reset, then from zero again
    totals = {f.reading.time: f.reading.value or 0.0 for f in flagged}
    at = lambda s: totals[T0 + timedelta(seconds=s)]  # noqa: E731
    registered = at(3590) - at(2 * 3600 - 10 - 3600) + at(2 * 3600 - 10)
    assert last["rain_1h"].value == pytest.approx(registered, abs=1e-9)
    # and the truth, less at most one poll's rain and a tip at each end
    total = truth().rain_total_mm
    assert last["rain_1h"].value == pytest.approx(total[7190] - total[3590], abs=0.8)


def test_default_radar_drift_goes_below_the_road() -> None:
    level = device("level", "hlk-ld8001h", ("drift", 600.0, None, {}), storm="dry")  # +20 mm/h
    flagged = run([(level, 10.0)], 600 + 7200)
    late = window(flagged, "water_depth", 600 + 5400, 600 + 7200)  # 30-40 mm below the road
    assert late and all(f.flag is Flag.SUSPECT and f.reason == "climate" for f in late)
