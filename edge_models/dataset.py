"""Training data for the nowcast: seeded storms of many families run through the point model.

Each storm (:func:`make_storm`) draws from its own generator ``default_rng([seed, storm_id])``, so
a storm is the same whatever the dataset size. A storm is:

- a family, taken in turn by storm id from :attr:`DatasetConfig.families` (so every family has the
  same share and a leave-one-family-out split is a filter on ids), with parameters drawn from the
  family's ranges (``sim.weather.storms.FAMILIES``) and recorded on the storm;
- a site from :data:`sim.weather.storms.TRAIN_SITES` (or the held-out-site ranges); a site is
  redrawn (up to 20 times) while the storm would pond deeper than :data:`MAX_DEPTH_MM`, where a
  real street spills over the kerb and the point model no longer holds;
- the truth depth from ``sim.weather.ponding.simulate_ponding`` at 60-s steps (routed
  catchment, depression storage, Horton infiltration, drain), 30-120 min dry lead-in, 180 min after;
- what the station sees: rain per minute from a tipping counter (resolution 0.0001, 0.1 or
  0.2 mm, catch bias +-10 %), depth with radar noise (2 mm + 0.5 mm per metre of height, offset
  +-3 mm), obstruction spikes (flagged wrong 85 % of the time, suspect otherwise) and outages
  (missing, flag 8) on one or both sensors, in 15 % of storms a stretch with every other
  minute missing (a station too busy to poll each minute); in :data:`COLD_START_SHARE` of storms
  the station started during the dry lead-in, so its history before then is missing (as after a
  restart).

Samples are issued every ``issue_every_min`` minutes from 30 min before the rain to 60 min before
the end; targets are the *true* depths at +15/+30/+60 min and whether the true depth passes each
tier within 30 min. Splits are by storm (``storm_id`` mod a seeded permutation), never by row.
The baselines (persistence; the point model with the current intensity held, which is part of the
features) come from the same observed inputs the model gets.
"""

from __future__ import annotations

import dataclasses
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
from sim.weather.ponding import simulate_ponding
from sim.weather.storms import FAMILIES, HELD_OUT_SITES, TRAIN_SITES, SiteRanges

SPLITS = ("train", "val", "test")
TAIL_MIN = 180
MAX_DEPTH_MM = 600.0  # water spills over the kerb beyond this; the point model has no spill
FEATURE_DEPTH = FEATURES.index("depth_mm")
PHYS_HELD = [FEATURES.index(f"phys_held_{h}_mm") for h in HORIZONS_MIN]
PHYS_HELD_MAX = FEATURES.index("phys_held_max30_mm")
SLOW_POLL_SHARE = 0.15  # storms with a stretch where only every other minute was recorded
COLD_START_SHARE = 0.15  # storms whose station started during the dry lead-in (history missing)
HELD_OUT_SITE_SEED = 1 << 20  # storm ids from here on stand at held-out sites


@dataclass(frozen=True)
class DatasetConfig:
    """How many storms, which seed, how often a forecast is issued, how storms are split."""

    n_storms: int = 3000
    seed: int = 20260721
    families: tuple[str, ...] = tuple(FAMILIES)
    issue_every_min: int = 5
    val_share: float = 0.15
    test_share: float = 0.15


@dataclass(frozen=True)
class Storm:
    """One simulated storm at one site: truth and what the station observed, per minute."""

    storm_id: int
    family: str
    params: dict[str, float]  # the family's parameters drawn for this storm
    start_min: int  # first minute of rain
    duration_min: int  # minutes from the first rain to the end of the family's series
    site: SiteSpec
    intensity_mmh: np.ndarray  # truth, per minute
    depth_mm: np.ndarray  # truth at the end of each minute
    rain_obs_mm: np.ndarray  # observed rain per minute (NaN when missing)
    rain_flag: np.ndarray
    depth_obs_mm: np.ndarray  # observed depth (NaN when missing)
    depth_flag: np.ndarray
    cold_start: bool = False  # the station's history begins inside this storm's record


@dataclass(frozen=True)
class Samples:
    """Forecast issue times of many storms: inputs, truth targets and baseline forecasts."""

    x: np.ndarray  # (N, F) float32 features
    depth: np.ndarray  # (N, 3) true depth (mm) at +15/+30/+60
    tier: np.ndarray  # (N, 2) true depth passes 150/300 mm within 30 min
    storm: np.ndarray  # (N,) storm id
    minute: np.ndarray  # (N,) issue minute within the storm
    persistence: np.ndarray  # (N, 3) observed current depth (mm) held
    physics: np.ndarray  # (N, 3) ponding with the current intensity held (mm)
    physics_tier: np.ndarray  # (N, 2) physics run passes the tier within 30 min

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, rows: np.ndarray) -> Samples:
        """The samples at ``rows`` (a boolean mask or indices)."""
        return Samples(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def with_features(self, n: int) -> Samples:
        """The same samples with only the first ``n`` features."""
        return dataclasses.replace(self, x=self.x[:, :n])

    @classmethod
    def concat(cls, parts: list[Samples]) -> Samples:
        return cls(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)}
        )


