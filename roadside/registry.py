"""The registry of channels and derived products: one home for what each quantity is.

QC (default limits), the derived products (windows, units), the runner (what is replayed into the
windows after a restart), the warning rules (which products they may read, how high a threshold
can plausibly be), the simulator and the fleet all read these tables; none keeps its own copy.

A **channel** is what a driver reports (a profile maps a device's register or ASCII field onto
it): unit, QC limits (sensor range, climatological range, step, persistence), the *plausible*
range real weather reaches (a pushed QC limit inside it would flag real weather: the contract
refuses it) and how far back a restart refills the derived windows from the buffer. Adding a
channel is one :data:`CHANNELS` entry plus the profile line that maps onto it
(``tests/contract/test_registry.py`` proves it).

A **derived product** is computed per source sensor, so products are keyed by
``(sensor, product)``. Several sensors may feed one quantity (the full-station scenario has three
rain gauges and three anemometers). Which one a warning reads is decided per *quantity*
(``rain``, ``wind``, ``water``) by :func:`agent.derived.select_inputs`:

1. the configured primary sensor of that quantity (``[derived.primary]``, e.g.
   ``rain = "rain1"``; without one, the first sensor of the configuration that reports it),
   if QC passed its value (flag correct);
2. else the first other source, in configuration order, whose value is flagged correct;
3. else the first source (primary first) whose value is flagged suspect;
4. else the primary's value as it is (flagged wrong or missing: it raises nothing).

Waterlogging tiers are configuration (``[warnings.waterlogging]``, shipped preset 150/300 mm);
:data:`FORECAST_TIERS` only says which depths the nowcast's probabilities are about, so a
configured tier reads the probability of the lowest model tier at or above it (never an
over-estimate), and a tier above every model tier is forecast by depth alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

RAIN_TOTAL = "rain_total"
RAIN_INTENSITY = "rain_intensity"
WIND_SPEED = "wind_speed"
WIND_DIR = "wind_dir"
WIND_GUST = "wind_gust"
WATER_DISTANCE = "water_distance"
WATER_DEPTH = "water_depth"

QUANTITIES: tuple[str, ...] = ("rain", "wind", "water")


@dataclass(frozen=True)
class Channel:
    """One canonical channel. ``qc`` limits: None disables that check."""

    name: str
    unit: str
    quantity: str | None  # rain | wind | water | None (not feeding a warning quantity)
    low: float | None = None  # sensor range: outside -> wrong "range"
    high: float | None = None
    climate_low: float | None = None  # climatological: outside -> suspect "climate"
    climate_high: float | None = None
    max_step: float | None = None  # largest change between consecutive samples
    stuck_window_s: float | None = None  # persistence window ...
    stuck_min_range: float | None = None  # ... and the least variation expected in it
    plausible: tuple[float, float] | None = None  # real weather reaches all of this
    replay_s: float | None = None  # refilled into derived windows after a restart


CHANNELS: dict[str, Channel] = {
    # Zahumenský 2004 / climate-stations QC: 0-75 m/s, step 20 m/s, stuck < 0.5 m/s over 60 min.
    # Plausible: up to Beaufort 13+ typhoon means (about 50 m/s) and gusts of 70 m/s.
    WIND_SPEED: Channel(
        WIND_SPEED, "m/s", "wind", 0.0, 75.0, None, 60.0, 20.0, 3600.0, 0.5, (0.0, 50.0), 900.0
    ),
    WIND_GUST: Channel(
        WIND_GUST, "m/s", "wind", 0.0, 75.0, None, 70.0, 30.0, 3600.0, 0.5, (0.0, 70.0), 900.0
    ),
    # 0-360 deg, stuck < 10 deg over 60 min; no step test (direction is legitimately jumpy).
    WIND_DIR: Channel(
        WIND_DIR, "deg", "wind", 0.0, 360.0, None, None, None, 3600.0, 10.0, (0.0, 360.0), 900.0
    ),
    RAIN_TOTAL: Channel(RAIN_TOTAL, "mm", "rain", 0.0, None, replay_s=24 * 3600.0),
    # 40 mm/min = 2400 mm/h wrong, 10 mm/min = 600 mm/h suspect; Shanghai's 100-year design
    # intensity peaks near 6.6 mm/min = 396 mm/h (U), which must pass.
    RAIN_INTENSITY: Channel(
        RAIN_INTENSITY, "mm/h", "rain", 0.0, 2400.0, None, 600.0, plausible=(0.0, 400.0)
    ),
    # Radar range 0.15-40 m (HLK-LD8001H); a distance that does not vary for 30 min is stuck.
    WATER_DISTANCE: Channel(
        WATER_DISTANCE, "mm", None, 150.0, 40000.0, None, None, None, 1800.0, 1.0
    ),
    # Depth: with +-5 mm radar noise a road 20 mm below itself is a drifting sensor; a metre and
    # a half of water on a road is extreme. Plausible: > 40 cm at an underpass (2012-08-21).
    WATER_DEPTH: Channel(
        WATER_DEPTH, "mm", "water", -100.0, 5000.0, -20.0, 1500.0, None, 1800.0, 1.0,
        (0.0, 1000.0), 900.0,
    ),
}  # fmt: skip
"""Every canonical channel; diagnostic channels of a profile (tip counts, uptime) are not here."""


@dataclass(frozen=True)
class Product:
    """One derived product: unit, source channel, window and the highest plausible value."""

    name: str
    unit: str
    source: str  # the channel it is computed from
    window_s: float | None
    plausible_max: float  # a warning threshold above this can never be met

    @property
    def quantity(self) -> str | None:
        return CHANNELS[self.source].quantity


# Far above anything observed: world records about 305 mm in 1 h and 1825 mm in 24 h, strongest
# gusts about 113 m/s.
_RAIN = (
    ("rain_1min", 60.0, 40.0),
    ("rain_5min", 300.0, 150.0),
    ("rain_10min", 600.0, 250.0),
    ("rain_1h", 3600.0, 400.0),
    ("rain_3h", 3 * 3600.0, 800.0),
    ("rain_6h", 6 * 3600.0, 1000.0),
    ("rain_12h", 12 * 3600.0, 1500.0),
    ("rain_24h", 24 * 3600.0, 2000.0),
)
PRODUCTS: dict[str, Product] = {
    **{n: Product(n, "mm", RAIN_TOTAL, w, top) for n, w, top in _RAIN},
    "rain_intensity": Product("rain_intensity", "mm/h", RAIN_TOTAL, None, 2400.0),
    "wind_speed_2min": Product("wind_speed_2min", "m/s", WIND_SPEED, 120.0, 80.0),
    "wind_speed_10min": Product("wind_speed_10min", "m/s", WIND_SPEED, 600.0, 80.0),
    "wind_dir_2min": Product("wind_dir_2min", "deg", WIND_DIR, 120.0, 360.0),
    "wind_dir_10min": Product("wind_dir_10min", "deg", WIND_DIR, 600.0, 360.0),
    "wind_gust_3s": Product("wind_gust_3s", "m/s", WIND_GUST, None, 110.0),
    "water_depth": Product("water_depth", "mm", WATER_DEPTH, None, 3000.0),
    "water_rise_rate": Product("water_rise_rate", "mm/min", WATER_DEPTH, None, 500.0),
}
"""Every derived product by name (computed once per source sensor)."""

SIGNAL_QUANTITY: Mapping[str, str] = {"rainstorm": "rain", "gale": "wind", "waterlogging": "water"}
"""Which quantity each warning signal reads (its products must be of that quantity)."""


@dataclass(frozen=True)
class ForecastTier:
    """A depth the nowcast gives an exceedance probability for, and the forecast's field."""

    depth_mm: float
    field: str


FORECAST_TIERS: tuple[ForecastTier, ...] = (
    ForecastTier(150.0, "p_15cm"),
    ForecastTier(300.0, "p_30cm"),
)
"""The nowcast model's tier outputs, lowest first (see the module docstring)."""


def units() -> dict[str, str]:
    """Channel name -> unit."""
    return {c.name: c.unit for c in CHANNELS.values()}


def replay_windows() -> dict[str, float]:
    """Channel -> seconds of readings replayed into the derived windows at start."""
    return {c.name: c.replay_s for c in CHANNELS.values() if c.replay_s}


def products_of(quantity: str) -> list[str]:
    """Names of the derived products of one quantity."""
    return [p.name for p in PRODUCTS.values() if p.quantity == quantity]


def forecast_tier_for(depth_mm: float) -> ForecastTier | None:
    """The model tier whose probability stands for a configured tier (None: depth only)."""
    return next((t for t in FORECAST_TIERS if t.depth_mm >= depth_mm), None)
