"""Nowcast features: the one function that turns a station's recent history into model inputs.

Training (``edge_models.dataset``) and the station (``edge_models.station``) both call
:func:`features_from_history`, so a feature means the same thing in both places.

The history is the last :data:`WINDOW_MIN` minutes at one-minute steps, oldest first, ending at
the issue minute: rain that fell in each minute (mm, the derived ``rain_1min``) and the water depth
at the end of each minute (mm, the derived ``water_depth``), each with its QC flag digit.

Flagged inputs: a value flagged wrong (2) or missing (8), or not finite, is *masked*: it is
replaced by the last good value before it (0 when there is none; rain is assumed to go on as it
was, depth to stay where it was) and counted in indicator features (share of masked minutes,
minutes since the last good depth). Suspect (1), corrected (3), modified (4) and not-checked (9)
values are used as they are. The same rule runs in training and on the station.

The last features are the point model's outlook (``edge_models.physics``): the simulator's routed
catchment and pond spun up over the rain history and run an hour ahead with no more rain and with
the last ten minutes' rain held, from the observed depth. The network corrects these.

Every array function here works on one history (1-D arrays, returns shape ``(F,)``) or a batch
(2-D arrays ``(N, WINDOW_MIN)``, returns ``(N, F)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from edge_models.physics import OUTLOOK, SiteLike, point_outlook

WINDOW_MIN = 180
"""Minutes of history the features look at (the longest accumulation window)."""

MASKED_FLAGS = (2, 8)
"""QC flag digits whose values are not used (agent.flags.Flag.WRONG, Flag.MISSING)."""

EVENT_GAP_MIN = 30
"""A rain event ends after this many dry minutes; 'time since rain began' restarts after it."""

RAIN_WINDOWS_MIN = (5, 10, 15, 30, 60, 120, 180)
RISE_WINDOWS_MIN = (5, 15, 30)

FEATURES: tuple[str, ...] = (
    *(f"rain_{w}min_mm" for w in RAIN_WINDOWS_MIN),
    "rain_trend_5min_mm",  # last 5 min minus the 5 min before
    "peak_intensity_mmh",  # highest 5-min intensity in the window
    "min_since_peak",
    "min_since_rain_began",
    "min_since_last_rain",
    "depth_mm",
    "depth_median_3min_mm",
    *(f"rise_{w}min_mm_per_min" for w in RISE_WINDOWS_MIN),
    "depth_max_mm",
    "drain_capacity_mmh",
    "runoff_coeff",
    "log_gain",  # ln(runoff x catchment / pond area)
    "excess_5min_mm_per_min",  # pond rise the last 5 min of rain would drive, drain at capacity
    "excess_30min_mm_per_min",
    "excess_storage_60min_mm",  # pond depth the last hour's rain beyond the drain would leave
    "rain_masked_share_60min",
    "depth_masked_share_15min",
    "min_since_good_depth",
    *OUTLOOK,
)
"""Names of the model's inputs, in order (the last ones: the point model's outlook)."""

N_FEATURES = len(FEATURES)
N_BASE_FEATURES = N_FEATURES - len(OUTLOOK)
"""Features before the physics outlook (what a pure network sees)."""


@dataclass(frozen=True)
class SiteParams:
    """Site parameters from the station's configuration (defaults: sim.spec.SiteSpec's).

    ``drain_capacity_mmh`` is the rain intensity over the catchment that the drain takes away.
    """

    drain_capacity_mmh: float = 36.0
    catchment_m2: float = 2000.0
    pond_area_m2: float = 400.0
    runoff_coeff: float = 0.9

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SiteParams:
        """Build from a configuration table; unknown keys (installation height...) are ignored."""
        kwargs = {k: float(d[k]) for k in cls.__dataclass_fields__ if k in d}
        site = cls(**kwargs)
        for name in cls.__dataclass_fields__:
            if not getattr(site, name) > 0:
                raise ValueError(f"site parameter {name} must be positive")
        return site


@dataclass(frozen=True)
class FeatureInput:
    """Recent one-minute history, oldest first, last element = the issue minute.

    ``rain_mm``: rain in each minute (mm); ``depth_mm``: depth at the end of each minute (mm);
    ``*_flag``: QC flag digits. Shapes ``(WINDOW_MIN,)`` or ``(N, WINDOW_MIN)``.
    """

    rain_mm: np.ndarray
    rain_flag: np.ndarray
    depth_mm: np.ndarray
    depth_flag: np.ndarray

    @classmethod
    def empty(cls) -> FeatureInput:
        """A history where every minute is missing."""
        nan = np.full(WINDOW_MIN, np.nan)
        eight = np.full(WINDOW_MIN, 8, dtype=np.int8)
        return cls(nan, eight, nan.copy(), eight.copy())


class _Site(NamedTuple):
    """One row's site terms, for the point model."""

    drain_capacity_mmh: float
    catchment_m2: float
    pond_area_m2: float
    runoff_coeff: float