def _outages(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Masks of missing minutes for the rain gauge and the depth sensor.

    Outages of 1-30 min on one or both sensors; in :data:`SLOW_POLL_SHARE` of storms a stretch of
    30-240 min where a busy station records only every other minute (both sensors).
    """
    rain, depth = np.zeros(n, bool), np.zeros(n, bool)
    if rng.uniform() < SLOW_POLL_SHARE:
        start = int(rng.integers(0, n))
        stretch = slice(start + int(rng.integers(0, 2)), start + int(rng.integers(30, 241)), 2)
        rain[stretch] = depth[stretch] = True
    for _ in range(rng.poisson(0.6)):
        start, length = int(rng.integers(0, n)), int(rng.integers(1, 31))
        which = rng.uniform()
        if which < 0.75:
            depth[start : start + length] = True
        if which < 0.5 or which >= 0.75:
            rain[start : start + length] = True
    return rain, depth


def make_storm(
    seed: int,
    storm_id: int,
    families: tuple[str, ...] = tuple(FAMILIES),
    sites: SiteRanges | None = None,
) -> Storm:
    """Simulate storm ``storm_id`` of the dataset seeded by ``seed``.

    The family is ``families[storm_id % len(families)]``; sites come from ``sites`` (default:
    the training ranges, or the held-out ones for ids from :data:`HELD_OUT_SITE_SEED`).
    """
    rng = np.random.default_rng([seed, storm_id])
    family = FAMILIES[families[storm_id % len(families)]]
    ranges = sites or (HELD_OUT_SITES if storm_id >= HELD_OUT_SITE_SEED else TRAIN_SITES)
    lead = int(rng.integers(30, 121))
    for _ in range(20):  # a site where this storm stays below the spill depth
        site = ranges.draw(rng)
        params, rain_i = family.generate(rng, site)
        intensity = np.concatenate([np.zeros(lead), rain_i, np.zeros(TAIL_MIN)])
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
    cold = rng.uniform() < COLD_START_SHARE
    if cold:  # the station started shortly before: nothing recorded before that minute
        began = int(rng.integers(0, lead + 1))
        for a, f in ((rain_obs, rain_flag), (depth_obs, depth_flag)):
            a[:began] = np.nan
            f[:began] = 8
    return Storm(
        storm_id, family.name, params, lead, rain_i.size, site, intensity, depth,
        rain_obs, rain_flag, depth_obs, depth_flag, cold,
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

    gap, flag = (np.nan, 8) if storm.cold_start else (0.0, 0)
    return FeatureInput(
        rain_mm=windows(storm.rain_obs_mm, gap),
        rain_flag=windows(storm.rain_flag, flag),
        depth_mm=windows(storm.depth_obs_mm, gap),
        depth_flag=windows(storm.depth_flag, flag),
    )


def storm_samples(storm: Storm, issue_every_min: int) -> Samples:
    """Forecast issue times of one storm with features, targets and baselines."""
    n = storm.depth_mm.size
    last = n - 1 - max(HORIZONS_MIN[-1], TIER_HORIZON_MIN)
    issue = np.arange(max(storm.start_min - 30, 0), last + 1, issue_every_min)
    x = features_from_history(storm_history(storm, issue), site_params(storm.site))
    depth = np.stack([storm.depth_mm[issue + h] for h in HORIZONS_MIN], axis=-1)
    ahead = np.lib.stride_tricks.sliding_window_view(storm.depth_mm[1:], TIER_HORIZON_MIN)
    future_max = ahead[issue].max(axis=-1)
    tier = np.stack([future_max > t for t in TIERS_MM], axis=-1)

    d_obs = x[:, FEATURE_DEPTH].astype(float)
    phys, phys_max = x[:, PHYS_HELD], x[:, PHYS_HELD_MAX]
    return Samples(
        x=x,
        depth=depth.astype(np.float32),
        tier=tier,
        storm=np.full(issue.size, storm.storm_id, dtype=np.int32),
        minute=issue.astype(np.int32),
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


def storm_truth(storm: Storm) -> tuple[float, int]:
    """The storm's highest true depth (mm) and the first minute past the 15 cm tier (-1: never)."""
    past = np.flatnonzero(storm.depth_mm > TIERS_MM[0])
    return float(storm.depth_mm.max()), int(past[0]) if past.size else -1


def build(
    config: DatasetConfig,
    progress: Callable[[int], None] | None = None,
    truth: dict[int, tuple[float, int]] | None = None,
) -> dict[str, Samples]:
    """All splits (storms never shared between splits).

    ``progress`` is called with 1 after each storm (for a progress bar); ``truth``, when given,
    receives :func:`storm_truth` of every storm by id.
    """
    out = {}
    for name, ids in split_of(config).items():
        parts = []
        for s in ids:
            storm = make_storm(config.seed, int(s), config.families)
            parts.append(storm_samples(storm, config.issue_every_min))
            if truth is not None:
                truth[storm.storm_id] = storm_truth(storm)
            if progress is not None:
                progress(1)
        out[name] = Samples.concat(parts)
    return out
