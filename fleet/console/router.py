"""The console's HTTP side: pages and assets under ``/console/``, its views and its live feed.

    GET /                              redirect to /console/
    GET /console/ , /console/field     the single-page console and the phone-sized field report
    GET /console/static/{path}         shipped assets (ES modules, CSS, vendored Leaflet and uPlot)
    GET /console/api/district          cells (GeoJSON), stations with health and warning, levels
    GET /console/api/stations/{id}/series?start&end&points   downsampled series, forecasts, events
    GET /console/events                server-sent events: which views changed (``retry`` set)

Pages and assets are public (they hold no data); every view and the feed need a signed-in viewer.
Everything the console changes goes through the fleet's own API with the session cookie and the
``X-CSRF-Token`` header, so the API's roles and checks are the console's. (No ``from __future__
import annotations`` here: FastAPI reads the routes' annotations, which name the dependencies
given to :func:`console_router`.)
"""

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel

from fleet.auth import SESSION_COOKIE, Auth, Principal, require
from fleet.console import views
from fleet.console.register import District
from fleet.console.series import bucketed
from fleet.documents import check_body, parse_scope
from fleet.errors import FleetError
from fleet.response.api import CONFIG_ENV
from fleet.response.config import ResponseConfig, load_config
from fleet.store import Store

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
SERIES_CHANNELS = (
    "rain_intensity",
    "rain_1h",
    "rain_3h",
    "rain_6h",
    "rain_24h",
    "wind_speed_10min",
    "wind_gust_3s",
    "water_depth",
)
EVENT_WINDOW_S = 24 * 3600.0
MAX_ROWS = 100_000


def _epoch(when: datetime | None, default: float) -> float:
    if when is None:
        return default
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


class DocumentDraft(BaseModel):
    """A document being edited in the console: scope and body."""

    scope: str
    body: dict[str, Any]


