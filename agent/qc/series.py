"""One channel's QC pipeline: the checks in the domain brief's order, combined into flag + reason.

Order: format, missing, range, climate, step, persistence (stuck), time gap, then the rain-gauge
and flood-sensor specifics. The worst flag wins; among equally bad flags the earliest check names
the reason. Checks between channels of one poll (gust vs mean, direction vs calm, depth from a
flagged distance) are applied by :class:`agent.qc.engine.QCEngine`, which sees whole batches.

The step and rise-rate checks are scans: their reference (the last accepted sample) travels in a
:class:`SeriesState` from one call to the next.

A streaming batch judges a handful of new samples against a long history; numpy's per-call cost
then outweighs the work. For up to :data:`SMALL` judged samples of a channel without rain or
water specifics, :func:`qc_series` takes a plain-Python path with the same checks in the same
order and the same merge (``tests/agent_qc/test_fast_path.py`` holds the two paths equal); the
persistence check then looks at the last few samples first, which already disprove "stuck" when
they differ by ``stuck_min_range``, and only scans the whole window when they do not.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from agent.flags import Flag, Reason, severity
from agent.qc import checks as c
from agent.qc.params import ChannelLimits, QCParams
from roadside import quantities as q

SEVERITY_OF_DIGIT = np.array(
    [severity(Flag(d)) if d in Flag._value2member_map_ else 0 for d in range(10)], dtype=np.int8
)
"""Severity rank indexed by flag digit, for vectorised worst-flag merging."""

CheckResult = tuple[str, np.ndarray]  # (reason, flags of the judged samples)
SMALL = 32  # judged samples up to which the plain-Python path runs (a second of 10 Hz polls)
_TAIL = 12  # recent samples that usually disprove "stuck" on their own
_SEVERITY = [int(x) for x in SEVERITY_OF_DIGIT]
_NOT_SMALL = (q.RAIN_TOTAL, q.WATER_DEPTH, q.WATER_DISTANCE)
WRONG, MISSING, SUSPECT = int(Flag.WRONG), int(Flag.MISSING), int(Flag.SUSPECT)


@dataclass(frozen=True)
class SeriesContext:
    """What a channel's checks need from other channels, one entry per judged sample."""

    speed_mean: np.ndarray | None = None  # wind_dir: mean speed over the stuck window
    raining: np.ndarray | None = None  # water_depth: rain fell within rain_recent_s


NO_CONTEXT = SeriesContext()


@dataclass(frozen=True)
class SeriesState:
    """What the scanning checks carry from one call to the next (start: ``SeriesState()``)."""

    reference: c.Reference = field(default_factory=c.Reference)


@dataclass(frozen=True)
class Verdicts:
    """Flags (uint8 CMA digits) and reason codes of the judged samples, and the state after."""

    flags: np.ndarray
    reasons: np.ndarray  # object array of str, "" where correct
    state: SeriesState = field(default_factory=SeriesState)


def combine(n: int, results: Sequence[CheckResult], state: SeriesState) -> Verdicts:
    """Merge check results in order: the worst flag wins, the earliest check among equals."""
    stacked = np.stack([flags for _, flags in results]) if results else np.zeros((1, n), np.uint8)
    worst = np.argmax(SEVERITY_OF_DIGIT[stacked], axis=0)  # argmax takes the first maximum
    flags = stacked[worst, np.arange(n)]
    names = np.array([reason for reason, _ in results] or [""], dtype=object)
    reasons = np.where(flags == Flag.CORRECT, "", names[worst])
    return Verdicts(flags, reasons.astype(object), state)


