"""After-action report per cell: what happened, what was forecast, warned, done and reached."""

from __future__ import annotations

from typing import Any

from fleet.response.alerts import Alerts
from fleet.response.field import Field
from fleet.response.grid import Grid
from fleet.response.outbox import Outbox

TIERS_MM = (150.0, 300.0)


def after_action(
    grid: Grid, alerts: Alerts, outbox: Outbox, field: Field, cell: str, start: float, end: float
) -> dict[str, Any]:
    """The joint damage-survey input for one cell over ``[start, end)``."""
    grid.cell(cell)  # NotFound for an unknown cell
    store = grid.db.store
    stations = [s.station for s in store.stations() if s.grid_cell == cell]
    peak_rain: dict[str, Any] | None = None
    peak_depth: dict[str, Any] | None = None
    first_forecast: float | None = None
    events = []
    for st in stations:
        for r in store.records(
            station=st, channel="rain_1h", kinds=("derived",), start=start, end=end, limit=100_000
        ):
            if r.value is not None and (peak_rain is None or r.value > peak_rain["mm"]):
                peak_rain = {"station": st, "mm": r.value, "time": r.time.timestamp()}
        for r in store.records(
            station=st,
            channel="water_depth",
            kinds=("reading",),
            start=start,
            end=end,
            limit=100_000,
        ):
            if r.value is not None and (peak_depth is None or r.value > peak_depth["mm"]):
                peak_depth = {"station": st, "mm": r.value, "time": r.time.timestamp()}
        for r in store.records(
            station=st, kinds=("forecast",), start=start, end=end, limit=100_000
        ):
            p = r.payload or {}
            if any(float(p.get(k, 0) or 0) >= TIERS_MM[0] for k in ("depth_15_mm", "depth_30_mm")):
                t = r.time.timestamp()
                first_forecast = t if first_forecast is None else min(first_forecast, t)
        for r in store.records(station=st, kinds=("event",), start=start, end=end, limit=100_000):
            events.append({"station": st, "time": r.time.timestamp(), **(r.payload or {})})
    events.sort(key=lambda e: e["time"])
    first_observed = next(
        (
            e["time"]
            for e in events
            if e.get("certainty") == "Observed" and e.get("kind") in ("raise", "upgrade")
        ),
        None,
    )
    warnings = []
    for m in alerts.list():
        if cell not in m["cells"] or not start <= m["created"] < end:
            continue
        st = outbox.status(m["id"]) if m["state"] == "published" else {"units": {}}
        units = list(st["units"].values())
        warnings.append(
            {
                "id": m["id"],
                "identifier": m["identifier"],
                "msg_type": m["msg_type"],
                "status": m["status"],
                "state": m["state"],
                "level": m["content"]["level"],
                "created": m["created"],
                "approved": m["approved"],
                "published": m["published"],
                "units": len(units),
                "reached": sum(bool(u["reached_by"]) for u in units),
                "acknowledged": sum(u["acknowledged"] is not None for u in units),
            }
        )
    return {
        "cell": cell,
        "start": start,
        "end": end,
        "stations": stations,
        "peak_rain_1h": peak_rain,
        "peak_depth": peak_depth,
        "first_forecast": first_forecast,
        "first_observed": first_observed,
        "forecast_lead_s": (first_observed - first_forecast)
        if first_forecast is not None and first_observed is not None
        else None,
        "station_events": events,
        "proposals": [p for p in grid.proposal_log(cell) if start <= p["time"] < end],
        "decisions": [d for d in grid.decisions(cell) if start <= d["time"] < end],
        "actions": [a for a in grid.actions(cell) if start <= a["assigned"] < end],
        "warnings": warnings,
        "field_reports": [r for r in field.reports(cell, start) if r["time"] < end],
    }
