"""Derived products: exact sums, vector means, completeness and worst-flag propagation."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from qc_readings import T0, reading

from agent.derived import DerivedEngine, DerivedParams, running_mean_max, vector_mean_deg
from agent.errors import ConfigError
from agent.flags import Flag, FlaggedReading
from roadside.records import Reading


def ok(r: Reading, flag: Flag = Flag.CORRECT) -> FlaggedReading:
    return FlaggedReading(r, flag, "" if flag is Flag.CORRECT else "x")


def feed(engine: DerivedEngine, flagged: list[FlaggedReading]) -> dict:
    out = {}
    for fr in flagged:
        for d in engine.update([fr], fr.reading.time):
            out[d.name] = d
    return out


def test_rain_accumulations_equal_exact_sums() -> None:
    rng = np.random.default_rng(11)
    tips = rng.poisson(0.4, 9000) * 0.1  # 25 h of 10-s polls
    totals = np.round(np.cumsum(tips), 4)
    flagged = [ok(reading("rain_total", i * 10.0, float(v))) for i, v in enumerate(totals)]
    engine, out = DerivedEngine(), {}
    for start in range(0, len(flagged), 30):  # five minutes of polls per batch
        batch = flagged[start : start + 30]
        out = {d.name: d for d in engine.update(batch, batch[-1].reading.time)}
    for name, window in [("rain_1min", 60), ("rain_1h", 3600), ("rain_3h", 10800),
                         ("rain_24h", 86400)]:  # fmt: skip
        expected = totals[-1] - totals[-1 - window // 10]
        assert out[name].value == pytest.approx(expected, abs=1e-9), name
        assert out[name].completeness == pytest.approx(1.0)
        assert out[name].flag is Flag.CORRECT
    assert out["rain_intensity"].value == pytest.approx((totals[-1] - totals[-31]) * 12)


def test_counter_reset_counts_rain_since_restart() -> None:
    totals = [10.0, 10.5, 11.0, 0.3, 0.8]  # reset between 11.0 and 0.3
    flags = [Flag.CORRECT, Flag.CORRECT, Flag.CORRECT, Flag.SUSPECT, Flag.CORRECT]
    out = feed(
        DerivedEngine(),
        [
            ok(reading("rain_total", i * 60.0, v), f)
            for i, (v, f) in enumerate(zip(totals, flags, strict=True))
        ],
    )
    assert out["rain_10min"].value == pytest.approx(1.0 + 0.3 + 0.5)
    assert out["rain_10min"].flag is Flag.SUSPECT


def test_wrong_and_missing_readings_do_not_feed_products() -> None:
    flagged = [
        ok(reading("rain_total", 0, 5.0)),
        ok(reading("rain_total", 60, 500.0), Flag.WRONG),
        FlaggedReading(reading("rain_total", 120, None), Flag.MISSING, "timeout"),
        ok(reading("rain_total", 180, 5.4)),
    ]
    out = feed(DerivedEngine(), flagged)
    assert out["rain_5min"].value == pytest.approx(0.4)
    assert out["rain_5min"].flag is Flag.CORRECT


def test_suspect_flag_propagates_then_leaves_window() -> None:
    engine = DerivedEngine()
    flagged = [ok(reading("wind_speed", t, 5.0), Flag.SUSPECT if t == 10 else Flag.CORRECT)
               for t in range(0, 400)]  # fmt: skip
    out = feed(engine, flagged[:200])
    assert out["wind_speed_2min"].flag is Flag.CORRECT  # t=10 left the 2-min window
    assert out["wind_speed_10min"].flag is Flag.SUSPECT


def test_completeness_counts_covered_time() -> None:
    engine = DerivedEngine()
    flagged = []
    for t in range(0, 600):
        if t % 2:
            flagged.append(FlaggedReading(reading("wind_speed", t, None), Flag.MISSING, "timeout"))
        else:
            flagged.append(ok(reading("wind_speed", t, 6.0)))
    out = feed(engine, flagged)
    assert out["wind_speed_2min"].completeness == pytest.approx(0.5, abs=0.02)
    assert out["wind_speed_2min"].value == pytest.approx(6.0)


def test_vector_mean_across_north() -> None:
    mean = vector_mean_deg(np.array([350.0, 10.0]))
    assert min(mean, 360 - mean) == pytest.approx(0.0, abs=1e-9)
    engine = DerivedEngine()
    flagged = [ok(reading("wind_dir", t, 350.0 if t % 2 else 10.0)) for t in range(120)]
    d = feed(engine, flagged)["wind_dir_2min"].value
    assert d is not None and min(d, 360 - d) < 1e-6


def test_gust_is_highest_three_second_mean() -> None:
    speeds = [5.0] * 100 + [20.0, 20.0, 20.0, 5.0] + [5.0] * 20
    out = feed(DerivedEngine(), [ok(reading("wind_speed", t, v)) for t, v in enumerate(speeds)])
    assert out["wind_gust_3s"].value == pytest.approx(20.0)
    assert running_mean_max(np.arange(4.0), np.array([1.0, 9.0, 1.0, 1.0]), 3.0) == pytest.approx(
        11.0 / 3
    )


def test_gust_channel_used_when_present() -> None:
    flagged = [ok(reading("wind_speed", t, 5.0)) for t in range(10)]
    flagged += [ok(reading("wind_gust", 10, 14.5))]
    out = feed(DerivedEngine(), flagged)
    assert out["wind_gust_3s"].value == 14.5


def test_water_depth_noise_floor_and_rise_rate() -> None:
    dry = feed(DerivedEngine(), [ok(reading("water_depth", t * 10, 6.0)) for t in range(10)])
    assert dry["water_depth"].value == 0.0
    rising = [ok(reading("water_depth", t * 10, 50.0 + t)) for t in range(40)]  # 6 mm/min
    out = feed(DerivedEngine(), rising)
    assert out["water_rise_rate"].value == pytest.approx(6.0)
    assert out["water_depth"].value == pytest.approx(86.5)


def test_missing_sensor_gives_missing_products() -> None:
    flagged = [FlaggedReading(reading("water_depth", 0, None), Flag.MISSING, "timeout")]
    out = DerivedEngine().update(flagged, T0 + timedelta(seconds=1))
    assert {d.name: (d.value, d.flag) for d in out} == {
        "water_depth": (None, Flag.MISSING),
        "water_rise_rate": (None, Flag.MISSING),
    }


def test_memory_is_bounded_at_1hz() -> None:
    engine = DerivedEngine(DerivedParams(max_fast_samples=300))
    feed(engine, [ok(reading("wind_speed", t, 5.0 + t % 3)) for t in range(1000)])
    assert len(engine._sensors["s1"].speed.ring) <= 300


def test_params_from_dict_errors() -> None:
    assert DerivedParams.from_dict({"gust_window_s": 300}).gust_window_s == 300.0
    with pytest.raises(ConfigError, match=r"derived\.gust_windw_s: unknown key"):
        DerivedParams.from_dict({"gust_windw_s": 300})
    with pytest.raises(ConfigError, match=r"derived\.gust_window_s: expected a positive"):
        DerivedParams.from_dict({"gust_window_s": -1})
    with pytest.raises(ConfigError, match=r"derived\.max_samples: expected a positive integer"):
        DerivedParams.from_dict({"max_samples": 1.5})
