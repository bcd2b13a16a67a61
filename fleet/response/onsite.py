"""On-site weather support at an incident: the downwind sector (pure, shapely).

The plume goes with the wind; the sector's half-angle follows the wind direction's variability
(σθ of the last 10 minutes, Yamartino), ``k_sigma`` σθ but at least ``min_half_deg``. Below
``low_speed_ms`` (about 1 m/s, ALOHA's guidance) direction is unreliable and the sector widens
linearly from twice that speed until, at ``low_speed_ms`` and below, every direction is treated
as downwind (a circle).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from shapely.geometry import Point, Polygon, mapping

from fleet.response.geo import offset
from fleet.response.register import Register


@dataclass(frozen=True)
class Wind:
    """Wind at the incident: the direction it blows *from* (degrees), speed, σθ."""

    from_deg: float
    speed_ms: float
    sigma_deg: float
    source: str = "manual"


@dataclass(frozen=True)
class SectorParams:
    range_m: float = 3000.0
    k_sigma: float = 2.0
    min_half_deg: float = 15.0
    low_speed_ms: float = 1.0


def yamartino(directions_deg: Sequence[float]) -> tuple[float, float]:
    """(mean direction, σθ) of wind directions, Yamartino's single-pass estimator."""
    if not directions_deg:
        raise ValueError("no wind directions")
    s = sum(math.sin(math.radians(d)) for d in directions_deg) / len(directions_deg)
    c = sum(math.cos(math.radians(d)) for d in directions_deg) / len(directions_deg)
    mean = round(math.degrees(math.atan2(s, c)) % 360.0, 6) % 360.0
    eps = math.sqrt(max(0.0, 1.0 - min(1.0, s * s + c * c)))
    sigma = math.degrees(math.asin(eps) * (1 + (2 / math.sqrt(3) - 1) * eps**3))
    return mean, sigma


def half_angle(wind: Wind, p: SectorParams = SectorParams()) -> float:
    """The sector's half-angle in degrees (180: all around)."""
    half = min(180.0, max(p.min_half_deg, p.k_sigma * wind.sigma_deg))
    if wind.speed_ms <= p.low_speed_ms:
        return 180.0
    if wind.speed_ms < 2 * p.low_speed_ms:
        frac = (2 * p.low_speed_ms - wind.speed_ms) / p.low_speed_ms
        half += (180.0 - half) * frac
    return half


def sector(lon: float, lat: float, wind: Wind, p: SectorParams = SectorParams()) -> Polygon:
    """The downwind sector as a lon/lat polygon."""
    half = half_angle(wind, p)
    if half >= 180.0:
        ring = [
            offset(lon, lat, p.range_m * math.sin(a), p.range_m * math.cos(a))
            for a in (math.radians(i * 5) for i in range(72))
        ]
        return Polygon(ring)
    toward = (wind.from_deg + 180.0) % 360.0
    steps = max(4, int(2 * half / 5))
    pts = [(lon, lat)]
    for i in range(steps + 1):
        a = math.radians(toward - half + 2 * half * i / steps)
        pts.append(offset(lon, lat, p.range_m * math.sin(a), p.range_m * math.cos(a)))
    return Polygon(pts)


def sector_geojson(
    lon: float, lat: float, wind: Wind, register: Register, p: SectorParams = SectorParams()
) -> dict[str, Any]:
    """A FeatureCollection: the sector (with its parameters), then the cells and key units in it."""
    poly = sector(lon, lat, wind, p)
    cells = [c for c in register.cells.values() if c.geometry().intersects(poly)]
    units = [u for u in register.units.values() if poly.covers(Point(u.lon, u.lat))]
    feats: list[dict[str, Any]] = [
        {
            "type": "Feature",
            "geometry": mapping(poly),
            "properties": {
                "kind": "downwind_sector",
                "wind_from_deg": wind.from_deg,
                "wind_speed_ms": wind.speed_ms,
                "sigma_theta_deg": wind.sigma_deg,
                "half_angle_deg": half_angle(wind, p),
                "range_m": p.range_m,
                "wind_source": wind.source,
            },
        },
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"kind": "incident"},
        },
    ]
    feats += [
        {
            "type": "Feature",
            "geometry": mapping(c.geometry()),
            "properties": {"kind": "cell", "code": c.code, "name": c.name},
        }
        for c in cells
    ]
    feats += [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [u.lon, u.lat]},
            "properties": {"kind": "key_unit", "id": u.id, "name": u.name, "unit_kind": u.kind},
        }
        for u in units
    ]
    return {"type": "FeatureCollection", "features": feats}


def wind_from_readings(
    speeds: Iterable[float], directions: Iterable[float], source: str
) -> Wind | None:
    """Wind from the last 10 minutes of readings (None without data)."""
    sp, dirs = list(speeds), list(directions)
    if not sp or not dirs:
        return None
    mean, sigma = yamartino(dirs)
    return Wind(mean, sum(sp) / len(sp), sigma, source)
