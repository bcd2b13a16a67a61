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
- Sequential checks (step, rise rate) are scans over the judged samples that take and return a
  :class:`Reference` state; carried from call to call, they too equal one scan of the series.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from agent.flags import Flag

FloatArray = np.ndarray
FlagArray = np.ndarray

_OK = np.uint8(Flag.CORRECT)
_SUSPECT = np.uint8(Flag.SUSPECT)
CONFIRM_S = 60.0  # a departed level held this long (two samples or more) is the new reference
_WRONG = np.uint8(Flag.WRONG)
_MISSING = np.uint8(Flag.MISSING)


def _flags_where(mask: np.ndarray, flag: np.uint8) -> FlagArray:
    return mask.astype(np.uint8) * flag


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
    if low is not None:
        out |= values < low  # NaN compares False: missing values are never out of range
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
    if at.size <= _DIRECT_QUERIES:
        means = [values[s:e][valid[s:e]] for s, e in zip(starts, ends, strict=True)]
        return np.array([m.mean() if m.size else np.nan for m in means])
    sums = np.concatenate(([0.0], np.cumsum(np.where(valid, values, 0.0))))
    counts = np.concatenate(([0], np.cumsum(valid)))
    n = counts[ends] - counts[starts]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums[ends] - sums[starts]) / np.maximum(n, 1), np.nan)


