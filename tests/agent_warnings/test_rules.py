"""Warning rules: instant raises, held downgrades, no flapping, flags respected, forecast first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.derived import DerivedValue
from agent.errors import ConfigError
from agent.flags import Flag
from agent.warnings import (
    WarningRules,
    WarningState,
    check_thresholds_safe,
    evaluate,
)

T0 = datetime(2026, 7, 21, 12, tzinfo=UTC)
RULES = WarningRules(hold_s=1800.0)


def dv(
    name: str, value: float | None, flag: Flag = Flag.CORRECT, at: datetime = T0
) -> DerivedValue:
    return DerivedValue(name, at, value, "", flag, 1.0, 3600.0, "s1")


@dataclass
class FakeForecast:
    depth_15_mm: float = 0.0
    depth_30_mm: float = 0.0
    depth_60_mm: float = 0.0
    p_15cm: float = 0.0
    p_30cm: float = 0.0
    model_version: str = "test"


def run(values: list[float], product: str, step_s: float = 60.0, flag: Flag = Flag.CORRECT):
    state, events = WarningState(), []
    for i, v in enumerate(values):
        now = T0 + timedelta(seconds=i * step_s)
        state, new = evaluate(state, {product: dv(product, v, flag, now)}, None, now, RULES)
        events += [(i, e.kind, e.level) for e in new if e.signal != "waterlogging"]
    return state, events


def test_raise_and_upgrade_are_immediate() -> None:
    _, events = run([10, 36, 36, 55, 85], "rain_1h")
    assert events == [(1, "raise", "blue"), (3, "upgrade", "yellow"), (4, "upgrade", "orange")]


def test_downgrade_and_cancel_wait_for_the_hold() -> None:
    values = [55] + [40] * 40 + [0] * 40  # yellow, then blue-level rain, then dry
    _, events = run(values, "rain_1h")
    assert events[0] == (0, "raise", "yellow")
    assert events[1] == (31, "downgrade", "blue")  # 30 min after falling below yellow
    assert events[2] == (71, "cancel", "none")
    assert len(events) == 3


def test_no_flapping_on_noisy_series_around_threshold() -> None:
    rng = np.random.default_rng(5)
    noisy = list(35 + rng.normal(0, 1.5, 300))
    _, events = run(noisy, "rain_1h")
    assert [e[1] for e in events] == ["raise"]


def test_wrong_or_missing_inputs_never_raise() -> None:
    assert run([200.0] * 5, "rain_1h", flag=Flag.WRONG)[1] == []
    assert run([200.0] * 5, "rain_1h", flag=Flag.MISSING)[1] == []
    assert run([200.0] * 5, "rain_1h", flag=Flag.SUSPECT)[1][0][1] == "raise"


def test_missing_data_does_not_cancel() -> None:
    state, _ = run([60.0], "rain_1h")
    for i in range(1, 200):
        now = T0 + timedelta(minutes=i)
        state, events = evaluate(state, {}, None, now, RULES)
        assert events == []
    assert state.level("rainstorm") == "yellow"


def test_gale_by_gust_or_mean() -> None:
    _, events = run([14.0], "wind_gust_3s")  # force 7 gust
    assert events == [(0, "raise", "blue")]
    _, events = run([17.5], "wind_speed_10min")  # force 8 mean
    assert events == [(0, "raise", "yellow")]


def test_presets_differ() -> None:
    national = WarningRules.from_dict({"rainstorm": {"preset": "national"}})
    derived = {"rain_1h": dv("rain_1h", 40.0), "rain_3h": dv("rain_3h", 40.0)}
    _, shanghai_events = evaluate(WarningState(), derived, None, T0, WarningRules())
    _, national_events = evaluate(WarningState(), derived, None, T0, national)
    assert [e.level for e in shanghai_events] == ["blue"]
    assert national_events == []


def test_forecast_tier_raises_before_observed() -> None:
    state = WarningState()
    now = T0
    depth = {"water_depth": dv("water_depth", 40.0)}
    state, events = evaluate(state, depth, FakeForecast(depth_30_mm=180.0), now, RULES)
    assert [(e.kind, e.level, e.certainty, e.evidence["basis"]) for e in events] == [
        ("raise", "blue", "Likely", "forecast")
    ]
    later = now + timedelta(minutes=30)
    deep = {"water_depth": dv("water_depth", 320.0, at=later)}
    state, events = evaluate(state, deep, FakeForecast(), later, RULES)
    assert [(e.kind, e.level, e.certainty) for e in events] == [("upgrade", "yellow", "Observed")]


def test_tier_probability_raises() -> None:
    _, events = evaluate(WarningState(), {}, FakeForecast(p_30cm=0.7), T0, RULES)
    assert [(e.signal, e.level) for e in events] == [("waterlogging", "yellow")]
    probability_only = WarningRules.from_dict({"forecast_horizons": []})
    _, events = evaluate(WarningState(), {}, FakeForecast(p_15cm=0.6), T0, probability_only)
    assert [(e.signal, e.level) for e in events] == [("waterlogging", "blue")]


def test_event_carries_evidence() -> None:
    _, events = evaluate(
        WarningState(), {"rain_1h": dv("rain_1h", 52.0, Flag.SUSPECT)}, None, T0, RULES
    )
    (event,) = events
    assert event.rule == "rainstorm.shanghai"
    assert event.evidence["level_thresholds"] == {"rain_1h": 50.0, "rain_6h": 80.0}
    assert event.evidence["inputs"]["rain_1h"]["flag"] == 1
    assert event.evidence["inputs"]["rain_1h"]["value"] == 52.0


def test_default_thresholds_are_safe() -> None:
    assert check_thresholds_safe(WarningRules()) == []
    assert (
        check_thresholds_safe(WarningRules.from_dict({"rainstorm": {"preset": "national"}})) == []
    )


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"rainstorm": {"levels": {"blue": {"rain_1h": 5000}}}}, "can never be reached"),
        ({"gale": {"levels": {"blue": {"wind_gust_3s": -3}}}}, "not positive"),
        ({"waterlogging": {"levels": {}}}, "no levels"),
        (
            {"rainstorm": {"levels": {"blue": {"rain_1h": 50}, "yellow": {"rain_1h": 30}}}},
            "below blue",
        ),
        ({"hold_s": 10 * 86400}, "never lapse"),
        ({"stale_s": 0}, "count as missing"),
        ({"min_completeness": 2}, "no wind mean"),
        ({"release_fraction": 0}, "release_fraction"),
    ],
)
def test_unsafe_thresholds_are_reported(table: dict, fragment: str) -> None:
    problems = check_thresholds_safe(WarningRules.from_dict(table))
    assert any(fragment in p for p in problems), problems


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"rainstrom": {}}, r"warnings\.rainstrom: unknown key"),
        ({"rainstorm": {"preset": "tokyo"}}, r"warnings\.rainstorm\.preset: unknown preset"),
        ({"gale": {"levels": {"purple": {}}}}, r"warnings\.gale\.levels\.purple: unknown level"),
        (
            {"gale": {"levels": {"blue": {"wind_speed": 3}}}},
            r"warnings\.gale\.levels\.blue\.wind_speed: unknown derived product",
        ),
    ],
)
def test_config_errors_name_the_key(table: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WarningRules.from_dict(table)


def test_release_band_downgrades_instead_of_cancelling() -> None:
    values = [55] + [33] * 40  # 33 mm is below blue's 35 but above its release (31.5)
    _, events = run(values, "rain_1h")
    assert events == [(0, "raise", "yellow"), (31, "downgrade", "blue")]


def test_forecast_that_comes_true_becomes_observed() -> None:
    state, _ = evaluate(WarningState(), {}, FakeForecast(depth_15_mm=200.0), T0, RULES)
    assert state.signals["waterlogging"].certainty == "Likely"
    later = T0 + timedelta(minutes=15)
    state, events = evaluate(
        state, {"water_depth": dv("water_depth", 160.0, at=later)}, None, later, RULES
    )
    assert events == [] and state.signals["waterlogging"].certainty == "Observed"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 120), min_size=1, max_size=150), st.sampled_from([60.0, 300.0]))
def test_no_downgrade_within_hold_of_last_change(values: list[float], step_s: float) -> None:
    """Whatever the data, a signal never goes down sooner than hold_s after it last changed, and
    every raise or upgrade is backed by an input that reached the new level's threshold."""
    state, last_change = WarningState(), None
    for i, v in enumerate(values):
        now = T0 + timedelta(seconds=i * step_s)
        state, events = evaluate(state, {"rain_1h": dv("rain_1h", v, at=now)}, None, now, RULES)
        for e in (e for e in events if e.signal == "rainstorm"):
            if e.kind in ("downgrade", "cancel"):
                assert last_change is not None
                assert (now - last_change).total_seconds() >= RULES.hold_s
            else:
                assert v >= RULES.rainstorm.levels[e.level]["rain_1h"]
            last_change = now


