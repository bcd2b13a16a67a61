"""Nowcast skill on storm families it never saw, on held-out sites, and its latency, in one run.

1. Leave-one-family-out (``edge_models.evaluate.lofo``): for every storm family, a network is
   trained without it (same recipe as ``make model``, smaller) and scored on all its storms, for
   the hybrid (point-model outlook + learned correction, clipped to the physical limits) and the
   pure network (station features only); baselines persistence and the point model with the
   current rain held. Scores at +30 min: RMSE, NSE, 15 cm tier hit rate and false-alarm ratio,
   storms never reaching 15 cm that were warned, median lead, flapping.
2. The shipped model (``Nowcaster``, as the station runs it) on storms of every family at held-out
   sites (drains, catchment/pond ratios and runoff outside the training ranges).
3. Physics checks of the shipped model on those forecasts: rise forecast with no rain, water
   forecast on a dry road, and monotonicity (rain of the last hour scaled by 1.25 must not lower
   the forecast).
4. Latency: features + inference per forecast (p50/p99), the network alone, the numpy fallback.

Usage: ``python bench/bench_nowcast.py [--per-family N] [--epochs E] [--families a,b]``.
The last line is one JSON object: ``ratio`` is the worst family's hybrid +30 min RMSE over
persistence's, with ``nse``, ``rmse_cm``, ``hit``, ``far`` and ``family`` of that family.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from edge_models.dataset import (
    HELD_OUT_SITE_SEED,
    DatasetConfig,
    Samples,
    build,
    make_storm,
    site_params,
    storm_history,
    storm_samples,
    storm_truth,
)
from edge_models.evaluate import HYBRID, PURE, lofo, scores
from edge_models.features import FEATURES, FeatureInput, features_from_history
from edge_models.runtime import Nowcaster
from edge_models.train import TrainConfig

BENCH_SEED = 20261201  # not the training seed: the shipped model never saw these storms
RAIN_10 = FEATURES.index("rain_10min_mm")
DEPTH = FEATURES.index("depth_median_3min_mm")


def latency_ms(fn: Callable[[int], object], n: int) -> dict[str, float]:
    """p50/p99 of ``fn(i)`` for i in range(n), in milliseconds."""
    times = np.empty(n)
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        times[i] = time.perf_counter() - t
    return {"p50": float(np.median(times)) * 1e3, "p99": float(np.percentile(times, 99)) * 1e3}


def _fmt(v: float, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def table(rows: dict[str, dict[str, Any]], title: str) -> str:
    lines = [
        f"{title}\n| family | RMSE +30 (cm) | persistence | point model held | ratio | NSE "
        "| hit 15 cm | FAR | never-reached warned | median lead (min) | missed storms "
        "| flaps/storm |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fam, s in rows.items():
        lines.append(
            f"| {fam} | {s['rmse_cm']:.2f} | {s['persistence_rmse_cm']:.2f} "
            f"| {s['physics_rmse_cm']:.2f} | {_fmt(s['ratio'], '.2f')} | {_fmt(s['nse'], '.3f')} "
            f"| {_fmt(s['hit'], '.2f')} | {s['far']:.2f} "
            f"| {_fmt(s['never_reached_warned'], '.2f')} ({s['never_reached']}) "
            f"| {_fmt(s['median_lead_min'], '.0f')} ({s['reached']}) "
            f"| {s['missed_storms']} | {s['flaps_per_storm']:.2f} |"
        )
    return "\n".join(lines)


def held_out_sites(nc: Nowcaster, per_family: int, families: tuple[str, ...]) -> dict[str, Any]:
    """The shipped model on storms of every family at held-out sites, plus physics checks."""
    ids = range(HELD_OUT_SITE_SEED, HELD_OUT_SITE_SEED + per_family * len(families))
    storms = [make_storm(BENCH_SEED, i, families) for i in ids]
    truth = {s.storm_id: storm_truth(s) for s in storms}
    data = Samples.concat([storm_samples(s, 5) for s in storms])
    thr = nc.tier_thresholds[0]
    outs = [nc.raw(x) for x in data.x]
    depth = np.stack([d for d, _ in outs]) * 1000.0
    warned = np.array([p[0] >= thr for _, p in outs])
    rows: dict[str, Any] = {}
    fam_of = np.asarray(families)[data.storm % len(families)]
    for fam in (*families, "all"):
        mask = fam_of == fam if fam != "all" else np.ones(len(data), bool)
        sub = data.subset(mask)
        rows[fam] = scores(sub, depth[mask], warned[mask], truth)

    # physics checks on the same forecasts
    no_rain = data.x[:, RAIN_10] <= 0.0
    rise = depth[:, 1] - np.maximum(data.x[:, DEPTH], 0.0)
    dry_road = no_rain & (data.x[:, DEPTH] <= 5.0)
    scaled = []
    pick = np.random.default_rng(0).choice(len(storms), min(len(storms), 40), replace=False)
    for k in pick:
        s = storms[int(k)]
        issue = data.minute[data.storm == s.storm_id]
        hist = storm_history(s, issue)
        rain = hist.rain_mm.copy()
        rain[:, -60:] *= 1.25
        x_more = features_from_history(
            FeatureInput(rain, hist.rain_flag, hist.depth_mm, hist.depth_flag), site_params(s.site)
        )
        base = depth[data.storm == s.storm_id, 1]
        more = np.array([nc.raw(x)[0][1] * 1000.0 for x in x_more])
        scaled.append(more - base)
    drops = np.concatenate(scaled)
    checks = {
        "no_rain_forecasts": int(no_rain.sum()),
        "no_rain_rise_over_5mm": int(np.sum(no_rain & (rise > 5.0))),
        "dry_road_forecasts": int(dry_road.sum()),
        "dry_road_water_over_5mm": int(np.sum(dry_road & (depth[:, 1] > 5.0))),
        "monotone_pairs": int(drops.size),
        "monotone_drop_over_5mm": int(np.sum(drops < -5.0)),
        "monotone_worst_drop_mm": float(drops.min()) if drops.size else 0.0,
    }
    return {"families": rows, "checks": checks, "storms": len(storms), "forecasts": len(data)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-family", type=int, default=50, help="LOFO storms per family")
    parser.add_argument("--epochs", type=int, default=15, help="epochs of each LOFO network")
    parser.add_argument("--families", default="", help="comma-separated families (default all)")
    parser.add_argument("--sites-per-family", type=int, default=8, help="held-out-site storms")
    parser.add_argument("--calls", type=int, default=5000, help="calls for the latency")
    args = parser.parse_args()

    t0 = time.perf_counter()
    cfg = DatasetConfig(seed=BENCH_SEED)
    cfg = DatasetConfig(seed=BENCH_SEED, n_storms=args.per_family * len(cfg.families))
    truth: dict[int, tuple[float, int]] = {}
    data = build(cfg, truth=truth)
    print(f"LOFO storms: {cfg.n_storms} ({time.perf_counter() - t0:.0f} s)", flush=True)
    fams = tuple(f for f in args.families.split(",") if f) or None
    train_cfg = TrainConfig(epochs=args.epochs)
    res = lofo(data, cfg, truth, train_cfg, (HYBRID, PURE), fams)
    for v in res:
        print(table(res[v], f"\nleave-one-family-out, {v}:"))
    print(f"({time.perf_counter() - t0:.0f} s)", flush=True)

    nc = Nowcaster()
    fallback = Nowcaster(backend="numpy")
    print(f"\nshipped model {nc.version}, backend {nc.backend}")
    sites = held_out_sites(nc, args.sites_per_family, cfg.families)
    print(table(sites["families"], "held-out sites, shipped model:"))
    print("physics checks:", json.dumps(sites["checks"]))

    storm = make_storm(BENCH_SEED, 0, ("chicago",))
    minutes = np.arange(storm.start_min, storm.depth_mm.size)
    hist = storm_history(storm, minutes)
    site = site_params(storm.site)
    n = min(args.calls, minutes.size * 10)

    def one(i: int) -> FeatureInput:
        k = i % minutes.size
        return FeatureInput(
            hist.rain_mm[k], hist.rain_flag[k], hist.depth_mm[k], hist.depth_flag[k]
        )

    xs = features_from_history(hist, site)
    lat = {
        "features + inference": latency_ms(lambda i: nc.predict_history(one(i), site), n),
        "features": latency_ms(lambda i: features_from_history(one(i), site), n),
        f"inference ({nc.backend})": latency_ms(lambda i: nc.predict_features(xs[i % len(xs)]), n),
        "inference (numpy)": latency_ms(lambda i: fallback.predict_features(xs[i % len(xs)]), n),
    }
    print("\n| step | p50 (ms) | p99 (ms) |\n|---|---|---|")
    for name, v in lat.items():
        print(f"| {name} | {v['p50']:.4f} | {v['p99']:.4f} |")

    hybrid = res["hybrid"]
    worst = max(
        hybrid, key=lambda f: hybrid[f]["ratio"] if math.isfinite(hybrid[f]["ratio"]) else 0
    )
    w = hybrid[worst]
    pure_worst = max(v["ratio"] for v in res["pure"].values() if math.isfinite(v["ratio"]))
    result = {
        "bench": "nowcast",
        "metric": "worst_family_rmse_30min_ratio",
        "value": round(w["rmse_cm"], 3),
        "unit": "cm",
        "baseline": round(w["persistence_rmse_cm"], 3),
        "ratio": round(w["ratio"], 3),
        "family": worst,
        "rmse_cm": round(w["rmse_cm"], 3),
        "nse": None if math.isnan(w["nse"]) else round(w["nse"], 3),
        "hit": None if math.isnan(w["hit"]) else round(w["hit"], 3),
        "far": round(w["far"], 3),
        "pure_worst_ratio": round(pure_worst, 3),
        "held_out_sites_ratio": round(sites["families"]["all"]["ratio"], 3),
        "p50_ms": round(lat["features + inference"]["p50"], 4),
        "p99_ms": round(lat["features + inference"]["p99"], 4),
        "backend": nc.backend,
        "model_version": nc.version,
        "lofo_storms": cfg.n_storms,
        "seconds": round(time.perf_counter() - t0),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
