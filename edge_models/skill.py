"""Forecast skill: RMSE, NSE and tier contingency scores, for the model and its baselines."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edge_models.model import HORIZONS_MIN


@dataclass(frozen=True)
class Skill:
    """Skill of one forecaster at one lead time (depths in cm)."""

    forecaster: str
    horizon_min: int
    rmse_cm: float
    nse: float
    mae_cm: float

    def as_dict(self) -> dict[str, float | str | int]:
        return asdict(self)


@dataclass(frozen=True)
class TierSkill:
    """Contingency scores of 'passes the tier within the hour' forecasts."""

    forecaster: str
    tier_cm: int
    hit_rate: float  # hits / observed events (probability of detection)
    false_alarm_ratio: float  # false alarms / forecast events
    events: int
    n: int

    def as_dict(self) -> dict[str, float | str | int]:
        return asdict(self)


def rmse(forecast: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(forecast, float) - truth) ** 2)))


def nse(forecast: np.ndarray, truth: np.ndarray) -> float:
    """Nash-Sutcliffe efficiency: 1 - SSE / variance of the truth about its mean (NaN if flat)."""
    truth = np.asarray(truth, float)
    denom = float(np.sum((truth - truth.mean()) ** 2))
    if denom == 0.0:
        return float("nan")
    return 1.0 - float(np.sum((np.asarray(forecast, float) - truth) ** 2)) / denom


def depth_skill(name: str, forecast_mm: np.ndarray, truth_mm: np.ndarray) -> list[Skill]:
    """Skill at each horizon of ``(N, 3)`` depth forecasts against ``(N, 3)`` truths (mm)."""
    return [
        Skill(
            name,
            h,
            rmse(forecast_mm[:, k], truth_mm[:, k]) / 10.0,
            nse(forecast_mm[:, k], truth_mm[:, k]),
            float(np.mean(np.abs(forecast_mm[:, k] - truth_mm[:, k]))) / 10.0,
        )
        for k, h in enumerate(HORIZONS_MIN)
    ]


def tier_skill(name: str, tier_cm: int, forecast: np.ndarray, observed: np.ndarray) -> TierSkill:
    """Hit rate and false-alarm ratio of boolean event forecasts."""
    forecast, observed = np.asarray(forecast, bool), np.asarray(observed, bool)
    hits = int(np.sum(forecast & observed))
    events, alarms = int(observed.sum()), int(forecast.sum())
    return TierSkill(
        name,
        tier_cm,
        hits / events if events else float("nan"),
        (alarms - hits) / alarms if alarms else 0.0,
        events,
        int(observed.size),
    )
