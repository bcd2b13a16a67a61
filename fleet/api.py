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

    POST /auth/login  POST /auth/logout  GET /auth/me      console sessions (cookie + CSRF)
    GET  /users  POST /users  POST /users/{name}/tokens      user admin (admin role)
    GET  /audit                          every change: who, how, what (admin role)

Every route needs a caller (``Authorization: Bearer <token>`` or a console session, see
:mod:`fleet.auth`): reading needs ``viewer``, pushing documents, rollouts and groups ``operator``,
users and the audit log ``admin``. Requests naming a Host outside the allow-list and bodies over
the size limit are refused before any route runs.

Times are ISO 8601 UTC. Every error is ``{"code": "<stable_snake_code>", "detail": "<one line>"}``:
400 for a bad document, scope or rollout, 401 unauthenticated, 403 forbidden (role or CSRF), 404
unknown station or rollout, 413 body or document too large, 421 Host not allowed, 422 a malformed
request, 503 when the controller cannot push (no signing key or no broker) or the database is
unreachable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_type_hints

import anyio
import msgspec
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleet import artifacts, enroll
from fleet.auth import (
    AUDITED_KEY,
    PRINCIPAL_KEY,
    SESSION_COOKIE,
    SESSION_TTL_S,
    UNSAFE_METHODS,
    Auth,
    Principal,
    api_error,
    audit,
    require,
)
from fleet.console.router import console_router
from fleet.documents import ScopeStatus, config_status
from fleet.errors import (
    AuthError,
    BrokerError,
    DocumentError,
    DocumentTooLarge,
    FleetError,
    KeyFileError,
    RolloutError,
    StoreError,
)
from fleet.response.api import response_router
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


def _model_of(shape: type, name: str, doc: str, **override: tuple[Any, Any]) -> type[BaseModel]:
    """A pydantic response model with the fields, types and order of a msgspec Struct or a
    dataclass (``station`` first; every field present in a response; ``override``: name ->
    (type, Field) where the API shows a field otherwise), so FastAPI's OpenAPI documents what
    the code declares."""
    if dataclasses.is_dataclass(shape):
        hints = get_type_hints(shape)
        types = {f.name: hints[f.name] for f in dataclasses.fields(shape)}
    else:
        types = {f.name: f.type for f in msgspec.structs.fields(shape)}
    first = sorted(types, key=lambda n: n != "station")  # the station first, as in the registry
    spec: dict[str, Any] = {n: override.get(n, (types[n], ...)) for n in first}
    return create_model(name, __doc__=doc, **spec)


StationOut: Any = _model_of(
    StationInfo,
    "StationOut",
    "A station in the registry.",
    first_seen=(datetime, ...),
    last_seen=(datetime, ...),
    clock_offset_s=(float | None, Field(description="station clock minus controller clock")),
    groups=(list[str], ...),
)
"""Generated from :class:`fleet.store.StationInfo` (times as ISO 8601)."""


def _station_out(s: StationInfo) -> dict[str, Any]:
    return {
        **{f.name: getattr(s, f.name) for f in dataclasses.fields(s)},
        "first_seen": _iso(s.first_seen),
        "last_seen": _iso(s.last_seen),
    }


RecordOut: Any = _model_of(
    StoredRecord,
    "RecordOut",
    "A stored reading, derived value, forecast, gap or event: the contract's record (absent "
    "text is an empty string) plus station, lane and the controller's receive time.",
)
"""Generated from :class:`fleet.store.StoredRecord` (the contract's :class:`~roadside.contract.
Record` plus its stored extras): the API never lists the record's fields itself."""


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


class LoginIn(BaseModel):
    """A console login."""

    name: str
    password: str


class UserIn(BaseModel):
    """A new user; without a password it can only use tokens (scripts)."""

    name: str
    roles: list[str]
    password: str | None = None


class TokenIn(BaseModel):
    """What a new token is for (shown in the audit log)."""

    label: str = ""


DEFAULT_ALLOWED_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_BODY_BYTES = 2 * 1024 * 1024
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    422: "invalid_request",
    503: "unavailable",
}
_FLEET_CODES: tuple[tuple[type[FleetError], int, str], ...] = (
    (StoreError, 503, "store_unavailable"),
    (BrokerError, 503, "broker_unavailable"),
    (KeyFileError, 503, "no_signing_key"),
    (DocumentTooLarge, 413, "document_too_large"),
    (DocumentError, 400, "bad_document"),
    (RolloutError, 400, "bad_rollout"),
    (AuthError, 400, "bad_user"),
)


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"code": code, "detail": detail}, status_code=status)


