"""Quality-control checks: pure functions over numpy arrays (domain brief section 1).

Conventions shared by every check:

- ``times`` are seconds (float64, strictly increasing), ``values`` float64 with NaN for missing.
- ``valid`` marks samples that may serve as references for others (present and in sensor range).
- A check returns a uint8 array of :class:`~agent.flags.Flag` digits, 0 where the sample passes.
- Checks that look back take ``first``: they judge ``values[first:]`` (earlier samples are history)
  and return one flag per judged sample. The streaming engine judges only new samples this way,
  in time proportional to the batch, not to the history.
- Checks are causal: a sample's flag depends only on it and on earlier samples, so judging the
  newest samples of a rolling history equals running the check once over the whole series.
"""

from __future__ import annotations

import numpy as np

from agent.flags import Flag

FloatArray = np.ndarray
FlagArray = np.ndarray

_OK = np.uint8(Flag.CORRECT)
_SUSPECT = np.uint8(Flag.SUSPECT)
_WRONG = np.uint8(Flag.WRONG)
_MISSING = np.uint8(Flag.MISSING)


def _flags_where(mask: np.ndarray, flag: np.uint8) -> FlagArray:
    return np.where(mask, flag, _OK).astype(np.uint8)


# -- format, missing, range -------------------------------------------------------------------


def check_missing(values: FloatArray) -> FlagArray:
    """MISSING where there is no value (NaN)."""
    return _flags_where(np.isnan(values), _MISSING)


def check_format(values: FloatArray) -> FlagArray:
    """WRONG where the value is not a finite number (infinities)."""
    return _flags_where(np.isinf(values), _WRONG)


def check_range(values: FloatArray, low: float | None, high: float | None) -> FlagArray:
    """WRONG outside the sensor's physical range [low, high] (a None bound is open)."""
    return _flags_where(_outside(values, low, high), _WRONG)


def check_climate(values: FloatArray, low: float | None, high: float | None) -> FlagArray:
    """SUSPECT outside climatological limits [low, high] (a None bound is open)."""
    return _flags_where(_outside(values, low, high), _SUSPECT)


def _outside(values: FloatArray, low: float | None, high: float | None) -> np.ndarray:
    out = np.zeros(values.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        if low is not None:
            out |= values < low
        if high is not None:
            out |= values > high
    return out & np.isfinite(values)


def valid_mask(
    values: FloatArray, low: float | None = None, high: float | None = None
) -> np.ndarray:
    """Samples fit to be references: finite and inside [low, high]."""
    return np.isfinite(values) & ~_outside(values, low, high)


# -- helpers over valid samples ---------------------------------------------------------------


def previous_index(valid: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """For each index in ``idx``, the nearest earlier valid index (-1 when there is none)."""
    valid_idx = np.flatnonzero(valid)
    pos = np.searchsorted(valid_idx, idx, side="left") - 1
    return np.where(pos >= 0, valid_idx[np.maximum(pos, 0)] if valid_idx.size else -1, -1)


def _judged(n: int, first: int) -> np.ndarray:
    return np.arange(first, n)


def window_extrema(
    values: FloatArray, valid: np.ndarray, starts: np.ndarray, first: int = 0
) -> tuple[FloatArray, FloatArray]:
    """Min and max of the valid values in windows [starts[k], first + k] for k = 0 .. n-first-1.

    ``starts`` holds one window start per judged sample. Windows without a valid value give
    +inf / -inf. A few queries (the streaming case) slice directly; many use a sparse table.
    """
    lo = np.where(valid, values, np.inf)
    hi = np.where(valid, values, -np.inf)
    ends = _judged(values.size, first)
    if ends.size <= _DIRECT_QUERIES:
        mins = np.array([lo[s : e + 1].min() for s, e in zip(starts, ends, strict=True)])
        maxs = np.array([hi[s : e + 1].max() for s, e in zip(starts, ends, strict=True)])
        return mins.reshape(ends.shape), maxs.reshape(ends.shape)
    return _sparse_min(lo, starts, ends), -_sparse_min(-hi, starts, ends)


_DIRECT_QUERIES = 64


def _sparse_min(x: FloatArray, starts: np.ndarray, ends: np.ndarray) -> FloatArray:
    """Range minimum over [starts, ends] (inclusive) by a sparse table of powers of two."""
    table = [x]
    span = 1
    while span * 2 <= x.size:
        prev = table[-1]
        table.append(np.concatenate((np.minimum(prev[:-span], prev[span:]), prev[-span:])))
        span *= 2
    level = np.floor(np.log2(ends - starts + 1)).astype(np.int64)
    stacked = np.stack(table)
    return np.minimum(stacked[level, starts], stacked[level, ends - (1 << level) + 1])


def window_mean(
    times: FloatArray,
    values: FloatArray,
    valid: np.ndarray,
    window_s: float,
    at: FloatArray | None = None,
) -> FloatArray:
    """Mean of the valid values in (t - window_s, t] for each time t of ``at`` (default: ``times``).

    NaN where the window holds no valid value.
    """
    at = times if at is None else at
    starts = np.searchsorted(times, at - window_s, side="right")
    ends = np.searchsorted(times, at, side="right")
    sums = np.concatenate(([0.0], np.cumsum(np.where(valid, values, 0.0))))
    counts = np.concatenate(([0], np.cumsum(valid)))
    n = counts[ends] - counts[starts]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums[ends] - sums[starts]) / np.maximum(n, 1), np.nan)


