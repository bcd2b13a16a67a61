"""What the district map draws from the response chain's register (:mod:`fleet.response`).

Cells, key units and hazard points come from the register kept in the fleet store; while it is
empty, from the synthetic sample district the response package ships (marked so on the map).
A cell's level is the flood-control office's confirmed decision when there is one, else the
plan's proposal; both are given, as the response levels Ⅳ–Ⅰ and their signal colours.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from typing import Any

from fleet.response import cap
from fleet.response.alerts import Alerts
from fleet.response.config import ResponseConfig
from fleet.response.db import ResponseDB
from fleet.response.errors import ResponseError
from fleet.response.grid import Grid
from fleet.response.plan import COLOURS, LEVELS
from fleet.response.register import Register as ResponseRegister
from fleet.response.register import parse_cells, parse_hazards, parse_units
from fleet.store import Store

SAMPLE = ("sample_cells.geojson", "sample_hazards.geojson", "sample_units.geojson")


def colour_of(level: str | None) -> str:
    """Response level Ⅳ–Ⅰ (``IV``..``I``) to its signal colour; ``none`` without a level."""
    return COLOURS[LEVELS.index(level)] if level in LEVELS else "none"


def sample_register() -> ResponseRegister:
    """The synthetic sample district the response package ships (cells, hazards, units)."""
    data = resources.files("fleet.response").joinpath("data")
    cells_text, hazards_text, units_text = (data.joinpath(n).read_text("utf-8") for n in SAMPLE)
    cells = {c.code: c for c in parse_cells(cells_text, SAMPLE[0])}
    partial = ResponseRegister(cells=cells)
    hazards = {h.id: h for h in parse_hazards(hazards_text, SAMPLE[1], partial)}
    units = {u.id: u for u in parse_units(units_text, SAMPLE[2], partial)}
    return ResponseRegister(cells=cells, hazards=hazards, units=units)


class District:
    """The register and cell levels as the console's map wants them (plain data)."""

    def __init__(self, store: Store) -> None:
        self.grid = Grid(ResponseDB(store))
        self._sample: ResponseRegister | None = None

    def register(self) -> tuple[ResponseRegister, bool]:
        """The stored register, or the shipped sample while none is stored (``True``)."""
        reg = self.grid.register()
        if reg.cells:
            return reg, False
        if self._sample is None:
            self._sample = sample_register()
        return self._sample, True

    def layers(self, since: float) -> dict[str, Any]:
        """Cells as GeoJSON, key units, hazard points and field reports (from ``since``) as
        points, and whether the cells are the synthetic sample."""
        reg, synthetic = self.register()
        features = [
            {
                "type": "Feature",
                "properties": {"code": c.code, "name": c.name, "kind": c.kind},
                "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in c.polygon]]},
            }
            for c in reg.cells.values()
        ]
        return {
            "cells": {"type": "FeatureCollection", "synthetic": synthetic, "features": features},
            "units": [
                {"id": u.id, "kind": u.kind, "label": f"{u.name} ({u.kind})", "cell": u.cell}
                | {"lon": u.lon, "lat": u.lat}
                for u in reg.units.values()
            ],
            "hazards": [
                {"id": h.id, "kind": h.kind, "label": f"{h.name} ({h.kind})", "cell": h.cell}
                | {"lon": h.lon, "lat": h.lat}
                for h in reg.hazards.values()
            ],
            "reports": [
                {"id": r["id"], "cell": r["cell"], "lon": r["lon"], "lat": r["lat"]}
                | {"label": f"{r['depth_class']} · {r['by']} · {r['note'][:80]}"}
                for r in self.grid.db.docs("report", since)
            ],
        }

    def levels(self) -> dict[str, dict[str, Any]]:
        """``{cell: {"proposed", "confirmed", "colour"}}`` for the stored register's cells."""
        reg, synthetic = self.register()
        if synthetic or not self.grid.db.entities("plan"):
            return {}
        confirmed: dict[str, dict[str, Any]] = {}
        for d in self.grid.decisions():
            confirmed[d["cell"]] = d  # oldest first: the newest wins
        out: dict[str, dict[str, Any]] = {}
        for code in reg.cells:
            proposed = self.grid.proposal(code).level
            decision = confirmed.get(code)
            level = decision["level"] if decision else proposed
            out[code] = {
                "proposed": proposed,
                "confirmed": decision["level"] if decision else None,
                "confirmed_by": decision["by"] if decision else None,
                "colour": colour_of(level),
            }
        return out

    def drill(self) -> dict[str, Any] | None:
        """The drill running now (the newest started and not ended), or None."""
        running = [d for d in self.grid.db.docs("drill") if d.get("ended") is None]
        return max(running, key=lambda d: d.get("started", 0.0), default=None)

    def fingerprint(self) -> dict[str, Any]:
        """Cheap summaries that change whenever the response chain or a drill does."""
        q = self.grid.db.query
        response = (
            q("SELECT count(*), max(created), max(approved), max(published) FROM resp_messages"),
            q("SELECT state, count(*) FROM resp_outbox GROUP BY state ORDER BY state"),
            q("SELECT count(acked) FROM resp_acks"),
            q("SELECT count(*), max(t) FROM resp_decisions"),
            q("SELECT state, count(*) FROM resp_actions GROUP BY state ORDER BY state"),
            q("SELECT count(*), max(t) FROM resp_signals"),
            q("SELECT count(*), max(t) FROM resp_linktests"),
            q("SELECT kind, count(*), max(t) FROM resp_docs WHERE kind <> 'drill' GROUP BY kind"),
        )
        drill = self.drill()
        return {"response": response, "drill": drill and (drill["id"], drill.get("ended"))}

    def preview(self, key: str, now: float, config: ResponseConfig) -> dict[str, Any]:
        """A message's CAP XML: as published, or as it would go out now, checked by the same
        rules and schema as a publication (``valid`` False with the reason when it would fail).
        """
        alerts = Alerts(self.grid.db, self.grid, config)
        m = alerts.get(key)
        if m["xml"]:
            return {"id": m["id"], "status": m["status"], "xml": m["xml"], "valid": True}
        # serial 0: never given to a published message (the preview is labelled so in the page)
        ident = config.ids.identifier(datetime.fromtimestamp(now, UTC), 0)
        msg = alerts._message(m, identifier=ident, sent=now)
        out = {"id": m["id"], "status": m["status"], "valid": True, "detail": ""}
        try:
            out["xml"] = cap.render(msg).decode()
            cap.build(msg)
        except ResponseError as exc:
            out.update(valid=False, detail=str(exc))
            out.setdefault("xml", "")
        return out
