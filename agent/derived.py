"""Derived products: rain accumulations and intensity, wind means and gust, water depth and rise.

Only readings that passed QC (flag 0 or 1) feed a product. Every value carries the worst flag of the
readings it was computed from and its window's completeness (0..1): the share of the window covered
by usable samples (a sample covers the time since the previous reading of its channel, at most
``max_credit``). History lives in bounded numpy rings per sensor, cheap enough for 1 Hz wind.

Rain comes from the accumulated total: each usable reading adds its increase since the previous
usable one, attributed to the interval ending at the reading, so a rolling sum over a window equals
``total(now) - total(window start)``. After a counter reset (total went backwards) the counter
restarted from zero, so the new total itself is the rain since the reset; an increase too large for
its interval (more than ``max_rain_mm_min``) is never added.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from agent.errors import ConfigError
from agent.flags import Flag, FlaggedReading
from agent.qc.ring import Ring
from roadside import quantities as q
from roadside import registry

RAIN_WINDOWS_S: Mapping[str, float] = {
    p.name: p.window_s
    for p in registry.PRODUCTS.values()
    if p.source == q.RAIN_TOTAL and p.window_s is not None
}
WIND_WINDOWS_S: Mapping[str, float] = {"2min": 120.0, "10min": 600.0}

UNITS: Mapping[str, str] = {p.name: p.unit for p in registry.PRODUCTS.values()}
"""Every derived product's name and unit (from :mod:`roadside.registry`)."""


@dataclass(frozen=True)
class DerivedParams:
    """Windows and limits of the derived products (station TOML ``[derived]``)."""

    intensity_window_s: float = 300.0  # rain intensity = rain over this window, per hour
    max_rain_mm_min: float = 40.0  # a larger increase for its interval is never added
    rain_max_credit_s: float = 900.0  # a rain increment covers at most this much of a window
    wind_max_credit_s: float = 60.0  # a wind sample covers at most this much of a window
    gust_window_s: float = 600.0  # the gust is the highest 3-s mean in this window (WMO)
    gust_average_s: float = 3.0
    water_depth_window_s: float = 60.0  # depth = median of this window's samples
    water_rise_window_s: float = 300.0  # rise rate = least-squares slope over this window
    water_noise_floor_mm: float = 10.0  # depth below this is a dry road (FloodNet)
    water_max_credit_s: float = 120.0
    max_samples: int = 20_000  # rain samples kept per sensor: 24 h of polls every 4.3 s or slower
    max_fast_samples: int = 4096  # wind and water samples per channel: 10 min at ~6 Hz
    # quantity (rain, wind, water) -> the sensor whose products the warnings read first
    primary: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "derived") -> DerivedParams:
        """Build from a configuration table; unknown keys and bad values raise ConfigError."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key not in fields:
                expected = ", ".join(sorted(fields))
                raise ConfigError(f"{where}.{key}: unknown key (expected one of: {expected})")
            if key == "primary":
                kwargs[key] = _primary(value, f"{where}.primary")
                continue
            integer = key in _INTEGER_FIELDS
            kind = int if integer else int | float
            if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
                what = "a positive integer" if integer else "a positive number"
                raise ConfigError(f"{where}.{key}: expected {what}, got {value!r}")
            kwargs[key] = value if integer else float(value)
        return cls(**kwargs)


_INTEGER_FIELDS = {"max_samples", "max_fast_samples"}


def _primary(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a table of quantity = sensor name")
    for quantity, sensor in value.items():
        if quantity not in registry.QUANTITIES:
            known = ", ".join(registry.QUANTITIES)
            raise ConfigError(f"{where}.{quantity}: unknown quantity (expected one of: {known})")
        if not isinstance(sensor, str) or not sensor:
            raise ConfigError(f"{where}.{quantity}: expected a sensor name, got {sensor!r}")
    return dict(value)


ProductKey = tuple[str, str]
"""(source sensor, product name): derived products are kept per source."""


def select_inputs(
    products: Mapping[ProductKey, DerivedValue],
    primary: Mapping[str, str],
    order: Sequence[str] = (),
) -> dict[str, DerivedValue]:
    """Per product name, the value the warnings read (the rule of :mod:`roadside.registry`):
    the quantity's primary sensor when QC passed its value, else the first other source in
    configuration ``order`` flagged correct, else the first flagged suspect, else the primary's."""
    rank = {name: i for i, name in enumerate(order)}
    by_name: dict[str, list[DerivedValue]] = {}
    for dv in products.values():
        by_name.setdefault(dv.name, []).append(dv)
    out: dict[str, DerivedValue] = {}
    for name, values in by_name.items():
        product = registry.PRODUCTS.get(name)
        first = primary.get(product.quantity or "") if product else None
        values.sort(key=lambda v: (v.sensor != first, rank.get(v.sensor, len(rank)), v.sensor))
        usable = [v for v in values if v.value is not None]
        out[name] = next(
            (v for flag in (Flag.CORRECT, Flag.SUSPECT) for v in usable if v.flag == flag),
            values[0],
        )
    return out


