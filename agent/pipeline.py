"""The station's pure pipeline: a batch of readings -> records and state (no I/O, no clock).

:meth:`Pipeline.run` takes one batch of driver readings and the time of processing and returns
what the agent must store: every reading with its QC flag, the derived products of every
source sensor, a forecast when the nowcast is due, and the warning events, together with the new
warning state. Derived products are kept per ``(sensor, product)``; the warnings read, per
product, the source chosen by :func:`agent.derived.select_inputs` (the rule is documented in
:mod:`roadside.registry`). A failing stage never loses readings: QC failing stores them as not
checked, a derived or rule failure skips that stage for the batch.

The mapping of pipeline values onto the contract's records (:class:`roadside.contract.Record`,
unnumbered until the buffer appends them: :func:`reading_record`, :func:`derived_record`,
:func:`event_record`) and back (:func:`flagged_from_stored`) is here too, by field name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from agent.buffer import StoredRecord
from agent.config import StationConfig
from agent.derived import DerivedEngine, DerivedParams, DerivedValue, ProductKey, select_inputs
from agent.flags import Flag, FlaggedReading
from agent.qc import QCEngine, QCParams
from agent.warnings import (
    LEVELS,
    SignalState,
    WarningEvent,
    WarningRules,
    WarningState,
    evaluate,
)
from roadside.contract import UNNUMBERED, Record
from roadside.records import DriverStatus, Reading

if TYPE_CHECKING:
    from agent.nowcast import StationNowcast

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What one batch produced: records to store (in order) and what changed."""

    records: list[Record]
    flagged: list[FlaggedReading]
    derived: list[DerivedValue]
    events: list[WarningEvent]
    warnings_changed: bool


class Pipeline:
    """QC -> derived -> nowcast -> warnings for one station configuration."""

    def __init__(self, config: StationConfig, nowcast: StationNowcast | None = None) -> None:
        self.qc = QCEngine(QCParams.from_dict(config.qc))
        self.derived_params = DerivedParams.from_dict(config.derived)
        self.derived = DerivedEngine(self.derived_params)
        self.order = tuple(s.name for s in config.sensors)
        self.products: dict[ProductKey, DerivedValue] = {}
        self.latest: dict[str, DerivedValue] = {}  # per product: the source the warnings read
        self.nowcast = nowcast
        self.rules = self.rules_for(config)
        self.warning_state = WarningState()

    def rules_for(self, config: StationConfig) -> WarningRules:
        """The warning rules of ``config`` with the nowcast's tier thresholds."""
        rules = WarningRules.from_dict(config.warnings)
        return self.nowcast.rules(rules) if self.nowcast is not None else rules

    def reconfigure(self, old: StationConfig, new: StationConfig) -> bool:
        """Take a new configuration; rebuild what changed. True when the derived windows were
        emptied (the caller refills them from the buffer)."""
        if new.qc != old.qc:
            self.qc = QCEngine(QCParams.from_dict(new.qc))
        self.order = tuple(s.name for s in new.sensors)
        self.rules = self.rules_for(new)
        if new.derived != old.derived:
            self.derived_params = DerivedParams.from_dict(new.derived)
            self.derived = DerivedEngine(self.derived_params)
            self.products, self.latest = {}, {}
            return True
        self._select()
        return False

    def refill(self, flagged: Sequence[FlaggedReading]) -> None:
        """Feed stored readings back into the derived windows (after a restart)."""
        if flagged:
            self._keep(self.derived.update(flagged, flagged[-1].reading.time))

    def _keep(self, derived: Iterable[DerivedValue]) -> None:
        for dv in derived:
            self.products[(dv.sensor, dv.name)] = dv
        self._select()

    def _select(self) -> None:
        self.latest = select_inputs(self.products, self.derived_params.primary, self.order)

    def run(self, readings: list[Reading], now: datetime, mark: dict[str, Any] | None) -> Outcome:
        """One batch through every stage (see the module docstring)."""
        try:
            flagged = self.qc.process(readings)
        except Exception:  # a QC bug must not lose the readings: store them unchecked
            log.exception("QC failed on %d readings; stored as not checked", len(readings))
            flagged = [FlaggedReading(r, Flag.NOT_CHECKED, "qc_error") for r in readings]
        try:
            derived = self.derived.update(flagged, now)
        except Exception:
            log.exception("derived products failed; skipped for this batch")
            derived = []
        self._keep(derived)
        records = [reading_record(f, mark) for f in flagged]
        records += [derived_record(d, mark) for d in derived]
        if self.nowcast is not None:
            forecast = self.nowcast.step(derived, now)
            if forecast is not None:
                records.append(forecast)
        events, changed = self._warn(bool(derived), now)
        records += [event_record(e) for e in events]
        return Outcome(records, flagged, derived, events, changed)

    def _warn(self, fresh: bool, now: datetime) -> tuple[list[WarningEvent], bool]:
        """Evaluate the warning rules on the selected derived values."""
        if not fresh:
            return [], False
        try:
            forecast = self.nowcast.current(now, self.rules.stale_s) if self.nowcast else None
            new, events = evaluate(self.warning_state, self.latest, forecast, now, self.rules)
        except Exception:  # a rule bug must not stop the station from recording
            log.exception("warning evaluation failed")
            return [], False
        changed = new != self.warning_state
        self.warning_state = new
        for e in events:
            log.warning(
                "warning %s: %s %s (was %s)",
                e.kind,
                e.signal,
                e.level,
                e.previous,
                extra={"SIGNAL": e.signal, "LEVEL": e.level, "EVENT": e.kind, "RULE": e.rule},
            )
        return events, changed


