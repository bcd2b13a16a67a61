"""Ponding at a street point: rises when rain beats the drain, recedes after, balances its water."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.spec import SiteSpec
from sim.weather.ponding import (
    HEAD_AT_CAPACITY_MM,
    LOSS_MMH,
    drain_outflow_mms,
    inlet_area_m2,
    ponding_step,
    simulate_ponding,
)
from sim.weather.rain import chicago_hyetograph

SITE = SiteSpec(drain_capacity_mmh=36.0, catchment_m2=2000.0, pond_area_m2=400.0, runoff_coeff=0.9)
RATIO = SITE.catchment_m2 / SITE.pond_area_m2


def _storm_1s(p: float = 5, minutes: int = 120, lead: int = 10, tail: int = 120) -> np.ndarray:
    hyeto = np.repeat(chicago_hyetograph(p, minutes), 60)
    return np.concatenate([np.zeros(lead * 60), hyeto, np.zeros(tail * 60)])


def test_depth_rises_only_when_rain_beats_the_drain() -> None:
    # 0.9 * i over the catchment equals the drain's 36 mm/h at i = 40 mm/h.
    below = simulate_ponding(np.full(4 * 3600, 35.0), 1.0, SITE)
    above = simulate_ponding(np.full(3600, 60.0), 1.0, SITE)
    assert below[-1] < HEAD_AT_CAPACITY_MM, "the drain keeps up: a shallow steady film"
    assert abs(below[-1] - below[-600]) < 0.01, "steady"
    assert above[-1] > 80.0
    # above capacity the depth climbs at (psi i - drain) over the ponded area
    rate = (above[-1] - above[-601]) / 600.0
    expected = (0.9 * 60.0 - 36.0) * RATIO / 3600.0 - LOSS_MMH / 3600.0
    assert rate == pytest.approx(expected, rel=1e-6)


def test_steady_film_matches_the_orifice_law() -> None:
    i = 20.0
    depth = simulate_ponding(np.full(7200, i), 1.0, SITE)[-1]
    inflow = 0.9 * i * RATIO / 3600.0 - LOSS_MMH / 3600.0  # mm/s over the pond
    q_cap = 36.0 * RATIO / 3600.0
    assert depth == pytest.approx(HEAD_AT_CAPACITY_MM * (inflow / q_cap) ** 2, rel=1e-3)


def test_design_storm_floods_then_recedes_to_dry() -> None:
    rain = _storm_1s()
    depth = simulate_ponding(rain, 1.0, SITE)
    peak = int(depth.argmax())
    rain_peak = int(rain.argmax())
    assert depth.max() > 80.0
    assert peak > rain_peak, "water peaks after the rain does"
    assert depth[-1] == 0.0
    assert (depth >= 0).all()
    # the flood lasts while rain outruns the drain and a while after, not the whole run
    wet = depth > HEAD_AT_CAPACITY_MM
    assert wet[peak] and not wet[: 10 * 60].any() and not wet[-30 * 60 :].any()


def test_water_is_accounted_for() -> None:
    rain = _storm_1s(p=20)
    depth = simulate_ponding(rain, 1.0, SITE)
    before = np.concatenate([[0.0], depth[:-1]])
    inflow = (0.9 * rain * RATIO / 3600.0).sum()  # mm over the pond, 1-s steps
    drained = sum(drain_outflow_mms(h, SITE) for h in depth.tolist())
    stored = depth[-1] - 0.0
    lost = inflow - drained - stored
    wet_seconds = int(((before > 0) | (rain > 0)).sum())
    assert 0.0 <= lost <= LOSS_MMH / 3600.0 * wet_seconds + 1e-6
    assert drained > 0.9 * inflow


def test_stable_at_sixty_second_steps() -> None:
    rain_1s = _storm_1s(p=50)
    fine = simulate_ponding(rain_1s, 1.0, SITE)
    rain_60s = rain_1s.reshape(-1, 60).mean(axis=1)
    coarse = simulate_ponding(rain_60s, 60.0, SITE)
    assert (coarse >= 0).all()
    assert coarse.max() == pytest.approx(fine.max(), rel=0.03)
    assert np.allclose(coarse, fine[59::60], atol=0.03 * fine.max())
    # constant light rain at 60 s: settles without oscillating around the film depth
    steady = simulate_ponding(np.full(120, 10.0), 60.0, SITE)
    assert (np.diff(steady) >= -1e-12).all()


def test_step_on_arrays_matches_floats() -> None:
    depths = np.array([0.0, 1.0, 15.0, 25.0, 300.0])
    rains = np.array([0.0, 20.0, 80.0, 5.0, 150.0])
    for dt in (1.0, 60.0):
        vector = ponding_step(depths, rains, dt, SITE)
        scalar = [
            ponding_step(float(d), float(r), dt, SITE) for d, r in zip(depths, rains, strict=True)
        ]
        assert isinstance(vector, np.ndarray)
        assert np.allclose(vector, scalar)
        assert isinstance(scalar[0], float)


def test_inlet_is_an_orifice_passing_the_drain_capacity() -> None:
    a_o = inlet_area_m2(SITE)
    q_cap = 36.0 / 3.6e6 * 2000.0
    assert 0.6 * a_o * math.sqrt(2 * 9.81 * HEAD_AT_CAPACITY_MM / 1000) == pytest.approx(q_cap)
    assert drain_outflow_mms(HEAD_AT_CAPACITY_MM, SITE) == pytest.approx(36.0 * RATIO / 3600.0)
    assert drain_outflow_mms(500.0, SITE) == drain_outflow_mms(HEAD_AT_CAPACITY_MM, SITE)


@given(
    depth=st.floats(0.0, 1000.0),
    rain=st.floats(0.0, 400.0),
    more=st.floats(0.0, 100.0),
    dt=st.sampled_from([1.0, 10.0, 60.0, 300.0]),
)
def test_step_is_non_negative_and_monotone(
    depth: float, rain: float, more: float, dt: float
) -> None:
    h = ponding_step(depth, rain, dt, SITE)
    assert h >= 0.0
    assert ponding_step(depth, rain + more, dt, SITE) >= h - 1e-9
    assert ponding_step(depth + more, rain, dt, SITE) >= h - 1e-9
