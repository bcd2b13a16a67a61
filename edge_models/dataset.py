"""Training data for the nowcast: seeded storms run through the simulator's physics.

Each storm (:func:`make_storm`) draws from its own generator ``default_rng([seed, storm_id])``, so
a storm is the same whatever the dataset size. A storm is:

- a hyetograph from ``sim.weather.rain``: Chicago single peak (55 %), two peaks (30 %), drizzle
  (10 %) or dry (5 %); return period log-uniform 0.5-100 y, duration 60-360 min, peak ratio
  0.25-0.55, with a correlated lognormal roughness (sigma 0-0.15, 10-min cells) on top;
- a site: drain capacity 25-60 mm/h, catchment 500-6000 m², pond 150-1200 m² (catchment/pond
  ratio kept in 2-15), runoff 0.75-0.95, installation height 1.5-6 m; a site is redrawn (up to 20
  times) while the storm would pond deeper than :data:`MAX_DEPTH_MM`, where a real street spills
  over the kerb and the point model no longer holds;
- the truth depth from ``sim.weather.ponding.simulate_ponding`` at 60-s steps, 30-120 min dry
  lead-in and 180 min after the rain;
- what the station sees: rain per minute from a tipping counter (resolution 0.0001, 0.1 or
  0.2 mm, catch bias +-10 %), depth with radar noise (2 mm + 0.5 mm per metre of height, offset
  +-3 mm), obstruction spikes (flagged wrong 85 % of the time, suspect otherwise) and outages
  (missing, flag 8) on one or both sensors.

Samples are issued every ``issue_every_min`` minutes from 30 min before the rain to 60 min before
the end; targets are the *true* depths at +15/+30/+60 min and whether the true depth passes each
tier within 30 min. Splits are by storm (``storm_id`` mod a seeded permutation), never by row.
The baselines (persistence, physics with the current intensity held) are computed here too, from
the same observed inputs the model gets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from edge_models.features import (
    FEATURES,
    WINDOW_MIN,
    FeatureInput,
    SiteParams,
    features_from_history,
)
from edge_models.model import HORIZONS_MIN, TIER_HORIZON_MIN, TIERS_MM
from sim.spec import SiteSpec
from sim.weather.ponding import ponding_step, simulate_ponding
from sim.weather.rain import chicago_hyetograph, drizzle, dry, two_peak_hyetograph

SPLITS = ("train", "val", "test")
TAIL_MIN = 180
MAX_DEPTH_MM = 600.0  # water spills over the kerb beyond this; the point model has no spill
FEATURE_DEPTH = FEATURES.index("depth_mm")
FEATURE_RAIN_5 = FEATURES.index("rain_5min_mm")


@dataclass(frozen=True)
class DatasetConfig:
    """How many storms, which seed, how often a forecast is issued, how storms are split."""

    n_storms: int = 5000
    seed: int = 20260721
    issue_every_min: int = 5
    val_share: float = 0.15
    test_share: float = 0.15


@dataclass(frozen=True)
class Storm:
    """One simulated storm at one site: truth and what the station observed, per minute."""

    storm_id: int
    kind: str
    return_period_y: float
    duration_min: int
    start_min: int  # first minute of rain
    site: SiteSpec
    intensity_mmh: np.ndarray  # truth, per minute
    depth_mm: np.ndarray  # truth at the end of each minute
    rain_obs_mm: np.ndarray  # observed rain per minute (NaN when missing)
    rain_flag: np.ndarray
    depth_obs_mm: np.ndarray  # observed depth (NaN when missing)
    depth_flag: np.ndarray


@dataclass(frozen=True)
class Samples:
    """Forecast issue times of many storms: inputs, truth targets and baseline forecasts."""

    x: np.ndarray  # (N, F) float32 features
    depth: np.ndarray  # (N, 3) true depth (mm) at +15/+30/+60
    tier: np.ndarray  # (N, 2) true depth passes 150/300 mm within 30 min
    storm: np.ndarray  # (N,) storm id
    persistence: np.ndarray  # (N, 3) observed current depth (mm) held
    physics: np.ndarray  # (N, 3) ponding with the current intensity held (mm)
    physics_tier: np.ndarray  # (N, 2) physics run passes the tier within 30 min

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @classmethod
    def concat(cls, parts: list[Samples]) -> Samples:
        return cls(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)}
        )


def _roughness(n: int, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Correlated lognormal factor with mean 1 (10-min cells)."""
    phi = math.exp(-1.0 / 10.0)
    z = np.empty(n)
    eps = rng.standard_normal(n)
    z[0] = eps[0]
    for k in range(1, n):
        z[k] = phi * z[k - 1] + math.sqrt(1 - phi * phi) * eps[k]
    f = np.exp(sigma * z)
    return f / f.mean()