def qc_series(
    channel: str,
    times: np.ndarray,
    values: np.ndarray,
    params: QCParams,
    context: SeriesContext | None = None,
    first: int = 0,
    state: SeriesState | None = None,
) -> Verdicts:
    """Flag the samples of one channel's series from index ``first`` on (earlier ones are history).

    ``times`` strictly increasing, NaN = missing. ``state`` is what the previous call returned for
    this series (None for a fresh start). Returns verdicts for ``values[first:]``.
    """
    limits = params.limits(channel)
    if limits is not None and _small(channel, values.size - first):
        flags, reasons, after = _qc_small(
            channel, times, values, params, limits, context or NO_CONTEXT, first, state
        )
        return Verdicts(np.array(flags, dtype=np.uint8), np.array(reasons, dtype=object), after)
    return _qc_arrays(channel, times, values, params, limits, context, first, state)


def qc_lists(
    channel: str,
    times: np.ndarray,
    values: np.ndarray,
    params: QCParams,
    context: SeriesContext | None,
    first: int,
    state: SeriesState | None,
) -> tuple[list[int], list[str], SeriesState]:
    """:func:`qc_series` as plain lists (flag digits, reasons) and the state: what a streaming
    engine reads, without building arrays it would take apart again."""
    limits = params.limits(channel)
    if limits is not None and _small(channel, values.size - first):
        return _qc_small(
            channel, times, values, params, limits, context or NO_CONTEXT, first, state
        )
    v = _qc_arrays(channel, times, values, params, limits, context, first, state)
    return v.flags.tolist(), v.reasons.tolist(), v.state


def _small(channel: str, m: int) -> bool:
    return m <= SMALL and channel not in _NOT_SMALL


def _qc_arrays(
    channel: str,
    times: np.ndarray,
    values: np.ndarray,
    params: QCParams,
    limits: ChannelLimits | None,
    context: SeriesContext | None,
    first: int,
    state: SeriesState | None,
) -> Verdicts:
    """The numpy path of :func:`qc_series`."""
    m = values.size - first
    state = state or SeriesState()
    if limits is None:
        flags = np.full(m, Flag.NOT_CHECKED, dtype=np.uint8)
        return Verdicts(flags, np.full(m, "", dtype=object), state)
    context = context or NO_CONTEXT
    new = values[first:]
    valid = c.valid_mask(values, limits.low, limits.high)
    results: list[CheckResult] = [
        (Reason.FORMAT, c.check_format(new)),
        (Reason.MISSING, c.check_missing(new)),
        (Reason.RANGE, c.check_range(new, limits.low, limits.high)),
        (Reason.CLIMATE, c.check_climate(new, limits.climate_low, limits.climate_high)),
    ]
    reference = state.reference
    if limits.max_step is not None:
        step, reference = c.check_step(
            times,
            values,
            valid,
            limits.max_step,
            params.max_gap_s,
            state=reference,
            first=first,
        )
        results.append((Reason.STEP, step))
    stuck = _stuck(channel, times, values, valid, limits, params, context, first)
    if stuck is not None:
        results.append((Reason.STUCK, stuck))
    results.append((Reason.GAP, c.check_gap(times, params.max_gap_s, first=first)))
    if channel == q.RAIN_TOTAL:
        results += _rain_gauge(times, values, valid, params, first)
    elif channel in (q.WATER_DEPTH, q.WATER_DISTANCE):
        # a distance shrinks as the water rises: judge its negation as a depth
        level = values if channel == q.WATER_DEPTH else -values
        rise, reference = c.check_rise_rate(
            times,
            level,
            valid,
            max_rise_mm_min=params.water_max_rise_mm_min,
            noise_floor_mm=params.water_noise_floor_mm,
            max_age_s=params.max_gap_s,
            state=reference,
            first=first,
        )
        results.append((Reason.RISE_RATE, rise))
        if channel == q.WATER_DEPTH and context.raining is not None:
            dry = _dry_rise(times, values, valid, params, context.raining, first)
            results.append((Reason.CONSISTENCY, dry))
    return combine(m, results, SeriesState(reference))