def test_stale_inputs_neither_raise_nor_cancel() -> None:
    old = dv("rain_1h", 90.0, at=T0 - timedelta(hours=1))
    _, events = evaluate(WarningState(), {"rain_1h": old}, None, T0, RULES)
    assert events == []
    state, _ = run([60.0], "rain_1h")
    last = dv("rain_1h", 0.0, at=T0)  # the gauge's last word, then silence
    for minutes in range(20, 200, 10):
        now = T0 + timedelta(minutes=minutes)
        state, events = evaluate(state, {"rain_1h": last}, None, now, RULES)
        assert events == []
    assert state.level("rainstorm") == "yellow"


CONFIG_KEYS = ["rainstorm", "gale", "preset", "levels", "blue", "red", "rain_1h", "hold_s",
               "forecast_horizons", "water_depth", "x"]  # fmt: skip
TOP_KEYS = ["rainstorm", "gale", "waterlogging", "hold_s", "forecast_horizons", "bogus"]
scalars = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=False), st.integers(), st.text(max_size=8)
)
config_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(CONFIG_KEYS), inner, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(TOP_KEYS), config_values))
def test_any_table_loads_or_names_the_problem(table: dict) -> None:
    try:
        rules = WarningRules.from_dict(table)
    except ConfigError as exc:
        assert str(exc).startswith("warnings")
    else:
        check_thresholds_safe(rules)
        evaluate(WarningState(), {}, FakeForecast(), T0, rules)


def test_configured_tiers_keep_the_forecast_probability_warnings() -> None:
    # another tier set than the shipped 150/300 mm: 200 mm reads the 30 cm probability (the
    # lowest model tier at or above it), 400 mm is above every model tier (depth only)
    rules = WarningRules.from_dict(
        {
            "forecast_horizons": [],
            "waterlogging": {
                "levels": {"blue": {"water_depth": 200}, "yellow": {"water_depth": 400}}
            },
        }
    )
    _, events = evaluate(WarningState(), {}, FakeForecast(p_30cm=0.7), T0, rules)
    assert [(e.signal, e.level) for e in events] == [("waterlogging", "blue")]
    # a 15 cm probability says nothing about 20 cm: no warning from it
    _, events = evaluate(WarningState(), {}, FakeForecast(p_15cm=0.9), T0, rules)
    assert events == []
