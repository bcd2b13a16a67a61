"""One channel's QC pipeline: the checks in the domain brief's order, combined into flag + reason.

Order: format, missing, range, climate, step, persistence (stuck), time gap, then the rain-gauge
and flood-sensor specifics. The worst flag wins; among equally bad flags the earliest check names
the reason. Cross-channel consistency (gust vs mean, direction vs calm) lives in
:mod:`agent.qc.consistency` because it needs two channels at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from agent.flags import Flag, Reason, severity
from agent.qc import checks as c
from agent.qc.params import ChannelLimits, QCParams
from roadside import quantities as q

SEVERITY_OF_DIGIT = np.array(
    [severity(Flag(d)) if d in Flag._value2member_map_ else 0 for d in range(10)], dtype=np.int8
)
"""Severity rank indexed by flag digit, for vectorised worst-flag merging."""


@dataclass(frozen=True)
class SeriesContext:
    """What a channel's checks need from other channels, aligned with its samples."""

    speed_mean: np.ndarray | None = None  # wind_dir: mean speed over the stuck window
    raining: np.ndarray | None = None  # water_depth: rain fell within rain_recent_s


@dataclass(frozen=True)
class Verdicts:
    """Flags (uint8 CMA digits) and reason codes for a run of samples."""

    flags: np.ndarray
    reasons: np.ndarray  # object array of str, "" where correct


def combine(n: int, results: Sequence[tuple[str, np.ndarray]]) -> Verdicts:
    """Merge check results in order: a later check only wins with a strictly worse flag."""
    flags = np.zeros(n, dtype=np.uint8)
    reasons = np.full(n, "", dtype=object)
    for reason, result in results:
        worse = SEVERITY_OF_DIGIT[result] > SEVERITY_OF_DIGIT[flags]
        flags[worse] = result[worse]
        reasons[worse] = reason
    return Verdicts(flags, reasons)


def qc_series(
    channel: str,
    times: np.ndarray,
    values: np.ndarray,
    params: QCParams,
    context: SeriesContext | None = None,
    first: int = 0,
) -> Verdicts:
    """Flag the samples of one channel's series from index ``first`` on (earlier ones are history).

    ``times`` strictly increasing, NaN = missing; ``context`` arrays have one entry per judged
    sample. Returns verdicts for ``values[first:]``.
    """
    limits = params.limits(channel)
    m = values.size - first
    if limits is None:
        return Verdicts(np.full(m, Flag.NOT_CHECKED, dtype=np.uint8), np.full(m, "", dtype=object))
    context = context or SeriesContext()
    new = values[first:]
    valid = c.valid_mask(values, limits.low, limits.high)
    results: list[tuple[str, np.ndarray]] = [
        (Reason.FORMAT, c.check_format(new)),
        (Reason.MISSING, c.check_missing(new)),
        (Reason.RANGE, c.check_range(new, limits.low, limits.high)),
        (Reason.CLIMATE, c.check_climate(new, limits.climate_low, limits.climate_high)),
    ]
    if limits.max_step is not None:
        step = c.check_step(times, values, valid, limits.max_step, params.max_gap_s, first=first)
        results.append((Reason.STEP, step))
    stuck = _stuck(channel, times, values, valid, limits, params, context, first)
    if stuck is not None:
        results.append((Reason.STUCK, stuck))
    results.append((Reason.GAP, c.check_gap(times, params.max_gap_s, first=first)))
    if channel == q.RAIN_TOTAL:
        results.extend(_rain_gauge(times, values, valid, params, first))
    elif channel == q.WATER_DEPTH:
        results.extend(_flood_sensor(times, values, valid, params, context, first))
    return combine(m, results)


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
        times, values, valid, window, min_range, active=active, circular=circular, first=first
    )


def _rain_gauge(
    times: np.ndarray, totals: np.ndarray, valid: np.ndarray, params: QCParams, first: int
) -> list[tuple[str, np.ndarray]]:
    """Counter resets and implausible rain per minute (double tips, spikes).

    A jump too large for its own interval is wrong and is not used as a reference, so the sample
    after a one-sample spike is judged against the level before it.
    """
    jump = valid & (c.rain_per_interval(times, totals, valid) > params.rain_wrong_mm_min)
    reference = valid & ~jump
    tol = params.rain_reset_tolerance_mm
    reset = c.check_counter_reset(totals, valid, reference, tol, first=first)
    per_minute = c.rain_per_minute(times, totals, reference, first=first)
    rate = c.check_rain_rate(
        per_minute,
        valid[first:],
        suspect=params.rain_suspect_mm_min,
        wrong=params.rain_wrong_mm_min,
    )
    rate[jump[first:]] = Flag.WRONG
    return [(Reason.COUNTER_RESET, reset), (Reason.RAIN_RATE, rate)]


def _flood_sensor(
    times: np.ndarray,
    depth: np.ndarray,
    valid: np.ndarray,
    params: QCParams,
    context: SeriesContext,
    first: int,
) -> list[tuple[str, np.ndarray]]:
    """Rise faster than water can, and water rising while no rain fell."""
    rise = c.check_rise_rate(
        times,
        depth,
        valid,
        max_rise_mm_min=params.water_max_rise_mm_min,
        noise_floor_mm=params.water_noise_floor_mm,
        first=first,
    )
    results = [(str(Reason.RISE_RATE), rise)]
    if context.raining is not None:
        dry = c.check_dry_rise(
            times,
            depth,
            valid,
            context.raining,
            window_s=params.water_dry_window_s,
            min_rise_mm=params.water_dry_rise_mm,
            first=first,
        )
        results.append((str(Reason.CONSISTENCY), dry))
    return results