def _mask(values: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """True where a value is not to be used (flagged wrong/missing or not finite)."""
    return np.isin(flags, MASKED_FLAGS) | ~np.isfinite(values)


def _forward_fill(values: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """Replace masked entries by the last good one along the last axis (0 before the first)."""
    n = values.shape[-1]
    idx = np.where(masked, -1, np.arange(n))
    np.maximum.accumulate(idx, axis=-1, out=idx)
    filled = np.take_along_axis(np.where(masked, 0.0, values), np.maximum(idx, 0), axis=-1)
    return np.where(idx < 0, 0.0, filled)


def _trailing_run(active: np.ndarray) -> np.ndarray:
    """Length of the run of True values that ends at the last element."""
    n = active.shape[-1]
    last_false = np.where(~active, np.arange(n), -1).max(axis=-1)
    return (n - 1 - last_false).astype(float)


def features_from_history(history: FeatureInput, site: SiteLike) -> np.ndarray:
    """Model inputs (see :data:`FEATURES`) from a history and the site parameters.

    Batch histories take site parameters that are scalars or arrays of shape ``(N,)``.
    """
    rain_raw = np.asarray(history.rain_mm, dtype=float)
    depth_raw = np.asarray(history.depth_mm, dtype=float)
    single = rain_raw.ndim == 1
    rain_raw, depth_raw = np.atleast_2d(rain_raw), np.atleast_2d(depth_raw)
    rain_flag = np.atleast_2d(np.asarray(history.rain_flag))
    depth_flag = np.atleast_2d(np.asarray(history.depth_flag))
    if rain_raw.shape[-1] != WINDOW_MIN or depth_raw.shape != rain_raw.shape:
        raise ValueError(f"history must hold {WINDOW_MIN} minutes of rain and depth")
    n = WINDOW_MIN

    rain_bad = _mask(rain_raw, rain_flag)
    depth_bad = _mask(depth_raw, depth_flag)
    rain = np.maximum(_forward_fill(rain_raw, rain_bad), 0.0)
    depth = _forward_fill(depth_raw, depth_bad)

    csum = np.concatenate([np.zeros((rain.shape[0], 1)), np.cumsum(rain, axis=-1)], axis=-1)
    total = csum[:, -1]
    acc = [total - csum[:, n - w] for w in RAIN_WINDOWS_MIN]
    rain_5, rain_30 = acc[0], acc[3]
    trend = rain_5 - (csum[:, n - 5] - csum[:, n - 10])

    roll5 = csum[:, 5:] - csum[:, :-5]  # 5-min sums ending at minutes 4..n-1
    peak_at = np.argmax(roll5[:, ::-1], axis=-1)  # latest peak: minutes before now
    peak = roll5.max(axis=-1) * 12.0

    wet = rain > 0.0
    recent_wet = (csum[:, EVENT_GAP_MIN:] - csum[:, :-EVENT_GAP_MIN]) > 0.0
    began = np.maximum(_trailing_run(recent_wet) - 1.0, 0.0)  # capped at n - EVENT_GAP_MIN
    last_wet = np.where(wet, np.arange(n), -1).max(axis=-1)
    since_rain = np.where(last_wet < 0, float(n), n - 1 - last_wet)

    d_now = depth[:, -1]
    rises = [(d_now - depth[:, n - 1 - w]) / w for w in RISE_WINDOWS_MIN]

    cap = np.asarray(site.drain_capacity_mmh, dtype=float) * np.ones_like(d_now)
    psi = np.asarray(site.runoff_coeff, dtype=float) * np.ones_like(d_now)
    area = np.asarray(site.catchment_m2, dtype=float) * np.ones_like(d_now)
    pond = np.asarray(site.pond_area_m2, dtype=float) * np.ones_like(d_now)
    gain = psi * area / pond
    to_pond = gain / psi / 60.0  # mm/h of excess over the catchment -> mm/min in the pond

    def excess(rain_mm: np.ndarray, minutes: int) -> np.ndarray:
        return (psi * rain_mm * 60.0 / minutes - cap) * to_pond

    per_min_excess = np.maximum(psi[:, None] * rain[:, -60:] * 60.0 - cap[:, None], 0.0)
    storage = per_min_excess.sum(axis=-1) * to_pond

    good_depth = np.where(~depth_bad, np.arange(n), -1).max(axis=-1)
    since_good = np.where(good_depth < 0, float(n), n - 1 - good_depth)

    cols = [
        *acc,
        trend,
        peak,
        peak_at.astype(float),
        began,
        since_rain,
        d_now,
        np.median(depth[:, -3:], axis=-1),  # one spike does not move it
        *rises,
        depth.max(axis=-1),
        cap,
        psi,
        np.log(gain),
        excess(rain_5, 5),
        excess(rain_30, 30),
        storage,
        rain_bad[:, -60:].mean(axis=-1),
        depth_bad[:, -15:].mean(axis=-1),
        np.minimum(since_good, 60.0),
    ]
    d3 = cols[FEATURES.index("depth_median_3min_mm")]
    outlook = [
        point_outlook(rain[k], float(d3[k]), _Site(cap[k], area[k], pond[k], psi[k]))
        for k in range(rain.shape[0])
    ]
    x = np.concatenate([np.stack(cols, axis=-1), np.asarray(outlook)], axis=-1).astype(np.float32)
    return x[0] if single else x
