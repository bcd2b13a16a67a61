"""Storm families: seeded, parameters inside their ranges, shapes as named."""

import numpy as np
import pytest

from sim.spec import SiteSpec
from sim.weather.storms import FAMILIES, HELD_OUT_SITES, TRAIN_SITES

SITE = SiteSpec()


def _storm(name: str, seed: int = 0) -> tuple[dict[str, float], np.ndarray]:
    return FAMILIES[name].generate(np.random.default_rng(seed), SITE)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_is_seeded_and_keeps_its_ranges(name: str) -> None:
    fam = FAMILIES[name]
    for seed in range(5):
        params, rain = _storm(name, seed)
        again, rain2 = _storm(name, seed)
        assert params == again and np.array_equal(rain, rain2)
        assert set(params) == set(fam.ranges)
        for key, (lo, hi, _) in fam.ranges.items():
            assert lo <= params[key] <= hi
        assert rain.ndim == 1 and rain.size > 0 and (rain >= 0).all()
    assert fam.manifest()["ranges"]


def _centre_of_mass(rain: np.ndarray) -> float:
    t = (np.arange(rain.size) + 0.5) / rain.size
    return float((t * rain).sum() / rain.sum())


def test_huff_quartiles_move_the_mass_later() -> None:
    centres = [_centre_of_mass(_storm(f"huff_q{q}")[1]) for q in (1, 2, 3, 4)]
    assert centres == sorted(centres) and centres[0] < 0.4 and centres[-1] > 0.6


def test_design_families_conserve_the_formula_depth() -> None:
    from sim.weather.rain import shanghai_intensity_mmh

    for name in ("huff_q2", "scs_ii", "block", "chicago"):
        p, rain = _storm(name)
        total = shanghai_intensity_mmh(p["return_period_y"], p["duration_min"]) * p["duration_min"]
        assert rain.sum() == pytest.approx(total, rel=1e-6)


def test_steady_rain_sits_near_the_drain_capacity() -> None:
    p, rain = _storm("steady_near_capacity")
    assert np.allclose(rain, p["capacity_share"] * SITE.drain_capacity_mmh)


def test_abrupt_stop_ends_at_full_intensity_and_dry_tail_ends_dry() -> None:
    _, cut = _storm("abrupt_stop", 3)
    assert cut[-1] > 0.2 * cut.max()
    p, tail = _storm("dry_tail")
    assert (tail[-int(p["tail_min"]) :] == 0).all()


def test_pulses_and_bursts_have_gaps_and_cells() -> None:
    _, bl = _storm("bartlett_lewis", 4)
    assert len(np.unique(np.round(bl, 6))) > 3
    _, mb = _storm("multi_burst", 1)
    dry = mb == 0
    assert dry.any() and not dry[0] and not dry[-1]


def test_held_out_sites_lie_outside_the_training_box() -> None:
    rng = np.random.default_rng(0)
    sites = [HELD_OUT_SITES.draw(rng) for _ in range(200)]
    ratios = [s.catchment_m2 / s.pond_area_m2 for s in sites]
    assert max(ratios) > TRAIN_SITES.ratio[1]
    assert min(s.drain_capacity_mmh for s in sites) < TRAIN_SITES.drain_mmh[0]
