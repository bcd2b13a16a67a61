"""Field work: grid workers' reports, incidents with their downwind sector, data checks.

A field report (location, depth class, photo, note) joins its cell: a depth class of 15 cm or
more is an observed waterlogging signal from ``report:<reporter>`` (ordinary ponding 15-30 cm
blue, over 30 cm yellow), so it moves the cell's proposal and can raise a draft warning; a later
report of ``none`` from the same worker clears it.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any

from fleet.response import checks, onsite
from fleet.response.db import ResponseDB
from fleet.response.engine import Engine
from fleet.response.errors import NotFound, RegisterError, WorkflowError
from fleet.response.grid import Grid
from fleet.response.plan import ActiveSignal

DEPTH_CLASSES = {"none": "none", "<15cm": "none", "15-30cm": "blue", ">30cm": "yellow"}
MAX_PHOTO_BYTES = 1_500_000
WIND_WINDOW_S = 600.0


class Field:
    def __init__(self, db: ResponseDB, grid: Grid, engine: Engine) -> None:
        self.db = db
        self.grid = grid
        self.engine = engine

    # -- field reports ----------------------------------------------------------------------------
    def report(
        self,
        *,
        by: str,
        lon: float,
        lat: float,
        depth_class: str,
        note: str,
        photo_b64: str | None,
        now: float,
    ) -> dict[str, Any]:
        """Take in a field report; return it with the cell's refreshed proposal."""
        if depth_class not in DEPTH_CLASSES:
            raise WorkflowError(
                f"depth_class {depth_class!r}: expected one of {', '.join(DEPTH_CLASSES)}"
            )
        cell = self.grid.register().cell_of(lon, lat)
        if cell is None:
            raise RegisterError(f"({lon}, {lat}) lies in no grid cell of the district")
        ident = f"rep-{uuid.uuid4().hex[:12]}"
        photo = None
        if photo_b64:
            try:
                raw = base64.b64decode(photo_b64, validate=True)
            except (binascii.Error, ValueError):
                raise WorkflowError("photo: not base64") from None
            if len(raw) > MAX_PHOTO_BYTES:
                raise WorkflowError(f"photo: {len(raw)} bytes, at most {MAX_PHOTO_BYTES}")
            if not raw.startswith((b"\xff\xd8\xff", b"\x89PNG")):
                raise WorkflowError("photo: expected a JPEG or PNG image")
            photo = f"photo-{ident}"
            self.db.put_doc("photo", photo, now, {"b64": photo_b64})
        doc = {
            "id": ident,
            "by": by,
            "time": now,
            "lon": lon,
            "lat": lat,
            "cell": cell,
            "depth_class": depth_class,
            "note": note[:2000],
            "photo": photo,
        }
        self.db.put_doc("report", ident, now, doc)
        colour = DEPTH_CLASSES[depth_class]
        self.grid.set_signal(
            ActiveSignal("waterlogging", colour, f"report:{by}", "Observed", now), cell
        )
        refreshed = self.engine.refresh(cell, now)
        return {**doc, "proposal": refreshed["proposal"], "draft": refreshed["draft"]}

    def reports(self, cell: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        return [r for r in self.db.docs("report", since) if cell is None or r["cell"] == cell]

    def photo(self, ident: str) -> bytes:
        doc = self.db.doc("photo", ident)
        if doc is None:
            raise NotFound(f"photo {ident!r} is not known")
        return base64.b64decode(doc["b64"])

    # -- incidents --------------------------------------------------------------------------------
    def open_incident(
        self, name: str, lon: float, lat: float, by: str, now: float, wind: onsite.Wind | None
    ) -> dict[str, Any]:
        ident = f"inc-{uuid.uuid4().hex[:10]}"
        doc = {
            "id": ident,
            "name": name,
            "lon": lon,
            "lat": lat,
            "by": by,
            "opened": now,
            "wind": None if wind is None else vars(wind),
        }
        self.db.put_doc("incident", ident, now, doc)
        return self.incident(ident, now)

    def set_wind(self, ident: str, wind: onsite.Wind, now: float) -> dict[str, Any]:
        doc = self._incident(ident)
        doc["wind"] = vars(wind)
        self.db.put_doc("incident", ident, doc["opened"], doc)
        return self.incident(ident, now)

    def _incident(self, ident: str) -> dict[str, Any]:
        doc = self.db.doc("incident", ident)
        if doc is None:
            raise NotFound(f"incident {ident!r} is not known")
        return doc

    def incident(self, ident: str, now: float) -> dict[str, Any]:
        """The incident with its sector: manual wind, else the nearest station's last 10 min."""
        doc = self._incident(ident)
        wind = onsite.Wind(**doc["wind"]) if doc["wind"] else self._station_wind(doc, now)
        if wind is None:
            return {**doc, "sector": None, "detail": "no wind known: give one or add a station"}
        geo = onsite.sector_geojson(doc["lon"], doc["lat"], wind, self.grid.register())
        return {**doc, "wind": vars(wind), "sector": geo}

    def _station_wind(self, doc: dict[str, Any], now: float) -> onsite.Wind | None:
        from fleet.response.geo import distance_m

        best: tuple[float, str] | None = None
        for station, (lon, lat) in self.station_positions().items():
            d = distance_m(doc["lon"], doc["lat"], lon, lat)
            if best is None or d < best[0]:
                best = (d, station)
        if best is None:
            return None
        store = self.db.store
        start = now - WIND_WINDOW_S
        speeds = [
            r.value
            for r in store.records(station=best[1], channel="wind_speed", start=start)
            if r.value is not None and (r.flag or 0) in (0, 9)
        ]
        dirs = [
            r.value
            for r in store.records(station=best[1], channel="wind_dir", start=start)
            if r.value is not None and (r.flag or 0) in (0, 9)
        ]
        return onsite.wind_from_readings(speeds, dirs, f"station {best[1]}")

    # -- data checks ------------------------------------------------------------------------------
    def station_positions(self) -> dict[str, tuple[float, float]]:
        """Station positions: the register's ``station`` entries, else its cell's centroid."""
        register = self.grid.register()
        placed = {k: (v["lon"], v["lat"]) for k, v in self.db.entities("station").items()}
        for s in self.db.store.stations():
            if s.station not in placed and s.grid_cell in register.cells:
                c = register.cells[s.grid_cell].geometry().centroid
                placed[s.station] = (c.x, c.y)
        return placed

    def place_station(self, station: str, lon: float, lat: float, by: str, now: float) -> None:
        self.db.put_entities("station", [(station, {"lon": lon, "lat": lat})], by, now)

    def data_checks(
        self, now: float, window_s: float = 3600.0, params: checks.CheckParams | None = None
    ) -> list[dict[str, Any]]:
        """Run the cross-station checks over the window; record and return the findings."""
        pos = self.station_positions()
        store = self.db.store
        rain, depth = [], []
        for station, (lon, lat) in pos.items():
            r = store.records(
                station=station,
                channel="rain_1h",
                kinds=("derived",),
                start=now - window_s,
                end=now + 1,
            )
            if r and r[-1].value is not None:
                rain.append(checks.Observation(station, lon, lat, float(r[-1].value)))
            d = store.records(
                station=station,
                channel="water_depth",
                kinds=("reading",),
                start=now - 600,
                end=now + 1,
            )
            if d and d[-1].value is not None:
                depth.append(checks.Observation(station, lon, lat, float(d[-1].value)))
        found = checks.run_checks(rain, depth, params or checks.CheckParams())
        out = []
        for e in found:
            doc = {"id": f"dq-{uuid.uuid4().hex[:10]}", "time": now, **vars(e)}
            doc["neighbours"], doc["neighbour_values"] = (
                list(e.neighbours),
                list(e.neighbour_values),
            )
            self.db.put_doc("dq", doc["id"], now, doc)
            out.append(doc)
        return out