# -- time consistency -------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """Where a reference scan stands: the last accepted sample, and the run of consecutive
    samples that departed from it and agree with each other (a candidate new level)."""

    value: float = math.nan
    time: float = -math.inf
    run: tuple[tuple[float, float], ...] = ()  # (time, value)


def scan_reference(
    times: FloatArray,
    values: FloatArray,
    valid: np.ndarray,
    allowed: Callable[[float], float],
    *,
    one_sided: bool = False,
    max_age_s: float = math.inf,
    confirm_s: float = CONFIRM_S,
    state: Reference | None = None,
    first: int = 0,
) -> tuple[FlagArray, Reference]:
    """SUSPECT where a sample departs from the last accepted one by more than ``allowed(dt)``.

    Flagged samples never become the reference, so runs of spikes are caught however dense. An
    unbroken run of departing samples that agree with each other and span ``confirm_s`` is a
    genuine new level: its last sample is accepted (spikes, even every other sample, never
    persist that long). A reference older than ``max_age_s`` is replaced without judging.
    ``one_sided`` judges only rises. Judges ``values[first:]`` starting from ``state`` and returns
    the state after them, so a stream carried batch by batch equals one scan of the whole series.
    """
    flags = np.zeros(values.size - first, dtype=np.uint8)
    judged = np.flatnonzero(valid[first:])
    departed, ref = scan_reference_lists(
        times[first:][judged].tolist(),
        values[first:][judged].tolist(),
        allowed,
        one_sided=one_sided,
        max_age_s=max_age_s,
        confirm_s=confirm_s,
        state=state,
    )
    flags[judged[departed]] = _SUSPECT
    return flags, ref


def scan_reference_lists(
    times: list[float],
    values: list[float],
    allowed: Callable[[float], float],
    *,
    one_sided: bool = False,
    max_age_s: float = math.inf,
    confirm_s: float = CONFIRM_S,
    state: Reference | None = None,
) -> tuple[list[int], Reference]:
    """:func:`scan_reference` over the valid samples only, as plain lists: the positions of the
    samples that departed (SUSPECT), and the state after them."""
    ref = state or Reference()
    value, time, run = ref.value, ref.time, list(ref.run)
    departed = []
    for i, (t, v) in enumerate(zip(times, values, strict=True)):
        if math.isnan(value) or t - time > max_age_s:
            value, time, run = v, t, []
            continue
        change = v - value if one_sided else abs(v - value)
        if change <= allowed(t - time):
            value, time, run = v, t, []
            continue
        agrees = run and abs(v - run[-1][1]) <= allowed(t - run[-1][0])
        run = [*run, (t, v)] if agrees else [(t, v)]
        if len(run) >= 2 and t - run[0][0] >= confirm_s:
            value, time, run = v, t, []
            continue
        departed.append(i)
    return departed, Reference(value, time, tuple(run))


def check_step(
    times: FloatArray,
    values: FloatArray,
    valid: np.ndarray,
    max_step: float,
    max_age_s: float = math.inf,
    *,
    state: Reference | None = None,
    first: int = 0,
) -> tuple[FlagArray, Reference]:
    """SUSPECT where a value departs more than ``max_step`` from the last accepted value
    (Zahumenský 2004 step test; see :func:`scan_reference` for spikes and level shifts)."""
    return scan_reference(
        times,
        values,
        valid,
        lambda dt: max_step,
        max_age_s=max_age_s,
        state=state,
        first=first,
    )


def check_stuck(
    times: FloatArray,
    values: FloatArray,
    valid: np.ndarray,
    window_s: float,
    min_range: float,
    *,
    active: np.ndarray | None = None,
    circular: bool = False,
    min_samples: int = 10,
    first: int = 0,
) -> FlagArray:
    """SUSPECT where the valid values of the last ``window_s`` vary less than ``min_range``.

    Judged only once the history spans the whole window with at least ``min_samples`` samples (a
    few slow polls can agree by chance), and
    only where ``active`` (one entry per judged sample) is true, e.g. not calm. ``circular``
    measures angles across north.
    """
    judged = times[first:]
    starts = np.searchsorted(times, judged - window_s, side="left")
    stats = _window_stats if judged.size > _DIRECT_QUERIES else _window_stats_direct
    spread, count, earliest = stats(times, values, valid, starts, first, circular)
    spans_window = judged - earliest >= window_s * 0.95
    stuck = valid[first:] & spans_window & (count >= min_samples) & (spread < min_range)
    if active is not None:
        stuck &= active
    return _flags_where(stuck, _SUSPECT)


WindowStats = tuple[FloatArray, np.ndarray, FloatArray]  # spread, count, earliest valid time


def _window_stats(
    times: FloatArray,
    values: FloatArray,
    valid: np.ndarray,
    starts: np.ndarray,
    first: int,
    circular: bool,
) -> WindowStats:
    """Spread, count and earliest time of the valid values in each window, vectorised."""
    mins, maxs = window_extrema(values, valid, starts, first)
    spread = maxs - mins
    if circular:
        smins, smaxs = window_extrema((values + 180.0) % 360.0, valid, starts, first)
        spread = np.minimum(spread, smaxs - smins)
    counts = np.concatenate(([0], np.cumsum(valid)))
    count = counts[first + 1 :] - counts[starts]
    valid_idx = np.flatnonzero(valid)
    pos = np.searchsorted(valid_idx, starts)
    earliest = np.append(times[valid_idx], np.inf)[pos]
    return spread, count, earliest


def _window_stats_direct(
    times: FloatArray,
    values: FloatArray,
    valid: np.ndarray,
    starts: np.ndarray,
    first: int,
    circular: bool,
) -> WindowStats:
    """The same, window by window: cheaper for the few new samples of a streaming batch."""
    n = starts.size
    spread, count, earliest = np.full(n, np.inf), np.zeros(n, np.int64), np.full(n, np.inf)
    for k, start in enumerate(starts):
        end = first + k + 1
        ok = valid[start:end]
        window = values[start:end][ok]
        if window.size == 0:
            continue
        count[k] = window.size
        earliest[k] = times[start:end][ok][0]
        spread[k] = np.ptp(window)
        if circular:
            spread[k] = min(spread[k], np.ptp((window + 180.0) % 360.0))
    return spread, count, earliest


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
    pair = valid[idx] & (prev >= 0)  # only valid pairs are subtracted (no inf - inf)
    inc = np.subtract(values[idx], values[np.maximum(prev, 0)], out=np.zeros(idx.size), where=pair)
    return np.where(inc > 0, inc, 0.0)


def believable_totals(
    times: FloatArray, totals: FloatArray, valid: np.ndarray, max_mm_min: float
) -> np.ndarray:
    """Valid totals that do not jump above the last believable one by more than ``max_mm_min``
    per minute of their interval (an interval counts as at least one minute).

    Sequential by nature (each reference depends on the verdicts before it); rain series are
    short (one sample per poll over a few minutes of history), so a plain loop is cheap.
    """
    ok = np.zeros(totals.size, dtype=bool)
    ref_t = ref_v = None
    for i in np.flatnonzero(valid):
        t, v = times[i], totals[i]
        if ref_t is not None and v - ref_v > max_mm_min * max(t - ref_t, 60.0) / 60.0:
            continue
        ok[i] = True
        ref_t, ref_v = t, v
    return ok


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
    max_age_s: float = math.inf,
    state: Reference | None = None,
    first: int = 0,
) -> tuple[FlagArray, Reference]:
    """SUSPECT where depth rises faster than water can (blips from obstructions, vehicles).

    The allowed rise from the last accepted depth is the noise floor plus ``max_rise_mm_min``
    times the minutes since it; falls are always accepted. Pass negated distances to judge a
    downward-looking sensor's distance.
    """
    return scan_reference(
        times,
        depth,
        valid,
        lambda dt: noise_floor_mm + max_rise_mm_min * dt / 60.0,
        one_sided=True,
        max_age_s=max_age_s,
        state=state,
        first=first,
    )


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