def _hyetograph(rng: np.random.Generator) -> tuple[str, float, int, np.ndarray]:
    kind = str(rng.choice(["chicago", "two_peak", "drizzle", "dry"], p=[0.55, 0.3, 0.1, 0.05]))
    period = float(math.exp(rng.uniform(math.log(0.5), math.log(100.0))))
    duration = int(rng.integers(60, 361))
    peak = float(rng.uniform(0.25, 0.55))
    if kind == "chicago":
        i = chicago_hyetograph(period, duration, peak_ratio=peak)
    elif kind == "two_peak":
        split, share = float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.2, 0.8))
        i = two_peak_hyetograph(period, duration, split=split, first_share=share, peak_ratio=peak)
    elif kind == "drizzle":
        i = drizzle(duration, rng, intensity_mmh=float(rng.uniform(0.5, 8.0)))
    else:
        i = dry(duration)
    if kind in ("chicago", "two_peak"):
        i = i * _roughness(duration, rng, float(rng.uniform(0.0, 0.15)))
    return kind, period, duration, i


def _site(rng: np.random.Generator) -> SiteSpec:
    pond = float(math.exp(rng.uniform(math.log(150.0), math.log(1200.0))))
    ratio = float(math.exp(rng.uniform(math.log(2.0), math.log(15.0))))
    return SiteSpec(
        drain_capacity_mmh=float(rng.uniform(25.0, 60.0)),
        catchment_m2=float(np.clip(pond * ratio, 500.0, 6000.0)),
        pond_area_m2=pond,
        runoff_coeff=float(rng.uniform(0.75, 0.95)),
        installation_height_cm=float(rng.uniform(150.0, 600.0)),
    )