@dataclass(frozen=True, slots=True)
class DerivedValue:
    """One derived product of one sensor at one time."""

    name: str
    time: datetime
    value: float | None
    unit: str
    flag: Flag
    completeness: float
    window_s: float
    sensor: str


def counter_increment(previous: float, value: float, dt_s: float, max_mm_min: float) -> float:
    """Rain added between two usable totals ``dt_s`` apart (see the module docstring)."""
    limit = max_mm_min * max(dt_s, 60.0) / 60.0
    added = value - previous if value >= previous else value
    return added if added <= limit else 0.0


def vector_mean_deg(directions_deg: np.ndarray) -> float:
    """Direction of the mean unit vector (degrees from north, 0..360)."""
    rad = np.radians(directions_deg)
    deg = math.degrees(math.atan2(float(np.sin(rad).mean()), float(np.cos(rad).mean())))
    return deg % 360.0


class _Series:
    """Usable samples of one channel and the time of its last reading of any flag.

    Columns: time, value, credit (seconds of window the sample covers), whether it is suspect, and
    running sums of credit and suspects so any window's completeness and worst flag cost O(log n).
    """

    def __init__(self, capacity: int, max_credit_s: float, horizon_s: float) -> None:
        self.ring = Ring(capacity, ("t", "v", "credit", "credit_sum", "suspect", "suspect_sum"))
        self.max_credit_s = max_credit_s
        self.horizon_s = horizon_s
        self.last_seen: float | None = None

    def add(self, t: float, value: float | None, flag: Flag, usable: bool) -> None:
        if self.last_seen is not None and t <= self.last_seen:
            return  # QC flags readings out of time order; they cover nothing
        credit = 0.0 if self.last_seen is None else min(t - self.last_seen, self.max_credit_s)
        self.last_seen = t
        if not usable or value is None:
            return
        suspect = float(flag is not Flag.CORRECT)
        ring = self.ring
        ring.append(
            t=t,
            v=value,
            credit=credit,
            credit_sum=(ring.last("credit_sum") or 0.0) + credit,
            suspect=suspect,
            suspect_sum=(ring.last("suspect_sum") or 0.0) + suspect,
        )

    def window(self, now: float, window_s: float) -> tuple[slice, float, Flag]:
        """Rows in (now - window_s, now], their completeness and worst flag."""
        t = self.ring.col("t")
        start = now - window_s
        lo = int(np.searchsorted(t, start, side="right"))
        hi = int(np.searchsorted(t, now, side="right"))
        if hi == lo:
            return slice(lo, hi), 0.0, Flag.MISSING
        credit, credit_sum = self.ring.col("credit"), self.ring.col("credit_sum")
        suspect, suspect_sum = self.ring.col("suspect"), self.ring.col("suspect_sum")
        covered = credit_sum[hi - 1] - credit_sum[lo] + min(credit[lo], t[lo] - start)
        suspects = suspect_sum[hi - 1] - suspect_sum[lo] + suspect[lo]
        flag = Flag.SUSPECT if suspects > 0 else Flag.CORRECT
        return slice(lo, hi), min(1.0, float(covered) / window_s), flag

    def forget(self, now: float) -> None:
        """Drop rows older than the horizon (keeping one before it as a baseline)."""
        t = self.ring.col("t")
        if t.size < 2 or t[1] > now - self.horizon_s:
            return
        keep_from = int(np.searchsorted(t, now - self.horizon_s, side="right")) - 1
        if keep_from > 0:
            self.ring.drop_before(float(t[keep_from]))


