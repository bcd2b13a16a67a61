"""The streaming QC engine: flags each batch of readings using the recent history of its channel.

Per (sensor, channel) it keeps a bounded :class:`~agent.qc.ring.Ring` of (time, value) and the
state of the scanning checks, and judges each batch's new samples with the channel's pipeline
(:func:`agent.qc.series.qc_series`) against that history, so a stream gets the same flags as one
pass of the pure functions over the whole series. Station-wide it remembers when rain last fell,
for the "water rising with no rain" check.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from agent.flags import Flag, FlaggedReading, Reason, is_usable, severity
from agent.qc import checks as c
from agent.qc.params import QCParams
from agent.qc.ring import Ring
from agent.qc.series import NO_CONTEXT, SeriesContext, SeriesState, qc_lists
from roadside import quantities as q
from roadside.records import DriverStatus, Reading

SeriesKey = tuple[str, str]  # (sensor, channel)
Verdict = tuple[Flag, str]

_FLAG = {int(f): f for f in Flag}
_CONSISTENCY = frozenset({q.WATER_DEPTH, q.WIND_GUST, q.WIND_DIR})  # judged against another
# Rain channels go first so water checks in the same batch know whether it rained.
_ORDER = {q.RAIN_TOTAL: 0, q.RAIN_INTENSITY: 0, q.WIND_SPEED: 1}


class QCEngine:
    """Flags readings batch by batch; memory is bounded by ``params.max_history`` per channel."""

    def __init__(self, params: QCParams | None = None) -> None:
        self.params = params or QCParams()
        self._series: dict[SeriesKey, Ring] = {}
        self._states: dict[SeriesKey, SeriesState] = {}
        self._rain_seen = Ring(self.params.max_history, ("t",))  # usable rain readings
        self._rain_fell = Ring(self.params.max_history, ("t",))  # readings showing rain
        self._last_total: dict[str, float] = {}
        self._history_s: dict[str, float] = {}  # channel -> look-back, computed once

    def process(self, readings: Sequence[Reading]) -> list[FlaggedReading]:
        """Flag a batch (usually one poll of one device); readings keep their order."""
        verdicts: list[Verdict | None] = [None] * len(readings)
        appended: dict[SeriesKey, list[int]] = defaultdict(list)
        stamps = _timestamps(readings)
        for i, reading in enumerate(readings):
            verdicts[i] = self._admit(reading, stamps[i])
            if verdicts[i] is None:
                appended[(reading.sensor, reading.channel)].append(i)
        for key in sorted(appended, key=lambda k: _ORDER.get(k[1], 2)):
            self._judge_series(key, stamps, appended[key], verdicts)
            if key[1] in (q.RAIN_TOTAL, q.RAIN_INTENSITY):
                self._note_rain(readings, appended[key], verdicts)
        self._judge_consistency(readings, verdicts)
        out = []
        for reading, verdict in zip(readings, verdicts, strict=True):
            flag, reason = verdict or (Flag.NOT_CHECKED, "")
            out.append(FlaggedReading(reading, flag, str(reason)))  # plain str, not the enum
        return out

    # -- admission: statuses, format, time order --------------------------------------------------

    def _admit(self, reading: Reading, t: float) -> Verdict | None:
        """Append the reading (at ``t``, its time's timestamp) to its series; return a verdict
        when it is decided already."""
        key = (reading.sensor, reading.channel)
        ring = self._series.get(key)
        if ring is None:
            ring = self._series[key] = Ring(self.params.max_history, ("t", "v"))
        if t <= ring.newest:
            return Flag.WRONG, Reason.TIME
        value, verdict = _admitted_value(reading)
        ring.push(t, value)
        keep = self._history_s.get(reading.channel)
        if keep is None:
            keep = self._history_s[reading.channel] = self.params.history_s(reading.channel)
        ring.drop_before(t - keep)
        return verdict

    # -- per-channel pipeline ---------------------------------------------------------------------

    def _judge_series(
        self,
        key: SeriesKey,
        stamps: list[float],
        batch_idx: list[int],
        verdicts: list[Verdict | None],
    ) -> None:
        ring = self._series[key]
        times, values = ring.col("t"), ring.col("v")
        n, k = len(ring), len(batch_idx)
        if n >= k and times[n - k] == stamps[batch_idx[0]]:  # the batch is the ring's newest
            first, at = n - k, range(k)
        else:  # some were decided at admission (missing, format) and are in between
            found = np.searchsorted(times, [stamps[i] for i in batch_idx])
            first = int(found[0])
            at = (found - first).tolist()
        context = self._context(key, times[first:])
        flags, reasons, self._states[key] = qc_lists(
            key[1], times, values, self.params, context, first, self._states.get(key)
        )
        for i, j in zip(batch_idx, at, strict=True):
            verdicts[i] = _FLAG[flags[j]], reasons[j]

    def _context(self, key: SeriesKey, times: np.ndarray) -> SeriesContext:
        """Context for judging samples at ``times`` (one entry per judged sample)."""
        sensor, channel = key
        if channel == q.WIND_DIR:
            speed = self._series.get((sensor, q.WIND_SPEED))
            limits = self.params.limits(q.WIND_DIR)
            if speed is None or limits is None or limits.stuck_window_s is None:
                return NO_CONTEXT
            st, sv = speed.col("t"), speed.col("v")
            valid = c.valid_mask(sv, 0.0)
            return SeriesContext(
                speed_mean=c.window_mean(st, sv, valid, limits.stuck_window_s, at=times)
            )
        if channel == q.WATER_DEPTH and len(self._rain_seen):
            return SeriesContext(raining=self._raining_at(times))
        return NO_CONTEXT

    def _raining_at(self, times: np.ndarray) -> np.ndarray:
        """True where rain fell within rain_recent_s, or where the gauge gave no usable reading
        within max_gap_s (unknown counts as raining: never accuse water without evidence)."""
        fell, seen = self._rain_fell.col("t"), self._rain_seen.col("t")
        recent = _any_within(fell, times, self.params.rain_recent_s)
        gauge_alive = _any_within(seen, times, self.params.max_gap_s)
        return recent | ~gauge_alive

    def _note_rain(
        self, readings: Sequence[Reading], batch_idx: list[int], verdicts: list[Verdict | None]
    ) -> None:
        for i in batch_idx:
            verdict, reading = verdicts[i], readings[i]
            if verdict is None or not is_usable(verdict[0]) or reading.value is None:
                continue
            t, value = reading.time.timestamp(), float(reading.value)
            self._rain_seen.append(t=t)
            if reading.channel == q.RAIN_TOTAL:
                previous = self._last_total.get(reading.sensor)
                self._last_total[reading.sensor] = value
                rained = previous is not None and value > previous
            else:
                rained = value > 0
            if rained:
                self._rain_fell.append(t=t)

    # -- cross-channel consistency ----------------------------------------------------------------

    def _judge_consistency(
        self, readings: Sequence[Reading], verdicts: list[Verdict | None]
    ) -> None:
        """Gust vs mean and direction vs calm, for readings of one sensor at the same time; a
        depth computed from a flagged distance inherits the distance's flag."""
        if _CONSISTENCY.isdisjoint({r.channel for r in readings}):
            return  # nothing here is judged against another channel
        at: dict[tuple[str, float, str], int] = {}
        for i, r in enumerate(readings):
            if verdicts[i] is not None and r.value is not None:
                at[(r.sensor, r.time.timestamp(), r.channel)] = i
        p = self.params
        for (sensor, t, channel), i in at.items():
            mine = verdicts[i]
            if mine is None or not is_usable(mine[0]):
                continue
            d = at.get((sensor, t, q.WATER_DISTANCE))
            if channel == q.WATER_DEPTH and d is not None:
                verdicts[i] = _worse(mine, verdicts[d] or (Flag.CORRECT, ""))
            s = at.get((sensor, t, q.WIND_SPEED))
            if s is None or not is_usable((verdicts[s] or (Flag.MISSING, ""))[0]):
                continue
            speed = np.array([float(readings[s].value or 0.0)])
            other = np.array([float(readings[i].value or 0.0)])
            if channel == q.WIND_GUST:
                flag = c.check_gust(
                    other, speed, tolerance=p.gust_tolerance_ms, max_excess=p.gust_max_excess_ms
                )
            elif channel == q.WIND_DIR:
                flag = c.check_calm_direction(
                    speed, other, zero_speed=p.zero_speed_ms, calm=p.calm_ms
                )
            else:
                continue
            verdicts[i] = _worse(verdicts[i], (Flag(int(flag[0])), Reason.CONSISTENCY))


def _timestamps(readings: Sequence[Reading]) -> list[float]:
    """Each reading's time as a timestamp (a poll's readings share one time: computed once)."""
    out = []
    last, stamp = None, 0.0
    for r in readings:
        if r.time is not last:
            last, stamp = r.time, r.time.timestamp()
        out.append(stamp)
    return out


def _admitted_value(reading: Reading) -> tuple[float, Verdict | None]:
    """The value to store (NaN when absent) and a verdict for readings decided at admission."""
    if reading.status is not DriverStatus.OK:
        return math.nan, (Flag.MISSING, reading.status.value)
    if reading.value is None:
        return math.nan, (Flag.MISSING, Reason.MISSING)
    try:
        return float(reading.value), None
    except (TypeError, ValueError):
        return math.nan, (Flag.WRONG, Reason.FORMAT)


def _worse(current: Verdict | None, candidate: Verdict) -> Verdict:
    if current is None or severity(candidate[0]) > severity(current[0]):
        return candidate
    return current


def _any_within(events: np.ndarray, times: np.ndarray, window_s: float) -> np.ndarray:
    """For each time t, whether an event happened in [t - window_s, t]."""
    if events.size == 0:
        return np.zeros(times.shape, dtype=bool)
    latest = np.searchsorted(events, times, side="right") - 1
    found = latest >= 0
    return found & (times - events[np.maximum(latest, 0)] <= window_s)
