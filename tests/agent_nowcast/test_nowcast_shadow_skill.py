"""The station scores its own forecasts: shadow skill as a plain dict and as Prometheus gauges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from agent.derived import DerivedValue
from agent.flags import Flag
from agent.nowcast import StationNowcast
from edge_models.features import SiteParams
from edge_models.runtime import Nowcaster
from edge_models.station import NowcastRunner
from sim.spec import SiteSpec
from sim.weather.ponding import simulate_ponding
from sim.weather.rain import chicago_hyetograph

T0 = datetime(2026, 7, 21, 12, 0, tzinfo=UTC)


def _derived(name: str, t: datetime, value: float, unit: str) -> DerivedValue:
    return DerivedValue(name, t, value, unit, Flag.CORRECT, 1.0, 60.0, "s")


def test_a_storm_is_scored_as_it_happens_and_exported() -> None:
    site = SiteSpec()
    rain = np.concatenate([np.zeros(30), chicago_hyetograph(20, 120), np.zeros(90)])
    depth = simulate_ponding(rain, 60.0, site)
    nowcast = StationNowcast(NowcastRunner(Nowcaster(), SiteParams()))
    registry = CollectorRegistry()
    collector = nowcast.register_metrics(registry)
    assert nowcast.shadow_skill()["n"] == 0
    assert "roadside_nowcast_shadow_rmse_cm NaN" in generate_latest(registry).decode()
    for m in range(rain.size):
        now = T0 + timedelta(minutes=m)
        nowcast.step(
            [
                _derived("rain_1min", now, rain[m] / 60.0, "mm"),
                _derived("water_depth", now, depth[m], "mm"),
            ],
            now,
        )
    skill = nowcast.shadow_skill()
    assert set(skill) == {"rmse_cm", "hits", "misses", "false_alarms", "n"}
    # one scored forecast per minute once the first +30 min has passed
    assert skill["n"] == rain.size - 30
    assert skill["hits"] > 0 and skill["hits"] + skill["misses"] == int(
        sum(depth[m + 1 : m + 31].max() > 150.0 for m in range(rain.size - 30))
    )
    assert 0.0 < skill["rmse_cm"] < 10.0
    text = generate_latest(registry).decode()
    assert f"roadside_nowcast_shadow_scored {float(skill['n'])}" in text
    assert f"roadside_nowcast_shadow_hits {float(skill['hits'])}" in text
    registry.unregister(collector)  # a rebuilt nowcast registers its own
    StationNowcast(NowcastRunner(Nowcaster(), SiteParams())).register_metrics(registry)
    assert "roadside_nowcast_shadow_scored 0.0" in generate_latest(registry).decode()
