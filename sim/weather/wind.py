"""Wind at 1 s: a mean profile, turbulence with gusts, and a wandering or veering direction.

Kinds (``wind_series(kind, ...)``):

- ``calm``: ``speed_ms`` (default 0.3) of light air, little turbulence.
- ``gusty``: steady mean ``mean_ms`` with turbulence sized by ``gust_factor`` and a direction
  wandering around ``direction_deg`` by about ``wander_deg``.
- ``squall``: ``mean_ms`` until a front at ``front_min``, where the mean jumps within ``rise_s``
  to ``peak_ms``, then decays back towards ``after_ms`` with time constant ``decay_min``; the
  direction veers by ``veer_deg`` at the front.
- ``typhoon``: a Holland (1980) wind profile passing the station: ``max_ms`` at radius ``rmax_km``,
  the centre's closest approach ``offset_km`` at ``centre_min``, moving at ``translation_ms``;
  long rise and fall, and the direction veers as the storm passes (northern-hemisphere
  cyclonic inflow at ``inflow_deg``).

Turbulence is an Ornstein-Uhlenbeck process (integral time ``time_scale_s``) multiplying the mean
by ``1 + TI x``; the turbulence intensity is ``turbulence`` or (``gust_factor`` - 1) / 3. The gust
reported is the highest 3-s mean speed over the trailing ``gust_window_s`` (default 10 min, as
in a synoptic report) and never below the instantaneous speed: so gust >= speed at every second,
and gust >= the mean speed over the trailing window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

WIND_KINDS = ("calm", "gusty", "squall", "typhoon")

# Parameters each kind accepts, with defaults (shared ones first).
_COMMON: dict[str, float] = {
    "gust_factor": 1.5,
    "turbulence": -1.0,  # < 0: derive from gust_factor
    "time_scale_s": 20.0,
    "gust_window_s": 600.0,
    "direction_deg": 135.0,
    "wander_deg": 15.0,
    "wander_time_s": 300.0,
}
WIND_PARAMS: dict[str, dict[str, float]] = {
    "calm": {**_COMMON, "speed_ms": 0.3, "gust_factor": 1.2},
    "gusty": {**_COMMON, "mean_ms": 5.0},
    "squall": {
        **_COMMON,
        "mean_ms": 3.0,
        "peak_ms": 22.0,
        "after_ms": 6.0,
        "front_min": 30.0,
        "rise_s": 60.0,
        "decay_min": 20.0,
        "veer_deg": 90.0,
        "gust_factor": 1.7,
    },
    "typhoon": {
        **_COMMON,
        "max_ms": 38.0,
        "rmax_km": 30.0,
        "holland_b": 1.5,
        "offset_km": 40.0,
        "centre_min": 360.0,
        "translation_ms": 7.0,
        "inflow_deg": 20.0,
        "gust_factor": 1.4,
        "wander_deg": 5.0,
    },
}


@dataclass(frozen=True)
class WindSeries:
    """Wind at 1-s steps: speed and gust (m/s), direction it comes from (degrees, [0, 360))."""

    speed: np.ndarray
    direction: np.ndarray
    gust: np.ndarray


def _ou(n: int, rng: np.random.Generator, time_scale_s: float) -> np.ndarray:
    """Unit-variance Ornstein-Uhlenbeck process at 1-s steps."""
    phi = math.exp(-1.0 / max(time_scale_s, 1e-6))
    scale = math.sqrt(1.0 - phi * phi)
    eps = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = eps[0]
    for k in range(1, n):
        x[k] = phi * x[k - 1] + scale * eps[k]
    return x


def _trailing_max(x: np.ndarray, window: int) -> np.ndarray:
    """Maximum of x over the trailing ``window`` samples (including the current one)."""
    padded = np.concatenate([np.full(window - 1, -np.inf), x])
    return np.lib.stride_tricks.sliding_window_view(padded, window).max(axis=1)


def gust_from_speed(speed: np.ndarray, window_s: float) -> np.ndarray:
    """Highest 3-s mean over the trailing window, never below the instantaneous speed."""
    csum = np.concatenate([[0.0], np.cumsum(speed)])
    idx = np.arange(1, speed.size + 1)
    lo = np.maximum(idx - 3, 0)
    mean3 = (csum[idx] - csum[lo]) / (idx - lo)
    return np.maximum(_trailing_max(mean3, max(1, round(window_s))), speed)


def _mean_profile(kind: str, t: np.ndarray, p: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Mean speed (m/s) and mean direction (deg, unwrapped) at times t (s)."""
    base_dir = np.full(t.size, p["direction_deg"])
    if kind == "calm":
        return np.full(t.size, p["speed_ms"]), base_dir
    if kind == "gusty":
        return np.full(t.size, p["mean_ms"]), base_dir
    if kind == "squall":
        front = p["front_min"] * 60.0
        since = t - front
        rise = np.clip(since / max(p["rise_s"], 1.0), 0.0, 1.0)
        decay = np.exp(-np.maximum(since - p["rise_s"], 0.0) / (p["decay_min"] * 60.0))
        after = p["after_ms"] + (p["peak_ms"] - p["after_ms"]) * decay
        speed = np.where(since < 0, p["mean_ms"], p["mean_ms"] + (after - p["mean_ms"]) * rise)
        return speed, base_dir + p["veer_deg"] * rise
    # typhoon: the centre moves north along x = 0; the station sits offset_km east of the track.
    along = p["translation_ms"] * (t - p["centre_min"] * 60.0) / 1000.0  # km, centre north of 0
    east, north = p["offset_km"], -along  # station relative to the centre
    r = np.maximum(np.hypot(east, north), 1e-3)
    ratio = (p["rmax_km"] / r) ** p["holland_b"]
    speed = p["max_ms"] * np.sqrt(ratio * np.exp(1.0 - ratio))
    # Cyclonic (counter-clockwise) flow turned inwards by the inflow angle; the wind blows towards
    # the tangent direction rotated towards the centre.
    bearing = np.arctan2(east, north)  # math angle of position measured from north, clockwise
    to_dir = np.degrees(bearing) - 90.0 - p["inflow_deg"]
    return speed, np.unwrap(to_dir + 180.0, period=360.0)