async def _send_error(send: Send, status: int, code: str, detail: str) -> None:
    body = JSONResponse({"code": code, "detail": detail}).body
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _host_of(header: str) -> str:
    header = header.strip().lower()
    if header.startswith("["):  # [::1]:8080
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class GuardMiddleware:
    """Before any route: the Host must be allowed (DNS rebinding), the body within the limit
    (declared or streamed); after an unsafe request succeeds: an audit entry if the route wrote
    none."""

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str], max_body_bytes: int) -> None:
        self.app = app
        self.hosts = {h.lower().strip("[]") for h in allowed_hosts}
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = _host_of(headers.get("host", ""))
        if "*" not in self.hosts and host not in self.hosts:
            await _send_error(send, 421, "host_not_allowed", f"Host {host!r} is not served here")
            return
        declared = headers.get("content-length", "")
        if declared and (not declared.isdigit() or int(declared) > self.max_body):
            await _send_error(
                send, 413, "body_too_large", f"request body over {self.max_body} bytes"
            )
            return
        seen = 0
        started = too_large = False
        status = 0

        async def limited_receive() -> Message:
            nonlocal seen, too_large, started
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    # answer now; the route sees a client that went away and its output is dropped
                    too_large = True
                    if not started:
                        started = True
                        await _send_error(
                            send, 413, "body_too_large", f"request body over {self.max_body} bytes"
                        )
                    return {"type": "http.disconnect"}
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started, status
            if too_large:
                return
            if message["type"] == "http.response.start":
                started, status = True, int(message["status"])
            await send(message)

        try:
            await self.app(scope, limited_receive, watching_send)
        except Exception:
            if too_large:
                return
            raise
        if too_large:
            return
        principal: Principal | None = scope.get(PRINCIPAL_KEY)
        auth: Auth | None = getattr(getattr(scope.get("app"), "state", None), "auth", None)
        if (
            scope["method"] in UNSAFE_METHODS
            and status < 400
            and principal is not None
            and auth is not None
            and not scope.get(AUDITED_KEY)
        ):
            await anyio.to_thread.run_sync(
                auth.audit, principal, scope["method"].lower(), scope["path"], {"status": status}
            )


