"""Helpers for QC and derived-product tests: readings on a regular clock."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from roadside.records import DriverStatus, Reading

T0 = datetime(2026, 7, 21, 12, 0, tzinfo=UTC)


def reading(
    channel: str,
    t_s: float,
    value: float | None,
    *,
    sensor: str = "s1",
    status: DriverStatus = DriverStatus.OK,
) -> Reading:
    """A reading of ``channel`` at T0 + t_s."""
    return Reading("st", sensor, channel, T0 + timedelta(seconds=t_s), value, "", None, status)


def series(
    channel: str, values: Iterable[float | None], dt_s: float = 10.0, **kw: str
) -> list[Reading]:
    """Readings of ``channel`` every ``dt_s`` seconds from T0."""
    return [reading(channel, i * dt_s, v, **kw) for i, v in enumerate(values)]
