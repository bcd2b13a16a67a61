"""What the console's pages show, as plain functions over plain data (no I/O here).

- :func:`station_row`: one station as the district list and map show it (health, warning level).
- :func:`warning_levels`: each station's current warning level per signal, from its events.
- :func:`cell_levels`: a cell's level from its stations' levels (the map's fallback colouring
  when the response chain gives no level for a cell).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from fleet.response.plan import COLOURS
from fleet.store import StationInfo, StoredRecord

LEVELS: tuple[str, ...] = ("none", *COLOURS)
"""Warning colours in rising order (a station event's value is the index)."""

STALE_AFTER_S = 300.0
"""A station not heard from for this long is shown stale (offline once its will says so)."""


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


_NOT_IN_ROW = frozenset({"first_seen", "contract", "last_seq", "records"})
"""Registry fields the district list leaves out (``health``, ``devices`` and ``groups`` are
summarised below)."""


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
        **{f.name: getattr(info, f.name) for f in fields(info) if f.name not in _NOT_IN_ROW},
        "health": health_state(info, now),
        "age_s": max(0.0, now - info.last_seen),
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
