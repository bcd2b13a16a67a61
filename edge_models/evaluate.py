"""Honest evaluation: leave-one-family-out, held-out sites, event-level scores.

- :func:`lofo` trains a network without one storm family and scores it on every storm of that
  family, for each family in turn (and for each :class:`Variant`: the hybrid, i.e. the network on
  the point model's outlook clipped to the physical limits, and the pure network on the station
  features alone);
- :func:`scores` gives the per-sample skill at +30 min (RMSE, NSE, 15 cm tier hit rate and
  false-alarm ratio) of a forecaster and of both baselines (persistence; the point model with the
  current rain held), plus event scores over storms: the share of storms that never reach 15 cm
  but were warned, the median lead time on those that do, and flapping (warnings dropped and
  raised again within a storm).

A *warning* is an issue time whose 15 cm tier is forecast (probability at the threshold chosen on
the validation storms). The lead of a storm that reaches 15 cm is the time from the start of the
warning that is on at the last issue before the water passes 15 cm to that passing; a storm not
warned then has lead 0 (a miss).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_models import guards
from edge_models.dataset import PHYS_HELD, DatasetConfig, Samples
from edge_models.features import N_BASE_FEATURES, N_FEATURES
from edge_models.model import TIERS_MM, Net
from edge_models.skill import nse, rmse, tier_skill
from edge_models.train import TrainConfig, fit, pick_threshold

TIER_MM = TIERS_MM[0]


@dataclass(frozen=True)
class Variant:
    """A forecaster to train: the features it sees, whether it is clipped, what it corrects."""

    name: str
    n_features: int
    guarded: bool
    anchor: tuple[int, ...] | None = None


HYBRID = Variant("hybrid", N_FEATURES, True, tuple(PHYS_HELD))
PURE = Variant("pure", N_BASE_FEATURES, False)


def predict(net: Net, data: Samples, variant: Variant) -> tuple[np.ndarray, np.ndarray]:
    """Depth (mm, ``(N, 3)``) and tier probabilities of ``variant``'s network on ``data``."""
    if variant.guarded:
        return guards.forward(net, data.x)
    depth_m, prob = net.forward(data.x[:, : variant.n_features])
    return depth_m * 1000.0, prob


def events(
    data: Samples, warned: np.ndarray, truth_max: dict[int, float], reach_min: dict[int, int]
):
    """Event scores over the storms in ``data`` (see the module docstring)."""
    never, never_warned, leads, flaps = 0, 0, [], []
    for sid in np.unique(data.storm).tolist():
        rows = data.storm == sid
        w = warned[rows]
        minutes = data.minute[rows]
        raised = np.flatnonzero(w[1:] & ~w[:-1]) + 1
        flaps.append(max(len(raised) + int(w[0]) - 1, 0) if w.any() else 0)
        if truth_max[sid] <= TIER_MM:
            never += 1
            never_warned += int(w.any())
            continue
        before = np.flatnonzero(minutes <= reach_min[sid])
        if before.size == 0 or not w[before[-1]]:
            leads.append(0.0)
            continue
        k = before[-1]
        while k > 0 and w[k - 1]:
            k -= 1
        leads.append(float(reach_min[sid] - minutes[k]))
    return {
        "never_reached": never,
        "never_reached_warned": never_warned / never if never else float("nan"),
        "reached": len(leads),
        "median_lead_min": float(np.median(leads)) if leads else float("nan"),
        "missed_storms": int(sum(1 for v in leads if v == 0.0)),
        "flaps_per_storm": float(np.mean(flaps)) if flaps else 0.0,
    }


def scores(
    data: Samples,
    depth_mm: np.ndarray,
    warned: np.ndarray,
    storm_truth: dict[int, tuple[float, int]],
) -> dict[str, Any]:
    """Skill at +30 min of one forecaster and of both baselines on ``data``."""
    truth = data.depth[:, 1]
    tier_obs = data.tier[:, 0]
    hit = tier_skill("model", 15, warned, tier_obs)
    pers = rmse(data.persistence[:, 1], truth) / 10.0
    model = rmse(depth_mm[:, 1], truth) / 10.0
    peak = {k: v[0] for k, v in storm_truth.items()}
    reach = {k: v[1] for k, v in storm_truth.items()}
    return {
        "rmse_cm": model,
        "persistence_rmse_cm": pers,
        "ratio": model / pers if pers > 0 else float("nan"),
        "physics_rmse_cm": rmse(data.physics[:, 1], truth) / 10.0,
        "nse": nse(depth_mm[:, 1], truth),
        "persistence_nse": nse(data.persistence[:, 1], truth),
        "physics_nse": nse(data.physics[:, 1], truth),
        "hit": hit.hit_rate,
        "far": hit.false_alarm_ratio,
        "events_samples": hit.events,
        "samples": len(data),
        **events(data, warned, peak, reach),
        "physics_events": events(data, data.physics_tier[:, 0], peak, reach),
    }


def family_rows(data: Samples, config: DatasetConfig, family: str) -> np.ndarray:
    """Rows of ``data`` whose storm is of ``family``."""
    fams = np.asarray(config.families)
    return fams[data.storm % len(fams)] == family


def lofo(
    data: dict[str, Samples],
    config: DatasetConfig,
    storm_truth: dict[int, tuple[float, int]],
    train_cfg: TrainConfig,
    variants: tuple[Variant, ...] = (HYBRID, PURE),
    families: tuple[str, ...] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Leave-one-family-out scores: ``{variant: {family: scores}}``.

    For each family, trains on the other families' train+test storms (validation: their
    validation storms) and scores on every storm of the family.
    """
    pool = Samples.concat([data["train"], data["test"]])
    everything = Samples.concat([data["train"], data["val"], data["test"]])
    out: dict[str, dict[str, dict[str, Any]]] = {v.name: {} for v in variants}
    for fam in families or config.families:
        train = pool.subset(~family_rows(pool, config, fam))
        val = data["val"].subset(~family_rows(data["val"], config, fam))
        held = everything.subset(family_rows(everything, config, fam))
        for v in variants:
            net, _ = fit(
                train.with_features(v.n_features),
                val.with_features(v.n_features),
                train_cfg,
                log=lambda _: None,
                anchor=v.anchor,
            )
            _, val_prob = predict(net, val, v)
            thr = pick_threshold(val_prob[:, 0], val.tier[:, 0])
            depth, prob = predict(net, held, v)
            out[v.name][fam] = {**scores(held, depth, prob[:, 0] >= thr, storm_truth), "thr": thr}
            s = out[v.name][fam]
            log(
                f"{v.name:7s} without {fam:21s} rmse30 {s['rmse_cm']:.2f} cm "
                f"(persistence {s['persistence_rmse_cm']:.2f}, physics {s['physics_rmse_cm']:.2f}) "
                f"nse {s['nse']:.3f} "
                f"hit {s['hit']:.2f} far {s['far']:.2f} "
                f"never-warned {s['never_reached_warned']:.2f} lead {s['median_lead_min']:.0f}"
            )
    return out
