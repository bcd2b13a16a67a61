"""The response chain's HTTP API: one router, mounted by ``create_app`` with one line.

Every route names the role it needs (``fleet.auth.require``); the exceptions are the personal
acknowledgement links (the token is the credential), the public live CAP feed and published
Actual CAP messages, and the partner routes (a partner's own token, read only). Errors are
``{"code", "detail"}``: 404 not_found, 409 workflow_refused / drill_violation, 422 cap_invalid,
400 bad_register / bad_plan / refused, 503 channel_unavailable.

    GET  /grid/cells  /grid/hazards  /grid/proposals  /grid/cells/{code}  /grid/plan
    POST /grid/cells/import  /grid/hazards/import  PUT /grid/plan           (admin)
    POST /grid/cells/{code}/decision                                          (approver)
    GET  /grid/actions  POST /grid/actions/{id}  GET /grid/inspections
    GET  /grid/data-quality  POST /grid/data-quality/run  PUT /grid/stations/{id}/position
    GET  /units  /units/{id}  /units/unreached  POST /units/import            (admin)
    POST /units/{id}/inspections  /units/inspections/{id}
    GET|POST /units/ack/{token}                                               (the token)
    GET  /warnings  /warnings/{key}  /warnings/{key}/deliveries
    POST /warnings  /warnings/from-cell/{code}  /warnings/{key}/publish|update|cancel
    POST /warnings/{key}/approve|reject                                       (approver)
    GET  /warnings/feed.atom  /warnings/cap/{identifier}.xml                  (public, Actual)
    GET  /warnings/feed-drill.atom
    GET  /channels  /channels/dead-letters  POST /channels/test  /channels/dead-letters/{id}/retry
    GET  /drills  /drills/{id}/report  POST /drills  /drills/{id}/end  /drills/{id}/warnings
    GET  /incidents  /incidents/{id}  POST /incidents  PUT /incidents/{id}/wind
    GET  /reports  /reports/photos/{id}  /reports/after-action/{cell}  POST /reports
    GET  /partners  POST /partners  DELETE /partners/{name}                   (admin)
    GET  /partners/v1.1/Things  /partners/v1.1/Things('{id}')/Datastreams
         /partners/v1.1/Datastreams('{id}')/Observations  /partners/cap/feed.atom
         /partners/cap/{identifier}.xml  /partners/geojson/{cells|hazards|units} (partner token)

The API process reads its channels from the TOML file named by ``ROADSIDE_RESPONSE_CONFIG``
(``[response]`` table; none: no channels); the delivery worker runs as
``roadside-fleet response worker`` over the same database. A caller may also put a ready
:class:`~fleet.response.service.Response` in ``app.state.response``.
"""

from __future__ import annotations

import html
import os
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.responses import Response as HttpResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from fleet.auth import Principal, audit, require
from fleet.response import register as reg
from fleet.response.config import ResponseConfig, load_config
from fleet.response.errors import (
    CapError,
    ChannelError,
    DrillViolation,
    NotFound,
    PlanError,
    RegisterError,
    ResponseError,
    WorkflowError,
)
from fleet.response.grid import proposal_plain
from fleet.response.onsite import Wind
from fleet.response.partners import datastreams, observations, things
from fleet.response.service import Response
from fleet.store import Store
from roadside.clock import SystemClock

CONFIG_ENV = "ROADSIDE_RESPONSE_CONFIG"
_CODES: tuple[tuple[type[ResponseError], int, str], ...] = (
    (NotFound, 404, "not_found"),
    (DrillViolation, 409, "drill_violation"),
    (WorkflowError, 409, "workflow_refused"),
    (CapError, 422, "cap_invalid"),
    (RegisterError, 400, "bad_register"),
    (PlanError, 400, "bad_plan"),
    (ChannelError, 503, "channel_unavailable"),
    (ResponseError, 400, "refused"),
)
CAP_XML = "application/cap+xml"
ATOM = "application/atom+xml"


