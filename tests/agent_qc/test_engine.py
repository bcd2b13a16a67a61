"""QCEngine over sequences of readings: each fault gets the right flag and reason."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qc_readings import reading, series

from agent.derived import DerivedParams
from agent.errors import ConfigError
from agent.flags import Flag
from agent.qc import QCEngine, QCParams, qc_series
from roadside.records import DriverStatus


def run(engine: QCEngine, readings) -> list:
    return [fr for r in readings for fr in engine.process([r])]


def verdicts(flagged) -> list[tuple[int, str]]:
    return [(int(f.flag), f.reason) for f in flagged]


def test_clean_wind_is_correct() -> None:
    rng = np.random.default_rng(3)
    speeds = np.round(np.abs(8 + rng.normal(0, 1.5, 600)), 2)
    out = run(QCEngine(), series("wind_speed", speeds, dt_s=1.0))
    assert all(f.flag is Flag.CORRECT and f.reason == "" for f in out)


def test_stuck_wind_speed() -> None:
    out = run(QCEngine(), series("wind_speed", [7.3] * 80, dt_s=60.0))
    # judged once the history spans 95 % of the 60-min window (57 min)
    assert verdicts(out[:57]) == [(0, "")] * 57
    assert verdicts(out[57:]) == [(1, "stuck")] * 23


def test_calm_is_not_stuck() -> None:
    out = run(QCEngine(), series("wind_speed", [0.0] * 80, dt_s=60.0))
    assert all(f.flag is Flag.CORRECT for f in out)


def test_spike_flags_only_the_outlier() -> None:
    values = [8.0, 8.5, 9.0, 45.0, 8.7, 8.2]
    out = run(QCEngine(), series("wind_speed", values, dt_s=1.0))
    assert verdicts(out) == [(0, ""), (0, ""), (0, ""), (1, "step"), (0, ""), (0, "")]


def test_out_of_range_is_wrong() -> None:
    out = run(QCEngine(), series("wind_speed", [5.0, 99.0, -1.0], dt_s=1.0))
    assert verdicts(out)[1:] == [(2, "range"), (2, "range")]


def test_gap_flags_first_reading_after_silence() -> None:
    readings = [reading("water_depth", t, 0.0) for t in (0, 10, 20, 2000)]
    assert verdicts(run(QCEngine(), readings))[-1] == (1, "gap")


def test_driver_status_becomes_missing_with_status_reason() -> None:
    out = QCEngine().process(
        [
            reading("rain_total", 0, None, status=DriverStatus.TIMEOUT),
            reading("wind_dir", 0, None, status=DriverStatus.CHECKSUM_ERROR),
            reading("water_depth", 0, None),
        ]
    )
    assert verdicts(out) == [(8, "timeout"), (8, "checksum_error"), (8, "missing")]
    assert all(type(f.reason) is str for f in out)


def test_unknown_channel_not_checked_and_time_order() -> None:
    engine = QCEngine()
    assert verdicts(engine.process([reading("uptime", 0, 5.0)])) == [(9, "")]
    engine.process([reading("wind_speed", 10, 5.0)])
    assert verdicts(engine.process([reading("wind_speed", 5, 5.0)])) == [(2, "time")]


def test_counter_reset_backwards_and_by_status() -> None:
    values = [10.0, 10.1, 10.2, 0.0, 0.1]
    out = run(QCEngine(), series("rain_total", values))
    assert verdicts(out)[3] == (1, "counter_reset")
    assert all(f.flag is Flag.CORRECT for i, f in enumerate(out) if i != 3)
    status = QCEngine().process([reading("rain_total", 0, None, status=DriverStatus.COUNTER_RESET)])
    assert verdicts(status) == [(8, "counter_reset")]


def test_rain_spike_is_wrong_and_neighbours_pass() -> None:
    values = [5.0, 5.1, 500.0, 5.2, 5.3]
    out = verdicts(run(QCEngine(), series("rain_total", values)))
    assert out == [(0, ""), (0, ""), (2, "rain_rate"), (0, ""), (0, "")]


def test_double_tips_suspect_rate() -> None:
    values = [0.0, 3.0, 15.0, 15.2]  # 12 mm in one minute: suspect
    out = verdicts(run(QCEngine(), series("rain_total", values, dt_s=60.0)))
    assert out[2] == (1, "rain_rate") and out[3] == (0, "")


def test_inconsistent_gust_and_calm_direction() -> None:
    engine = QCEngine()
    out = engine.process(
        [
            reading("wind_speed", 0, 10.0),
            reading("wind_gust", 0, 6.0),
            reading("wind_dir", 0, 0.0),
        ]
    )
    assert verdicts(out) == [(0, ""), (1, "consistency"), (1, "consistency")]
    calm = engine.process([reading("wind_speed", 1, 0.0), reading("wind_dir", 1, 120.0)])
    assert verdicts(calm)[1] == (1, "consistency")


def test_depth_inherits_the_flag_of_its_distance() -> None:
    out = QCEngine().process(
        [reading("water_distance", 0, 100.0), reading("water_depth", 0, 2900.0)]
    )
    assert verdicts(out) == [(2, "range"), (2, "range")]


def _rain_and_depth(engine: QCEngine, depth_of, rain_of, minutes: int) -> list:
    out = []
    for m in range(minutes):
        engine.process([reading("rain_total", m * 60, rain_of(m), sensor="rain")])
        out += engine.process([reading("water_depth", m * 60, depth_of(m), sensor="level")])
    return out


def test_water_rising_without_rain_is_suspect() -> None:
    engine = QCEngine()
    out = _rain_and_depth(engine, lambda m: 2.0 * m, lambda m: 12.0, 40)  # drift 2 mm/min
    reasons = [f.reason for f in out]
    assert reasons[:10] == [""] * 10
    assert reasons[-5:] == ["consistency"] * 5


def test_water_rising_with_rain_passes() -> None:
    engine = QCEngine()
    out = _rain_and_depth(engine, lambda m: 2.0 * m, lambda m: 0.5 * m, 40)
    assert all(f.flag is Flag.CORRECT for f in out)


def test_water_blip_flagged_rise_rate() -> None:
    engine = QCEngine()
    out = _rain_and_depth(engine, lambda m: 400.0 if m == 20 else 1.0, lambda m: 0.5 * m, 25)
    assert verdicts(out)[20] == (1, "rise_rate")
    assert verdicts(out)[21] == (0, "")


def _faulty_series(channel: str, rng: np.random.Generator, n: int = 400) -> np.ndarray:
    base = {"wind_speed": 8.0, "wind_gust": 12.0, "water_depth": 40.0, "water_distance": 2900.0}
    if channel == "rain_total":
        values = np.round(np.cumsum(rng.poisson(0.5, n) * 0.1), 4)
        values[200:] -= values[199]  # a counter reset
    else:
        values = base[channel] + rng.normal(0, 2, n)
    spikes = rng.integers(0, n, 12)
    values[spikes] += {"rain_total": 60.0, "water_distance": -800.0}.get(channel, 45.0)
    values[100:180] = values[99]  # a long flat stretch
    values[rng.integers(0, n, 10)] = np.nan
    return values


@pytest.mark.parametrize(
    "channel", ["wind_speed", "wind_gust", "rain_total", "water_depth", "water_distance"]
)
def test_streaming_equals_batch(channel: str) -> None:
    """Reading by reading through the engine gives the flags of one pass over the series."""
    values = _faulty_series(channel, np.random.default_rng(7))
    times = np.arange(values.size) * 30.0
    readings = [
        reading(channel, t, None if np.isnan(v) else float(v))
        for t, v in zip(times, values, strict=True)
    ]
    streamed = verdicts(run(QCEngine(), readings))
    batch = qc_series(channel, times, values, QCParams())
    assert streamed == list(zip(batch.flags.tolist(), batch.reasons.tolist(), strict=True))
    assert any(flag in (1, 2) for flag, _ in streamed)  # the faults are caught


def test_history_is_bounded() -> None:
    params = QCParams(max_history=256)
    engine = QCEngine(params)
    run(engine, series("wind_speed", np.full(2000, 5.0) + np.arange(2000) % 3, dt_s=1.0))
    assert all(len(ring) <= 256 for ring in engine._series.values())


def test_params_from_dict() -> None:
    p = QCParams.from_dict(
        {"max_gap_s": 600, "channels": {"wind_speed": {"high": 60, "stuck_window_s": False}}}
    )
    lim = p.limits("wind_speed")
    assert p.max_gap_s == 600.0 and lim is not None and lim.high == 60.0
    assert lim.stuck_window_s is None and lim.max_step == 20.0


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"max_gapp_s": 1}, "qc.max_gapp_s: unknown key"),
        ({"channels": {"wind_speed": {"hihg": 1}}}, "qc.channels.wind_speed.hihg: unknown key"),
        ({"max_gap_s": "ten"}, "qc.max_gap_s: expected a number"),
        ({"rain_wrong_mm_min": 5}, "qc.rain_wrong_mm_min: must exceed"),
        ({"channels": {"wind_speed": {"low": 80}}}, "qc.channels.wind_speed.high: must exceed"),
    ],
)
def test_params_errors_name_the_key(table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        QCParams.from_dict(table)


qc_leaves = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=False), st.integers(), st.text(max_size=5)
)
qc_tables = st.recursive(
    qc_leaves,
    lambda inner: st.dictionaries(
        st.sampled_from(["channels", "wind_speed", "high", "low", "max_gap_s", "max_history", "x"]),
        inner,
        max_size=4,
    ),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["channels", "max_gap_s", "max_history", "calm_ms", "y"]), qc_tables
    )
)
def test_any_qc_table_loads_or_names_the_problem(table: dict) -> None:
    for load, prefix in ((QCParams.from_dict, "qc"), (DerivedParams.from_dict, "derived")):
        try:
            load(table)
        except ConfigError as exc:
            assert str(exc).startswith(prefix)
