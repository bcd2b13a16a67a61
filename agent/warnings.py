"""Warning signals evaluated on the station: rainstorm, gale, waterlogging (domain brief section 2).

Pure: :func:`evaluate` maps (state, derived values, forecast, now) to (new state, events). Rules
are data: each signal has ascending levels (blue, yellow, orange, red), each level a set of
thresholds on derived products, any one of which reaching its threshold meets the level.

Hysteresis: a level is raised or upgraded at once; it is kept while the inputs stay above
``release_fraction`` of its thresholds, and downgraded or cancelled only after they stayed below
for ``hold_s``. Inputs flagged wrong or missing, without a value or older than ``stale_s`` never
raise anything, and missing data never cancels a warning. Waterlogging also takes the nowcast: a
forecast depth or tier probability crossing a tier raises the signal marked as forecast
(certainty Likely).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from agent.derived import UNITS as DERIVED_UNITS
from agent.derived import DerivedValue
from agent.errors import ConfigError
from agent.flags import Flag
from roadside import registry

LEVELS: tuple[str, ...] = ("none", "blue", "yellow", "orange", "red")
"""Signal colours by rank; blue..red map to emergency response IV..I."""

SIGNALS = ("rainstorm", "gale", "waterlogging")
EventKind = Literal["raise", "upgrade", "downgrade", "cancel"]

# Beaufort lower bounds, 10-min mean in m/s (GB/T 28591-2012, U).
BEAUFORT_MS: Mapping[int, float] = {
    6: 10.8, 7: 13.9, 8: 17.2, 9: 20.8, 10: 24.5, 11: 28.5, 12: 32.7, 13: 37.0,
}  # fmt: skip

Thresholds = Mapping[str, float]  # derived product name -> value that meets the level


@dataclass(frozen=True)
class SignalRule:
    """One signal's ascending levels: level name -> thresholds (any one reached meets it)."""

    name: str
    preset: str
    levels: Mapping[str, Thresholds]


RAINSTORM_PRESETS: Mapping[str, Mapping[str, Thresholds]] = {
    # CMA 2007 national signals.
    "national": {
        "blue": {"rain_12h": 50.0},
        "yellow": {"rain_6h": 50.0},
        "orange": {"rain_3h": 50.0},
        "red": {"rain_3h": 100.0},
    },
    # Shanghai as published 2024; red not confirmed (U).
    "shanghai": {
        "blue": {"rain_1h": 35.0, "rain_6h": 50.0},
        "yellow": {"rain_1h": 50.0, "rain_6h": 80.0},
        "orange": {"rain_1h": 80.0, "rain_6h": 100.0},
        "red": {"rain_1h": 100.0, "rain_6h": 150.0},
    },
}


def gale_levels(
    mean_forces: Mapping[str, int], gust_forces: Mapping[str, int]
) -> dict[str, dict[str, float]]:
    """Gale levels from Beaufort forces of the 10-min mean and of the 3-s gust."""
    return {
        level: {
            "wind_speed_10min": BEAUFORT_MS[mean_forces[level]],
            "wind_gust_3s": BEAUFORT_MS[gust_forces[level]],
        }
        for level in mean_forces
    }


GALE_NATIONAL = gale_levels(
    {"blue": 6, "yellow": 8, "orange": 10, "red": 12},
    {"blue": 7, "yellow": 9, "orange": 11, "red": 13},
)
# Shanghai ordinary ponding 15-30 cm, light ponding > 30 cm (2025 joint notice); colours (U).
WATERLOGGING_TIERS: Mapping[str, Thresholds] = {
    "blue": {"water_depth": 150.0},
    "yellow": {"water_depth": 300.0},
}


class Forecast(Protocol):
    """What the nowcast gives (edge_models.runtime.Forecast, a frozen dataclass)."""

    @property
    def depth_15_mm(self) -> float: ...
    @property
    def depth_30_mm(self) -> float: ...
    @property
    def depth_60_mm(self) -> float: ...
    @property
    def p_15cm(self) -> float: ...
    @property
    def p_30cm(self) -> float: ...
    @property
    def model_version(self) -> str: ...


