"""Shadow skill: each forecast is scored against the depth observed when its time comes."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from edge_models.runtime import Forecast
from edge_models.station import DEPTH_NAME, MinuteHistory, ShadowSkill

T0 = datetime(2026, 7, 21, 12, 0, tzinfo=UTC)


def _forecast(depth_30: float, p15: float) -> Forecast:
    return Forecast(depth_30, depth_30, depth_30, p15, 0.0, "test")


def _history(depths: list[float | None], flag: int = 0) -> MinuteHistory:
    h = MinuteHistory()
    for k, d in enumerate(depths):
        h.add(DEPTH_NAME, T0 + timedelta(minutes=k), d, flag)
    return h


def test_forecasts_are_scored_when_due_with_hits_misses_and_false_alarms() -> None:
    shadow = ShadowSkill(threshold=0.5)
    depths: list[float | None] = [0.0] * 10 + [200.0] * 30 + [0.0] * 60
    h = _history(depths)
    shadow.record(T0, _forecast(200.0, 0.9))  # due at minute 30: depth 200, passed -> hit
    shadow.record(T0 + timedelta(minutes=5), _forecast(100.0, 0.1))  # passes: a miss
    shadow.record(T0 + timedelta(minutes=50), _forecast(30.0, 0.8))  # dry by then: false alarm
    shadow.score(h, T0 + timedelta(minutes=29))
    assert shadow.as_dict()["n"] == 0, "nothing is due before +30 min"
    shadow.score(h, T0 + timedelta(minutes=90))
    skill = shadow.as_dict()
    assert (skill["hits"], skill["misses"], skill["false_alarms"], skill["n"]) == (1, 1, 1, 3)
    # errors: 0 cm, (100 - 200) / 10 = -10 cm, 3 cm
    assert skill["rmse_cm"] == pytest.approx(math.sqrt((0 + 100 + 9) / 3), abs=1e-3)


def test_unobserved_minutes_are_not_scored_and_old_scores_roll_off() -> None:
    shadow = ShadowSkill(threshold=0.5, window_min=60)
    h = _history([10.0] * 30 + [None] + [10.0] * 200)
    shadow.record(T0, _forecast(10.0, 0.0))  # due at minute 30: missing
    shadow.record(T0 + timedelta(minutes=1), _forecast(20.0, 0.0))
    shadow.score(h, T0 + timedelta(minutes=40))
    assert shadow.as_dict()["n"] == 1 and shadow.unscored == 1
    assert shadow.as_dict()["rmse_cm"] == pytest.approx(1.0)
    shadow.score(h, T0 + timedelta(minutes=200))
    assert shadow.as_dict() == {"rmse_cm": None, "hits": 0, "misses": 0, "false_alarms": 0, "n": 0}


def test_wrong_depths_do_not_count_as_observed() -> None:
    shadow = ShadowSkill(threshold=0.5)
    shadow.record(T0, _forecast(0.0, 0.0))
    shadow.score(_history([0.0] * 40, flag=2), T0 + timedelta(minutes=40))
    assert shadow.as_dict()["n"] == 0 and shadow.unscored == 1


def test_the_latest_forecast_of_a_minute_is_the_one_scored() -> None:
    shadow = ShadowSkill(threshold=0.5)
    shadow.record(T0 + timedelta(seconds=10), _forecast(500.0, 0.0))
    shadow.record(T0 + timedelta(seconds=40), _forecast(0.0, 0.0))
    shadow.score(_history([0.0] * 40), T0 + timedelta(minutes=40))
    assert shadow.as_dict()["n"] == 1 and shadow.as_dict()["rmse_cm"] == 0.0