def console_router(
    store: Store,
    auth: Auth,
    *,
    clock: Callable[[], float] = time.time,
    poll_s: float = 1.0,
) -> APIRouter:
    """The console's routes over ``store``.

    ``auth`` holds the sessions (the same as the API's).
    """
    router = APIRouter(include_in_schema=False)
    register = District(store)
    viewer, operator = require("viewer"), require("operator")
    SignedIn = Annotated[Principal, Depends(viewer)]

    def csrf_of(request: Request) -> str | None:
        found = auth.by_session(request.cookies.get(SESSION_COOKIE, ""))
        return found[1] if found else None

    signed_in = [Depends(viewer)]

    @router.get("/")
    def root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    @router.get("/console")
    def console_bare() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    @router.get("/console/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @router.get("/console/field")
    def field() -> FileResponse:
        return FileResponse(STATIC / "field.html", headers={"Cache-Control": "no-cache"})

    @router.get("/console/static/{path:path}")
    def static(path: str) -> FileResponse:
        target = (STATIC / path).resolve()
        if not target.is_relative_to(STATIC) or not target.is_file():
            raise HTTPException(404, f"no console asset {path!r}")
        return FileResponse(target, headers={"Cache-Control": "no-cache"})

    def district() -> dict[str, Any]:
        now = clock()
        events = store.records(kinds=("event",), start=now - EVENT_WINDOW_S, limit=MAX_ROWS)
        signals = views.warning_levels(events)
        rows = [views.station_row(s, signals.get(s.station, {}), now) for s in store.stations()]
        response = register.levels()
        levels = views.cell_levels(rows)  # from the stations' own warnings, where no plan says
        for cell, state in response.items():
            if state["proposed"] or state["confirmed"]:
                levels[cell] = state["colour"]
        return {
            "now": now,
            **register.layers(now - EVENT_WINDOW_S),
            "stations": rows,
            "levels": levels,
            "response": response,
        }

    @router.get("/console/api/district", dependencies=signed_in)
    async def get_district() -> dict[str, Any]:
        return await run_in_threadpool(district)

    def series(station: str, start: float, end: float, points: int) -> dict[str, Any]:
        if store.station(station) is None:
            raise HTTPException(404, f"station {station!r} is not known")
        channels = bucketed(store, station, SERIES_CHANNELS, start, end, points)
        forecasts = store.records(
            station=station, kinds=("forecast",), start=start, end=end, limit=MAX_ROWS
        )
        events = store.records(station=station, kinds=("event",), start=start, end=end, limit=500)
        return {
            "station": station,
            "start": start,
            "end": end,
            "channels": channels,
            "forecast": [
                {"t": f.time.timestamp(), **(f.payload or {})} for f in forecasts[-points:]
            ],
            "events": [
                {"t": e.time.timestamp(), "seq": e.seq, "reason": e.reason, **(e.payload or {})}
                for e in events[-200:]
            ],
        }

    @router.get("/console/api/stations/{station}/series", dependencies=signed_in)
    async def get_series(
        station: str,
        start: datetime | None = None,
        end: datetime | None = None,
        points: Annotated[int, Query(ge=10, le=5000)] = 1200,
    ) -> dict[str, Any]:
        now = clock()
        t1 = _epoch(end, now)
        t0 = _epoch(start, t1 - 6 * 3600.0)
        if t0 >= t1:
            raise HTTPException(400, "start must be before end")
        return await run_in_threadpool(series, station, t0, t1, points)

    def fingerprint() -> dict[str, Any]:
        stations = store.stations()
        reports = store.reports()
        rollouts = store.rollouts()
        return {
            "stations": (len(stations), max((s.last_seen for s in stations), default=0.0)),
            "config": (
                len(reports),
                max((r.time for r in reports), default=0.0),
                tuple((r.id, r.state, r.updated) for r in rollouts[:20]),
                len(store.documents()),
            ),
            "events": len(
                store.records(kinds=("event",), start=clock() - EVENT_WINDOW_S, limit=MAX_ROWS)
            ),
            **register.fingerprint(),
        }

    async def feed(request: Request) -> AsyncIterator[bytes]:
        yield b"retry: 1500\n\n"
        last: dict[str, Any] | None = None
        n = 0
        while not await request.is_disconnected():
            now = await run_in_threadpool(fingerprint)
            changed = [k for k, v in now.items() if last is None or last.get(k) != v]
            if changed:
                n += 1
                data = json.dumps({"topics": changed, "first": last is None})
                yield f"id: {n}\nevent: change\ndata: {data}\n\n".encode()
            else:
                yield b": keep-alive\n\n"
            last = now
            await asyncio.sleep(poll_s)

    @router.get("/console/api/me")
    def get_me(request: Request, principal: SignedIn) -> dict[str, Any]:
        """Who is signed in, with which roles, and the session's CSRF token for unsafe calls."""
        return {
            "name": principal.name,
            "roles": sorted(principal.roles),
            "via": principal.via,
            "csrf": csrf_of(request),
        }

    @router.get("/console/api/drill", dependencies=signed_in)
    async def get_drill() -> dict[str, Any]:
        """The drill running now, if any (the banner on every page)."""
        return {"active": await run_in_threadpool(register.drill)}

    @router.post("/console/api/validate", dependencies=[Depends(operator)])
    def post_validate(doc: DocumentDraft) -> dict[str, Any]:
        """Check a draft document with the same checks a push runs, before anything is signed."""
        try:
            scope = parse_scope(doc.scope)
            check_body(doc.body)
        except FleetError as exc:
            return {"ok": False, "detail": str(exc)}
        return {"ok": True, "scope": scope.key, "detail": ""}

    @router.get("/console/api/warnings/{key}/preview", dependencies=signed_in)
    def get_preview(key: str, request: Request) -> dict[str, Any]:
        """The CAP XML of a message: as published, or as it would be published now."""
        given = getattr(request.app.state, "response", None)
        if given is not None:
            config = given.config
        else:
            path = os.environ.get(CONFIG_ENV)
            config = load_config(Path(path)) if path else ResponseConfig()
        return register.preview(key, clock(), config)

    @router.get("/console/events", dependencies=signed_in)
    def events(request: Request) -> StreamingResponse:
        return StreamingResponse(
            feed(request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