@dataclass(frozen=True)
class WarningRules:
    """All warning rules of a station, with hysteresis settings."""

    rainstorm: SignalRule = field(
        default_factory=lambda: SignalRule("rainstorm", "shanghai", RAINSTORM_PRESETS["shanghai"])
    )
    gale: SignalRule = field(default_factory=lambda: SignalRule("gale", "national", GALE_NATIONAL))
    waterlogging: SignalRule = field(
        default_factory=lambda: SignalRule("waterlogging", "shanghai", WATERLOGGING_TIERS)
    )
    hold_s: float = 1800.0  # inputs must stay below a level this long before it is lowered
    release_fraction: float = 0.9  # a level is kept while inputs stay above this share of it
    # tier probability that raises a forecast warning; None: the model's own thresholds
    forecast_probability: float | None = None
    # the nowcast model's validated thresholds for the 15 and 30 cm tiers
    # (Nowcaster.tier_thresholds, set by the agent; not a configuration key)
    model_thresholds: tuple[float, float] = (0.5, 0.5)
    forecast_horizons: tuple[str, ...] = ("depth_15_mm", "depth_30_mm")
    min_completeness: float = 0.5  # wind means from emptier windows do not raise
    stale_s: float = 900.0  # a derived value older than this counts as missing

    def tier_probability(self, tier: int) -> float:
        """Probability from which forecast tier ``tier`` (0: 15 cm, 1: 30 cm) raises a warning."""
        if self.forecast_probability is not None:
            return self.forecast_probability
        return self.model_thresholds[tier]

    def signal(self, name: str) -> SignalRule:
        """The rule of signal ``name``."""
        rule: SignalRule = getattr(self, name)
        return rule

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "warnings") -> WarningRules:
        """Build from the station's ``[warnings]`` table (unknown keys raise ConfigError).

        ``rainstorm = {preset = "national"}`` picks a preset; ``levels = {blue = {rain_1h = 35}}``
        in any signal's table replaces its levels. Scalars: hold_s, release_fraction,
        forecast_probability (default: the nowcast model's per-tier thresholds),
        min_completeness, stale_s; forecast_horizons is a list of nowcast fields.
        """
        kwargs: dict[str, Any] = {}
        scalars = {
            "hold_s",
            "release_fraction",
            "forecast_probability",
            "min_completeness",
            "stale_s",
        }
        for key, value in d.items():
            if key in SIGNALS:
                kwargs[key] = _signal_from_dict(key, value, f"{where}.{key}")
            elif key in scalars:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ConfigError(f"{where}.{key}: expected a number, got {value!r}")
                kwargs[key] = float(value)
            elif key == "forecast_horizons":
                kwargs[key] = _horizons(value, f"{where}.{key}")
            else:
                known = ", ".join(sorted({*SIGNALS, *scalars, "forecast_horizons"}))
                raise ConfigError(f"{where}.{key}: unknown key (expected one of: {known})")
        return cls(**kwargs)


def _signal_from_dict(name: str, d: Any, where: str) -> SignalRule:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a table")
    unknown = set(d) - {"preset", "levels"}
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown key (expected preset, levels)")
    default = getattr(WarningRules(), name)
    preset = d.get("preset", default.preset)
    levels: Mapping[str, Thresholds] = default.levels
    if "preset" in d:
        if name != "rainstorm" or not isinstance(preset, str) or preset not in RAINSTORM_PRESETS:
            choices = ", ".join(RAINSTORM_PRESETS) if name == "rainstorm" else "none"
            raise ConfigError(f"{where}.preset: unknown preset {preset!r} (expected: {choices})")
        levels = RAINSTORM_PRESETS[preset]
    if "levels" in d:
        levels = _levels_from_dict(d["levels"], f"{where}.levels")
        preset = "custom"
    return SignalRule(name, preset, levels)


def _levels_from_dict(d: Any, where: str) -> dict[str, dict[str, float]]:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a table of levels")
    levels: dict[str, dict[str, float]] = {}
    for level in sorted(d, key=lambda lv: LEVELS.index(lv) if lv in LEVELS else 99):
        if level not in LEVELS[1:]:
            raise ConfigError(
                f"{where}.{level}: unknown level (expected blue, yellow, orange, red)"
            )
        table = d[level]
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}.{level}: expected a table of thresholds")
        for product, value in table.items():
            if product not in DERIVED_UNITS:
                raise ConfigError(f"{where}.{level}.{product}: unknown derived product")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{where}.{level}.{product}: expected a number, got {value!r}")
        levels[level] = {k: float(v) for k, v in table.items()}
    return levels


def _horizons(value: Any, where: str) -> tuple[str, ...]:
    fields = {"depth_15_mm", "depth_30_mm", "depth_60_mm"}
    if not isinstance(value, list) or not all(isinstance(v, str) and v in fields for v in value):
        raise ConfigError(f"{where}: expected a list of {', '.join(sorted(fields))}")
    return tuple(value)


# -- state and events --------------------------------------------------------------------------


@dataclass(frozen=True)
class SignalState:
    """One signal's active level and its hysteresis clock."""

    level: int = 0
    since: datetime | None = None  # when the level was last set
    below_since: datetime | None = None  # inputs fell below the level's release thresholds
    pending: int = 0  # highest level held while below (the level a downgrade goes to)
    certainty: str = "Observed"


@dataclass(frozen=True)
class WarningState:
    """Every signal's state; start from ``WarningState()``."""

    signals: Mapping[str, SignalState] = field(
        default_factory=lambda: {name: SignalState() for name in SIGNALS}
    )

    def level(self, signal: str) -> str:
        """The active colour of ``signal`` ("none" when inactive)."""
        return LEVELS[self.signals[signal].level]


