"""Station events -> cell signals -> proposed level -> draft warning (the fleet side of the chain).

The engine reads the warning events stations synced through the contract (the fleet store's
``event`` records; each station's ``grid_cell`` from its status), keeps each cell's active
signals per station, recomputes the cell's proposal and, when the proposed level changes and
``auto_draft`` is on, drafts the Alert, Update or Cancel that would bring the cell's warning in
line; a person approves it. Each event is taken in once (``resp_seen``).
"""

from __future__ import annotations

import logging
from typing import Any

from fleet.response.alerts import Alerts
from fleet.response.config import ResponseConfig
from fleet.response.db import ResponseDB
from fleet.response.grid import Grid
from fleet.response.plan import ActiveSignal
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

    def poll(self, now: float) -> list[dict[str, Any]]:
        """Take in new events; return the proposals that changed (with any draft made)."""
        rows = self.db.store.records(kinds=("event",), start=now - LOOKBACK_S, limit=100_000)
        seen = {
            (s, int(q))
            for s, q in self.db.query("SELECT station, seq FROM resp_seen WHERE seq >= 0")
        }
        fresh = [r for r in rows if (r.station, r.seq) not in seen]
        changed: dict[str, Any] = {}
        cells = self.grid.register().cells
        for r in fresh:
            cell = self._cell_of(r)
            with self.db.tx() as cur:
                cur.run(
                    "INSERT INTO resp_seen (station, seq) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (r.station, r.seq),
                )
            if cell is None or cell not in cells:
                self.unassigned += 1
                log.warning(
                    "event %s/%s: station has no grid cell in the register", r.station, r.seq
                )
                continue
            payload = r.payload or {}
            signal = str(payload.get("signal") or r.channel or "")
            colour = str(payload.get("level") or "none")
            certainty = str(payload.get("certainty") or "Observed")
            self.grid.set_signal(ActiveSignal(signal, colour, r.station, certainty, r.time), cell)
            changed[cell] = True
        return [self.refresh(cell, now) for cell in changed]

    def refresh(self, cell: str, now: float, drill: str | None = None) -> dict[str, Any]:
        """Recompute one cell's proposal; draft when it changed and auto_draft is on."""
        from fleet.response.grid import proposal_plain

        p = self.grid.proposal(cell)
        previous = self.grid.record_proposal(p, now)
        out: dict[str, Any] = {"proposal": proposal_plain(p), "previous": previous, "draft": None}
        if (
            previous != p.level
            and self.config.auto_draft
            and self.alerts.open_draft(cell, drill) is None
        ):
            out["draft"] = self.alerts.draft_from_proposal(p, ENGINE_AUTHOR, now, drill)
        return out

    def _cell_of(self, r: StoredRecord) -> str | None:
        info = self.db.store.station(r.station)
        return info.grid_cell if info is not None else None
