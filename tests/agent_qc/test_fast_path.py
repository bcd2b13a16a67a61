"""The plain-Python path for a few judged samples gives the numpy path's flags and reasons."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from agent.flags import Flag
from agent.qc import series
from agent.qc.params import QCParams
from agent.qc.series import SeriesContext, qc_series
from roadside import quantities as q


def _series(rng: random.Random, n: int) -> tuple[np.ndarray, np.ndarray]:
    times, values, t, v = [], [], 0.0, 5.0
    for _ in range(n):
        t += rng.choice((1.0, 1.0, 1.0, 10.0, 60.0, 1000.0))
        kind = rng.random()
        if kind < 0.05:
            value = float("nan")
        elif kind < 0.07:
            value = float("inf")
        elif kind < 0.10:
            value = rng.choice((-5.0, 90.0, 65.0, 400.0))
        elif kind < 0.14:
            value = v + rng.choice((25.0, -25.0))  # a spike
        elif kind < 0.60 and values:
            value = v  # flat stretches, for the persistence check
        else:
            v = max(0.0, v + rng.uniform(-1.5, 1.5))
            value = v
        times.append(t)
        values.append(value)
    return np.array(times), np.array(values)


def _stream(channel: str, times: np.ndarray, values: np.ndarray, batch: int) -> list:
    base = QCParams()
    limits = dataclasses.replace(base.channels[channel], stuck_window_s=20.0)
    if limits.stuck_min_range is None:
        limits = dataclasses.replace(limits, stuck_min_range=0.5)
    params = QCParams(channels={**base.channels, channel: limits}, stuck_min_samples=3)
    state = None
    out = []
    speed_mean = None
    for first in range(0, times.size, batch):
        end = min(first + batch, times.size)
        if channel == q.WIND_DIR:
            speed_mean = np.array([2.0 if (i // 7) % 2 else 0.2 for i in range(first, end)])
        context = SeriesContext(speed_mean=speed_mean)
        v = qc_series(channel, times[:end], values[:end], params, context, first, state)
        state = v.state
        out += list(zip(v.flags.tolist(), v.reasons.tolist(), strict=True))
    return out


@pytest.mark.parametrize("channel", [q.WIND_SPEED, q.WIND_GUST, q.WIND_DIR, q.RAIN_INTENSITY])
@pytest.mark.parametrize("seed", range(6))
def test_fast_path_equals_numpy_path(
    channel: str, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    times, values = _series(rng, 400)
    if channel == q.WIND_DIR:
        with np.errstate(invalid="ignore"):
            values = np.where(np.isfinite(values), (values * 37.0) % 360.0, values)
    batch = rng.choice((1, 2, 3, 8))
    fast = _stream(channel, times, values, batch)
    monkeypatch.setattr(series, "SMALL", 0)
    slow = _stream(channel, times, values, batch)
    assert fast == slow
    reasons = {r for _, r in fast}
    assert "gap" in reasons and "missing" in reasons  # the series exercises the checks
    if channel in (q.WIND_SPEED, q.WIND_GUST):
        assert {"stuck", "step", "range"} <= reasons


@pytest.mark.parametrize("batch", [1, 4])
def test_a_stuck_sample_already_suspect_keeps_the_earlier_reason(
    batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wind flat at 65 m/s (above climate_high 60) for longer than the stuck window: climate and
    persistence both say SUSPECT, and the earlier check (climate) names the reason."""
    times = np.arange(1.0, 61.0)
    values = np.full(times.size, 65.0)
    values[:5] = [10.0, 30.0, 50.0, 64.0, 65.0]  # a climb within the step limit
    fast = _stream(q.WIND_SPEED, times, values, batch)
    monkeypatch.setattr(series, "SMALL", 0)
    assert fast == _stream(q.WIND_SPEED, times, values, batch)
    assert fast[-1] == (int(Flag.SUSPECT), "climate")