class _Route(APIRoute):
    """Turns the chain's errors into ``{"code", "detail"}`` answers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, HttpResponse]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> HttpResponse:
            try:
                return await handler(request)
            except ResponseError as exc:
                status, code = next((s, c) for k, s, c in _CODES if isinstance(exc, k))
                return JSONResponse({"code": code, "detail": str(exc)}, status_code=status)

        return route


Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Approver = Annotated[Principal, Depends(require("approver"))]
Admin = Annotated[Principal, Depends(require("admin"))]


class ImportIn(BaseModel):
    source: str = Field(examples=["cells.geojson", "hazards.csv"], description="file name")
    text: str


class PlanIn(BaseModel):
    text: str = Field(description="the plan as TOML")


class DecisionIn(BaseModel):
    level: Literal["IV", "III", "II", "I"] | None
    note: str = ""


class ActionIn(BaseModel):
    state: Literal["assigned", "acknowledged", "done"]
    assignee: str | None = None


class InspectionIn(BaseModel):
    due: float = Field(description="epoch seconds")


class InspectionDoneIn(BaseModel):
    done: float
    result: Literal["pass", "fail"]
    findings: str = ""


class DraftIn(BaseModel):
    cells: list[str]
    signal: Literal["rainstorm", "waterlogging", "gale", "thunderstorm"]
    level: Literal["IV", "III", "II", "I"]
    colour: Literal["blue", "yellow", "orange", "red"] | None = None
    certainty: Literal["Observed", "Likely", "Possible"] = "Observed"
    urgency: Literal["Immediate", "Expected", "Future"] = "Immediate"
    onset: float | None = None
    expires: float | None = None
    msg_type: Literal["Alert", "Update", "Cancel"] = "Alert"
    references: list[str] = []
    drill: str | None = None
    description_zh: str = ""
    description_en: str = ""


class ChangeIn(BaseModel):
    level: Literal["IV", "III", "II", "I"] | None = None


class DrillIn(BaseModel):
    name: str


class DrillWarningIn(BaseModel):
    cell: str
    signal: Literal["rainstorm", "waterlogging", "gale", "thunderstorm"] = "waterlogging"
    level: Literal["IV", "III", "II", "I"] = "III"


class WindIn(BaseModel):
    from_deg: float = Field(ge=0, le=360)
    speed_ms: float = Field(ge=0, le=75)
    sigma_deg: float = Field(ge=0, le=180)


class IncidentIn(BaseModel):
    name: str
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    wind: WindIn | None = None


class ReportIn(BaseModel):
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    depth_class: Literal["none", "<15cm", "15-30cm", ">30cm"]
    note: str = Field(default="", max_length=2000)
    photo_base64: str | None = None


class PositionIn(BaseModel):
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)


class PartnerIn(BaseModel):
    name: str


class _Holder:
    """The API process's own Response, built on first use."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = threading.Lock()
        self.resp: Response | None = None

    def get(self, request: Request) -> Response:
        given = getattr(request.app.state, "response", None)
        if given is not None:
            return given
        with self.lock:
            if self.resp is None:
                path = os.environ.get(CONFIG_ENV)
                config = load_config(Path(path)) if path else ResponseConfig()
                self.resp = Response(self.store, SystemClock(), config)
            return self.resp