@dataclass(frozen=True)
class WarningEvent:
    """A signal raised, upgraded, downgraded or cancelled, with the evidence behind it."""

    kind: EventKind
    signal: str
    level: str  # colour after the event ("none" for a cancellation)
    previous: str
    time: datetime
    rule: str
    evidence: dict[str, Any]
    certainty: str = "Observed"  # Likely when raised on the forecast alone


@dataclass(frozen=True)
class _Assessment:
    met: int  # highest level whose thresholds are reached (0 = none)
    kept: int  # highest level whose release thresholds are still reached
    known: bool  # at least one usable input
    certainty: str
    evidence: dict[str, Any]


def evaluate(
    state: WarningState,
    derived: Mapping[str, DerivedValue],
    forecast: Forecast | None,
    now: datetime,
    rules: WarningRules | None = None,
) -> tuple[WarningState, list[WarningEvent]]:
    """Advance every signal to ``now``; return the new state and the events it produced."""
    rules = rules or WarningRules()
    signals = dict(state.signals)
    events: list[WarningEvent] = []
    for name in SIGNALS:
        rule = rules.signal(name)
        nowcast = forecast if name == "waterlogging" else None
        assessment = _assess(rule, derived, nowcast, rules, now)
        signals[name], event = _step(
            signals.get(name, SignalState()), assessment, rule, rules.hold_s, now
        )
        if event is not None:
            events.append(event)
    return WarningState(signals), events


def _assess(
    rule: SignalRule,
    derived: Mapping[str, DerivedValue],
    forecast: Forecast | None,
    rules: WarningRules,
    now: datetime,
) -> _Assessment:
    inputs = {name: _usable(derived.get(name), rules, now) for name in _products(rule)}
    known = any(v is not None for v in inputs.values())
    met = _highest(rule, inputs, 1.0)
    kept = _highest(rule, inputs, rules.release_fraction)
    evidence: dict[str, Any] = {
        "rule": f"{rule.name}.{rule.preset}",
        "thresholds": {lv: dict(th) for lv, th in rule.levels.items()},
        "inputs": {name: _describe(derived.get(name)) for name in inputs},
        "basis": "observed",
    }
    certainty = "Observed"
    if forecast is not None:
        predicted = _forecast_level(rule, forecast, rules)
        evidence["forecast"] = {
            **_describe_forecast(forecast),
            "p_thresholds": [rules.tier_probability(0), rules.tier_probability(1)],
        }
        if predicted > met:
            met, certainty, evidence["basis"] = predicted, "Likely", "forecast"
        kept = max(kept, predicted)
        known = True
    return _Assessment(met, kept, known, certainty, evidence)


def _products(rule: SignalRule) -> list[str]:
    return sorted({p for thresholds in rule.levels.values() for p in thresholds})


def _usable(value: DerivedValue | None, rules: WarningRules, now: datetime) -> float | None:
    """The value if it may trigger a warning: present, recent, flagged correct or suspect."""
    if value is None or value.value is None or value.flag not in (Flag.CORRECT, Flag.SUSPECT):
        return None
    if (now - value.time).total_seconds() > rules.stale_s:
        return None
    is_mean = value.name.startswith(("wind_speed_", "wind_dir_"))
    if is_mean and value.completeness < rules.min_completeness:
        return None
    return value.value


def _highest(rule: SignalRule, inputs: Mapping[str, float | None], fraction: float) -> int:
    best = 0
    for level, thresholds in rule.levels.items():
        if any(
            (v := inputs.get(product)) is not None and v >= threshold * fraction
            for product, threshold in thresholds.items()
        ):
            best = max(best, LEVELS.index(level))
    return best


def _forecast_level(rule: SignalRule, forecast: Forecast, rules: WarningRules) -> int:
    """Highest waterlogging tier the forecast reaches by depth or by tier probability.

    Tiers are configuration; a configured tier reads the probability of the lowest model tier at
    or above it (:func:`roadside.registry.forecast_tier_for`, never an over-estimate), with that
    model tier's threshold; a tier above every model tier is forecast by depth alone.
    """
    depth = max((float(getattr(forecast, h)) for h in rules.forecast_horizons), default=-math.inf)
    best = 0
    for level, thresholds in rule.levels.items():
        tier = thresholds.get("water_depth")
        if tier is None:
            continue
        model_tier = registry.forecast_tier_for(tier)
        likely = False
        if model_tier is not None:
            index = registry.FORECAST_TIERS.index(model_tier)
            likely = float(getattr(forecast, model_tier.field)) >= rules.tier_probability(index)
        if depth >= tier or likely:
            best = max(best, LEVELS.index(level))
    return best


