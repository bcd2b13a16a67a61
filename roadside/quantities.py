"""Canonical channel names and their units (a view of :mod:`roadside.registry`, their home).

A profile maps a device's registers or fields onto these names; QC limits, derived products and
warning rules key on them. Diagnostic channels (tip counts, uptime, status words) may use other
names; they are carried but not quality-controlled as weather.
"""

from __future__ import annotations

from roadside.registry import (
    RAIN_INTENSITY,
    RAIN_TOTAL,
    WATER_DEPTH,
    WATER_DISTANCE,
    WIND_DIR,
    WIND_GUST,
    WIND_SPEED,
    units,
)

__all__ = [
    "RAIN_INTENSITY",
    "RAIN_TOTAL",
    "UNITS",
    "WATER_DEPTH",
    "WATER_DISTANCE",
    "WIND_DIR",
    "WIND_GUST",
    "WIND_SPEED",
]

UNITS: dict[str, str] = units()