class _SensorState:
    """History of one sensor's channels that feed products."""

    def __init__(self, params: DerivedParams) -> None:
        p = params
        day = max(RAIN_WINDOWS_S.values())
        wind = max(*WIND_WINDOWS_S.values(), p.gust_window_s)
        water = max(p.water_depth_window_s, p.water_rise_window_s)
        # rain: v is the reset-corrected cumulative rain since the first usable total
        self.rain = _Series(p.max_samples, p.rain_max_credit_s, day)
        self.rain_last: tuple[float, float] | None = None  # (time, total) of the last usable total
        self.speed = _Series(p.max_fast_samples, p.wind_max_credit_s, wind)
        self.direction = _Series(p.max_fast_samples, p.wind_max_credit_s, wind)
        self.gust = _Series(p.max_fast_samples, p.wind_max_credit_s, wind)
        self.depth = _Series(p.max_fast_samples, p.water_max_credit_s, water)

    def all_series(self) -> tuple[_Series, ...]:
        return (self.rain, self.speed, self.direction, self.gust, self.depth)


class DerivedEngine:
    """Turns flagged readings into derived products, sensor by sensor."""

    def __init__(self, params: DerivedParams | None = None) -> None:
        self.params = params or DerivedParams()
        self._sensors: dict[str, _SensorState] = {}

    def update(self, flagged: Sequence[FlaggedReading], now: datetime) -> list[DerivedValue]:
        """Take a batch of flagged readings; return the products of the sensors in it at ``now``."""
        touched: dict[str, set[str]] = {}
        inputs = [f for f in flagged if f.reading.channel in _INPUTS]  # the rest feed nothing
        for fr in sorted(inputs, key=lambda f: f.reading.time):
            state = self._sensors.get(fr.reading.sensor)
            if state is None:
                state = self._sensors[fr.reading.sensor] = _SensorState(self.params)
            self._add(state, fr)
            touched.setdefault(fr.reading.sensor, set()).add(fr.reading.channel)
        t_now = now.timestamp()
        out: list[DerivedValue] = []
        for sensor, channels in touched.items():
            state = self._sensors[sensor]
            for series in state.all_series():
                series.forget(t_now)
            out.extend(self._products(sensor, state, channels, now))
        return out

    def _add(self, state: _SensorState, fr: FlaggedReading) -> None:
        """One reading of an input channel (:data:`_INPUTS`) into its sensor's series."""
        r = fr.reading
        usable = fr.usable
        t, value = r.time.timestamp(), float(r.value) if usable and r.value is not None else None
        if r.channel == q.RAIN_TOTAL:
            self._add_rain(state, t, value, fr.flag, usable)
        elif r.channel in _WIND_SERIES:
            getattr(state, _WIND_SERIES[r.channel]).add(t, value, fr.flag, usable)
        else:
            state.depth.add(t, value, fr.flag, usable)

    def _add_rain(
        self, state: _SensorState, t: float, total: float | None, flag: Flag, usable: bool
    ) -> None:
        if not usable or total is None:
            state.rain.add(t, None, flag, False)
            return
        if state.rain_last is None:
            cumulative = 0.0  # the first usable total is the baseline
        else:
            t0, total0 = state.rain_last
            added = counter_increment(total0, total, t - t0, self.params.max_rain_mm_min)
            cumulative = (state.rain.ring.last("v") or 0.0) + added
        state.rain_last = (t, total)
        state.rain.add(t, cumulative, flag, True)

    def _products(
        self, sensor: str, state: _SensorState, channels: set[str], now: datetime
    ) -> list[DerivedValue]:
        t = now.timestamp()
        out: list[DerivedValue] = []
        if q.RAIN_TOTAL in channels:
            out += self._rain_products(sensor, state, t, now)
        if channels & {q.WIND_SPEED, q.WIND_DIR, q.WIND_GUST}:
            out += self._wind_products(sensor, state, t, now)
        if q.WATER_DEPTH in channels:
            out += self._water_products(sensor, state, t, now)
        return out

    # -- rain --------------------------------------------------------------------------------

    def _rain_products(
        self, sensor: str, state: _SensorState, t: float, now: datetime
    ) -> list[DerivedValue]:
        out = []
        for name, window in RAIN_WINDOWS_S.items():
            value, completeness, flag = self._accumulation(state.rain, t, window)
            out.append(DerivedValue(name, now, value, "mm", flag, completeness, window, sensor))
        window = self.params.intensity_window_s
        value, completeness, flag = self._accumulation(state.rain, t, window)
        rate = None if value is None else value * 3600.0 / window
        out.append(
            DerivedValue("rain_intensity", now, rate, "mm/h", flag, completeness, window, sensor)
        )
        return out

    @staticmethod
    def _accumulation(
        rain: _Series, now: float, window_s: float
    ) -> tuple[float | None, float, Flag]:
        """total(now) - total(window start), completeness, worst flag of the increments."""
        rows, completeness, flag = rain.window(now, window_s)
        if rows.stop == rows.start:
            return None, 0.0, Flag.MISSING
        cum = rain.ring.col("v")
        base = cum[rows.start - 1] if rows.start > 0 else cum[0]
        return float(cum[rows.stop - 1] - base), completeness, flag

    # -- wind --------------------------------------------------------------------------------

    def _wind_products(
        self, sensor: str, state: _SensorState, t: float, now: datetime
    ) -> list[DerivedValue]:
        out = []
        for label, window in WIND_WINDOWS_S.items():
            rows, completeness, flag = state.speed.window(t, window)
            speeds = state.speed.ring.col("v")[rows]
            mean = float(speeds.mean()) if speeds.size else None
            out.append(_value(f"wind_speed_{label}", now, mean, flag, completeness, window, sensor))
            rows, completeness, flag = state.direction.window(t, window)
            dirs = state.direction.ring.col("v")[rows]
            direction = vector_mean_deg(dirs) if dirs.size else None
            out.append(
                _value(f"wind_dir_{label}", now, direction, flag, completeness, window, sensor)
            )
        out.append(self._gust(sensor, state, t, now))
        return out

    def _gust(self, sensor: str, state: _SensorState, t: float, now: datetime) -> DerivedValue:
        """Highest 3-s mean speed in the gust window, or the sensor's own gust channel."""
        window = self.params.gust_window_s
        if len(state.gust.ring):
            rows, completeness, flag = state.gust.window(t, window)
            gusts = state.gust.ring.col("v")[rows]
            gust = float(gusts.max()) if gusts.size else None
        else:
            rows, completeness, flag = state.speed.window(t, window)
            times, speeds = state.speed.ring.col("t")[rows], state.speed.ring.col("v")[rows]
            gust = running_mean_max(times, speeds, self.params.gust_average_s)
        return _value("wind_gust_3s", now, gust, flag, completeness, window, sensor)

    # -- water -------------------------------------------------------------------------------

    def _water_products(
        self, sensor: str, state: _SensorState, t: float, now: datetime
    ) -> list[DerivedValue]:
        p = self.params
        rows, completeness, flag = state.depth.window(t, p.water_depth_window_s)
        depths = state.depth.ring.col("v")[rows]
        depth = None
        if depths.size:
            median = float(np.median(depths))
            depth = median if median >= p.water_noise_floor_mm else 0.0
        window = p.water_depth_window_s
        out = [_value("water_depth", now, depth, flag, completeness, window, sensor)]
        rows, completeness, flag = state.depth.window(t, p.water_rise_window_s)
        times, values = state.depth.ring.col("t")[rows], state.depth.ring.col("v")[rows]
        rate = None
        if times.size >= 2 and times[-1] > times[0]:
            rate = least_squares_slope(times, values) * 60.0
        window = p.water_rise_window_s
        out.append(_value("water_rise_rate", now, rate, flag, completeness, window, sensor))
        return out