def _stuck(
    channel: str,
    times: np.ndarray,
    values: np.ndarray,
    valid: np.ndarray,
    limits: ChannelLimits,
    params: QCParams,
    context: SeriesContext,
    first: int,
) -> np.ndarray | None:
    window, min_range = limits.stuck_window_s, limits.stuck_min_range
    if window is None or min_range is None:
        return None
    active: np.ndarray | None = None
    if channel in (q.WIND_SPEED, q.WIND_GUST):
        active = c.window_mean(times, values, valid, window, times[first:]) > params.calm_ms
    elif channel == q.WIND_DIR:
        if context.speed_mean is None:
            return None
        active = context.speed_mean > params.calm_ms
    elif channel == q.WATER_DEPTH:
        active = values[first:] >= params.water_noise_floor_mm
    circular = channel == q.WIND_DIR
    return c.check_stuck(
        times,
        values,
        valid,
        window,
        min_range,
        active=active,
        circular=circular,
        min_samples=params.stuck_min_samples,
        first=first,
    )


def _rain_gauge(
    times: np.ndarray, totals: np.ndarray, valid: np.ndarray, params: QCParams, first: int
) -> list[CheckResult]:
    """Counter resets and implausible rain per minute (double tips, spikes).

    A total that jumps too far above the last believable one is wrong and is not used as a
    reference, so the samples after a spike are judged against the level before it.
    """
    reference = c.believable_totals(times, totals, valid, params.rain_wrong_mm_min)
    per_minute = c.rain_per_minute(times, totals, reference)
    rate = c.check_rain_rate(
        per_minute, valid, suspect=params.rain_suspect_mm_min, wrong=params.rain_wrong_mm_min
    )
    rate[valid & ~reference] = Flag.WRONG
    reference &= rate != Flag.WRONG  # a reset is judged against the last believable total
    tol = params.rain_reset_tolerance_mm
    reset = c.check_counter_reset(totals, valid, reference, tol, first=first)
    return [(Reason.COUNTER_RESET, reset), (Reason.RAIN_RATE, rate[first:])]


def _dry_rise(
    times: np.ndarray,
    depth: np.ndarray,
    valid: np.ndarray,
    params: QCParams,
    raining: np.ndarray,
    first: int,
) -> np.ndarray:
    """Water risen above its recent minimum while no rain fell (obstruction plateau, drift)."""
    return c.check_dry_rise(
        times,
        depth,
        valid,
        raining,
        window_s=params.water_dry_window_s,
        min_rise_mm=params.water_dry_rise_mm,
        first=first,
    )


def _qc_small(
    channel: str,
    times: np.ndarray,
    values: np.ndarray,
    params: QCParams,
    limits: ChannelLimits,
    context: SeriesContext,
    first: int,
    state: SeriesState | None,
) -> tuple[list[int], list[str], SeriesState]:
    """:func:`qc_series` for a few judged samples, in plain Python: the step scan over the valid
    ones, then one pass merging the checks in order (a later check wins only when worse)."""
    lo, hi = limits.low, limits.high
    clo, chi = limits.climate_low, limits.climate_high
    ts, vs = times[first:].tolist(), values[first:].tolist()
    before = float(times[first - 1]) if first > 0 else None
    isfinite = math.isfinite
    valid = [isfinite(v) and (lo is None or v >= lo) and (hi is None or v <= hi) for v in vs]
    stuck = _stuck_small(channel, times, values, valid, limits, params, context, first)
    reference = state.reference if state is not None else c.Reference()
    max_step, max_gap_s, sev = limits.max_step, params.max_gap_s, _SEVERITY
    departed: set[int] = set()
    if max_step is not None:
        judged = [j for j, ok in enumerate(valid) if ok]
        hits, reference = c.scan_reference_lists(
            [ts[j] for j in judged],
            [vs[j] for j in judged],
            lambda _dt: max_step,
            max_age_s=max_gap_s,
            state=reference,
        )
        departed = {judged[k] for k in hits}
    flags: list[int] = []
    reasons: list[str] = []
    for j, (t, v) in enumerate(zip(ts, vs, strict=True)):
        f, why = 0, ""
        if not isfinite(v):
            f, why = (WRONG, Reason.FORMAT) if math.isinf(v) else (MISSING, Reason.MISSING)
        else:
            if not valid[j]:
                f, why = WRONG, Reason.RANGE
            climate = (clo is not None and v < clo) or (chi is not None and v > chi)
            if climate and sev[SUSPECT] > sev[f]:
                f, why = SUSPECT, Reason.CLIMATE
            if j in departed and sev[SUSPECT] > sev[f]:
                f, why = SUSPECT, Reason.STEP
        if stuck is not None and stuck[j] and sev[stuck[j]] > sev[f]:
            f, why = stuck[j], Reason.STUCK
        if before is not None and t - before > max_gap_s and sev[SUSPECT] > sev[f]:
            f, why = SUSPECT, Reason.GAP
        before = t
        flags.append(f)
        reasons.append(str(why))
    return flags, reasons, SeriesState(reference)


