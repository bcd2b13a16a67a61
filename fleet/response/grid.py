"""Register, response plan, cell state, flood-control decisions and actions over the database."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from fleet.response import register as reg
from fleet.response.db import ResponseDB
from fleet.response.errors import NotFound, WorkflowError
from fleet.response.plan import (
    LEVELS,
    ActiveSignal,
    Plan,
    Proposal,
    load_plan_text,
    propose,
    sample_plan_text,
)


class Grid:
    """The register and everything kept per cell."""

    def __init__(self, db: ResponseDB) -> None:
        self.db = db

    # -- register ---------------------------------------------------------------------------------
    def register(self) -> reg.Register:
        return reg.Register(
            cells={k: reg.cell_from(v) for k, v in self.db.entities("cell").items()},
            hazards={k: reg.hazard_from(v) for k, v in self.db.entities("hazard").items()},
            units={k: reg.unit_from(v) for k, v in self.db.entities("unit").items()},
        )

    def assigned_cells(self) -> frozenset[str] | None:
        """The codes of the register's live cells: the only ones a station may name (None while
        no cell is imported, so a fleet without a grid takes any)."""
        return frozenset(self.db.entities("cell")) or None

    def import_cells(self, text: str, source: str, by: str, t: float) -> dict[str, int]:
        cells = reg.parse_cells(text, source)
        return self.db.put_entities("cell", ((c.code, reg.to_plain(c)) for c in cells), by, t)

    def import_hazards(self, text: str, source: str, by: str, t: float) -> dict[str, int]:
        items = reg.parse_hazards(text, source, self.register())
        return self.db.put_entities("hazard", ((h.id, reg.to_plain(h)) for h in items), by, t)

    def import_units(self, text: str, source: str, by: str, t: float) -> dict[str, int]:
        items = reg.parse_units(text, source, self.register())
        return self.db.put_entities("unit", ((u.id, reg.to_plain(u)) for u in items), by, t)

    def load_sample(self, by: str, t: float) -> None:
        """The shipped synthetic district (cells, hazard points, key units, plan)."""
        from importlib import resources

        data = resources.files("fleet.response").joinpath("data")
        self.import_cells(
            data.joinpath("sample_cells.geojson").read_text("utf-8"), "sample_cells.geojson", by, t
        )
        self.import_hazards(
            data.joinpath("sample_hazards.geojson").read_text("utf-8"),
            "sample_hazards.geojson",
            by,
            t,
        )
        self.import_units(
            data.joinpath("sample_units.geojson").read_text("utf-8"), "sample_units.geojson", by, t
        )
        if not self.db.entities("plan"):
            self.set_plan(sample_plan_text(), "plan.toml", by, t)

    def cell(self, code: str) -> reg.Cell:
        data = self.db.entities("cell").get(code)
        if data is None:
            raise NotFound(f"cell {code!r} is not in the register")
        return reg.cell_from(data)

    def unit(self, ident: str) -> reg.KeyUnit:
        data = self.db.entities("unit").get(ident)
        if data is None:
            raise NotFound(f"key unit {ident!r} is not in the register")
        return reg.unit_from(data)

    # -- plan ------------------------------------------------------------------------------------
    def set_plan(self, text: str, source: str, by: str, t: float) -> Plan:
        plan = load_plan_text(text, source)
        self.db.put_entities("plan", [("plan", {"text": text, "version": plan.version})], by, t)
        return plan

    def plan(self) -> Plan:
        doc = self.db.entities("plan").get("plan")
        return load_plan_text(doc["text"] if doc else sample_plan_text(), "plan")

    # -- signals and proposals -----------------------------------------------------------------
    def set_signal(self, s: ActiveSignal, cell: str) -> None:
        """Record a signal's colour for a (cell, signal, source); colour none removes it."""
        with self.db.tx() as cur:
            cur.run(
                "DELETE FROM resp_signals WHERE cell = ? AND signal = ? AND source = ?",
                (cell, s.signal, s.source),
            )
            if s.colour != "none":
                cur.run(
                    "INSERT INTO resp_signals (cell, signal, source, colour, certainty, t) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (cell, s.signal, s.source, s.colour, s.certainty, s.time),
                )

    def signals(self, cell: str) -> list[ActiveSignal]:
        rows = self.db.query(
            "SELECT signal, colour, source, certainty, t FROM resp_signals WHERE cell = ? "
            "ORDER BY t",
            (cell,),
        )
        return [ActiveSignal(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]

    def proposal(self, code: str) -> Proposal:
        """The plan's proposed level for a cell now."""
        cell = self.cell(code)
        return propose(self.plan(), cell, self.signals(code), self.register().hazards.values())

    def record_proposal(self, p: Proposal, t: float) -> str | None:
        """Log the proposal if its level changed; return the previous level."""
        rows = self.db.query(
            "SELECT level FROM resp_proposals WHERE cell = ? ORDER BY t DESC LIMIT 1", (p.cell,)
        )
        previous = rows[0][0] if rows else None
        if not rows or previous != p.level:
            with self.db.tx() as cur:
                cur.run(
                    "INSERT INTO resp_proposals (cell, t, level, data) VALUES (?, ?, ?, ?)",
                    (p.cell, t, p.level, _dump_proposal(p)),
                )
        return previous

    def proposal_log(self, cell: str | None = None) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT cell, t, level FROM resp_proposals WHERE (? IS NULL OR cell = ?) ORDER BY t",
            (cell, cell),
        )
        return [{"cell": c, "time": t, "level": lv} for c, t, lv in rows]

    # -- decisions and actions --------------------------------------------------------------------
    def decide(
        self, cell: str, level: str | None, by: str, t: float, note: str = ""
    ) -> dict[str, Any]:
        """Record the flood-control office's decision and assign the plan's actions for it."""
        if level is not None and level not in LEVELS:
            raise WorkflowError(f"level {level!r} is not one of {', '.join(LEVELS)} (or none)")
        c = self.cell(cell)
        proposed = self.proposal(cell).level
        ident = f"dec-{uuid.uuid4().hex[:12]}"
        actions = self.plan().actions_for(c.kind, level)
        with self.db.tx() as cur:
            cur.run(
                "INSERT INTO resp_decisions (id, cell, level, proposed, by_name, t, note) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (ident, cell, level, proposed, by, t, note),
            )
            existing = {
                r[0]
                for r in cur.all(
                    "SELECT action FROM resp_actions WHERE cell = ? AND state != 'done'", (cell,)
                )
            }
            for a in actions:
                if a.id in existing:
                    continue
                cur.run(
                    "INSERT INTO resp_actions (id, cell, decision, action, label, assignee, state, "
                    "assigned) VALUES (?, ?, ?, ?, ?, ?, 'assigned', ?)",
                    (
                        f"act-{uuid.uuid4().hex[:12]}",
                        cell,
                        ident,
                        a.id,
                        f"{a.zh} / {a.en}",
                        c.code,
                        t,
                    ),
                )
        return self.decisions(cell)[-1]

    def decisions(self, cell: str | None = None) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT id, cell, level, proposed, by_name, t, note FROM resp_decisions "
            "WHERE (? IS NULL OR cell = ?) ORDER BY t",
            (cell, cell),
        )
        keys = ("id", "cell", "level", "proposed", "by", "time", "note")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def actions(self, cell: str | None = None) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT id, cell, decision, action, label, assignee, state, assigned, acknowledged, "
            "done FROM resp_actions WHERE (? IS NULL OR cell = ?) ORDER BY assigned, id",
            (cell, cell),
        )
        keys = (
            "id",
            "cell",
            "decision",
            "action",
            "label",
            "assignee",
            "state",
            "assigned",
            "acknowledged",
            "done",
        )
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def advance_action(
        self, ident: str, state: str, t: float, assignee: str | None = None
    ) -> dict[str, Any]:
        """Move an action to acknowledged or done (or reassign it), stamping the time."""
        column = {"acknowledged": "acknowledged", "done": "done"}.get(state)
        if column is None and state != "assigned":
            raise WorkflowError(f"action state {state!r}: expected assigned, acknowledged or done")
        with self.db.tx() as cur:
            row = cur.one("SELECT state FROM resp_actions WHERE id = ?", (ident,))
            if row is None:
                raise NotFound(f"action {ident!r} is not known")
            if row[0] == "done":
                raise WorkflowError(f"action {ident} is already done")
            if column:
                cur.run(
                    f"UPDATE resp_actions SET state = ?, {column} = ? WHERE id = ?",
                    (state, t, ident),
                )
            if assignee:
                cur.run("UPDATE resp_actions SET assignee = ? WHERE id = ?", (assignee, ident))
        return next(a for a in self.actions() if a["id"] == ident)

    # -- lightning protection -------------------------------------------------------------------
    def add_inspection(self, unit: str, due: float, by: str) -> dict[str, Any]:
        u = self.unit(unit)
        ident = f"insp-{uuid.uuid4().hex[:10]}"
        with self.db.tx() as cur:
            cur.run(
                "INSERT INTO resp_inspections (id, unit, due, done, result, findings) "
                "VALUES (?, ?, ?, NULL, '', '')",
                (ident, u.id, due),
            )
        return {"id": ident, "unit": u.id, "due": due, "by": by}

    def record_inspection(self, ident: str, done: float, result: str, findings: str) -> None:
        if result not in ("pass", "fail"):
            raise WorkflowError(f"inspection result {result!r}: expected pass or fail")
        with self.db.tx() as cur:
            if not cur.run(
                "UPDATE resp_inspections SET done = ?, result = ?, findings = ? WHERE id = ?",
                (done, result, findings, ident),
            ):
                raise NotFound(f"inspection {ident!r} is not known")

    def inspections(self, now: float, cells: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every inspection with its overdue flag (optionally of units in some cells)."""
        units = self.register().units
        wanted = set(cells) if cells is not None else None
        out = []
        for ident, unit, due, done, result, findings in self.db.query(
            "SELECT id, unit, due, done, result, findings FROM resp_inspections ORDER BY due"
        ):
            u = units.get(unit)
            if wanted is not None and (u is None or u.cell not in wanted):
                continue
            insp = reg.Inspection(unit, due, done, result, findings)
            out.append(
                {
                    "id": ident,
                    "unit": unit,
                    "cell": u.cell if u else None,
                    "due": due,
                    "done": done,
                    "result": result,
                    "findings": findings,
                    "overdue": insp.overdue(now),
                }
            )
        return out


def _dump_proposal(p: Proposal) -> str:
    from fleet.response.db import dump

    return dump(proposal_plain(p))


def proposal_plain(p: Proposal) -> dict[str, Any]:
    return {
        "cell": p.cell,
        "level": p.level,
        "reasons": list(p.reasons),
        "forecast_only": p.forecast_only,
        "plan_version": p.plan_version,
        "actions": [{"id": a.id, "zh": a.zh, "en": a.en, "level": a.level} for a in p.actions],
        "signals": [
            {
                "signal": s.signal,
                "colour": s.colour,
                "source": s.source,
                "certainty": s.certainty,
                "time": s.time,
            }
            for s in p.signals
        ],
    }
