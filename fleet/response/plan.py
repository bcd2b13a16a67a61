"""The response plan as versioned data, and a cell's proposed response level (pure).

A plan maps each signal's colour to a response level (Ⅳ lowest .. Ⅰ highest) and lists actions
per kind of cell and level, cumulative upwards. :func:`propose` takes a cell's active signals
(observed or forecast, from its stations and field reports), its hazard points and vulnerability,
and gives the proposed level with the reasons; the flood-control office *decides* the level
(recorded apart, see :mod:`fleet.response.db`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from fleet.response.errors import PlanError
from fleet.response.register import CELL_KINDS, Cell, HazardPoint

LEVELS = ("IV", "III", "II", "I")
"""Response levels, lowest first."""
NUMERALS = {"IV": "Ⅳ", "III": "Ⅲ", "II": "Ⅱ", "I": "Ⅰ"}
COLOURS = ("blue", "yellow", "orange", "red")
SEVERITY = {"IV": "Minor", "III": "Moderate", "II": "Severe", "I": "Extreme"}
"""CAP severity of a level (domain brief section 6: blue Minor .. red Extreme)."""


def rank(level: str | None) -> int:
    """0 for no level, 1 for Ⅳ .. 4 for Ⅰ."""
    return 0 if level is None else LEVELS.index(level) + 1


@dataclass(frozen=True)
class Action:
    """One standard action of the plan."""

    id: str
    kind: str  # cell kind or "*"
    level: str
    zh: str
    en: str


@dataclass(frozen=True)
class Plan:
    """A version of the response plan."""

    version: str
    title: str
    signals: Mapping[str, Mapping[str, str]]
    raise_at: float
    actions: tuple[Action, ...]

    def level_of(self, signal: str, colour: str) -> str | None:
        """The response level a signal colour starts (None: colour none or signal unknown)."""
        return self.signals.get(signal, {}).get(colour)

    def actions_for(self, kind: str, level: str | None) -> list[Action]:
        """The cell kind's actions up to and including ``level``."""
        top = rank(level)
        return [a for a in self.actions if a.kind in ("*", kind) and 0 < rank(a.level) <= top]


def _req(doc: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in doc:
        raise PlanError(f"{where}: '{key}' is missing")
    return doc[key]


def parse_plan(doc: Mapping[str, Any], source: str = "plan") -> Plan:
    """A plan from its TOML/JSON data; errors name the field."""
    signals = _req(doc, "signals", source)
    if not isinstance(signals, dict):
        raise PlanError(f"{source}: 'signals' is not a table")
    for name, table in signals.items():
        if not isinstance(table, dict):
            raise PlanError(f"{source}: signals.{name} is not a table")
        for colour, level in table.items():
            if colour not in COLOURS or level not in LEVELS:
                raise PlanError(
                    f"{source}: signals.{name}.{colour} = {level!r}: colour must be one of "
                    f"{', '.join(COLOURS)} and level one of {', '.join(LEVELS)}"
                )
    actions = []
    for i, a in enumerate(doc.get("actions", []), start=1):
        where = f"{source}: actions[{i}]"
        kind, level = _req(a, "kind", where), _req(a, "level", where)
        if kind != "*" and kind not in CELL_KINDS:
            raise PlanError(f"{where}: kind {kind!r} is not a cell kind or '*'")
        if level not in LEVELS:
            raise PlanError(f"{where}: level {level!r} is not one of {', '.join(LEVELS)}")
        actions.append(Action(str(_req(a, "id", where)), kind, level, a.get("zh", ""), a["en"]))
    raise_at = doc.get("vulnerability", {}).get("raise_at", 1.0)
    return Plan(
        version=str(_req(doc, "version", source)),
        title=str(doc.get("title", "")),
        signals={k: dict(v) for k, v in signals.items()},
        raise_at=float(raise_at),
        actions=tuple(actions),
    )


def sample_plan_text() -> str:
    """The shipped sample plan (TOML)."""
    return resources.files("fleet.response").joinpath("data/plan.toml").read_text("utf-8")


def load_plan_text(text: str, source: str) -> Plan:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{source}: not TOML: {exc}") from None
    return parse_plan(doc, source)


@dataclass(frozen=True)
class ActiveSignal:
    """A signal active in a cell: from a station event or a field report."""

    signal: str
    colour: str
    source: str  # station id or "report:<id>"
    certainty: str = "Observed"  # Observed | Likely (forecast)
    time: float = 0.0


@dataclass(frozen=True)
class Proposal:
    """A cell's proposed response level, why, and its action checklist."""

    cell: str
    level: str | None
    reasons: tuple[str, ...]
    actions: tuple[Action, ...]
    forecast_only: bool = False
    plan_version: str = ""
    signals: tuple[ActiveSignal, ...] = field(default_factory=tuple)


def propose(
    plan: Plan, cell: Cell, signals: Iterable[ActiveSignal], hazards: Iterable[HazardPoint]
) -> Proposal:
    """The level the plan proposes for ``cell`` given its active signals and hazard points."""
    sigs = tuple(signals)
    best: str | None = None
    reasons: list[str] = []
    for s in sigs:
        level = plan.level_of(s.signal, s.colour)
        if level is None:
            continue
        reasons.append(f"{s.signal} {s.colour} ({s.certainty.lower()}, {s.source}) -> {level}")
        if rank(level) > rank(best):
            best = level
    hz = [h for h in hazards if h.cell == cell.code]
    if best is not None and best != "I" and hz and cell.vulnerability >= plan.raise_at:
        best = LEVELS[rank(best)]  # one step up
        reasons.append(
            f"vulnerability {cell.vulnerability} >= {plan.raise_at} with {len(hz)} hazard "
            f"point(s) -> {best}"
        )
    observed = [s for s in sigs if s.certainty == "Observed" and plan.level_of(s.signal, s.colour)]
    return Proposal(
        cell=cell.code,
        level=best,
        reasons=tuple(reasons),
        actions=tuple(plan.actions_for(cell.kind, best)),
        forecast_only=best is not None and not observed,
        plan_version=plan.version,
        signals=sigs,
    )
