"""Forecast skill: RMSE, NSE and tier contingency scores, for the model and its baselines."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edge_models.dataset import Samples
from edge_models.model import HORIZONS_MIN, TIER_HORIZON_MIN, TIERS_MM


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
    """Contingency scores of 'passes the tier within TIER_HORIZON_MIN' forecasts."""

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


def compare(
    model_depth_mm: np.ndarray, model_tier: np.ndarray, test: Samples
) -> dict[str, list[dict[str, Any]]]:
    """Skill tables of the model's forecasts and of both baselines on the same samples.

    ``model_depth_mm`` ``(N, 3)``; ``model_tier`` ``(N, 2)`` booleans (tier forecast within the
    hour). Persistence forecasts a tier when the observed depth is already past it.
    """
    depth = {"model": model_depth_mm, "persistence": test.persistence, "physics": test.physics}
    persistence_tier = np.stack([test.persistence[:, 0] > t for t in TIERS_MM], axis=-1)
    tiers = {"model": model_tier, "persistence": persistence_tier, "physics": test.physics_tier}
    return {
        "depth": [s.as_dict() for k, f in depth.items() for s in depth_skill(k, f, test.depth)],
        "tier": [
            tier_skill(k, int(t / 10), f[:, j], test.tier[:, j]).as_dict()
            for k, f in tiers.items()
            for j, t in enumerate(TIERS_MM)
        ],
    }


def markdown(skill: dict[str, list[dict[str, Any]]]) -> str:
    """The skill tables of :func:`compare` as Markdown."""
    lines = ["| forecaster | lead | RMSE (cm) | MAE (cm) | NSE |", "|---|---|---|---|---|"]
    for s in skill["depth"]:
        lines.append(
            f"| {s['forecaster']} | +{s['horizon_min']} min | {s['rmse_cm']:.2f} "
            f"| {s['mae_cm']:.2f} | {s['nse']:.3f} |"
        )
    lines += [
        "",
        f"| forecaster | tier passed within {TIER_HORIZON_MIN} min | hit rate "
        "| false-alarm ratio | events / samples |",
        "|---|---|---|---|---|",
    ]
    for t in skill["tier"]:
        lines.append(
            f"| {t['forecaster']} | {t['tier_cm']} cm | {t['hit_rate']:.3f} "
            f"| {t['false_alarm_ratio']:.3f} | {t['events']} / {t['n']} |"
        )
    return "\n".join(lines)
