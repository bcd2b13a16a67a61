"""Each pure QC check on crafted arrays: the expected flag lands on the expected sample."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from agent.flags import Flag
from agent.qc import checks as c

S, W, M = Flag.SUSPECT, Flag.WRONG, Flag.MISSING
NAN = np.nan


def arr(*xs: float) -> np.ndarray:
    return np.array(xs, dtype=float)


def secs(n: int, dt: float = 1.0) -> np.ndarray:
    return np.arange(n) * dt


def test_missing_and_format() -> None:
    v = arr(1.0, NAN, np.inf, 2.0)
    assert list(c.check_missing(v)) == [0, M, 0, 0]
    assert list(c.check_format(v)) == [0, 0, W, 0]


def test_range_and_climate_bounds_inclusive() -> None:
    v = arr(-0.1, 0.0, 75.0, 75.1, NAN)
    assert list(c.check_range(v, 0.0, 75.0)) == [W, 0, 0, W, 0]
    assert list(c.check_climate(v, None, 60.0)) == [0, 0, S, S, 0]


def step(v: np.ndarray, t: np.ndarray | None = None, **kw) -> list[int]:
    t = secs(v.size) if t is None else t
    return [int(f) for f in c.check_step(t, v, np.isfinite(v), 20.0, **kw)[0]]


def test_step_flags_outlier_not_its_return() -> None:
    assert step(arr(5, 6, 40, 6, 7)) == [0, 0, S, 0, 0]


def test_step_catches_dense_spikes() -> None:
    assert step(arr(5, 6, 51, 50, 52, 6, 53, 5)) == [0, 0, S, S, S, 0, S, 0]


def test_step_accepts_a_new_level_once_it_lasted_a_minute() -> None:
    v = arr(5, 5, 30, 31, 30, 31, 30, 31, 30)
    assert step(v, secs(9, 20.0)) == [0, 0, S, S, S, 0, 0, 0, 0]
    alternating = arr(*([5, 50] * 40))  # spikes on every other sample never settle
    assert step(alternating)[1::2] == [S] * 40


def test_step_skips_missing_and_restarts_after_gap() -> None:
    v = arr(5, NAN, 30)
    assert step(v) == [0, 0, S]
    assert step(v, arr(0, 1, 900), max_age_s=600) == [0, 0, 0]


def test_step_state_carries_between_calls() -> None:
    v = arr(5, 5, 40, 41, 5)
    whole = step(v)
    head, state = c.check_step(secs(5), v, np.isfinite(v), 20.0, first=0)
    part1, state1 = c.check_step(secs(3), v[:3], np.isfinite(v[:3]), 20.0)
    part2, _ = c.check_step(secs(5), v, np.isfinite(v), 20.0, state=state1, first=3)
    assert [*part1, *part2] == whole == list(head)
    assert state.value == 5.0


def test_stuck_needs_full_window_then_flags() -> None:
    t = secs(8, 600.0)  # every 10 min, window 60 min
    v = np.full(8, 7.3)
    flags = c.check_stuck(t, v, np.isfinite(v), 3600.0, 0.5, min_samples=3)
    assert list(flags) == [0, 0, 0, 0, 0, 0, S, S]


def test_stuck_passes_varying_and_inactive_samples() -> None:
    t = secs(8, 600.0)
    v = arr(7, 7, 7, 7, 7, 7, 7.6, 7)
    assert not c.check_stuck(t, v, np.isfinite(v), 3600.0, 0.5, min_samples=3).any()
    calm = np.zeros(8, dtype=bool)
    flat = np.full(8, 0.2)
    assert not c.check_stuck(
        t, flat, np.isfinite(flat), 3600.0, 0.5, active=calm, min_samples=3
    ).any()


def test_stuck_direction_across_north_is_circular() -> None:
    t = secs(8, 600.0)
    v = arr(358, 2, 359, 1, 358, 2, 359, 1)  # 4 degrees of spread across north
    plain = c.check_stuck(t, v, np.isfinite(v), 3600.0, 10.0, min_samples=3)
    circular = c.check_stuck(t, v, np.isfinite(v), 3600.0, 10.0, circular=True, min_samples=3)
    assert not plain.any()
    assert list(circular[-2:]) == [S, S]


def test_stuck_needs_enough_samples() -> None:
    t = secs(8, 600.0)  # 7 slow polls in the window can agree by chance: not judged
    v = np.full(8, 7.3)
    assert not c.check_stuck(t, v, np.isfinite(v), 3600.0, 0.5).any()


def test_gap_flags_first_sample_after_silence() -> None:
    assert list(c.check_gap(arr(0, 10, 20, 2000, 2010), 900.0)) == [0, 0, 0, S, 0]


def test_gust_vs_mean() -> None:
    gust = arr(12, 8, 60, NAN)
    mean = arr(10, 10, 10, 10)
    assert list(c.check_gust(gust, mean, tolerance=0.5, max_excess=38.6)) == [0, S, W, 0]


def test_direction_vs_calm() -> None:
    speed = arr(0.0, 0.0, 5.0, 5.0)
    direction = arr(0.0, 90.0, 0.0, 90.0)
    flags = c.check_calm_direction(speed, direction, zero_speed=0.05, calm=0.5)
    assert list(flags) == [0, S, S, 0]


def test_rain_per_minute_and_rate_limits() -> None:
    t = secs(7, 60.0)
    totals = arr(0, 1, 12, 12, 60, 60, 60.2)
    valid = np.isfinite(totals)
    rate = c.rain_per_minute(t, totals, valid)
    assert np.allclose(rate, [0, 1, 11, 0, 48, 0, 0.2])
    flags = c.check_rain_rate(rate, valid, suspect=10.0, wrong=40.0)
    assert list(flags) == [0, 0, S, 0, W, 0, 0]


def test_rain_per_minute_sums_sub_minute_polls() -> None:
    t = secs(13, 10.0)
    totals = np.cumsum(np.r_[0, np.full(12, 2.0)])  # 2 mm every 10 s = 12 mm/min
    rate = c.rain_per_minute(t, totals, np.isfinite(totals))
    assert rate[-1] == 12.0 and rate[6] == 12.0


def test_counter_reset_against_reference() -> None:
    totals = arr(10.0, 10.2, 0.0, 0.1, 0.1)
    valid = np.isfinite(totals)
    assert list(c.check_counter_reset(totals, valid, valid, 0.01)) == [0, 0, S, 0, 0]


def test_believable_totals_skip_jumps_and_accept_resets() -> None:
    t = secs(7, 10.0)
    totals = arr(5.0, 55.0, 55.0, 5.1, 0.0, 0.1, 60.0)
    ok = c.believable_totals(t, totals, np.isfinite(totals), 40.0)
    assert list(ok) == [True, False, False, True, True, True, False]


def test_counter_increments_never_subtract_invalid_samples() -> None:
    """Infinite or huge totals a sensor sent (already flagged invalid) are not subtracted: no
    ``inf - inf`` or overflow warning, and no increment from them."""
    totals = np.array([np.inf, np.inf, -1e308, 1e308, 2.0, 2.5])
    valid = np.array([False, False, False, False, True, True])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inc = c.counter_increments(totals, valid)
    assert inc.tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, 0.5]


def test_counter_increments_ignore_resets() -> None:
    totals = arr(10.0, 10.2, 0.0, 0.3, NAN, 0.5)
    inc = c.counter_increments(totals, np.isfinite(totals))
    assert np.allclose(inc, [0, 0.2, 0, 0.3, 0, 0.2])


def test_rise_rate_flags_blips_not_falls() -> None:
    t = secs(9, 10.0)
    depth = arr(0, 2, 300, 4, 6, 800, 805, 8, 0)
    flags, _ = c.check_rise_rate(
        t, depth, np.isfinite(depth), max_rise_mm_min=60.0, noise_floor_mm=10.0
    )
    assert list(flags) == [0, 0, S, 0, 0, S, S, 0, 0]


def test_rise_rate_allows_more_after_longer_intervals() -> None:
    depth = arr(0, 25, 75)  # +25 mm in 10 s is too fast; +75 mm in 70 s is not
    flags, _ = c.check_rise_rate(
        arr(0, 10, 70), depth, np.isfinite(depth), max_rise_mm_min=60.0, noise_floor_mm=10.0
    )
    assert list(flags) == [0, S, 0]


def test_dry_rise_only_without_rain() -> None:
    t = secs(6, 60.0)
    depth = arr(0, 0, 50, 50, 50, 50)
    valid = np.isfinite(depth)
    dry = np.zeros(6, dtype=bool)
    flags = c.check_dry_rise(t, depth, valid, dry, window_s=1800.0, min_rise_mm=20.0)
    assert list(flags) == [0, 0, S, S, S, S]
    wet = np.ones(6, dtype=bool)
    assert not c.check_dry_rise(t, depth, valid, wet, window_s=1800.0, min_rise_mm=20.0).any()


def _brute_extrema(v: np.ndarray, valid: np.ndarray, starts: np.ndarray) -> tuple:
    lo, hi = [], []
    for i, s in enumerate(starts):
        window = v[s : i + 1][valid[s : i + 1]]
        lo.append(window.min() if window.size else np.inf)
        hi.append(window.max() if window.size else -np.inf)
    return np.array(lo), np.array(hi)


@given(
    st.lists(st.floats(-100, 100), min_size=1, max_size=200),
    st.integers(1, 50),
    st.randoms(use_true_random=False),
)
def test_window_extrema_matches_brute_force(xs: list[float], width: int, rnd) -> None:
    v = np.array(xs)
    valid = np.array([rnd.random() > 0.2 for _ in xs])
    starts = np.maximum(np.arange(v.size) - width, 0)
    lo, hi = c.window_extrema(v, valid, starts)
    blo, bhi = _brute_extrema(v, valid, starts)
    assert np.array_equal(lo, blo) and np.array_equal(hi, bhi)