_WIND_SERIES = {q.WIND_SPEED: "speed", q.WIND_DIR: "direction", q.WIND_GUST: "gust"}
_INPUTS = frozenset({q.RAIN_TOTAL, q.WATER_DEPTH, *_WIND_SERIES})  # the channels :meth:`_add` takes


def least_squares_slope(times: np.ndarray, values: np.ndarray) -> float:
    """Slope of the least-squares line through (times, values), per second."""
    dt = times - times.mean()
    return float((dt * (values - values.mean())).sum() / (dt * dt).sum())


def running_mean_max(times: np.ndarray, values: np.ndarray, average_s: float) -> float | None:
    """Highest mean over (t - average_s, t] for windows ending at a sample (None if empty).

    Windows that would begin before the first sample are skipped unless no other exists.
    """
    if values.size == 0:
        return None
    starts = np.searchsorted(times, times - average_s, side="right")
    sums = np.concatenate(([0.0], np.cumsum(values)))
    ends = np.arange(1, values.size + 1)
    means = (sums[ends] - sums[starts]) / (ends - starts)
    full = times - average_s >= times[0] - _SAMPLE_S
    return float(means[full].max() if full.any() else means.max())


_SAMPLE_S = 1.0  # the 1-Hz sample a 3-s gust is computed from


def _value(
    name: str,
    now: datetime,
    value: float | None,
    flag: Flag,
    completeness: float,
    window_s: float,
    sensor: str,
) -> DerivedValue:
    if value is None:
        flag, completeness = Flag.MISSING, 0.0
    return DerivedValue(name, now, value, UNITS[name], flag, completeness, window_s, sensor)
