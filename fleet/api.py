"""The controller's HTTP/JSON API (FastAPI; the OpenAPI document is served at ``/openapi.json``).

    GET  /health                         ingest counters, broker connection
    GET  /stations                       the registry
    GET  /stations/{station}             one station
    GET  /stations/{station}/config      desired vs reported configuration, per scope
    GET  /stations/{station}/config/log  every ack and nack the station sent
    GET  /readings?station&channel&start&end&kind&limit
    GET  /events?station&start&end&limit
    GET  /config/status                  desired vs reported for every station
    GET  /config/documents?scope         versions of the configuration documents
    POST /config/documents               push a new version of a scope's document (retained)
    GET  /groups   PUT /groups/{name}    station groups (``canary``)
    GET  /rollouts GET /rollouts/{id}    staged rollouts
    POST /rollouts                       start a staged rollout (canary group first)

Times are ISO 8601 UTC. Errors are ``{"detail": "<one line>"}``: 400 for a bad document, scope or
rollout, 404 for an unknown station or rollout, 503 when the controller cannot push (no signing
key or no broker) or the database is unreachable.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from fleet.documents import ScopeStatus, config_status
from fleet.errors import BrokerError, FleetError, StoreError
from fleet.rollout import ConfigManager
from fleet.store import ConfigReport, Document, Rollout, StationInfo, Store, StoredRecord

RecordKind = Literal["reading", "derived", "forecast", "gap"]
Limit = Annotated[int, Query(ge=1, le=100_000)]


def _iso(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)


def _epoch(when: datetime | None) -> float | None:
    if when is None:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


class StationOut(BaseModel):
    """A station in the registry."""

    station: str
    first_seen: datetime
    last_seen: datetime
    online: bool | None
    contract: str | None
    software: str | None
    config_version: str | None
    model_version: str | None
    grid_cell: str | None
    health: dict[str, Any] | None
    devices: dict[str, Any] | None
    backlog: int | None
    clock_offset_s: float | None = Field(description="station clock minus controller clock")
    last_seq: int | None
    records: int
    groups: list[str]

    @classmethod
    def of(cls, s: StationInfo) -> StationOut:
        return cls(
            station=s.station,
            first_seen=_iso(s.first_seen),  # type: ignore[arg-type]
            last_seen=_iso(s.last_seen),  # type: ignore[arg-type]
            online=s.online,
            contract=s.contract,
            software=s.software,
            config_version=s.config_version,
            model_version=s.model_version,
            grid_cell=s.grid_cell,
            health=s.health,
            devices=s.devices,
            backlog=s.backlog,
            clock_offset_s=s.clock_offset_s,
            last_seq=s.last_seq,
            records=s.records,
            groups=list(s.groups),
        )


class RecordOut(BaseModel):
    """A stored reading, derived value or event."""

    station: str
    seq: int
    kind: str
    lane: str
    time: datetime
    sensor: str | None
    channel: str | None
    value: float | None
    unit: str | None
    status: str | None
    flag: int | None
    reason: str | None
    payload: dict[str, Any] | None
    received: datetime

    @classmethod
    def of(cls, r: StoredRecord) -> RecordOut:
        values = {name: getattr(r, name) for name in cls.model_fields}
        return cls(**{**values, "time": _iso(r.time), "received": _iso(r.received)})


class ScopeStatusOut(BaseModel):
    """Desired vs reported for one scope of one station."""

    scope: str
    desired_version: int | None
    desired_hash: str | None
    reported_version: int | None
    reported_hash: str | None
    result: Literal["ack", "nack"] | None
    reason: str
    state: Literal["in_sync", "pending", "nacked"]

    @classmethod
    def of(cls, s: ScopeStatus) -> ScopeStatusOut:
        return cls.model_validate(s, from_attributes=True)


class ReportOut(BaseModel):
    """One ack or nack from a station."""

    station: str
    scope: str
    version: int
    hash: str
    result: Literal["ack", "nack"]
    reason: str
    time: datetime

    @classmethod
    def of(cls, r: ConfigReport) -> ReportOut:
        return cls(
            station=r.station,
            scope=r.scope,
            version=r.version,
            hash=r.hash,
            result=r.result,  # type: ignore[arg-type]
            reason=r.reason,
            time=_iso(r.time),  # type: ignore[arg-type]
        )


class StationConfigOut(BaseModel):
    """Configuration state of one station."""

    station: str
    in_sync: bool
    scopes: list[ScopeStatusOut]


class DocumentOut(BaseModel):
    """One version of a scope's signed document."""

    scope: str
    version: int
    hash: str
    created: datetime
    body: dict[str, Any]
    signed: dict[str, Any]

    @classmethod
    def of(cls, d: Document) -> DocumentOut:
        created = _iso(d.created)
        assert created is not None
        return cls(
            scope=d.scope,
            version=d.version,
            hash=d.hash,
            created=created,
            body=d.body,
            signed=d.signed,
        )


class DocumentIn(BaseModel):
    """A new document version: its scope and body (sections qc/derived/warnings/sampling)."""

    scope: str = Field(examples=["fleet", "grid:cell-12", "station:st-001"])
    body: dict[str, Any] = Field(examples=[{"warnings": {"rainstorm": {"preset": "national"}}}])


class RolloutIn(DocumentIn):
    """A staged rollout: the group's members in scope first, everyone else after they ack."""

    group: str = "canary"


