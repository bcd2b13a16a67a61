"""Fleet-side data checks across stations (pure): what one station cannot see on its own.

- a rain gauge reporting (nearly) nothing while at least ``min_neighbours`` stations within
  ``radius_m`` report rain: likely clogged (domain brief section 1);
- a water-level sensor disagreeing with its neighbours by more than ``depth_tolerance_mm``
  while they agree among themselves (an obstruction under an ultrasonic sensor, a drifted
  installation height).

Each finding is a data-quality event; it never changes a reading.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleet.response.geo import distance_m


@dataclass(frozen=True)
class CheckParams:
    """Shipped defaults (configurable)."""

    radius_m: float = 3000.0
    min_neighbours: int = 2
    dry_mm: float = 0.2  # "dry" over the window
    wet_mm: float = 5.0  # "raining" over the window
    depth_tolerance_mm: float = 150.0
    neighbour_spread_mm: float = 60.0  # neighbours agree when their depths spread less


@dataclass(frozen=True)
class Observation:
    """One station's value over the window, where it stands."""

    station: str
    lon: float
    lat: float
    value: float


@dataclass(frozen=True)
class DataQualityEvent:
    station: str
    check: str  # gauge_dry | level_disagrees
    value: float
    neighbours: tuple[str, ...]
    neighbour_values: tuple[float, ...]
    detail: str


def _neighbours(me: Observation, others: Sequence[Observation], radius: float) -> list[Observation]:
    return [
        o
        for o in others
        if o.station != me.station and distance_m(me.lon, me.lat, o.lon, o.lat) <= radius
    ]


def gauge_checks(
    rain: Sequence[Observation], p: CheckParams = CheckParams()
) -> list[DataQualityEvent]:
    """Gauges dry among wet neighbours (values: rain over the window, mm)."""
    out = []
    for me in rain:
        if me.value > p.dry_mm:
            continue
        wet = [o for o in _neighbours(me, rain, p.radius_m) if o.value >= p.wet_mm]
        if len(wet) >= p.min_neighbours:
            out.append(
                DataQualityEvent(
                    me.station,
                    "gauge_dry",
                    me.value,
                    tuple(o.station for o in wet),
                    tuple(o.value for o in wet),
                    f"{me.station} reports {me.value:.1f} mm while {len(wet)} stations within "
                    f"{p.radius_m:.0f} m report >= {p.wet_mm} mm: gauge may be clogged",
                )
            )
    return out


def level_checks(
    depth: Sequence[Observation], p: CheckParams = CheckParams()
) -> list[DataQualityEvent]:
    """Level sensors far from neighbours that agree among themselves (values: depth, mm)."""
    out = []
    for me in depth:
        near = _neighbours(me, depth, p.radius_m)
        if len(near) < p.min_neighbours:
            continue
        values = [o.value for o in near]
        if max(values) - min(values) > p.neighbour_spread_mm:
            continue  # neighbours disagree among themselves: real local ponding is plausible
        median = statistics.median(values)
        if abs(me.value - median) > p.depth_tolerance_mm:
            out.append(
                DataQualityEvent(
                    me.station,
                    "level_disagrees",
                    me.value,
                    tuple(o.station for o in near),
                    tuple(values),
                    f"{me.station} reads {me.value:.0f} mm, neighbours agree on about "
                    f"{median:.0f} mm (tolerance {p.depth_tolerance_mm:.0f} mm)",
                )
            )
    return out


def run_checks(
    rain: Sequence[Observation], depth: Sequence[Observation], p: CheckParams = CheckParams()
) -> list[DataQualityEvent]:
    return gauge_checks(rain, p) + level_checks(depth, p)


def positions_from(
    stations: Mapping[str, tuple[float, float] | None],
) -> dict[str, tuple[float, float]]:
    return {k: v for k, v in stations.items() if v is not None}
