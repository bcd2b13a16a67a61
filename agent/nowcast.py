"""The waterlogging nowcast inside the agent (issue 5 section 4).

:meth:`StationNowcast.build` loads the model named by ``[nowcast]`` (LiteRT, tflite-runtime or the
numpy pass of the same weights) for the site in ``[site]``; a model that cannot be loaded is
logged and the station runs without a forecast. The agent feeds it every batch of derived values
(:meth:`StationNowcast.step`, which returns a buffer record when a forecast is due), refills its
three-hour history from the buffer after a restart (:meth:`StationNowcast.refill`) and hands
:meth:`StationNowcast.current` to the warning rules. Each forecast is scored against the observed
depth when its time comes (:meth:`StationNowcast.shadow_skill`, also Prometheus gauges through
:meth:`StationNowcast.register_metrics`), so the fleet sees a station whose model drifts.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.buffer import Buffer
from agent.config import StationConfig
from agent.derived import DerivedValue
from edge_models.errors import NowcastError
from edge_models.features import WINDOW_MIN, SiteParams
from edge_models.runtime import Forecast, Nowcaster
from edge_models.station import DEPTH_NAME, RAIN_NAME, MinuteHistory, NowcastRunner, forecast_record
from roadside.contract import UNNUMBERED, Record
from roadside.structs import asdict

if TYPE_CHECKING:
    from agent.warnings import WarningRules

log = logging.getLogger(__name__)

REFILL_CHUNK = 2000


class StationNowcast:
    """One station's nowcast: the model, its minute history and the latest forecast."""

    def __init__(self, runner: NowcastRunner) -> None:
        self.runner = runner
        self.issued: datetime | None = None  # when the latest forecast was made

    @classmethod
    def build(
        cls, config: StationConfig, history: MinuteHistory | None = None
    ) -> StationNowcast | None:
        """The nowcast configured for ``config`` (None when disabled or the model won't load)."""
        nc = config.nowcast
        if not nc.enabled:
            return None
        backend = None if nc.backend == "auto" else nc.backend
        try:
            model = Nowcaster(nc.model, backend=backend)
        except NowcastError as exc:
            log.error("nowcast unavailable, running without a forecast: %s", exc)
            return None
        site = SiteParams.from_dict(asdict(config.site))
        runner = NowcastRunner(
            model,
            site,
            history,
            calm_interval_s=nc.interval_s,
            storm_interval_s=nc.storm_interval_s,
        )
        log.info("nowcast %s on %s", model.version, model.backend, extra={"MODEL": model.version})
        return cls(runner)

    @property
    def model(self) -> Nowcaster:
        return self.runner.nowcaster

    def rules(self, rules: WarningRules) -> WarningRules:
        """``rules`` with this model's tier thresholds (used unless the configuration sets
        ``warnings.forecast_probability``)."""
        t = self.model.tier_thresholds
        return dataclasses.replace(rules, model_thresholds=(float(t[0]), float(t[1])))

    def refill(self, buffer: Buffer, now: datetime) -> int:
        """Rebuild the minute history from buffered derived values (after a restart)."""
        seq = buffer.seq_since(now - timedelta(minutes=WINDOW_MIN + 1))
        n = 0
        while True:
            rows = buffer.records_since(seq, "derived", [RAIN_NAME, DEPTH_NAME], REFILL_CHUNK)
            if not rows:
                return n
            seq = rows[-1].seq + 1
            for r in rows:
                self.runner.history.add(r.channel or "", r.time, r.value, r.flag or 0)
            n += len(rows)

    def step(self, derived: Iterable[DerivedValue], now: datetime) -> Record | None:
        """Record ``derived``; the buffer record of a new forecast when one is due at ``now``."""
        try:
            forecast = self.runner.step(derived, now)
        except NowcastError as exc:
            log.warning("no forecast this time: %s", exc)
            return None
        if forecast is None:
            return None
        self.issued = now
        return Record(seq=UNNUMBERED, **forecast_record(forecast, now))

    def current(self, now: datetime, max_age_s: float) -> Forecast | None:
        """The latest forecast unless older than ``max_age_s``."""
        if self.issued is None or (now - self.issued).total_seconds() > max_age_s:
            return None
        return self.runner.last

    def shadow_skill(self) -> dict[str, Any]:
        """Rolling skill of the forecasts against what was observed when they came due:
        ``{"rmse_cm", "hits", "misses", "false_alarms", "n"}`` (the status message's
        ``nowcast_skill``; +30 min depth, 15 cm tier, last 24 h)."""
        return self.runner.shadow.as_dict()

    def register_metrics(self, registry: CollectorRegistry) -> Collector:
        """Expose the shadow skill as ``roadside_nowcast_shadow_*`` gauges on ``registry``.

        Returns the collector: ``registry.unregister`` it before registering a rebuilt nowcast.
        """
        collector = _ShadowCollector(self)
        registry.register(collector)
        return collector

    def status(self) -> dict[str, Any]:
        """Model, backend and the latest forecast, as plain data."""
        last = self.runner.last
        return {
            "model_version": self.model.version,
            "backend": self.model.backend,
            "tier_thresholds": list(self.model.tier_thresholds),
            "interval_s": self.runner.interval_s,
            "forecast": None
            if last is None
            else {**last.as_dict(), "issued": self.issued.isoformat() if self.issued else None},
        }


SHADOW_HELP = {
    "rmse_cm": "RMSE (cm) of +30 min depth forecasts against the observed depth, last 24 h",
    "hits": "15 cm tier forecasts that came true, last 24 h",
    "misses": "15 cm tier passings not forecast, last 24 h",
    "false_alarms": "15 cm tier forecasts that did not come true, last 24 h",
    "n": "Forecasts scored, last 24 h",
}
"""Prometheus help text of each shadow-skill gauge (``roadside_nowcast_shadow_<key>``)."""


class _ShadowCollector(Collector):
    """Reads the shadow skill at each scrape (so the gauges never go stale)."""

    def __init__(self, nowcast: StationNowcast) -> None:
        self.nowcast = nowcast

    def collect(self) -> Iterable[Metric]:
        skill = self.nowcast.shadow_skill()
        for key, text in SHADOW_HELP.items():
            name = "roadside_nowcast_shadow_" + ("scored" if key == "n" else key)
            value = skill[key]
            yield GaugeMetricFamily(name, text, value=math.nan if value is None else float(value))