# -- records, by field name ---------------------------------------------------------------------


def plain(value: Any) -> Any:
    """Dataclasses, enums and datetimes as JSON-ready plain data."""
    if is_dataclass(value) and not isinstance(value, type):
        return {k: plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def reading_record(f: FlaggedReading, mark: dict[str, Any] | None) -> Record:
    """A flagged reading as a buffer record."""
    r = f.reading
    return Record(
        seq=UNNUMBERED,
        kind="reading",
        time=r.time,
        sensor=r.sensor,
        channel=r.channel,
        value=r.value,
        unit=r.unit,
        raw=None if r.raw is None else str(r.raw),
        status=r.status.value,
        flag=int(f.flag),
        reason=f.reason,
        payload={**(mark or {}), **({"detail": r.detail} if r.detail else {})} or None,
    )


def flagged_from_stored(r: StoredRecord) -> FlaggedReading:
    """A stored reading back as the flagged reading it was."""
    status = DriverStatus(r.status) if r.status else DriverStatus.OK
    reading = Reading(
        "", r.sensor or "", r.channel or "", r.time, r.value, r.unit or "", r.raw, status
    )
    flag = Flag(r.flag) if r.flag is not None else Flag.NOT_CHECKED
    return FlaggedReading(reading, flag, r.reason or "")


def event_record(e: WarningEvent) -> Record:
    """A warning event as a buffer record (lane ``event``)."""
    return Record(
        seq=UNNUMBERED,
        kind="event",
        time=e.time,
        channel=e.signal,
        value=float(LEVELS.index(e.level)),
        reason=e.kind,
        payload={
            "kind": e.kind,
            "signal": e.signal,
            "level": e.level,
            "previous": e.previous,
            "rule": e.rule,
            "certainty": e.certainty,
            "evidence": e.evidence,
        },
    )


def derived_record(d: DerivedValue, mark: dict[str, Any] | None) -> Record:
    """A derived value as a buffer record."""
    return Record(
        seq=UNNUMBERED,
        kind="derived",
        time=d.time,
        sensor=d.sensor,
        channel=d.name,
        value=d.value,
        unit=d.unit,
        flag=int(d.flag),
        payload={"completeness": d.completeness, "window_s": d.window_s, **(mark or {})},
    )


def warning_state_to_json(state: WarningState) -> dict[str, Any]:
    """Warning state as plain data (persisted so a restart neither re-raises nor forgets)."""
    return {name: plain(s) for name, s in state.signals.items()}


def warning_state_from_json(doc: dict[str, Any]) -> WarningState:
    """Inverse of :func:`warning_state_to_json`."""

    def when(v: str | None) -> datetime | None:
        return datetime.fromisoformat(v) if v else None

    signals = dict(WarningState().signals)
    for name, s in doc.items():
        if name in signals:
            signals[name] = SignalState(
                level=int(s["level"]),
                since=when(s.get("since")),
                below_since=when(s.get("below_since")),
                pending=int(s.get("pending", 0)),
                certainty=str(s.get("certainty", "Observed")),
            )
    return WarningState(signals)