def response_router(store: Store) -> APIRouter:
    """The router over a fleet store."""
    holder = _Holder(store)
    router = APIRouter(route_class=_Route, tags=["response"])

    def R(request: Request) -> Response:
        return holder.get(request)

    RESP = Depends(R)

    def partner(request: Request, resp: Response = RESP) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        who = resp.partners.who(token.strip()) if scheme.lower() == "bearer" else None
        if who is None:
            raise NotFound("partner routes need a partner's Bearer token")
        return who

    PARTNER = Depends(partner)

    # -- grid ----------------------------------------------------------------------------------
    @router.get("/grid/cells")
    def cells(_: Viewer, resp: Response = RESP) -> dict[str, Any]:
        """Grid cells as GeoJSON, each with its proposed level."""
        register = resp.grid.register()
        fc = reg.feature_collection(register.cells.values())
        for f in fc["features"]:
            f["properties"]["proposed_level"] = resp.grid.proposal(f["properties"]["code"]).level
        return fc

    @router.post("/grid/cells/import")
    def import_cells(
        body: ImportIn, who: Admin, request: Request, resp: Response = RESP
    ) -> dict[str, int]:
        """Import cells (GeoJSON or CSV by the source's extension); a new version per change."""
        out = resp.grid.import_cells(body.text, body.source, who.name, resp.now())
        audit(request, "grid_import", "cells", {"source": body.source, "count": len(out)})
        return out

    @router.get("/grid/hazards")
    def hazards(_: Viewer, resp: Response = RESP) -> dict[str, Any]:
        return reg.feature_collection(resp.grid.register().hazards.values())

    @router.post("/grid/hazards/import")
    def import_hazards(
        body: ImportIn, who: Admin, request: Request, resp: Response = RESP
    ) -> dict[str, int]:
        out = resp.grid.import_hazards(body.text, body.source, who.name, resp.now())
        audit(request, "grid_import", "hazards", {"source": body.source, "count": len(out)})
        return out

    @router.get("/grid/plan")
    def get_plan(_: Viewer, resp: Response = RESP) -> dict[str, Any]:
        doc = resp.db.entities("plan").get("plan")
        plan = resp.grid.plan()
        return {
            "version": plan.version,
            "title": plan.title,
            "text": doc["text"] if doc else None,
            "history": resp.db.history("plan", "plan"),
        }

    @router.put("/grid/plan")
    def put_plan(
        body: PlanIn, who: Admin, request: Request, resp: Response = RESP
    ) -> dict[str, Any]:
        plan = resp.grid.set_plan(body.text, "plan", who.name, resp.now())
        audit(request, "plan_set", "plan", {"version": plan.version})
        return {"version": plan.version}

    @router.get("/grid/proposals")
    def proposals(_: Viewer, resp: Response = RESP) -> list[dict[str, Any]]:
        """Every cell's proposed level now, with reasons and actions."""
        return [proposal_plain(resp.grid.proposal(c)) for c in resp.grid.register().cells]

    @router.get("/grid/cells/{code}")
    def cell(code: str, _: Viewer, resp: Response = RESP) -> dict[str, Any]:
        """One cell: register entry and history, proposal, decisions, actions, inspections."""
        c = resp.grid.cell(code)
        return {
            "cell": reg.to_plain(c),
            "history": resp.db.history("cell", code),
            "proposal": proposal_plain(resp.grid.proposal(code)),
            "proposals": resp.grid.proposal_log(code),
            "decisions": resp.grid.decisions(code),
            "actions": resp.grid.actions(code),
            "inspections": resp.grid.inspections(resp.now(), [code]),
        }

    @router.post("/grid/cells/{code}/decision", status_code=201)
    def decide(
        code: str, body: DecisionIn, who: Approver, request: Request, resp: Response = RESP
    ) -> dict[str, Any]:
        """Record the flood-control decision (who confirmed which level when)."""
        out = resp.grid.decide(code, body.level, who.name, resp.now(), body.note)
        audit(request, "decision", code, {"level": body.level, "proposed": out["proposed"]})
        return out

    @router.get("/grid/actions")
    def actions(_: Viewer, cell: str | None = None, resp: Response = RESP) -> list[dict[str, Any]]:
        return resp.grid.actions(cell)

    @router.post("/grid/actions/{ident}")
    def advance(
        ident: str, body: ActionIn, who: Operator, request: Request, resp: Response = RESP
    ) -> dict[str, Any]:
        out = resp.grid.advance_action(ident, body.state, resp.now(), body.assignee)
        audit(request, "action", ident, {"state": body.state, "by": who.name})
        return out

    @router.get("/grid/inspections")
    def inspections(_: Viewer, resp: Response = RESP) -> list[dict[str, Any]]:
        """Lightning-protection inspections with the overdue flag."""
        return resp.grid.inspections(resp.now())

    @router.get("/grid/data-quality")
    def dq(_: Viewer, since: float | None = None, resp: Response = RESP) -> list[dict[str, Any]]:
        return resp.db.docs("dq", since)

    @router.post("/grid/data-quality/run")
    def run_dq(
        _: Operator, window_s: Annotated[float, Query(gt=0, le=86400)] = 3600, resp: Response = RESP
    ) -> list[dict[str, Any]]:
        return resp.field.data_checks(resp.now(), window_s)

    @router.put("/grid/stations/{station}/position")
    def position(
        station: str, body: PositionIn, who: Admin, resp: Response = RESP
    ) -> dict[str, Any]:
        resp.field.place_station(station, body.lon, body.lat, who.name, resp.now())
        return {"station": station, "lon": body.lon, "lat": body.lat}

    # -- key units -------------------------------------------------------------------------------
    @router.get("/units")
    def units(_: Viewer, resp: Response = RESP) -> dict[str, Any]:
        return reg.feature_collection(resp.grid.register().units.values())

    @router.post("/units/import")
    def import_units(
        body: ImportIn, who: Admin, request: Request, resp: Response = RESP
    ) -> dict[str, int]:
        out = resp.grid.import_units(body.text, body.source, who.name, resp.now())
        audit(request, "grid_import", "units", {"source": body.source, "count": len(out)})
        return out

    @router.get("/units/unreached")
    def unreached(
        _: Viewer, message: str | None = None, resp: Response = RESP
    ) -> list[dict[str, Any]]:
        """Units of published warnings that no channel has reached yet."""
        return resp.outbox.unreached(message)

    @router.get("/units/ack/{token}", response_class=HTMLResponse)
    def ack_page(token: str) -> HTMLResponse:
        """The personal link's page: one button (a GET never acknowledges: link scanners)."""
        t = html.escape(token)
        return HTMLResponse(
            f"<!doctype html><html lang='zh-CN'><meta charset='utf-8'><title>确认收到预警</title>"
            f"<form method='post' action='/units/ack/{t}'><button>确认收到 / Acknowledge"
            f"</button></form></html>"
        )

    @router.post("/units/ack/{token}")
    def ack(token: str, request: Request, resp: Response = RESP) -> dict[str, Any]:
        """Acknowledge through the personal link (idempotent)."""
        via = "api" if "json" in request.headers.get("accept", "") else "link"
        return resp.outbox.ack(token, via, resp.now())

    @router.get("/units/{ident}")
    def unit(ident: str, _: Viewer, resp: Response = RESP) -> dict[str, Any]:
        u = resp.grid.unit(ident)
        return {"unit": reg.to_plain(u), "history": resp.db.history("unit", ident)}

    @router.post("/units/{ident}/inspections", status_code=201)
    def add_inspection(
        ident: str, body: InspectionIn, who: Operator, resp: Response = RESP
    ) -> dict[str, Any]:
        return resp.grid.add_inspection(ident, body.due, who.name)

    @router.post("/units/inspections/{ident}")
    def done_inspection(
        ident: str, body: InspectionDoneIn, _: Operator, resp: Response = RESP
    ) -> dict[str, Any]:
        resp.grid.record_inspection(ident, body.done, body.result, body.findings)
        return {"id": ident, "done": body.done, "result": body.result}

    # -- warnings --------------------------------------------------------------------------------
    @router.get("/warnings/feed.atom")
    def feed(resp: Response = RESP) -> HttpResponse:
        """The live CAP Atom feed (Actual only; public)."""
        return HttpResponse(resp.feed("live"), media_type=ATOM)

    @router.get("/warnings/feed-drill.atom")
    def feed_drill(_: Viewer, resp: Response = RESP) -> HttpResponse:
        return HttpResponse(resp.feed("drill"), media_type=ATOM)

    @router.get("/warnings/cap/{identifier}.xml")
    def cap_xml(identifier: str, request: Request, resp: Response = RESP) -> HttpResponse:
        """A published message's CAP XML (public when Actual; Exercise needs a viewer)."""
        m = resp.alerts.get(identifier)
        if m["state"] != "published":
            raise NotFound(f"{identifier} is not published")
        if m["status"] != "Actual":
            require("viewer")(request)
        return HttpResponse(m["xml"], media_type=CAP_XML)

    @router.get("/warnings")
    def list_warnings(
        _: Viewer, state: str | None = None, drill: str | None = None, resp: Response = RESP
    ) -> list[dict[str, Any]]:
        return resp.alerts.list(state, drill)

    @router.post("/warnings", status_code=201)
    def draft(
        body: DraftIn, who: Operator, request: Request, resp: Response = RESP
    ) -> dict[str, Any]:
        """Write a warning by hand (an Update or Cancel names what it replaces)."""
        m = resp.alerts.draft(
            cells=body.cells,
            signal=body.signal,
            level=body.level,
            colour=body.colour,
            certainty=body.certainty,
            urgency=body.urgency,
            onset=body.onset,
            expires=body.expires,
            msg_type=body.msg_type,
            references=body.references,
            drill=body.drill,
            author=who.name,
            now=resp.now(),
            description=(body.description_zh, body.description_en),
        )
        audit(request, "warning_draft", m["id"], {"msg_type": m["msg_type"], "cells": m["cells"]})
        return m

    @router.post("/warnings/from-cell/{code}", status_code=201)
    def draft_from_cell(
        code: str, who: Operator, request: Request, resp: Response = RESP
    ) -> dict[str, Any]:
        """Draft what brings the cell's warning in line with its proposal."""
        m = resp.alerts.draft_from_proposal(resp.grid.proposal(code), who.name, resp.now())
        if m is None:
            raise WorkflowError(f"cell {code}: its warning already matches the proposal")
        audit(request, "warning_draft", m["id"], {"cells": m["cells"]})
        return m

    @router.get("/warnings/{key}")
    def get_warning(key: str, _: Viewer, resp: Response = RESP) -> dict[str, Any]:
        """One message; a thunderstorm warning also lists its cells' lightning inspections."""
        m = resp.alerts.get(key)
        if m["content"]["signal"] == "thunderstorm":
            m["lightning_inspections"] = resp.grid.inspections(resp.now(), m["cells"])
        return m

    @router.get("/warnings/{key}/deliveries")
    def deliveries(key: str, _: Viewer, resp: Response = RESP) -> dict[str, Any]:
        """Delivery status per channel and per key unit, and every outbox row."""
        m = resp.alerts.get(key)
        return {**resp.outbox.status(m["id"]), "rows": resp.outbox.deliveries(m["id"])}

    @router.post("/warnings/{key}/approve")
    def approve(key: str, who: Approver, request: Request, resp: Response = RESP) -> dict[str, Any]:
        m = resp.alerts.approve(key, who.name, resp.now())
        audit(request, "warning_approve", m["id"], {"severity": m["severity"]})
        return m

    @router.post("/warnings/{key}/reject")
    def reject(key: str, who: Approver, request: Request, resp: Response = RESP) -> dict[str, Any]:
        m = resp.alerts.reject(key, who.name, resp.now())
        audit(request, "warning_reject", m["id"])
        return m

    @router.post("/warnings/{key}/publish")
    def publish(key: str, who: Operator, request: Request, resp: Response = RESP) -> dict[str, Any]:
        """One click: link-test the channels, publish, queue every delivery."""
        out = resp.publish(key, who.name)
        audit(
            request,
            "warning_publish",
            out["message"]["id"],
            {"identifier": out["message"]["identifier"]},
        )
        return out

    @router.post("/warnings/{key}/update", status_code=201)
    def update(key: str, body: ChangeIn, who: Operator, resp: Response = RESP) -> dict[str, Any]:
        return resp.alerts.draft_change(key, "Update", who.name, resp.now(), body.level)

    @router.post("/warnings/{key}/cancel", status_code=201)
    def cancel(key: str, who: Operator, resp: Response = RESP) -> dict[str, Any]:
        return resp.alerts.draft_change(key, "Cancel", who.name, resp.now())

    # -- channels --------------------------------------------------------------------------------
    @router.get("/channels")
    def channels(_: Viewer, resp: Response = RESP) -> list[dict[str, Any]]:
        """Configured channels with their last link test."""
        last = {
            c: (t, ok, d)
            for c, t, ok, d in resp.db.query(
                "SELECT channel, t, ok, detail FROM resp_linktests ORDER BY t"
            )
        }
        return [
            {
                "name": c.name,
                "kind": c.kind,
                "mode": c.mode,
                "last_test": None
                if c.name not in last
                else {
                    "time": last[c.name][0],
                    "ok": bool(last[c.name][1]),
                    "detail": last[c.name][2],
                },
            }
            for c in resp.outbox.channels.values()
        ]

    @router.post("/channels/test")
    def link_test(
        _: Operator, mode: Literal["live", "drill"] = "live", resp: Response = RESP
    ) -> list[dict[str, Any]]:
        """Link-test every channel of a mode now."""
        return resp.outbox.link_test(mode, resp.now())

    @router.get("/channels/dead-letters")
    def dead_letters(_: Viewer, resp: Response = RESP) -> list[dict[str, Any]]:
        return resp.outbox.dead_letters()

    @router.post("/channels/dead-letters/{ident}/retry")
    def retry(ident: str, _: Operator, resp: Response = RESP) -> dict[str, str]:
        resp.outbox.retry(ident, resp.now())
        return {"id": ident, "state": "pending"}

    # -- drills ----------------------------------------------------------------------------------
    @router.get("/drills")
    def drills(_: Viewer, resp: Response = RESP) -> list[dict[str, Any]]:
        return resp.drills.list()

    @router.post("/drills", status_code=201)
    def start_drill(body: DrillIn, who: Operator, resp: Response = RESP) -> dict[str, Any]:
        return resp.drills.start(body.name, who.name, resp.now())

    @router.post("/drills/{ident}/end")
    def end_drill(ident: str, who: Operator, resp: Response = RESP) -> dict[str, Any]:
        return resp.drills.end(ident, who.name, resp.now())

    @router.get("/drills/{ident}/report")
    def drill_report(ident: str, _: Viewer, resp: Response = RESP) -> dict[str, Any]:
        return resp.drills.report(ident)

    @router.post("/drills/{ident}/warnings", status_code=201)
    def drill_warning(
        ident: str, body: DrillWarningIn, who: Operator, resp: Response = RESP
    ) -> dict[str, Any]:
        """Draft an Exercise warning for a cell under this drill."""
        return resp.alerts.draft(
            cells=[body.cell],
            signal=body.signal,
            level=body.level,
            author=who.name,
            now=resp.now(),
            drill=ident,
        )

    # -- incidents and field reports ------------------------------------------------------------
    @router.post("/incidents", status_code=201)
    def open_incident(body: IncidentIn, who: Operator, resp: Response = RESP) -> dict[str, Any]:
        """An incident point; its downwind sector from the given wind or the nearest station."""
        wind = Wind(**body.wind.model_dump()) if body.wind else None
        return resp.field.open_incident(body.name, body.lon, body.lat, who.name, resp.now(), wind)

    @router.get("/incidents")
    def incidents(_: Viewer, resp: Response = RESP) -> list[dict[str, Any]]:
        return resp.db.docs("incident")

    @router.get("/incidents/{ident}")
    def incident(ident: str, _: Viewer, resp: Response = RESP) -> dict[str, Any]:
        """The incident and its sector now (GeoJSON), recomputed on every call."""
        return resp.field.incident(ident, resp.now())

    @router.put("/incidents/{ident}/wind")
    def incident_wind(
        ident: str, body: WindIn, _: Operator, resp: Response = RESP
    ) -> dict[str, Any]:
        return resp.field.set_wind(ident, Wind(**body.model_dump()), resp.now())

    @router.post("/reports", status_code=201)
    def field_report(
        body: ReportIn, who: Operator, request: Request, resp: Response = RESP
    ) -> dict[str, Any]:
        """A grid worker's report (location, depth class, photo, note) into its cell."""
        out = resp.field.report(
            by=who.name,
            lon=body.lon,
            lat=body.lat,
            depth_class=body.depth_class,
            note=body.note,
            photo_b64=body.photo_base64,
            now=resp.now(),
        )
        audit(request, "field_report", out["id"], {"cell": out["cell"], "depth": body.depth_class})
        return out

    @router.get("/reports")
    def reports(
        _: Viewer, cell: str | None = None, since: float | None = None, resp: Response = RESP
    ) -> list[dict[str, Any]]:
        return resp.field.reports(cell, since)

    @router.get("/reports/photos/{ident}")
    def photo(ident: str, _: Viewer, resp: Response = RESP) -> HttpResponse:
        data = resp.field.photo(ident)
        kind = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
        return HttpResponse(data, media_type=kind)

    @router.get("/reports/after-action/{code}")
    def after_action(
        code: str, _: Viewer, start: float, end: float, resp: Response = RESP
    ) -> dict[str, Any]:
        """Per cell: peaks, forecasts and their lead, warnings, responses, actions, units."""
        return resp.after_action(code, start, end)

    # -- partners --------------------------------------------------------------------------------
    @router.get("/partners")
    def partners(_: Admin, resp: Response = RESP) -> list[dict[str, Any]]:
        return resp.partners.list()

    @router.post("/partners", status_code=201)
    def add_partner(
        body: PartnerIn, who: Admin, request: Request, resp: Response = RESP
    ) -> dict[str, str]:
        """A partner and its read-only token (shown once)."""
        token = resp.partners.add(body.name, who.name, resp.now())
        audit(request, "partner_add", body.name)
        return {"name": body.name, "token": token}

    @router.delete("/partners/{name}", status_code=204)
    def revoke_partner(name: str, _: Admin, request: Request, resp: Response = RESP) -> None:
        resp.partners.revoke(name)
        audit(request, "partner_revoke", name)

    base = "/partners/v1.1"

    @router.get(f"{base}/Things")
    def st_things(request: Request, resp: Response = RESP, _p: str = PARTNER) -> dict[str, Any]:
        return things(resp.db, str(request.base_url).rstrip("/") + base)

    @router.get(base + "/Things('{station}')/Datastreams")
    def st_datastreams(
        station: str, request: Request, resp: Response = RESP, _p: str = PARTNER
    ) -> dict[str, Any]:
        return datastreams(resp.db, str(request.base_url).rstrip("/") + base, station)

    @router.get(base + "/Datastreams('{ident}')/Observations")
    def st_observations(
        ident: str,
        top: Annotated[int, Query(alias="$top", ge=1, le=10_000)] = 100,
        start: float | None = None,
        resp: Response = RESP,
        _p: str = PARTNER,
    ) -> dict[str, Any]:
        return observations(resp.db, ident, top, start)

    @router.get("/partners/cap/feed.atom")
    def partner_feed(resp: Response = RESP, _p: str = PARTNER) -> HttpResponse:
        return HttpResponse(resp.feed("live"), media_type=ATOM)

    @router.get("/partners/cap/{identifier}.xml")
    def partner_cap(identifier: str, resp: Response = RESP, _p: str = PARTNER) -> HttpResponse:
        m = resp.alerts.get(identifier)
        if m["state"] != "published" or m["status"] != "Actual":
            raise NotFound(f"{identifier} is not a published warning")
        return HttpResponse(m["xml"], media_type=CAP_XML)

    @router.get("/partners/geojson/{layer}")
    def partner_geojson(
        layer: Literal["cells", "hazards", "units"], resp: Response = RESP, _p: str = PARTNER
    ) -> dict[str, Any]:
        r = resp.grid.register()
        if layer == "cells":
            return reg.feature_collection(r.cells.values())
        if layer == "hazards":
            return reg.feature_collection(r.hazards.values())
        return reg.feature_collection(r.units.values())

    return router
