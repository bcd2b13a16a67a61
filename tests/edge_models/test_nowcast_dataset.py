"""Training data: seeded, split by storm, targets are the simulator's truth."""

from __future__ import annotations

import numpy as np

from edge_models.dataset import (
    MAX_DEPTH_MM,
    DatasetConfig,
    Samples,
    make_storm,
    physics_forecast,
    split_of,
    storm_samples,
)
from edge_models.model import HORIZONS_MIN, TIER_HORIZON_MIN
from sim.weather.ponding import simulate_ponding


def test_storms_are_reproducible_and_distinct() -> None:
    a, b, c = make_storm(7, 3), make_storm(7, 3), make_storm(7, 4)
    np.testing.assert_array_equal(a.intensity_mmh, b.intensity_mmh)
    np.testing.assert_array_equal(a.depth_obs_mm, b.depth_obs_mm)
    assert a.site == b.site
    assert a.site != c.site


def test_truth_is_the_simulator_physics() -> None:
    s = make_storm(7, 11)
    np.testing.assert_allclose(s.depth_mm, simulate_ponding(s.intensity_mmh, 60.0, s.site))


def test_sites_are_redrawn_below_the_spill_depth() -> None:
    deepest = [make_storm(2, i).depth_mm.max() for i in range(60)]
    assert max(deepest) > 150.0  # storms do pond past the tiers
    assert np.mean(np.array(deepest) > MAX_DEPTH_MM) <= 0.05


def test_storm_variety() -> None:
    storms = [make_storm(1, i) for i in range(80)]
    kinds = {s.kind for s in storms}
    assert {"chicago", "two_peak", "drizzle"} <= kinds
    periods = [s.return_period_y for s in storms]
    assert min(periods) < 2 and max(periods) > 30
    assert min(s.duration_min for s in storms) >= 60 and max(s.duration_min for s in storms) <= 360
    flags = np.concatenate([s.depth_flag for s in storms])
    assert {0, 1, 2, 8} <= set(np.unique(flags).tolist())
    assert any(np.isnan(s.rain_obs_mm).any() for s in storms)


def test_splits_are_by_storm_and_cover_all() -> None:
    cfg = DatasetConfig(n_storms=200)
    split = split_of(cfg)
    ids = [set(v.tolist()) for v in split.values()]
    assert sum(len(s) for s in ids) == 200 and len(set().union(*ids)) == 200
    assert len(split["test"]) == 30 and len(split["val"]) == 30
    assert split_of(cfg)["test"].tolist() == split["test"].tolist()


def test_targets_are_future_truth_and_baselines_use_observations() -> None:
    storm = make_storm(3, 5)
    s: Samples = storm_samples(storm, 1)
    first = max(storm.start_min - 30, 0)
    for k, h in enumerate(HORIZONS_MIN):
        np.testing.assert_allclose(s.depth[:, k], storm.depth_mm[first + h : first + h + len(s)])
    # persistence holds the observed (masked, forward-filled) depth, not the truth
    assert not np.allclose(s.persistence[:, 0], storm.depth_mm[first : first + len(s)])
    assert s.tier.dtype == bool and s.physics_tier.dtype == bool


def test_physics_baseline_holds_the_intensity() -> None:
    storm = make_storm(3, 5)
    depth, peak = physics_forecast(np.array([0.0]), np.array([80.0]), storm.site)
    held = simulate_ponding(np.full(60, 80.0), 60.0, storm.site)
    np.testing.assert_allclose(depth[0], held[[14, 29, 59]])
    assert peak[0] == held[:TIER_HORIZON_MIN].max()