def wind_series(
    kind: str, duration_s: float, rng: np.random.Generator, **params: Any
) -> WindSeries:
    """Wind of ``kind`` (see module doc) for ``duration_s`` seconds at 1-s resolution."""
    if kind not in WIND_PARAMS:
        raise ValueError(f"unknown wind kind {kind!r} (known: {', '.join(WIND_KINDS)})")
    unknown = set(params) - set(WIND_PARAMS[kind])
    if unknown:
        raise ValueError(f"unknown {kind} wind parameter(s): {', '.join(sorted(unknown))}")
    p = {**WIND_PARAMS[kind], **{k: float(v) for k, v in params.items()}}
    n = max(1, math.ceil(duration_s))
    t = np.arange(n, dtype=float)
    mean, mean_dir = _mean_profile(kind, t, p)
    ti = p["turbulence"] if p["turbulence"] >= 0 else (p["gust_factor"] - 1.0) / 3.0
    speed = np.maximum(mean * (1.0 + ti * _ou(n, rng, p["time_scale_s"])), 0.0)
    wander = p["wander_deg"] * _ou(n, rng, p["wander_time_s"])
    # Direction fluctuates faster in light wind; turbulence adds a few degrees of jitter.
    jitter = np.degrees(ti) * _ou(n, rng, p["time_scale_s"])
    direction = np.mod(mean_dir + wander + jitter, 360.0)
    return WindSeries(
        speed=speed, direction=direction, gust=gust_from_speed(speed, p["gust_window_s"])
    )
