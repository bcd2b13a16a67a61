"""On clean simulated storms QC flags (almost) nothing: the false-flag rate stays below 0.5 %."""

from __future__ import annotations

import numpy as np
from qc_readings import reading

from agent.flags import Flag
from agent.qc import QCEngine
from sim.weather.rain import chicago_hyetograph


def clean_station(rng: np.random.Generator) -> list[list]:
    """Batches of clean readings: a 5-year 2-h storm in 3 h, 10-s rain and depth, 1-Hz wind."""
    storm = np.r_[np.zeros(30), chicago_hyetograph(5.0, 120.0), np.zeros(30)]  # mm/h per minute
    rain_10s = np.repeat(storm, 6) / 360.0
    totals = np.floor(np.cumsum(rain_10s) / 0.1) * 0.1  # 0.1 mm tips
    depth = np.zeros(totals.size)
    for i in range(1, depth.size):  # a point pond: 4.5x catchment inflow, 36 mm/h drain
        inflow = 4.5 * rain_10s[i] - 0.1
        depth[i] = max(0.0, depth[i - 1] + inflow)
    depth_obs = np.round(depth + rng.normal(0, 2.0, depth.size))
    batches = []
    for i, t in enumerate(np.arange(totals.size) * 10.0):
        batches.append([reading("rain_total", t, round(float(totals[i]), 4), sensor="rain")])
        batches.append([reading("water_depth", t, float(depth_obs[i]), sensor="level")])
    for t in range(1800):  # half an hour of gusty 1-Hz wind
        speed = round(max(0.0, 9.0 + 2.0 * np.sin(t / 120) + rng.normal(0, 1.2)), 2)
        direction = round(float((200 + rng.normal(0, 15)) % 360))
        batches.append(
            [
                reading("wind_speed", t, speed, sensor="wind"),
                reading("wind_dir", t, direction, sensor="wind"),
            ]
        )
    return batches


def test_false_flag_rate_on_clean_storm_below_half_percent() -> None:
    engine = QCEngine()
    flagged = [
        f for batch in clean_station(np.random.default_rng(2026)) for f in engine.process(batch)
    ]
    bad = [f for f in flagged if f.flag is not Flag.CORRECT]
    rate = len(bad) / len(flagged)
    assert rate < 0.005, (rate, {(f.reading.channel, f.reason) for f in bad})
