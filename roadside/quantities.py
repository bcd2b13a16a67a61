"""Canonical channel names and their units: the vocabulary shared by profiles, QC and products.

A profile maps a device's registers or fields onto these names; QC limits, derived products and
warning rules key on them. Diagnostic channels (tip counts, uptime, status words) may use other
names; they are carried but not quality-controlled as weather.
"""

from __future__ import annotations

RAIN_TOTAL = "rain_total"  # accumulated rain, mm, never decreasing after the driver's counter logic
RAIN_INTENSITY = "rain_intensity"  # mm/h
WIND_SPEED = "wind_speed"  # m/s
WIND_DIR = "wind_dir"  # degrees from north, 0-360
WIND_GUST = "wind_gust"  # m/s
WATER_DISTANCE = "water_distance"  # mm from the sensor face to the surface below
WATER_DEPTH = "water_depth"  # mm of water over the road surface

UNITS: dict[str, str] = {
    RAIN_TOTAL: "mm",
    RAIN_INTENSITY: "mm/h",
    WIND_SPEED: "m/s",
    WIND_DIR: "deg",
    WIND_GUST: "m/s",
    WATER_DISTANCE: "mm",
    WATER_DEPTH: "mm",
}
