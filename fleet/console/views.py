"""What the console's pages show, as plain functions over plain data (no I/O here).

- :func:`station_row`: one station as the district list and map show it (health, warning level).
- :func:`warning_levels`: each station's current warning level per signal, from its events.
- :func:`cell_levels`: a cell's level from its stations' levels (the map's fallback colouring
  when the response chain gives no level for a cell).
- :func:`downsample`: a series cut to a fixed number of time buckets keeping each bucket's
  min, max and mean and its worst QC flag, so a week of one-minute data draws at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fleet.store import StationInfo, StoredRecord

LEVELS: tuple[str, ...] = ("none", "blue", "yellow", "orange", "red")
"""Warning colours in rising order (as ``agent.warnings.LEVELS``; index = value of an event)."""

STALE_AFTER_S = 300.0
"""A station not heard from for this long is shown stale (offline once its will says so)."""

# worst first: wrong, missing, suspect, corrected, modified; correct and not-checked draw plain
_FLAG_RANK = {2: 6, 8: 5, 1: 4, 3: 3, 4: 2, 0: 0, 9: 0}


@dataclass(frozen=True, slots=True)
class Bucket:
    """One time bucket of a downsampled series."""

    t: float  # epoch seconds, the bucket's first point
    mean: float
    lo: float
    hi: float
    n: int
    flag: int  # worst QC flag in the bucket (0 when all correct)


def health_state(info: StationInfo, now: float) -> str:
    """``offline`` (last will), ``stale`` (silent), ``degraded`` (a device not ok) or ``ok``."""
    if info.online is False:
        return "offline"
    if now - info.last_seen > STALE_AFTER_S:
        return "stale"
    for device in (info.devices or {}).values():
        if isinstance(device, dict) and str(device.get("state", "ok")).lower() not in ("ok", ""):
            return "degraded"
    return "ok"


def warning_levels(events: Iterable[StoredRecord]) -> dict[str, dict[str, str]]:
    """``{station: {signal: colour}}`` from warning events in time order (the newest wins)."""
    out: dict[str, dict[str, str]] = {}
    for e in events:
        payload = e.payload or {}
        signal = str(payload.get("signal") or e.channel or "")
        level = payload.get("level")
        if level not in LEVELS and e.value is not None and 0 <= int(e.value) < len(LEVELS):
            level = LEVELS[int(e.value)]
        if signal and level in LEVELS:
            out.setdefault(e.station, {})[signal] = str(level)
    return out


def top_level(levels: Iterable[str]) -> str:
    """The highest colour among ``levels`` (``none`` when empty)."""
    return max(levels, key=LEVELS.index, default="none")


def station_row(info: StationInfo, signals: dict[str, str], now: float) -> dict[str, Any]:
    """One station for the district list and map."""
    devices = info.devices or {}
    bad = sorted(
        name
        for name, d in devices.items()
        if isinstance(d, dict) and str(d.get("state", "ok")).lower() not in ("ok", "")
    )
    location = (info.health or {}).get("location")
    return {
        "station": info.station,
        "grid_cell": info.grid_cell,
        "health": health_state(info, now),
        "online": info.online,
        "last_seen": info.last_seen,
        "age_s": max(0.0, now - info.last_seen),
        "backlog": info.backlog,
        "software": info.software,
        "config_version": info.config_version,
        "model_version": info.model_version,
        "clock_offset_s": info.clock_offset_s,
        "devices_bad": bad,
        "devices": len(devices),
        "groups": list(info.groups),
        "signals": signals,
        "level": top_level(signals.values()),
        "location": location if isinstance(location, dict) else None,
    }


def cell_levels(rows: Iterable[dict[str, Any]]) -> dict[str, str]:
    """``{cell: colour}``: the highest level among the stations of each cell."""
    out: dict[str, str] = {}
    for row in rows:
        cell = row.get("grid_cell")
        if cell:
            out[cell] = top_level((out.get(cell, "none"), row["level"]))
    return out


def downsample(points: Sequence[tuple[float, float, int]], start: float, end: float, buckets: int):
    """``(t, value, flag)`` points in time order into at most ``buckets`` equal time buckets.

    The buckets span ``[start, end)`` cut to the points' own span. Points are returned as they
    are when there are no more of them than buckets. Values that are not finite are skipped (the
    chart shows a gap).
    """
    if buckets < 1:
        raise ValueError("buckets must be at least 1")
    clean = [(t, v, f) for t, v, f in points if v is not None and math.isfinite(v)]
    if len(clean) <= buckets:
        return [Bucket(t, v, v, v, 1, f) for t, v, f in clean]
    start, end = max(start, clean[0][0]), min(end, clean[-1][0] + 1e-6)
    width = max((end - start) / buckets, 1e-9)
    out: list[Bucket] = []
    index = -1
    total = lo = hi = 0.0
    n = flag = 0
    first = 0.0
    for t, v, f in clean:
        i = min(buckets - 1, max(0, int((t - start) // width)))
        if i != index:
            if n:
                out.append(Bucket(first, total / n, lo, hi, n, flag))
            index, first, total, lo, hi, n, flag = i, t, 0.0, v, v, 0, 0
        total += v
        lo, hi = min(lo, v), max(hi, v)
        n += 1
        if _FLAG_RANK.get(f, 1) > _FLAG_RANK.get(flag, 1):
            flag = f
    if n:
        out.append(Bucket(first, total / n, lo, hi, n, flag))
    return out
