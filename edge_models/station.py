"""Glue for the agent: keep the nowcast's history from derived values and run it on schedule.

The agent hands every batch of derived values to :meth:`NowcastRunner.step` (or rebuilds the
history from buffer rows after a restart with :meth:`MinuteHistory.from_rows`); ``step`` returns a
:class:`~edge_models.runtime.Forecast` when one is due: every :data:`CALM_INTERVAL_S` seconds,
every :data:`STORM_INTERVAL_S` while it rains, water stands or a tier looks likely (both
intervals can be set per runner).
:class:`ShadowSkill` scores each forecast against the observed depth when its time comes.
:func:`forecast_record` gives the fields of the buffer record (kind ``forecast``, synced like
readings); ``Nowcaster.version`` belongs in the station's reported state.

Wiring in ``agent.runner`` (sketch): build ``NowcastRunner(Nowcaster(), SiteParams.from_dict(
config.site))`` at start; feed the replayed derived values to ``runner.history.update`` after a
restart; in each processing step ``f = runner.step(derived, now)``, append
``Record(seq=UNNUMBERED, **forecast_record(f, now))`` when ``f`` is not None, and pass
``runner.last`` to ``agent.warnings.evaluate`` as the forecast. Catch
``edge_models.errors.NowcastError`` at start (no model: run without a forecast).

History minutes: a value with time ``t`` belongs to the minute ending at or after ``t`` (``t``
rounded up to the minute); the last value of a minute wins. A minute without a value is missing
(flag 8) and is masked by the features like any flagged value.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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

    def value(self, name: str, minute: int) -> tuple[float, int] | None:
        """The value and flag of ``name`` at a minute index (None when nothing was recorded)."""
        return self._series[name].get(minute)

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


SHADOW_WINDOW_MIN = 24 * 60
"""Shadow skill is over the forecasts that came due in the last day."""
SHADOW_HORIZON_MIN = 30
SHADOW_TIER_MM = 150.0
_GOOD_FLAGS = (0, 1, 3, 4, 9)  # flag digits whose depth counts as observed (not wrong/missing)


@dataclass
class _Scored:
    due: int  # minute index the forecast was for
    sq_err_cm2: float
    warned: bool
    observed: bool


class ShadowSkill:
    """Each forecast scored against the observed depth when its time comes (+30 min).

    :meth:`record` keeps the latest forecast of each minute; :meth:`score` scores those whose
    +30 min has passed against the observed depth then (squared error) and the highest observed
    depth over the 30 minutes (15 cm tier: hit, miss, false alarm). Forecasts whose minute has
    no good observation are dropped unscored. Skill is over the last :data:`SHADOW_WINDOW_MIN`.
    """

    def __init__(self, threshold: float, window_min: int = SHADOW_WINDOW_MIN) -> None:
        self.threshold = threshold
        self.window_min = window_min
        self._pending: dict[int, tuple[float, bool]] = {}  # issue minute -> (depth +30, warned)
        self._scored: deque[_Scored] = deque()
        self.unscored = 0

    def record(self, issued: datetime, forecast: Forecast) -> None:
        minute = math.floor(issued.timestamp() / 60.0 + 1e-9)
        self._pending[minute] = (forecast.depth_30_mm, forecast.p_15cm >= self.threshold)

    def score(self, history: MinuteHistory, now: datetime) -> None:
        """Score the forecasts due by ``now`` (the last complete minute)."""
        end = math.floor(now.timestamp() / 60.0 + 1e-9)
        for issued in sorted(m for m in self._pending if m + SHADOW_HORIZON_MIN <= end):
            depth_30, warned = self._pending.pop(issued)
            due = issued + SHADOW_HORIZON_MIN
            seen = [history.value(DEPTH_NAME, m) for m in range(issued + 1, due + 1)]
            good = [v for v, f in (s for s in seen if s is not None) if f in _GOOD_FLAGS]
            at_due = seen[-1]
            if at_due is None or at_due[1] not in _GOOD_FLAGS or not math.isfinite(at_due[0]):
                self.unscored += 1
                continue
            err_cm = (depth_30 - at_due[0]) / 10.0
            passed = max(good) > SHADOW_TIER_MM
            self._scored.append(_Scored(due, err_cm * err_cm, warned, passed))
        while self._scored and self._scored[0].due <= end - self.window_min:
            self._scored.popleft()

    def as_dict(self) -> dict[str, float | int | None]:
        """``{"rmse_cm", "hits", "misses", "false_alarms", "n"}`` (rmse None before any)."""
        n = len(self._scored)
        s = self._scored
        return {
            "rmse_cm": round(math.sqrt(sum(x.sq_err_cm2 for x in s) / n), 3) if n else None,
            "hits": sum(1 for x in s if x.warned and x.observed),
            "misses": sum(1 for x in s if x.observed and not x.warned),
            "false_alarms": sum(1 for x in s if x.warned and not x.observed),
            "n": n,
        }


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
        self.shadow = ShadowSkill(float(nowcaster.tier_thresholds[0]))

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
        self.shadow.score(self.history, now)
        if not self.due(now):
            return None
        x = features_from_history(self.history.window(now), self.site)
        forecast = self.nowcaster.predict_features(x)
        self._stormy = x[_RAIN_10] > 0.0 or x[_DEPTH] > 10.0 or forecast.p_15cm > 0.1
        self._last_run, self.last = now, forecast
        self.shadow.record(now, forecast)
        return forecast


def forecast_payload(forecast: Forecast, issued: datetime) -> dict[str, Any]:
    """The forecast as a buffer/uplink payload (JSON-ready)."""
    return {"issued": issued.isoformat(), **forecast.as_dict()}


def forecast_record(forecast: Forecast, issued: datetime) -> dict[str, Any]:
    """Fields of the record for a forecast, by name: ``roadside.contract.Record(seq=UNNUMBERED,
    **fields)`` (the buffer numbers it).

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