# -- time consistency -------------------------------------------------------------------------


def check_step(
    times: FloatArray,
    values: FloatArray,
    valid: np.ndarray,
    max_step: float,
    max_age_s: float = np.inf,
    *,
    first: int = 0,
) -> FlagArray:
    """SUSPECT where a value jumps more than ``max_step`` from the previous valid sample.

    Samples further than ``max_age_s`` after their reference are not judged (a gap allows change).
    A sample that returns to the level before a one-sample outlier passes: only the outlier is
    flagged; after a genuine level shift only its first sample is.
    """
    idx = _judged(values.size, first)
    prev = previous_index(valid, idx)
    p = np.maximum(prev, 0)
    prev2 = np.where(prev >= 0, previous_index(valid, p), -1)
    p2 = np.maximum(prev2, 0)
    prev3 = np.where(prev2 >= 0, previous_index(valid, p2), -1)
    p3 = np.maximum(prev3, 0)
    v = values[idx]
    jump = np.abs(v - values[p]) > max_step
    recent = times[idx] - times[p] <= max_age_s
    # the predecessor was an outlier if it jumped from its own predecessor without returning
    prev_returned = (prev3 >= 0) & (np.abs(values[p] - values[p3]) <= max_step)
    prev_was_outlier = (prev2 >= 0) & (np.abs(values[p] - values[p2]) > max_step) & ~prev_returned
    returns = prev_was_outlier & (np.abs(v - values[p2]) <= max_step)
    return _flags_where(valid[idx] & (prev >= 0) & recent & jump & ~returns, _SUSPECT)


def check_stuck(
    times: FloatArray,
    values: FloatArray,
    valid: np.ndarray,
    window_s: float,
    min_range: float,
    *,
    active: np.ndarray | None = None,
    circular: bool = False,
    min_samples: int = 3,
    first: int = 0,
) -> FlagArray:
    """SUSPECT where the valid values of the last ``window_s`` vary less than ``min_range``.

    Judged only once the history spans the whole window with at least ``min_samples`` samples, and
    only where ``active`` (one entry per judged sample) is true, e.g. not calm. ``circular``
    measures angles across north.
    """
    judged = times[first:]
    starts = np.searchsorted(times, judged - window_s, side="left")
    spread = _window_spread(values, valid, starts, first)
    if circular:
        shifted = _window_spread((values + 180.0) % 360.0, valid, starts, first)
        spread = np.minimum(spread, shifted)
    counts = np.concatenate(([0], np.cumsum(valid)))
    count = counts[first + 1 :] - counts[starts]
    spans_window = judged - _earliest_valid_time(times, valid, starts) >= window_s * 0.95
    stuck = valid[first:] & spans_window & (count >= min_samples) & (spread < min_range)
    if active is not None:
        stuck &= active
    return _flags_where(stuck, _SUSPECT)


def _earliest_valid_time(times: FloatArray, valid: np.ndarray, starts: np.ndarray) -> FloatArray:
    """Time of the first valid sample at or after each start (+inf when there is none)."""
    valid_idx = np.flatnonzero(valid)
    pos = np.searchsorted(valid_idx, starts)
    padded = np.append(times[valid_idx], np.inf)
    return padded[pos]


def _window_spread(
    values: FloatArray, valid: np.ndarray, starts: np.ndarray, first: int
) -> FloatArray:
    mins, maxs = window_extrema(values, valid, starts, first)
    return maxs - mins


def check_gap(times: FloatArray, max_gap_s: float, *, first: int = 0) -> FlagArray:
    """SUSPECT on the first sample after a gap longer than ``max_gap_s``."""
    idx = _judged(times.size, first)
    dt = times[idx] - times[np.maximum(idx - 1, 0)]
    return _flags_where((idx > 0) & (dt > max_gap_s), _SUSPECT)


# -- internal consistency ---------------------------------------------------------------------


def check_gust(
    gust: FloatArray, mean: FloatArray, *, tolerance: float, max_excess: float
) -> FlagArray:
    """Gust against mean speed at the same times (flags land on the gust).

    SUSPECT where the gust is below the mean by more than ``tolerance``; WRONG where the gust
    exceeds the mean by ``max_excess`` or more (MesoWest: 75 kt). Pairs with a missing side pass.
    """
    with np.errstate(invalid="ignore"):
        below = gust < mean - tolerance
        excess = gust - mean >= max_excess
    flags = _flags_where(below, _SUSPECT)
    flags[excess] = _WRONG
    return flags


