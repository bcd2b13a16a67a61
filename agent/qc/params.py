"""QC parameters: the domain brief's limits as defaults, overridable from the ``[qc]`` table.

Example (TOML)::

    [qc]
    max_gap_s = 900
    rain_suspect_mm_min = 10

    [qc.channels.wind_speed]
    high = 60
    stuck_window_s = false      # false disables a check

Figures marked (U) in the domain brief are defaults, never hard-coded truths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.errors import ConfigError
from roadside import quantities as q
from roadside import registry


@dataclass(frozen=True)
class ChannelLimits:
    """Per-channel limits; a None field disables its check."""

    low: float | None = None  # sensor range: outside -> WRONG "range"
    high: float | None = None
    climate_low: float | None = None  # climatological limits: outside -> SUSPECT "climate"
    climate_high: float | None = None
    max_step: float | None = None  # largest change between consecutive samples -> SUSPECT "step"
    stuck_window_s: float | None = None  # persistence window ...
    stuck_min_range: float | None = None  # ... and the least variation expected in it


def default_channels() -> dict[str, ChannelLimits]:
    """Per-channel limits from the registry (:mod:`roadside.registry`, domain brief section 1)."""
    names = [f.name for f in dataclasses.fields(ChannelLimits)]
    return {
        c.name: ChannelLimits(**{n: getattr(c, n) for n in names})
        for c in registry.CHANNELS.values()
    }


@dataclass(frozen=True)
class QCParams:
    """Everything the QC engine is tuned by (defaults: domain brief section 1)."""

    channels: Mapping[str, ChannelLimits] = field(default_factory=default_channels)
    max_gap_s: float = 900.0  # a sample after a longer silence is flagged "gap"
    stuck_min_samples: int = 10  # fewer samples in a persistence window are not judged
    calm_ms: float = 0.5  # below this mean speed the wind is calm (no stuck test, no direction)
    zero_speed_ms: float = 0.05  # WindSonic reports no direction below 0.05 m/s
    gust_tolerance_ms: float = 0.5  # gust may sit this far below the mean before it is suspect
    gust_max_excess_ms: float = 38.6  # MesoWest: gust - mean >= 75 kt is wrong
    rain_suspect_mm_min: float = 10.0  # Zahumenský 2004
    rain_wrong_mm_min: float = 40.0  # Zahumenský 2004 (U); MesoWest uses 50.8
    rain_reset_tolerance_mm: float = 0.01  # backwards by more than this is a counter reset
    rain_recent_s: float = 10800.0  # rain within this long explains standing or rising water
    water_noise_floor_mm: float = 10.0  # FloodNet flood-filters
    water_max_rise_mm_min: float = 60.0  # faster than any street ponds (U)
    water_dry_window_s: float = 10800.0  # look-back for "water rising with no rain"
    water_dry_rise_mm: float = 20.0  # rise above the window minimum that needs rain to explain it
    max_history: int = 8192  # samples kept per (sensor, channel): bounds memory at 1 Hz

    def limits(self, channel: str) -> ChannelLimits | None:
        """Limits for ``channel`` (None for channels QC does not check)."""
        return self.channels.get(channel)

    def history_s(self, channel: str) -> float:
        """How far back the checks of ``channel`` look (the gap allowance included)."""
        limits = self.limits(channel)
        windows = [60.0, (limits.stuck_window_s or 0.0) if limits else 0.0]
        if channel == q.WATER_DEPTH:
            windows.append(self.water_dry_window_s)
        return max(windows) + self.max_gap_s

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "qc") -> QCParams:
        """Build from a configuration table; unknown keys and bad values raise ConfigError."""
        scalars = {f.name for f in dataclasses.fields(cls)} - {"channels"}
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key == "channels":
                kwargs["channels"] = _channels_from_dict(value, f"{where}.channels")
            elif key in scalars:
                integer = key in ("max_history", "stuck_min_samples")
                kwargs[key] = _number(value, f"{where}.{key}", integer=integer)
            else:
                raise ConfigError(
                    f"{where}.{key}: unknown key (expected one of: {_names(scalars)})"
                )
        params = cls(**kwargs)
        params.validate(where)
        return params

    def validate(self, where: str = "qc") -> None:
        """Raise ConfigError naming the key when limits contradict each other."""
        if self.rain_wrong_mm_min <= self.rain_suspect_mm_min:
            raise ConfigError(f"{where}.rain_wrong_mm_min: must exceed rain_suspect_mm_min")
        if self.rain_recent_s < self.water_dry_window_s:
            raise ConfigError(f"{where}.rain_recent_s: must be at least water_dry_window_s")
        positive = ("max_gap_s", "water_max_rise_mm_min", "water_dry_window_s", "max_history")
        for name in (*positive, "stuck_min_samples"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{where}.{name}: must be positive")
        for channel, lim in self.channels.items():
            for lo, hi in (("low", "high"), ("climate_low", "climate_high")):
                a, b = getattr(lim, lo), getattr(lim, hi)
                if a is not None and b is not None and a >= b:
                    raise ConfigError(f"{where}.channels.{channel}.{hi}: must exceed {lo}")


def _channels_from_dict(d: Any, where: str) -> dict[str, ChannelLimits]:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a table of channels")
    channels = default_channels()
    keys = {f.name for f in dataclasses.fields(ChannelLimits)}
    for channel, table in d.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}.{channel}: expected a table of limits")
        changes: dict[str, float | None] = {}
        for key, value in table.items():
            if key not in keys:
                raise ConfigError(
                    f"{where}.{channel}.{key}: unknown key (expected one of: {_names(keys)})"
                )
            changes[key] = None if value is False else _number(value, f"{where}.{channel}.{key}")
        channels[channel] = dataclasses.replace(channels.get(channel, ChannelLimits()), **changes)
    return channels


def _number(value: Any, where: str, *, integer: bool = False) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if integer and not isinstance(value, int):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    return value if integer else float(value)


def _names(keys: set[str]) -> str:
    return ", ".join(sorted(keys))