def _one_line(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def create_app(
    store: Store,
    config: ConfigManager | None = None,
    health: Callable[[], dict[str, Any]] | None = None,
    *,
    auth: Auth,
    allowed_hosts: Sequence[str] = DEFAULT_ALLOWED_HOSTS,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The API over a store; ``config`` (None: read-only) pushes documents and runs rollouts.

    ``auth`` holds the users; ``allowed_hosts`` the Host names this API answers (``"*"``: any).
    """
    app = FastAPI(
        title="Roadside fleet controller",
        version="1.0",
        description="Stations, readings, events, and configuration as desired vs reported state.",
    )
    app.state.auth = auth
    app.add_middleware(
        GuardMiddleware, allowed_hosts=tuple(allowed_hosts), max_body_bytes=max_body_bytes
    )

    @app.exception_handler(FleetError)
    def _fleet_error(_: Request, exc: FleetError) -> JSONResponse:
        for kind, status, code in _FLEET_CODES:
            if isinstance(exc, kind):
                resp = _error(status, code, str(exc))
                if isinstance(exc, DocumentError):  # the code a station would nack it with
                    resp = JSONResponse(
                        {"code": code, "nack": exc.code, "detail": str(exc)}, status_code=status
                    )
                return resp
        return _error(400, "refused", str(exc))

    @app.exception_handler(StarletteHTTPException)
    def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict) and "code" in exc.detail:
            resp = _error(exc.status_code, exc.detail["code"], str(exc.detail["detail"]))
        else:
            code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
            resp = _error(exc.status_code, code, str(exc.detail))
        if exc.status_code == 401:
            resp.headers["WWW-Authenticate"] = "Bearer"
        return resp

    @app.exception_handler(RequestValidationError)
    def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, "invalid_request", _one_line(exc))

    @app.exception_handler(RecursionError)
    def _too_deep(_: Request, exc: RecursionError) -> JSONResponse:
        return _error(400, "too_deep", "the request nests too deep to parse")

    @app.exception_handler(Exception)
    def _internal(_: Request, exc: Exception) -> JSONResponse:
        return _error(500, "internal_error", f"internal error ({type(exc).__name__})")

    viewer = APIRouter(dependencies=[Depends(require("viewer"))])
    operator = [Depends(require("operator"))]

    def manager() -> ConfigManager:
        if config is None:
            raise api_error(
                503, "cannot_push", "this controller cannot push: it has no signing key or broker"
            )
        return config

    def station_or_404(station: str) -> StationInfo:
        info = store.station(station)
        if info is None:
            raise api_error(404, "unknown_station", f"station {station!r} is not known")
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

    @app.post("/auth/login")
    def login(req: LoginIn, request: Request, response: Response) -> dict[str, Any]:
        """Open a console session: sets the session cookie; send ``csrf_token`` back as the
        X-CSRF-Token header on every unsafe request."""
        try:
            session = auth.login(req.name, req.password)
        except AuthError as exc:
            auth.audit(Principal(req.name[:64], frozenset(), "password"), "login_failed", "")
            raise api_error(401, "bad_credentials", str(exc)) from None
        response.set_cookie(
            SESSION_COOKIE,
            session.id,
            max_age=SESSION_TTL_S,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        principal = auth.by_session(session.id)
        roles = sorted(principal[0].roles) if principal else []
        return {"name": session.name, "roles": roles, "csrf_token": session.csrf}

    @app.post("/auth/logout", status_code=204)
    def logout(request: Request, response: Response) -> None:
        """End the console session."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            auth.logout(cookie)
        response.delete_cookie(SESSION_COOKIE)

    @app.get("/auth/me")
    def me(principal: Annotated[Principal, Depends(require("viewer"))]) -> dict[str, Any]:
        """Who is calling, with which roles, and how."""
        return {"name": principal.name, "roles": sorted(principal.roles), "via": principal.via}

    @app.get("/users", dependencies=[Depends(require("admin"))])
    def get_users() -> list[dict[str, Any]]:
        """Every user and its roles."""
        return auth.users()

    @app.post("/users", status_code=201, dependencies=[Depends(require("admin"))])
    def post_user(user: UserIn, request: Request) -> dict[str, Any]:
        """Create a user."""
        auth.add_user(user.name, user.password, user.roles)
        audit(request, "user_add", user.name, {"roles": sorted(user.roles)})
        return {"name": user.name, "roles": sorted(user.roles)}

    @app.post("/users/{name}/tokens", status_code=201, dependencies=[Depends(require("admin"))])
    def post_token(name: str, req: TokenIn, request: Request) -> dict[str, str]:
        """Issue a bearer token for a user (shown once)."""
        token = auth.issue_token(name, req.label)
        audit(request, "token_create", name, {"label": req.label})
        return {"name": name, "label": req.label, "token": token}

    @app.delete("/users/{name}/tokens", dependencies=[Depends(require("admin"))])
    def delete_tokens(name: str, request: Request) -> dict[str, int]:
        """Revoke every token of a user."""
        revoked = auth.revoke_tokens(name)
        audit(request, "token_revoke", name, {"revoked": revoked})
        return {"revoked": revoked}

    @app.get("/audit", dependencies=[Depends(require("admin"))])
    def get_audit(limit: Limit = 1000) -> list[dict[str, Any]]:
        """The newest changes, oldest first."""
        return [
            {
                "time": _iso(e.time),
                "principal": e.principal,
                "via": e.via,
                "action": e.action,
                "target": e.target,
                "detail": e.detail,
            }
            for e in auth.audit_log(limit)
        ]

    @app.get("/livez")
    def livez() -> dict[str, Any]:
        """Unauthenticated liveness for process supervisors: no data, only up and connected."""
        h = health() if health else {}
        return {"ok": True, "broker_connected": bool(h.get("broker_connected", False))}

    @viewer.get("/health")
    def get_health() -> dict[str, Any]:
        """Liveness, broker connection and ingest counters."""
        return {"ok": True, "stations": len(store.stations()), **(health() if health else {})}

    @viewer.get("/stations", response_model=list[StationOut])
    def get_stations() -> list[dict[str, Any]]:
        """Every station the controller has heard from."""
        return [_station_out(s) for s in store.stations()]

    @viewer.get("/stations/{station}", response_model=StationOut)
    def get_station(station: str) -> dict[str, Any]:
        """One station."""
        return _station_out(station_or_404(station))

    @viewer.get("/stations/{station}/config")
    def get_station_config(station: str) -> StationConfigOut:
        """Desired vs reported configuration of one station."""
        return station_config(station_or_404(station))

    @viewer.get("/stations/{station}/config/log")
    def get_station_config_log(station: str, limit: Limit = 1000) -> list[ReportOut]:
        """Every ack and nack the station sent, oldest first."""
        station_or_404(station)
        return [ReportOut.of(r) for r in store.report_log(station, limit)]

    @viewer.get("/readings", response_model=list[RecordOut])
    def get_readings(
        station: str | None = None,
        channel: str | None = None,
        start: Annotated[datetime | None, Query(description="inclusive, ISO 8601")] = None,
        end: Annotated[datetime | None, Query(description="exclusive, ISO 8601")] = None,
        kind: Annotated[list[RecordKind] | None, Query(description="default: reading")] = None,
        limit: Limit = 1000,
    ) -> list[dict[str, Any]]:
        """Readings (or derived values, forecasts, gaps) by station, channel and time range."""
        rows = store.records(
            station=station,
            channel=channel,
            kinds=kind or ["reading"],
            start=_epoch(start),
            end=_epoch(end),
            limit=limit,
        )
        return [msgspec.structs.asdict(r) for r in rows]

    @viewer.get("/events", response_model=list[RecordOut])
    def get_events(
        station: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: Limit = 1000,
    ) -> list[dict[str, Any]]:
        """Warning events raised by stations."""
        rows = store.records(
            station=station, kinds=("event",), start=_epoch(start), end=_epoch(end), limit=limit
        )
        return [msgspec.structs.asdict(r) for r in rows]

    @viewer.get("/config/status")
    def get_config_status() -> list[StationConfigOut]:
        """Desired vs reported configuration for every station."""
        return [station_config(s) for s in store.stations()]

    @viewer.get("/config/documents")
    def get_documents(scope: str | None = None) -> list[DocumentOut]:
        """Document versions, newest first within each scope."""
        return [DocumentOut.of(d) for d in store.documents(scope)]

    @app.post("/config/documents", status_code=201, dependencies=operator)
    def post_document(doc: DocumentIn, request: Request) -> DocumentOut:
        """Sign the next version of a scope's document and publish it retained."""
        pushed = manager().push(doc.scope, doc.body)
        audit(
            request, "document_push", pushed.scope, {"version": pushed.version, "hash": pushed.hash}
        )
        return DocumentOut.of(pushed)

    @viewer.get("/groups")
    def get_groups() -> dict[str, list[str]]:
        """Station groups and their members."""
        return store.groups()

    @app.put("/groups/{name}", dependencies=operator)
    def put_group(name: str, group: GroupIn, request: Request) -> dict[str, list[str]]:
        """Replace a group's members."""
        store.set_group(name, group.stations)
        audit(request, "group_set", name, {"stations": sorted(set(group.stations))})
        return {name: sorted(set(group.stations))}

    @viewer.get("/rollouts")
    def get_rollouts() -> list[RolloutOut]:
        """Staged rollouts, newest first."""
        return [RolloutOut.of(r) for r in store.rollouts()]

    @viewer.get("/rollouts/{rollout_id}")
    def get_rollout(rollout_id: str) -> RolloutOut:
        """One rollout."""
        found = store.rollout(rollout_id)
        if found is None:
            raise api_error(404, "unknown_rollout", f"rollout {rollout_id!r} is not known")
        return RolloutOut.of(found)

    @app.post("/rollouts", status_code=201, dependencies=operator)
    def post_rollout(req: RolloutIn, request: Request) -> RolloutOut:
        """Start a staged rollout: canaries first, everyone else once all canaries ack."""
        started = manager().start_rollout(req.scope, req.body, req.group)
        audit(
            request, "rollout_start", started.scope, {"id": started.id, "version": started.version}
        )
        return RolloutOut.of(started)

    app.include_router(viewer)
    app.include_router(enroll.router)  # /enroll/...: state in app.state.enrollment
    app.include_router(artifacts.router)  # /artifacts/...: app.state.artifacts
    app.include_router(response_router(store))
    app.include_router(console_router(store, auth))
    return app
