"""Station events -> cell signals -> proposed level -> draft warning (the fleet side of the chain).

The engine reads the warning events stations synced through the contract (the fleet store's
``event`` records; each station's ``grid_cell`` from its status), keeps each cell's active
signals per station, recomputes the cell's proposal and, when the proposed level changes and
``auto_draft`` is on, drafts the Alert, Update or Cancel that would bring the cell's warning in
line; a person approves it (an engine draft nobody approved yet is replaced when the proposal
moves on). Each event is taken in once (``resp_seen``), in station-time order.
"""

from __future__ import annotations

import logging
from typing import Any

from fleet.response.alerts import Alerts
from fleet.response.config import ResponseConfig
from fleet.response.db import ResponseDB
from fleet.response.grid import Grid
from fleet.response.plan import ActiveSignal
from fleet.response.register import Register
from fleet.store import StoredRecord

log = logging.getLogger(__name__)
ENGINE_AUTHOR = "engine"
LOOKBACK_S = 86400.0


class Engine:
    """Takes in station events and keeps cells' proposals current."""

    def __init__(self, db: ResponseDB, grid: Grid, alerts: Alerts, config: ResponseConfig) -> None:
        self.db = db
        self.grid = grid
        self.alerts = alerts
        self.config = config
        self.unassigned = 0  # events from stations without a cell in the register

    def poll(self, now: float, lookback_s: float | None = LOOKBACK_S) -> list[dict[str, Any]]:
        """Take in new events (station time within ``lookback_s``; None: all); return the
        proposals that changed, with any draft made."""
        start = None if lookback_s is None else now - lookback_s
        rows = self.db.store.records(kinds=("event",), start=start, limit=100_000)
        seen = {
            (s, int(q))
            for s, q in self.db.query("SELECT station, seq FROM resp_seen WHERE seq >= 0")
        }
        fresh = [r for r in rows if (r.station, r.seq) not in seen]
        out = []
        register = self.grid.register()
        for r in sorted(fresh, key=lambda r: (r.time, r.station, r.seq)):
            cell = self._cell_of(r, register)
            with self.db.tx() as cur:
                cur.run(
                    "INSERT INTO resp_seen (station, seq) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (r.station, r.seq),
                )
            if cell is None:
                self.unassigned += 1
                log.warning(
                    "event %s/%s: station has no grid cell in the register", r.station, r.seq
                )
                continue
            payload = r.payload or {}
            signal = str(payload.get("signal") or r.channel or "")
            colour = str(payload.get("level") or "none")
            certainty = str(payload.get("certainty") or "Observed")
            when = r.time.timestamp()
            self.grid.set_signal(ActiveSignal(signal, colour, r.station, certainty, when), cell)
            result = self.refresh(cell, now)
            if result["previous"] != result["proposal"]["level"]:
                out.append({**result, "event_time": when, "station": r.station})
        return out

    def refresh(self, cell: str, now: float, drill: str | None = None) -> dict[str, Any]:
        """Recompute one cell's proposal; draft when it changed and auto_draft is on."""
        from fleet.response.grid import proposal_plain

        p = self.grid.proposal(cell)
        previous = self.grid.record_proposal(p, now)
        out: dict[str, Any] = {"proposal": proposal_plain(p), "previous": previous, "draft": None}
        if previous != p.level and self.config.auto_draft:
            open_draft = self.alerts.open_draft(cell, drill)
            if (
                open_draft is not None
                and open_draft["author"] == ENGINE_AUTHOR
                and open_draft["state"] == "draft"  # nobody approved it yet: draft it anew
            ):
                self.alerts.reject(open_draft["id"], ENGINE_AUTHOR, now)
                open_draft = None
            if open_draft is None:
                out["draft"] = self.alerts.draft_from_proposal(p, ENGINE_AUTHOR, now, drill)
        return out

    def _cell_of(self, r: StoredRecord, register: Register) -> str | None:
        """The station's cell: from the registry (the contract), else its registered position."""
        info = self.db.store.station(r.station)
        if info is not None and info.grid_cell in register.cells:
            return info.grid_cell
        pos = self.db.entities("station").get(r.station)
        return register.cell_of(pos["lon"], pos["lat"]) if pos else None
