"""Small geodesy for a district: metres between lon/lat points, a local tangent plane."""

from __future__ import annotations

import math

EARTH_M = 6_371_008.8
M_PER_DEG = math.pi * EARTH_M / 180.0


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance (haversine), metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_M * math.asin(min(1.0, math.sqrt(a)))


def offset(lon: float, lat: float, east_m: float, north_m: float) -> tuple[float, float]:
    """The point ``east_m``/``north_m`` away (local plane; fine for a few kilometres)."""
    return (
        lon + east_m / (M_PER_DEG * math.cos(math.radians(lat))),
        lat + north_m / M_PER_DEG,
    )