def _stuck_small(
    channel: str,
    times: np.ndarray,
    values: np.ndarray,
    valid_new: list[bool],
    limits: ChannelLimits,
    params: QCParams,
    context: SeriesContext,
    first: int,
) -> list[int] | None:
    """The persistence check of :func:`_stuck` for a few judged samples.

    A sample is surely not stuck when it and the sample before it (valid, within the window)
    already differ by ``stuck_min_range`` (the window's spread is at least theirs, also across
    north); else the last :data:`_TAIL` samples are looked at, and only when they do not decide,
    the whole window."""
    window, min_range = limits.stuck_window_s, limits.stuck_min_range
    if window is None or min_range is None:
        return None
    if channel == q.WIND_DIR and context.speed_mean is None:
        return None
    circular = channel == q.WIND_DIR
    m = len(valid_new)
    out = [0] * m
    undecided = []
    lo, hi = limits.low, limits.high
    start = max(0, first - _TAIL)
    t_all, v_all = times[start:].tolist(), values[start:].tolist()
    isfinite = math.isfinite
    ok_all = [
        isfinite(v) and (lo is None or v >= lo) and (hi is None or v <= hi)
        for v in v_all[: first - start]
    ] + valid_new  # the judged samples' validity is known already
    bad = list(itertools.accumulate(map(operator.not_, ok_all), initial=0))  # invalid before each
    for j in range(m):
        if not valid_new[j]:
            continue
        k = first - start + j  # position in the lists
        v, t0 = v_all[k], t_all[k] - window
        if k and ok_all[k - 1] and t_all[k - 1] >= t0:
            d = abs(v - v_all[k - 1])
            if circular:
                d = min(d, abs((v + 180.0) % 360.0 - (v_all[k - 1] + 180.0) % 360.0))
            if d >= min_range:
                continue
        back = max(0, k - _TAIL)
        if bad[k + 1] == bad[back] and t_all[back] >= t0:  # all valid, all in the window
            tail = v_all[back : k + 1]
        else:
            tail = [
                x
                for x, t, ok in zip(v_all[back : k + 1], t_all[back : k + 1],
                                    ok_all[back : k + 1], strict=True)
                if ok and t >= t0
            ]  # fmt: skip
        spread = max(tail) - min(tail)
        if circular and spread >= min_range:
            shifted = [(x + 180.0) % 360.0 for x in tail]
            spread = min(spread, max(shifted) - min(shifted))
        if spread < min_range:
            undecided.append(j)
    if not undecided:
        return out
    full = _stuck(
        channel,
        times,
        values,
        c.valid_mask(values, limits.low, limits.high),
        limits,
        params,
        context,
        first,
    )
    if full is not None:
        for j in undecided:
            out[j] = int(full[j])
    return out