def _outages(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Masks of missing minutes for the rain gauge and the depth sensor."""
    rain, depth = np.zeros(n, bool), np.zeros(n, bool)
    for _ in range(rng.poisson(0.6)):
        start, length = int(rng.integers(0, n)), int(rng.integers(1, 31))
        which = rng.uniform()
        if which < 0.75:
            depth[start : start + length] = True
        if which < 0.5 or which >= 0.75:
            rain[start : start + length] = True
    return rain, depth


def make_storm(seed: int, storm_id: int) -> Storm:
    """Simulate storm ``storm_id`` of the dataset seeded by ``seed``."""
    rng = np.random.default_rng([seed, storm_id])
    kind, period, duration, rain_i = _hyetograph(rng)
    lead = int(rng.integers(30, 121))
    intensity = np.concatenate([np.zeros(lead), rain_i, np.zeros(TAIL_MIN)])
    for _ in range(20):  # a site where this storm stays below the spill depth
        site = _site(rng)
        depth = simulate_ponding(intensity, 60.0, site)
        if depth.max() <= MAX_DEPTH_MM:
            break
    n = intensity.size

    resolution = float(rng.choice([0.0001, 0.1, 0.2]))
    counter = np.floor(np.cumsum(intensity / 60.0) * rng.uniform(0.9, 1.1) / resolution)
    rain_obs = np.diff(counter, prepend=0.0) * resolution

    sigma = 2.0 + 0.5 * site.installation_height_cm / 100.0
    depth_obs = depth + rng.normal(rng.normal(0.0, 3.0), sigma, n)
    depth_flag = np.zeros(n, np.int8)
    spikes = rng.uniform(size=n) < 0.003
    depth_obs[spikes] += rng.uniform(50.0, 500.0, spikes.sum())
    depth_flag[spikes] = np.where(rng.uniform(size=spikes.sum()) < 0.85, 2, 1)

    rain_missing, depth_missing = _outages(n, rng)
    rain_flag = np.where(rain_missing, 8, 0).astype(np.int8)
    depth_flag[depth_missing] = 8
    rain_obs[rain_missing] = np.nan
    depth_obs[depth_missing] = np.nan
    return Storm(
        storm_id, kind, period, duration, lead, site, intensity, depth,
        rain_obs, rain_flag, depth_obs, depth_flag,
    )  # fmt: skip


def site_params(site: SiteSpec) -> SiteParams:
    """The feature view of a simulator site."""
    return SiteParams(
        site.drain_capacity_mmh, site.catchment_m2, site.pond_area_m2, site.runoff_coeff
    )


def storm_history(storm: Storm, issue_min: np.ndarray) -> FeatureInput:
    """Batch history (one row per issue minute) as the station's buffer would hold it."""
    pad = WINDOW_MIN - 1

    def windows(a: np.ndarray, fill: float) -> np.ndarray:
        padded = np.concatenate([np.full(pad, fill, dtype=a.dtype), a])
        return np.lib.stride_tricks.sliding_window_view(padded, WINDOW_MIN)[issue_min]

    return FeatureInput(
        rain_mm=windows(storm.rain_obs_mm, 0.0),
        rain_flag=windows(storm.rain_flag, 0),
        depth_mm=windows(storm.depth_obs_mm, 0.0),
        depth_flag=windows(storm.depth_flag, 0),
    )


def physics_forecast(
    depth_now_mm: np.ndarray, intensity_mmh: np.ndarray, site: SiteSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Baseline: ponding run forward with the intensity held.

    Returns the depth at each horizon and the highest depth within the tier horizon.
    """
    h = np.asarray(depth_now_mm, dtype=float)
    out, peak = {}, np.zeros_like(h)
    for minute in range(1, max(HORIZONS_MIN) + 1):
        h = ponding_step(h, intensity_mmh, 60.0, site)
        if minute <= TIER_HORIZON_MIN:
            peak = np.maximum(peak, h)
        if minute in HORIZONS_MIN:
            out[minute] = h
    return np.stack([out[m] for m in HORIZONS_MIN], axis=-1), peak


def storm_samples(storm: Storm, issue_every_min: int, *, baselines: bool = True) -> Samples:
    """Forecast issue times of one storm with features, targets and baselines (NaN if not)."""
    n = storm.depth_mm.size
    last = n - 1 - max(HORIZONS_MIN[-1], TIER_HORIZON_MIN)
    issue = np.arange(max(storm.start_min - 30, 0), last + 1, issue_every_min)
    x = features_from_history(storm_history(storm, issue), site_params(storm.site))
    depth = np.stack([storm.depth_mm[issue + h] for h in HORIZONS_MIN], axis=-1)
    ahead = np.lib.stride_tricks.sliding_window_view(storm.depth_mm[1:], TIER_HORIZON_MIN)
    future_max = ahead[issue].max(axis=-1)
    tier = np.stack([future_max > t for t in TIERS_MM], axis=-1)

    d_obs = x[:, FEATURE_DEPTH].astype(float)
    i_obs = x[:, FEATURE_RAIN_5].astype(float) * 12.0
    if baselines:
        phys, phys_max = physics_forecast(d_obs, i_obs, storm.site)
    else:
        phys, phys_max = np.full(depth.shape, np.nan), np.full(issue.size, np.nan)
    return Samples(
        x=x,
        depth=depth.astype(np.float32),
        tier=tier,
        storm=np.full(issue.size, storm.storm_id, dtype=np.int32),
        persistence=np.repeat(d_obs[:, None], len(HORIZONS_MIN), axis=1).astype(np.float32),
        physics=phys.astype(np.float32),
        physics_tier=np.stack([phys_max > t for t in TIERS_MM], axis=-1),
    )


def split_of(config: DatasetConfig) -> dict[str, np.ndarray]:
    """Storm ids of each split (a seeded permutation of all storms)."""
    perm = np.random.default_rng([config.seed, 1 << 30]).permutation(config.n_storms)
    n_test = round(config.n_storms * config.test_share)
    n_val = round(config.n_storms * config.val_share)
    return {
        "test": np.sort(perm[:n_test]),
        "val": np.sort(perm[n_test : n_test + n_val]),
        "train": np.sort(perm[n_test + n_val :]),
    }


def build(
    config: DatasetConfig, progress: Callable[[int], None] | None = None
) -> dict[str, Samples]:
    """All splits (storms never shared between splits; no baselines for train).

    ``progress`` is called with 1 after each storm (for a progress bar).
    """
    out = {}
    for name, ids in split_of(config).items():
        parts = []
        for s in ids:
            storm = make_storm(config.seed, int(s))
            parts.append(storm_samples(storm, config.issue_every_min, baselines=name != "train"))
            if progress is not None:
                progress(1)
        out[name] = Samples.concat(parts)
    return out