def _step(
    s: SignalState, a: _Assessment, rule: SignalRule, hold_s: float, now: datetime
) -> tuple[SignalState, WarningEvent | None]:
    """The hysteresis state machine of one signal."""
    if a.met > s.level:
        kind: EventKind = "raise" if s.level == 0 else "upgrade"
        new = SignalState(a.met, now, None, 0, a.certainty)
        return new, _event(kind, rule, s, new, now, a)
    if s.level == 0 or not a.known:
        return s, None  # nothing active, or no data: never cancel on missing inputs
    if a.kept >= s.level:
        seen = a.met >= s.level and a.certainty == "Observed"  # a forecast came true
        certainty = "Observed" if seen else s.certainty
        return dataclasses.replace(s, below_since=None, pending=0, certainty=certainty), None
    # below the level's release thresholds: wait out the hold, remembering the highest level
    # still held meanwhile, which is where the signal goes down to
    below_since = s.below_since or now
    pending = max(s.pending, a.kept) if s.below_since else a.kept
    if (now - below_since).total_seconds() < hold_s:
        return dataclasses.replace(s, below_since=below_since, pending=pending), None
    kind = "cancel" if pending == 0 else "downgrade"
    still_below = a.kept < pending
    new = SignalState(
        pending, now, now if still_below else None, a.kept if still_below else 0, a.certainty
    )
    return new, _event(kind, rule, s, new, now, a)


def _event(
    kind: EventKind,
    rule: SignalRule,
    old: SignalState,
    new: SignalState,
    now: datetime,
    a: _Assessment,
) -> WarningEvent:
    evidence = dict(a.evidence)
    if new.level:
        evidence["level_thresholds"] = dict(rule.levels[LEVELS[new.level]])
    return WarningEvent(
        kind,
        rule.name,
        LEVELS[new.level],
        LEVELS[old.level],
        now,
        str(evidence["rule"]),
        evidence,
        new.certainty if new.level else "Observed",
    )


def _describe(value: DerivedValue | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {
        "value": value.value,
        "unit": value.unit,
        "flag": int(value.flag),
        "completeness": round(value.completeness, 3),
        "time": value.time.isoformat(),
        "sensor": value.sensor,
    }


def _describe_forecast(forecast: Forecast) -> dict[str, Any]:
    names = ("depth_15_mm", "depth_30_mm", "depth_60_mm", "p_15cm", "p_30cm", "model_version")
    return {name: getattr(forecast, name, None) for name in names}


# -- safety of pushed thresholds ---------------------------------------------------------------

PLAUSIBLE_MAX: Mapping[str, float] = {p.name: p.plausible_max for p in registry.PRODUCTS.values()}
"""A threshold above these can never be met (see :mod:`roadside.registry`)."""


def check_thresholds_safe(rules: WarningRules) -> list[str]:
    """Reasons this rule set would disable or break warnings (empty when it is safe to apply)."""
    problems: list[str] = []
    for name in SIGNALS:
        rule = rules.signal(name)
        if not rule.levels or not any(rule.levels.values()):
            problems.append(f"{name}: no levels, the signal could never be raised")
        for level, thresholds in rule.levels.items():
            for product, value in thresholds.items():
                where = f"{name}.{level}.{product}"
                if value <= 0:
                    problems.append(f"{where}: threshold {value} is not positive")
                elif value > PLAUSIBLE_MAX.get(product, float("inf")):
                    limit = PLAUSIBLE_MAX[product]
                    problems.append(f"{where}: threshold {value} can never be reached (> {limit})")
        problems += _ordering_problems(rule)
    if not 0 < rules.release_fraction <= 1:
        problems.append(f"release_fraction {rules.release_fraction} outside (0, 1]")
    if not 0 <= rules.hold_s <= 24 * 3600:
        problems.append(f"hold_s {rules.hold_s} outside 0..86400: warnings would never lapse")
    p = rules.forecast_probability
    if p is not None and not 0 < p <= 1:
        problems.append(f"forecast_probability {p} outside (0, 1]")
    if not 0 <= rules.min_completeness <= 1:
        problems.append(f"min_completeness {rules.min_completeness} outside [0, 1]: no wind mean")
    if rules.stale_s < 60:
        problems.append(f"stale_s {rules.stale_s} under 60 s: every input would count as missing")
    return problems


def _ordering_problems(rule: SignalRule) -> list[str]:
    """A higher level must not be easier to reach than a lower one on the same product."""
    problems = []
    ordered = sorted(rule.levels, key=LEVELS.index)
    for lower, higher in itertools.pairwise(ordered):
        for product, value in rule.levels[higher].items():
            below = rule.levels[lower].get(product)
            if below is not None and value < below:
                problems.append(
                    f"{rule.name}.{higher}.{product}: {value} is below {lower}'s {below}"
                )
    return problems
