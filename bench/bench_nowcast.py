"""Nowcast skill and latency against its baselines, in one run.

Skill: the shipped model (through the station's Nowcaster, LiteRT backend) on the held-out test
storms of the training dataset (same seed, never seen in training), against persistence and
against the simulator's ponding physics run forward with the current intensity held.
Latency: one ``predict_features`` call per minute's features (p50/p99 over many calls), against
the numpy fallback and the physics baseline (60 one-minute ponding steps), plus the feature step.

Usage: ``python bench/bench_nowcast.py [--storms N]`` (default: every test storm). The last line
is one JSON object; ``value`` is the model's RMSE at +30 min (cm), ``baseline`` persistence's.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

from edge_models.dataset import (
    DatasetConfig,
    Samples,
    make_storm,
    physics_forecast,
    site_params,
    split_of,
    storm_history,
    storm_samples,
)
from edge_models.features import features_from_history
from edge_models.runtime import Nowcaster
from edge_models.skill import compare, markdown


def latency_ms(fn: Callable[[int], object], n: int) -> dict[str, float]:
    """p50/p99 of ``fn(i)`` for i in range(n), in milliseconds."""
    times = np.empty(n)
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        times[i] = time.perf_counter() - t
    return {"p50": float(np.median(times)) * 1e3, "p99": float(np.percentile(times, 99)) * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storms", type=int, default=0, help="test storms to use (0 = all)")
    parser.add_argument("--calls", type=int, default=20000, help="calls for the latency")
    args = parser.parse_args()

    cfg = DatasetConfig()
    ids = split_of(cfg)["test"]
    if args.storms:
        ids = ids[: args.storms]
    t0 = time.perf_counter()
    storms = [make_storm(cfg.seed, int(s)) for s in ids]
    test = Samples.concat([storm_samples(s, cfg.issue_every_min) for s in storms])
    print(
        f"held-out storms: {len(storms)}, forecasts: {len(test)} ({time.perf_counter() - t0:.0f} s)"
    )

    nc = Nowcaster()
    fallback = Nowcaster(backend="numpy")
    print(f"model {nc.version}, backend {nc.backend}")
    outs = [nc.raw(x) for x in test.x]
    depth_mm = np.stack([d for d, _ in outs]) * 1000.0
    prob = np.stack([p for _, p in outs])
    skill = compare(depth_mm, prob >= np.asarray(nc.tier_thresholds, np.float32), test)
    print(markdown(skill))

    n = min(args.calls, len(test))
    rows = np.random.default_rng(0).choice(len(test), n, replace=False)
    xs = test.x[rows]
    lat = {
        nc.backend: latency_ms(lambda i: nc.predict_features(xs[i]), n),
        "numpy": latency_ms(lambda i: fallback.predict_features(xs[i]), n),
    }
    storm = storms[int(np.argmax([s.depth_mm.max() for s in storms]))]
    minutes = np.arange(storm.depth_mm.size)
    hist = storm_history(storm, minutes)
    site = site_params(storm.site)
    m = min(n, minutes.size)
    lat["physics baseline"] = latency_ms(
        lambda i: physics_forecast(
            np.array([test.persistence[rows[i], 0]]),
            np.array([test.x[rows[i], 0] * 12.0]),
            storm.site,
        ),
        min(n, 2000),
    )
    lat["features"] = latency_ms(
        lambda i: features_from_history(
            type(hist)(hist.rain_mm[i], hist.rain_flag[i], hist.depth_mm[i], hist.depth_flag[i]),
            site,
        ),
        m,
    )
    print("| step | p50 (ms) | p99 (ms) |\n|---|---|---|")
    for name, v in lat.items():
        print(f"| {name} | {v['p50']:.4f} | {v['p99']:.4f} |")

    d30 = {s["forecaster"]: s for s in skill["depth"] if s["horizon_min"] == 30}
    t15 = {t["forecaster"]: t for t in skill["tier"] if t["tier_cm"] == 15}
    model, pers = d30["model"]["rmse_cm"], d30["persistence"]["rmse_cm"]
    result = {
        "bench": "nowcast",
        "metric": "rmse_30min",
        "value": round(model, 3),
        "unit": "cm",
        "baseline": round(pers, 3),
        "ratio": round(model / pers, 3),
        "rmse_cm": round(model, 3),
        "nse": round(d30["model"]["nse"], 3),
        "physics_rmse_cm": round(d30["physics"]["rmse_cm"], 3),
        "hit_rate_15cm": round(t15["model"]["hit_rate"], 3),
        "far_15cm": round(t15["model"]["false_alarm_ratio"], 3),
        "p99_ms": round(lat[nc.backend]["p99"], 4),
        "p50_ms": round(lat[nc.backend]["p50"], 4),
        "backend": nc.backend,
        "model_version": nc.version,
        "storms": len(storms),
        "forecasts": len(test),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