class RolloutOut(BaseModel):
    """A staged rollout and its state."""

    id: str
    scope: str
    version: int
    canary_group: str
    canaries: list[str]
    state: Literal["canary", "rolling", "done", "halted"]
    reason: str
    released: bool
    created: datetime
    updated: datetime

    @classmethod
    def of(cls, r: Rollout) -> RolloutOut:
        return cls(
            id=r.id,
            scope=r.scope,
            version=r.version,
            canary_group=r.canary_group,
            canaries=list(r.canaries),
            state=r.state,  # type: ignore[arg-type]
            reason=r.reason,
            released=bool(r.extra.get("released")),
            created=_iso(r.created),  # type: ignore[arg-type]
            updated=_iso(r.updated),  # type: ignore[arg-type]
        )


class GroupIn(BaseModel):
    """Members of a station group."""

    stations: list[str]


def create_app(
    store: Store,
    config: ConfigManager | None = None,
    health: Callable[[], dict[str, Any]] | None = None,
) -> FastAPI:
    """The API over a store; ``config`` (None: read-only) pushes documents and runs rollouts."""
    app = FastAPI(
        title="Roadside fleet controller",
        version="1.0",
        description="Stations, readings, events, and configuration as desired vs reported state.",
    )

    @app.exception_handler(FleetError)
    def _fleet_error(_: Request, exc: FleetError) -> JSONResponse:
        code = 503 if isinstance(exc, StoreError | BrokerError) else 400
        return JSONResponse({"detail": str(exc)}, status_code=code)

    def manager() -> ConfigManager:
        if config is None:
            raise HTTPException(503, "this controller cannot push: it has no signing key or broker")
        return config

    def station_or_404(station: str) -> StationInfo:
        info = store.station(station)
        if info is None:
            raise HTTPException(404, f"station {station!r} is not known")
        return info

    def station_config(info: StationInfo) -> StationConfigOut:
        scopes = config_status(
            info.station,
            info.grid_cell,
            store.documents(),
            store.rollouts(),
            store.reports(info.station),
        )
        return StationConfigOut(
            station=info.station,
            in_sync=all(s.state == "in_sync" for s in scopes),
            scopes=[ScopeStatusOut.of(s) for s in scopes],
        )

    @app.get("/health")
    def get_health() -> dict[str, Any]:
        """Liveness, broker connection and ingest counters."""
        return {"ok": True, "stations": len(store.stations()), **(health() if health else {})}

    @app.get("/stations")
    def get_stations() -> list[StationOut]:
        """Every station the controller has heard from."""
        return [StationOut.of(s) for s in store.stations()]

    @app.get("/stations/{station}")
    def get_station(station: str) -> StationOut:
        """One station."""
        return StationOut.of(station_or_404(station))

    @app.get("/stations/{station}/config")
    def get_station_config(station: str) -> StationConfigOut:
        """Desired vs reported configuration of one station."""
        return station_config(station_or_404(station))

    @app.get("/stations/{station}/config/log")
    def get_station_config_log(station: str, limit: Limit = 1000) -> list[ReportOut]:
        """Every ack and nack the station sent, oldest first."""
        station_or_404(station)
        return [ReportOut.of(r) for r in store.report_log(station, limit)]

    @app.get("/readings")
    def get_readings(
        station: str | None = None,
        channel: str | None = None,
        start: Annotated[datetime | None, Query(description="inclusive, ISO 8601")] = None,
        end: Annotated[datetime | None, Query(description="exclusive, ISO 8601")] = None,
        kind: Annotated[list[RecordKind] | None, Query(description="default: reading")] = None,
        limit: Limit = 1000,
    ) -> list[RecordOut]:
        """Readings (or derived values, forecasts, gaps) by station, channel and time range."""
        rows = store.records(
            station=station,
            channel=channel,
            kinds=kind or ["reading"],
            start=_epoch(start),
            end=_epoch(end),
            limit=limit,
        )
        return [RecordOut.of(r) for r in rows]

    @app.get("/events")
    def get_events(
        station: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: Limit = 1000,
    ) -> list[RecordOut]:
        """Warning events raised by stations."""
        rows = store.records(
            station=station, kinds=("event",), start=_epoch(start), end=_epoch(end), limit=limit
        )
        return [RecordOut.of(r) for r in rows]

    @app.get("/config/status")
    def get_config_status() -> list[StationConfigOut]:
        """Desired vs reported configuration for every station."""
        return [station_config(s) for s in store.stations()]

    @app.get("/config/documents")
    def get_documents(scope: str | None = None) -> list[DocumentOut]:
        """Document versions, newest first within each scope."""
        return [DocumentOut.of(d) for d in store.documents(scope)]

    @app.post("/config/documents", status_code=201)
    def post_document(doc: DocumentIn) -> DocumentOut:
        """Sign the next version of a scope's document and publish it retained."""
        return DocumentOut.of(manager().push(doc.scope, doc.body))

    @app.get("/groups")
    def get_groups() -> dict[str, list[str]]:
        """Station groups and their members."""
        return store.groups()

    @app.put("/groups/{name}")
    def put_group(name: str, group: GroupIn) -> dict[str, list[str]]:
        """Replace a group's members."""
        store.set_group(name, group.stations)
        return {name: sorted(set(group.stations))}

    @app.get("/rollouts")
    def get_rollouts() -> list[RolloutOut]:
        """Staged rollouts, newest first."""
        return [RolloutOut.of(r) for r in store.rollouts()]

    @app.get("/rollouts/{rollout_id}")
    def get_rollout(rollout_id: str) -> RolloutOut:
        """One rollout."""
        found = store.rollout(rollout_id)
        if found is None:
            raise HTTPException(404, f"rollout {rollout_id!r} is not known")
        return RolloutOut.of(found)

    @app.post("/rollouts", status_code=201)
    def post_rollout(req: RolloutIn) -> RolloutOut:
        """Start a staged rollout: canaries first, everyone else once all canaries ack."""
        return RolloutOut.of(manager().start_rollout(req.scope, req.body, req.group))

    return app
