"""Training data: seeded, split by storm, targets are the simulator's truth."""

from __future__ import annotations

import numpy as np

from edge_models.dataset import (
    HELD_OUT_SITE_SEED,
    MAX_DEPTH_MM,
    DatasetConfig,
    Samples,
    make_storm,
    split_of,
    storm_samples,
    storm_truth,
)
from edge_models.features import FEATURES
from edge_models.model import HORIZONS_MIN
from edge_models.physics import point_outlook
from sim.weather.ponding import simulate_ponding
from sim.weather.storms import FAMILIES, TRAIN_SITES


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


def test_every_family_in_turn_with_its_parameters_recorded() -> None:
    n = len(FAMILIES)
    storms = [make_storm(1, i) for i in range(2 * n)]
    assert [s.family for s in storms] == list(FAMILIES) * 2
    for s in storms:
        assert set(s.params) == set(FAMILIES[s.family].ranges)
        assert TRAIN_SITES.drain_mmh[0] <= s.site.drain_capacity_mmh <= TRAIN_SITES.drain_mmh[1]
    held = make_storm(1, HELD_OUT_SITE_SEED + 3)
    assert held.family == list(FAMILIES)[(HELD_OUT_SITE_SEED + 3) % n]
    peak, reach = storm_truth(storms[0])
    assert peak == storms[0].depth_mm.max()
    assert reach == -1 or storms[0].depth_mm[reach] > 150.0 >= storms[0].depth_mm[:reach].max()


def test_storm_variety() -> None:
    storms = [make_storm(1, i) for i in range(80)]
    periods = [s.params["return_period_y"] for s in storms if "return_period_y" in s.params]
    assert min(periods) < 2 and max(periods) > 30
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


def test_physics_baseline_holds_the_last_ten_minutes_of_rain() -> None:
    storm = make_storm(3, 5)
    s = storm_samples(storm, 5)
    k = int(np.argmax(s.x[:, FEATURES.index("rain_10min_mm")]))
    held = s.physics[k]
    np.testing.assert_array_equal(
        held, s.x[k, [FEATURES.index(f"phys_held_{h}_mm") for h in HORIZONS_MIN]]
    )
    # an hour of rain from a dry start: the outlook's held run equals the point model's own run
    rain = np.zeros(180)
    rain[-10:] = 2.0  # 12 mm in 10 min = 72 mm/h
    out = point_outlook(rain, 0.0, storm.site)
    assert out[3] <= out[4] <= out[5], "held rain above the drain: the water keeps rising"
    more = point_outlook(rain * 1.5, 0.0, storm.site)
    assert all(m >= b for m, b in zip(more, out[:7], strict=False))
