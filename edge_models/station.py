"""Glue for the agent: keep the nowcast's history from derived values and run it on schedule.

The agent hands every batch of derived values to :meth:`NowcastRunner.step` (or rebuilds the
history from buffer rows after a restart with :meth:`MinuteHistory.from_rows`); ``step`` returns a
:class:`~edge_models.runtime.Forecast` when one is due: every :data:`CALM_INTERVAL_S` seconds,
every :data:`STORM_INTERVAL_S` while it rains, water stands or a tier looks likely (both
intervals can be set per runner).
:func:`forecast_record` gives the fields of the buffer record (kind ``forecast``, synced like
readings); ``Nowcaster.version`` belongs in the station's reported state.

Wiring in ``agent.runner`` (sketch): build ``NowcastRunner(Nowcaster(), SiteParams.from_dict(
config.site))`` at start; feed the replayed derived values to ``runner.history.update`` after a
restart; in each processing step ``f = runner.step(derived, now)``, append
``BufferRecord(**forecast_record(f, now))`` when ``f`` is not None, and pass ``runner.last`` to
``agent.warnings.evaluate`` as the forecast. Catch ``edge_models.errors.NowcastError`` at start
(no model: run without a forecast).

History minutes: a value with time ``t`` belongs to the minute ending at or after ``t`` (``t``
rounded up to the minute); the last value of a minute wins. A minute without a value is missing
(flag 8) and is masked by the features like any flagged value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from edge_models.features import (
    FEATURES,
    WINDOW_MIN,
    FeatureInput,
    SiteLike,
    features_from_history,
)
from edge_models.runtime import Forecast, Nowcaster

RAIN_NAME = "rain_1min"  # derived names (agent.derived) the history is built from
DEPTH_NAME = "water_depth"
CALM_INTERVAL_S = 60.0
STORM_INTERVAL_S = 20.0
MISSING = 8
FORECAST_CHANNEL = "water_depth_30min"
_RAIN_10 = FEATURES.index("rain_10min_mm")
_DEPTH = FEATURES.index("depth_mm")


class DerivedLike(Protocol):
    """What the runner reads from an agent.derived.DerivedValue."""

    @property
    def name(self) -> str: ...
    @property
    def time(self) -> datetime: ...
    @property
    def value(self) -> float | None: ...
    @property
    def flag(self) -> int: ...


def _minute(t: datetime) -> int:
    """Index of the minute ending at or after ``t`` (minutes since the Unix epoch)."""
    return math.ceil(t.timestamp() / 60.0 - 1e-9)


class MinuteHistory:
    """The last :data:`WINDOW_MIN` minutes of rain and depth, as the features want them."""

    def __init__(self) -> None:
        self._series: dict[str, dict[int, tuple[float, int]]] = {RAIN_NAME: {}, DEPTH_NAME: {}}

    def add(self, name: str, time: datetime, value: float | None, flag: int) -> None:
        """Record one value (ignored unless ``name`` is rain_1min or water_depth)."""
        series = self._series.get(name)
        if series is None:
            return
        v = math.nan if value is None else float(value)
        series[_minute(time)] = (v, int(flag) if value is not None else MISSING)

    def update(self, derived: Iterable[DerivedLike]) -> None:
        """Record a batch of derived values."""
        for d in derived:
            self.add(d.name, d.time, d.value, int(d.flag))

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> MinuteHistory:
        """Rebuild from buffer rows of derived values (keys channel or name, time, value, flag)."""
        h = cls()
        for row in rows:
            t = row["time"]
            if isinstance(t, str):
                t = datetime.fromisoformat(t)
            if t.tzinfo is None:
                t = t.replace(tzinfo=UTC)
            flag = row.get("flag")
            h.add(str(row.get("channel") or row.get("name")), t, row["value"], flag or 0)
        return h

    def window(self, now: datetime) -> FeatureInput:
        """History ending at the last complete minute before ``now``; drops older minutes."""
        end = math.floor(now.timestamp() / 60.0 + 1e-9)
        minutes = range(end - WINDOW_MIN + 1, end + 1)
        arrays = []
        for name in (RAIN_NAME, DEPTH_NAME):
            series = self._series[name]
            for old in [m for m in series if m < minutes.start]:
                del series[old]
            values = [series.get(m, (math.nan, MISSING)) for m in minutes]
            arrays.append(np.array([v for v, _ in values]))
            arrays.append(np.array([f for _, f in values], dtype=np.int8))
        return FeatureInput(*arrays)


class NowcastRunner:
    """Runs the nowcast for one station: feed it derived values, get forecasts when due."""

    def __init__(
        self,
        nowcaster: Nowcaster,
        site: SiteLike,
        history: MinuteHistory | None = None,
        *,
        calm_interval_s: float = CALM_INTERVAL_S,
        storm_interval_s: float = STORM_INTERVAL_S,
    ):
        self.nowcaster = nowcaster
        self.site = site
        self.history = history or MinuteHistory()
        self.calm_interval_s = calm_interval_s
        self.storm_interval_s = storm_interval_s
        self.last: Forecast | None = None
        self._last_run: datetime | None = None
        self._stormy = False

    @property
    def interval_s(self) -> float:
        """Seconds between forecasts now (shorter in storms)."""
        return self.storm_interval_s if self._stormy else self.calm_interval_s

    def due(self, now: datetime) -> bool:
        if self._last_run is None:
            return True
        return (now - self._last_run).total_seconds() >= self.interval_s - 1e-6

    def step(self, derived: Iterable[DerivedLike], now: datetime) -> Forecast | None:
        """Record ``derived``; return a new forecast if one is due at ``now``."""
        self.history.update(derived)
        if not self.due(now):
            return None
        x = features_from_history(self.history.window(now), self.site)
        forecast = self.nowcaster.predict_features(x)
        self._stormy = x[_RAIN_10] > 0.0 or x[_DEPTH] > 10.0 or forecast.p_15cm > 0.1
        self._last_run, self.last = now, forecast
        return forecast


def forecast_payload(forecast: Forecast, issued: datetime) -> dict[str, Any]:
    """The forecast as a buffer/uplink payload (JSON-ready)."""
    return {"issued": issued.isoformat(), **forecast.as_dict()}


def forecast_record(forecast: Forecast, issued: datetime) -> dict[str, Any]:
    """Fields of the buffer record for a forecast: ``agent.buffer.BufferRecord(**fields)``.

    The value is the +30 min depth (channel ``water_depth_30min``); the payload holds the rest.
    """
    return {
        "kind": "forecast",
        "time": issued,
        "channel": FORECAST_CHANNEL,
        "value": forecast.depth_30_mm,
        "unit": "mm",
        "payload": forecast_payload(forecast, issued),
    }
