"""Design storms: the formula against the domain brief's table, and hyetograph shape and mass."""

import numpy as np
import pytest

from sim.weather.rain import (
    SHANGHAI,
    IntensityCoeffs,
    chicago_hyetograph,
    drizzle,
    dry,
    shanghai_intensity_mmh,
    two_peak_hyetograph,
)

# Domain brief section 3: average intensity (mm/h) by return period (y) and duration (min).
TABLE = {
    1: {5: 112.8, 10: 89.8, 30: 53.9, 60: 36.5, 120: 24.0},
    5: {5: 179.6, 10: 142.9, 30: 85.8, 60: 58.1, 120: 38.2},
    50: {5: 275.0, 10: 218.9, 30: 131.4, 60: 89.0, 120: 58.5},
    100: {5: 303.8, 10: 241.7, 30: 145.1, 60: 98.3, 120: 64.6},
}


@pytest.mark.parametrize(
    ("p", "t", "expected"),
    [(p, t, v) for p, row in TABLE.items() for t, v in row.items()],
)
def test_formula_matches_domain_table(p: float, t: float, expected: float) -> None:
    assert shanghai_intensity_mmh(p, t) == pytest.approx(expected, abs=0.2)


def test_coefficients_are_configurable() -> None:
    doubled = IntensityCoeffs(A=2 * SHANGHAI.A, C=SHANGHAI.C, b=SHANGHAI.b, n=SHANGHAI.n)
    assert shanghai_intensity_mmh(5, 60, coeffs=doubled) == pytest.approx(
        2 * shanghai_intensity_mmh(5, 60)
    )
    hyeto = chicago_hyetograph(5, 60, coeffs=doubled)
    assert hyeto.sum() == pytest.approx(2 * chicago_hyetograph(5, 60).sum())


@pytest.mark.parametrize("p", [0.5, 1, 2, 5, 10, 20, 50, 100])
@pytest.mark.parametrize("duration", [60, 120, 180, 360])
@pytest.mark.parametrize("dt_s", [60.0, 10.0])
def test_chicago_conserves_the_formula_depth(p: float, duration: float, dt_s: float) -> None:
    hyeto = chicago_hyetograph(p, duration, dt_s=dt_s)
    assert hyeto.size == duration * 60 / dt_s
    assert (hyeto > 0).all()
    depth = hyeto.sum() * dt_s / 3600.0
    assert depth == pytest.approx(shanghai_intensity_mmh(p, duration) * duration / 60.0, rel=1e-9)


@pytest.mark.parametrize("r", [0.2, 0.367, 0.5, 0.7])
@pytest.mark.parametrize("duration", [60, 150, 360])
def test_chicago_peak_sits_at_r_times_duration(r: float, duration: float) -> None:
    hyeto = chicago_hyetograph(10, duration, peak_ratio=r)
    peak = int(hyeto.argmax())
    assert abs((peak + 0.5) - r * duration) <= 1.0  # within one minute step
    assert (np.diff(hyeto[: peak + 1]) > 0).all(), "rises to the peak"
    assert (np.diff(hyeto[peak:]) <= 1e-9).all(), "falls after it"
    assert hyeto[-1] < hyeto[peak] / 3


def test_chicago_peak_intensity_grows_with_return_period() -> None:
    peaks = [chicago_hyetograph(p, 120).max() for p in (0.5, 1, 5, 50, 100)]
    assert peaks == sorted(peaks) and peaks[0] < peaks[-1]


def test_chicago_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        chicago_hyetograph(5, 120, peak_ratio=1.0)
    with pytest.raises(ValueError):
        chicago_hyetograph(5, 60.5, dt_s=60.0)
    with pytest.raises(ValueError):
        shanghai_intensity_mmh(0, 60)


def _local_maxima(x: np.ndarray, half_width: int) -> list[int]:
    return [
        i
        for i in range(x.size)
        if x[i] == x[max(0, i - half_width) : i + half_width + 1].max() and x[i] > 0
    ]


@pytest.mark.parametrize(("split", "share"), [(0.5, 0.4), (0.4, 0.6), (0.6, 0.5)])
def test_two_peak_has_two_maxima_and_keeps_mass(split: float, share: float) -> None:
    duration = 180
    hyeto = two_peak_hyetograph(10, duration, split=split, first_share=share)
    total = shanghai_intensity_mmh(10, duration) * duration / 60
    assert hyeto.sum() / 60 == pytest.approx(total, rel=1e-9)
    n1 = round(duration * split)
    assert hyeto[:n1].sum() / 60 == pytest.approx(share * total, rel=1e-9)
    maxima = _local_maxima(hyeto, 20)
    assert len(maxima) == 2
    first, second = maxima
    assert first < n1 <= second
    lull = hyeto[first:second].min()
    assert lull < 0.5 * min(hyeto[first], hyeto[second])


def test_drizzle_is_light_seeded_and_keeps_its_mean() -> None:
    a = drizzle(240, np.random.default_rng(3), intensity_mmh=0.8)
    b = drizzle(240, np.random.default_rng(3), intensity_mmh=0.8)
    c = drizzle(240, np.random.default_rng(4), intensity_mmh=0.8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.mean() == pytest.approx(0.8)
    assert (a > 0).all() and a.max() < 8.0
    assert a.std() > 0.05, "drizzle wanders"


def test_dry_is_all_zero() -> None:
    assert dry(90).shape == (90,)
    assert not dry(90).any()
