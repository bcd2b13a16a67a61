"""The scenario's truth: rain, wind and water depth as 1-s arrays, sampled by scenario seconds.

:func:`build_truth` turns a storm table, a wind table and the site into an :class:`ArrayTruth`.
The storm and the wind draw from independent random streams spawned from the one seed, so the
same seed always gives the same weather and changing the wind never changes the rain.

Storm tables (``kind`` plus parameters; times in minutes from the scenario start):

- ``chicago``: return_period_y, duration_min, start_min=0, peak_ratio=0.367, jitter=0.0,
  coeffs={A, C, b, n} (defaults :data:`sim.weather.rain.SHANGHAI`)
- ``two_peak``: as chicago plus split=0.5, first_share=0.4
- ``drizzle``: duration_min, start_min=0, intensity_mmh=0.6, variability=0.5, cell_min=10
- ``dry``: no parameters

``jitter`` perturbs each minute of a design storm by a lognormal factor (sigma = jitter) and
rescales, so the storm's total depth is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim.spec import SiteSpec, TruthSample
from sim.weather.ponding import simulate_ponding
from sim.weather.rain import (
    SHANGHAI,
    IntensityCoeffs,
    chicago_hyetograph,
    drizzle,
    two_peak_hyetograph,
)
from sim.weather.wind import wind_series

STORM_KINDS = ("chicago", "two_peak", "drizzle", "dry")
STORM_STEP_S = 60.0  # design storms are built per minute, then held constant within it

# Parameters each storm kind accepts with their defaults (None = required).
STORM_PARAMS: dict[str, dict[str, Any]] = {
    "chicago": {
        "return_period_y": None,
        "duration_min": None,
        "start_min": 0.0,
        "peak_ratio": 0.367,
        "jitter": 0.0,
        "coeffs": None,
    },
    "drizzle": {
        "duration_min": None,
        "start_min": 0.0,
        "intensity_mmh": 0.6,
        "variability": 0.5,
        "cell_min": 10.0,
    },
    "dry": {},
}
STORM_PARAMS["two_peak"] = {**STORM_PARAMS["chicago"], "split": 0.5, "first_share": 0.4}


@dataclass(eq=False)
class ArrayTruth:
    """Truth as arrays at 1-s instants ``t_s`` = 0, 1, ..., duration (a sim.spec.Truth).

    ``rain_intensity_mmh[k]`` is the intensity during [k, k+1); ``rain_total_mm[k]`` the depth
    fallen in [0, k]. ``sample`` interpolates the total inside a second and holds the rest.
    """

    t_s: np.ndarray
    rain_intensity_mmh: np.ndarray
    rain_total_mm: np.ndarray
    wind_speed_ms: np.ndarray
    wind_dir_deg: np.ndarray
    wind_gust_ms: np.ndarray
    water_depth_mm: np.ndarray
    duration_s: float = field(init=False)

    def __post_init__(self) -> None:
        n = self.t_s.size
        for name in (
            "rain_intensity_mmh",
            "rain_total_mm",
            "wind_speed_ms",
            "wind_dir_deg",
            "wind_gust_ms",
            "water_depth_mm",
        ):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected ({n},)")
        self.duration_s = float(self.t_s[-1])

    def sample(self, t_s: float) -> TruthSample:
        """The truth at ``t_s`` scenario seconds (clamped to the scenario's span)."""
        last = self.t_s.size - 1
        t = min(max(float(t_s), 0.0), float(last))
        k = min(math.floor(t), last)
        frac = t - k
        total = float(self.rain_total_mm[k])
        if frac > 0.0:
            total += frac * float(self.rain_intensity_mmh[k]) / 3600.0
        return TruthSample(
            rain_total_mm=total,
            rain_intensity_mmh=float(self.rain_intensity_mmh[k]),
            wind_speed_ms=float(self.wind_speed_ms[k]),
            wind_dir_deg=float(self.wind_dir_deg[k]),
            wind_gust_ms=float(self.wind_gust_ms[k]),
            water_depth_mm=float(self.water_depth_mm[k]),
        )


def storm_intensity(
    storm: dict[str, Any], duration_s: float, rng: np.random.Generator
) -> np.ndarray:
    """Rain intensity (mm/h) at 1-s steps over ``duration_s`` for a storm table."""
    kind = storm.get("kind", "dry")
    if kind not in STORM_PARAMS:
        raise ValueError(f"unknown storm kind {kind!r} (known: {', '.join(STORM_KINDS)})")
    p = {k: v for k, v in STORM_PARAMS[kind].items() if v is not None}
    p.update({k: v for k, v in storm.items() if k != "kind"})
    n = max(1, math.ceil(duration_s))
    out = np.zeros(n)
    if kind == "dry":
        return out
    coeffs = SHANGHAI if p.get("coeffs") is None else IntensityCoeffs(**p["coeffs"])
    if kind == "chicago":
        hyeto = chicago_hyetograph(
            p["return_period_y"],
            p["duration_min"],
            peak_ratio=p["peak_ratio"],
            dt_s=STORM_STEP_S,
            coeffs=coeffs,
        )
    elif kind == "two_peak":
        hyeto = two_peak_hyetograph(
            p["return_period_y"],
            p["duration_min"],
            split=p["split"],
            first_share=p["first_share"],
            peak_ratio=p["peak_ratio"],
            dt_s=STORM_STEP_S,
            coeffs=coeffs,
        )
    else:
        hyeto = drizzle(
            p["duration_min"],
            rng,
            intensity_mmh=p["intensity_mmh"],
            variability=p["variability"],
            cell_min=p["cell_min"],
            dt_s=STORM_STEP_S,
        )
    jitter = float(p.get("jitter", 0.0))
    if jitter > 0 and hyeto.sum() > 0:
        noisy = hyeto * rng.lognormal(0.0, jitter, hyeto.size)
        hyeto = noisy * hyeto.sum() / noisy.sum()
    per_second = np.repeat(hyeto, int(STORM_STEP_S))
    start = round(float(p["start_min"]) * 60.0)
    end = min(n, start + per_second.size)
    if start < n:
        out[start:end] = per_second[: end - start]
    return out


def build_truth(
    storm: dict[str, Any], wind: dict[str, Any], site: SiteSpec, seed: int, duration_s: float
) -> ArrayTruth:
    """Weather truth for a scenario: the storm's rain, the wind, and the ponding it causes."""
    rain_seq, wind_seq = np.random.SeedSequence(seed).spawn(2)
    n = math.ceil(duration_s) + 1  # instants 0..duration inclusive
    intensity = storm_intensity(storm, n, np.random.default_rng(rain_seq))
    total = np.concatenate([[0.0], np.cumsum(intensity[:-1]) / 3600.0])
    wind_params = {k: v for k, v in wind.items() if k != "kind"}
    w = wind_series(wind.get("kind", "calm"), n, np.random.default_rng(wind_seq), **wind_params)
    depth = np.concatenate([[0.0], simulate_ponding(intensity[:-1], 1.0, site)])
    return ArrayTruth(
        t_s=np.arange(n, dtype=float),
        rain_intensity_mmh=intensity,
        rain_total_mm=total,
        wind_speed_ms=w.speed,
        wind_dir_deg=w.direction,
        wind_gust_ms=w.gust,
        water_depth_mm=depth,
    )
