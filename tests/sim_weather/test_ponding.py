"""Ponding at a street point: routed runoff, storage, infiltration and a drain of fixed capacity."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.spec import SiteSpec
from sim.weather.ponding import (
    SURFACE,
    PointState,
    point_run,
    point_step,
    ponding_step,
    simulate_ponding,
    step_rates,
)
from sim.weather.rain import chicago_hyetograph

SITE = SiteSpec(drain_capacity_mmh=36.0, catchment_m2=2000.0, pond_area_m2=400.0, runoff_coeff=0.9)
RATIO = SITE.catchment_m2 / SITE.pond_area_m2


def _storm_1s(p: float = 5, minutes: int = 120, lead: int = 10, tail: int = 120) -> np.ndarray:
    hyeto = np.repeat(chicago_hyetograph(p, minutes), 60)
    return np.concatenate([np.zeros(lead * 60), hyeto, np.zeros(tail * 60)])


def test_rain_below_the_drain_leaves_the_road_dry() -> None:
    # no orifice residue: the inlet takes all that reaches it up to its capacity
    below = simulate_ponding(np.full(4 * 60, 30.0), 60.0, SITE)
    assert (below == 0.0).all()


def test_steady_rain_above_capacity_climbs_at_the_excess_rate() -> None:
    depth = simulate_ponding(np.full(180, 60.0), 60.0, SITE)
    rate = (depth[-1] - depth[-61]) / 60.0  # mm/min once the soil is wet and runoff steady
    f_c = SURFACE.horton_min_mmh
    runoff = 0.9 * 60.0 + 0.1 * (60.0 - f_c)  # impervious all, pervious less infiltration
    expected = ((runoff - 36.0) * RATIO - SURFACE.pond_loss_mmh) / 60.0
    assert rate == pytest.approx(expected, rel=0.02)


def test_runoff_lags_the_rain_and_infiltration_takes_the_first_millimetres() -> None:
    rain = np.zeros(120)
    rain[10:20] = 120.0  # 20 mm in 10 minutes
    _, state = point_run(rain[:11], 60.0, SITE)
    assert state.imperv_mm > SURFACE.dstore_imperv_mm - 1e-9, "the road holds water first"
    depth = simulate_ponding(rain, 60.0, SITE)
    assert int(depth.argmax()) > 19, "water peaks after the rain stops (routing)"
    # pervious ground infiltrates: its runoff is far below its rain at first
    r = step_rates(SITE, 60.0, SURFACE)
    s, runoff = point_step(PointState(), 30.0, r)
    assert s.perv_mm == 0.0 and runoff < 0.9 * 30.0 / 60.0
    assert s.infil_mmh < SURFACE.horton_max_mmh


def test_infiltration_decays_while_wet_and_recovers_while_dry() -> None:
    _, wet = point_run(np.full(120, 40.0), 60.0, SITE)
    assert wet.infil_mmh < SURFACE.horton_min_mmh + 1.0
    _, dry = point_run(np.zeros(3 * 24 * 60), 60.0, SITE, wet)
    assert wet.infil_mmh < dry.infil_mmh < SURFACE.horton_max_mmh


def test_design_storm_floods_then_recedes_to_dry() -> None:
    rain = _storm_1s()
    depth = simulate_ponding(rain, 1.0, SITE)
    assert depth.max() > 80.0
    assert int(depth.argmax()) > int(rain.argmax())
    assert depth[-1] == 0.0 and (depth >= 0).all()


def test_water_is_accounted_for() -> None:
    rain = np.repeat(chicago_hyetograph(20, 90), 1)
    rain = np.concatenate([rain, np.zeros(600)])
    r = step_rates(SITE, 60.0, SURFACE)
    s, total_runoff = PointState(), 0.0
    for i in rain.tolist():
        s, q = point_step(s, i, r)
        total_runoff += q
    fallen = rain.sum() / 60.0
    left = 0.9 * s.imperv_mm + 0.1 * s.perv_mm
    infiltrated = fallen - total_runoff - left
    assert 0.0 <= infiltrated <= 0.1 * fallen + 1e-9, "only the pervious tenth infiltrates"


def test_stable_at_sixty_second_steps() -> None:
    rain_1s = _storm_1s(p=50)
    fine = simulate_ponding(rain_1s, 1.0, SITE)
    coarse = simulate_ponding(rain_1s.reshape(-1, 60).mean(axis=1), 60.0, SITE)
    assert (coarse >= 0).all()
    assert coarse.max() == pytest.approx(fine.max(), rel=0.03)
    assert np.allclose(coarse, fine[59::60], atol=0.03 * fine.max())


def test_pond_step_on_arrays_matches_floats() -> None:
    depths = np.array([0.0, 1.0, 15.0, 25.0, 300.0])
    rains = np.array([0.0, 20.0, 80.0, 5.0, 150.0])
    for dt in (1.0, 60.0):
        vector = ponding_step(depths, rains, dt, SITE)
        scalar = [
            ponding_step(float(d), float(i), dt, SITE) for d, i in zip(depths, rains, strict=True)
        ]
        assert isinstance(vector, np.ndarray) and isinstance(scalar[0], float)
        assert np.allclose(vector, scalar)


@given(
    rain=st.lists(st.floats(0.0, 300.0), min_size=1, max_size=40),
    more=st.floats(0.0, 50.0),
    dt=st.sampled_from([1.0, 60.0, 300.0]),
)
def test_point_model_is_non_negative_and_monotone_in_rain(
    rain: list[float], more: float, dt: float
) -> None:
    base = simulate_ponding(np.array(rain), dt, SITE)
    wetter = simulate_ponding(np.array(rain) + more, dt, SITE)
    assert (base >= 0.0).all()
    assert (wetter >= base - 1e-6).all()


@given(depth=st.floats(0.0, 1000.0), rain=st.floats(0.0, 400.0), more=st.floats(0.0, 100.0))
def test_pond_step_is_monotone(depth: float, rain: float, more: float) -> None:
    h = ponding_step(depth, rain, 60.0, SITE)
    assert h >= 0.0
    assert ponding_step(depth, rain + more, 60.0, SITE) >= h - 1e-9
    assert ponding_step(depth + more, rain, 60.0, SITE) >= h - 1e-9