def check_calm_direction(
    speed: FloatArray, direction: FloatArray, *, zero_speed: float, calm: float
) -> FlagArray:
    """Direction against speed at the same times (flags land on the direction).

    SUSPECT where the speed is zero (below ``zero_speed``) but a direction other than 0 is reported,
    or where the wind blows (speed at least ``calm``) but the direction is exactly 0 (a calm code).
    """
    with np.errstate(invalid="ignore"):
        dir_without_wind = (speed < zero_speed) & (direction > 0)
        calm_code_in_wind = (speed >= calm) & (direction == 0)
    return _flags_where(dir_without_wind | calm_code_in_wind, _SUSPECT)


# -- rain gauge -------------------------------------------------------------------------------


def counter_increments(values: FloatArray, valid: np.ndarray, *, first: int = 0) -> FloatArray:
    """Increase of an accumulating counter at each judged sample since the previous valid one.

    Backwards steps (resets), invalid samples and samples without a valid predecessor give 0.
    """
    idx = _judged(values.size, first)
    prev = previous_index(valid, idx)
    inc = values[idx] - values[np.maximum(prev, 0)]
    return np.where(valid[idx] & (prev >= 0) & (inc > 0), inc, 0.0)


def rain_per_interval(
    times: FloatArray, totals: FloatArray, valid: np.ndarray, *, first: int = 0
) -> FloatArray:
    """Rain per minute at each judged sample from its own increment, over at least one minute."""
    idx = _judged(totals.size, first)
    prev = previous_index(valid, idx)
    dt = times[idx] - times[np.maximum(prev, 0)]
    return counter_increments(totals, valid, first=first) / np.maximum(dt, 60.0) * 60.0


def rain_per_minute(
    times: FloatArray, totals: FloatArray, valid: np.ndarray, *, first: int = 0
) -> FloatArray:
    """Rain in the minute ending at each judged sample (mm/min), from the positive increments.

    The reference is the last sample at least 60 s earlier (the first sample when there is none);
    a longer span is scaled to one minute. Resets contribute nothing.
    """
    idx = _judged(totals.size, first)
    if idx.size == 0:
        return np.empty(0)
    ref = np.maximum(np.searchsorted(times, times[idx] - 60.0, side="right") - 1, 0)
    lo = int(ref.min())
    cum = np.cumsum(counter_increments(totals[lo:], valid[lo:]))
    span = np.maximum(times[idx] - times[ref], 60.0)
    return (cum[idx - lo] - cum[ref - lo]) / span * 60.0


def check_rain_rate(
    rate_mm_min: FloatArray, valid: np.ndarray, *, suspect: float, wrong: float
) -> FlagArray:
    """SUSPECT above ``suspect`` mm/min, WRONG above ``wrong`` mm/min (Zahumenský 2004).

    ``rate_mm_min`` and ``valid`` are aligned (one entry per judged sample).
    """
    flags = _flags_where(valid & (rate_mm_min > suspect), _SUSPECT)
    flags[valid & (rate_mm_min > wrong)] = _WRONG
    return flags


def check_counter_reset(
    totals: FloatArray,
    valid: np.ndarray,
    reference: np.ndarray,
    tolerance: float,
    *,
    first: int = 0,
) -> FlagArray:
    """SUSPECT where an accumulated total falls more than ``tolerance`` below the last reference."""
    idx = _judged(totals.size, first)
    prev = previous_index(reference, idx)
    back = (prev >= 0) & (totals[idx] < totals[np.maximum(prev, 0)] - tolerance)
    return _flags_where(valid[idx] & back, _SUSPECT)


# -- flood (water level) sensor ---------------------------------------------------------------


def check_rise_rate(
    times: FloatArray,
    depth: FloatArray,
    valid: np.ndarray,
    *,
    max_rise_mm_min: float,
    noise_floor_mm: float,
    first: int = 0,
) -> FlagArray:
    """SUSPECT where depth rises faster than water can (blips from obstructions, vehicles).

    The allowed rise from the previous valid sample is the noise floor plus ``max_rise_mm_min``
    times the minutes between them.
    """
    idx = _judged(depth.size, first)
    prev = previous_index(valid, idx)
    p = np.maximum(prev, 0)
    allowed = noise_floor_mm + max_rise_mm_min * (times[idx] - times[p]) / 60.0
    too_fast = valid[idx] & (prev >= 0) & (depth[idx] - depth[p] > allowed)
    return _flags_where(too_fast, _SUSPECT)


def check_dry_rise(
    times: FloatArray,
    depth: FloatArray,
    valid: np.ndarray,
    raining: np.ndarray,
    *,
    window_s: float,
    min_rise_mm: float,
    first: int = 0,
) -> FlagArray:
    """SUSPECT where water stands ``min_rise_mm`` above its minimum of the last ``window_s`` while
    no rain fell recently (``raining``, one entry per judged sample, is false): a plateau from an
    obstruction, or drift.
    """
    starts = np.searchsorted(times, times[first:] - window_s, side="left")
    mins = window_extrema(depth, valid, starts, first)[0]
    risen = depth[first:] - mins > min_rise_mm
    return _flags_where(valid[first:] & risen & ~raining, _SUSPECT)
