"""``roadside-fleet response ...``: the response chain from the command line.

``worker`` and ``sample`` work on the database directly (the worker is the process that sends;
``sample`` bootstraps the synthetic district); every other command goes through the API with an
operator's or approver's token (``--token`` or ``ROADSIDE_TOKEN``), so the API's roles and audit
log apply. Every command takes ``--json``. Exit codes: 0 ok, 1 runtime failure (API or database
unreachable, server error), 2 bad usage or input (the API refused the request).
"""

from __future__ import annotations

import base64
import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from fleet.errors import FleetError
from fleet.store import DEFAULT_URL, open_store

API = "http://127.0.0.1:8080"


class Refused(click.ClickException):
    """The API refused the request (bad input): exit code 2."""

    exit_code = 2


def _api_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--json", "as_json", is_flag=True, help="print the API's answer as JSON")(f)
    f = click.option(
        "--token",
        envvar="ROADSIDE_TOKEN",
        required=True,
        help="bearer token (`roadside-fleet token create`; env ROADSIDE_TOKEN)",
    )(f)
    return click.option("--api", default=API, show_default=True, help="controller API")(f)


def _call(
    api: str,
    token: str,
    method: str,
    path: str,
    body: Any = None,
    params: dict[str, Any] | None = None,
) -> Any:
    import httpx

    try:
        r = httpx.request(
            method,
            api.rstrip("/") + path,
            json=body,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(f"--api {api}: {exc}") from None
    is_json = r.headers.get("content-type", "").startswith("application/json")
    answer = r.json() if is_json and r.content else r.text
    if r.status_code >= 400:
        detail = answer.get("detail", r.text) if isinstance(answer, dict) else r.text
        cls = Refused if r.status_code < 500 else click.ClickException
        raise cls(f"{method} {path}: {detail}")
    return answer


def _show(answer: Any, as_json: bool, line: Callable[[Any], str]) -> None:
    if as_json:
        click.echo(json.dumps(answer, ensure_ascii=False))
    else:
        click.echo(line(answer))


def _warning_line(m: dict[str, Any]) -> str:
    return (
        f"{m['id']} {m['msg_type']} {m['status']} {m['state']} level={m['content']['level']} "
        f"cells={','.join(m['cells'])} identifier={m['identifier'] or '-'}"
    )


@click.group("response")
def response() -> None:
    """Risk register, graded response, CAP warnings, channels, drills, field work."""


@response.command()
@click.option(
    "--db", default=DEFAULT_URL, show_default=True, help="sqlite:///path or postgresql://..."
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="TOML file with a [response] table (channels, timings)",
)
def worker(db: str, config_path: Path | None) -> None:
    """Run the delivery worker: take in station events, send due deliveries, until SIGTERM."""
    from fleet.response.config import ResponseConfig, load_config
    from fleet.response.service import Response
    from roadside.clock import SystemClock

    try:
        config = load_config(config_path) if config_path else ResponseConfig()
        store = open_store(db)
        resp = Response(store, SystemClock(), config)
    except FleetError as exc:
        raise click.ClickException(str(exc)) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    resp.start()
    click.echo(f"response worker: {len(resp.outbox.channels)} channel(s) on {db}", err=True)
    stop.wait()
    resp.close()  # finishes and records the batch in flight
    store.close()


@response.command()
@click.option(
    "--db", default=DEFAULT_URL, show_default=True, help="sqlite:///path or postgresql://..."
)
@click.option("--json", "as_json", is_flag=True, help="print the counts as JSON")
def sample(db: str, as_json: bool) -> None:
    """Load the shipped SYNTHETIC sample district (cells, hazard points, key units, plan)."""
    from fleet.response.db import ResponseDB
    from fleet.response.grid import Grid
    from roadside.clock import SystemClock

    try:
        store = open_store(db)
        grid = Grid(ResponseDB(store))
        grid.load_sample("cli", SystemClock().now().timestamp())
        r = grid.register()
        store.close()
    except FleetError as exc:
        raise click.ClickException(str(exc)) from None
    counts = {"cells": len(r.cells), "hazards": len(r.hazards), "units": len(r.units)}
    _show(counts, as_json, lambda c: f"sample district loaded: {c}")


@response.command("import")
@click.argument("kind", type=click.Choice(["cells", "hazards", "units"]))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_api_options
def import_(kind: str, file: Path, api: str, token: str, as_json: bool) -> None:
    """Import FILE (GeoJSON, or CSV for cells and hazards) into the register (admin)."""
    path = {
        "cells": "/grid/cells/import",
        "hazards": "/grid/hazards/import",
        "units": "/units/import",
    }[kind]
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise Refused(f"{file}: cannot read: {exc}") from None
    out = _call(api, token, "POST", path, {"source": file.name, "text": text})
    _show(out, as_json, lambda o: f"{len(o)} {kind} imported (id -> version)")


@response.command()
@_api_options
def cells(api: str, token: str, as_json: bool) -> None:
    """Every cell's proposed response level and why."""
    out = _call(api, token, "GET", "/grid/proposals")
    _show(
        out,
        as_json,
        lambda ps: "\n".join(
            f"{p['cell']:<8} {p['level'] or '-':<4} {'; '.join(p['reasons'])}" for p in ps
        ),
    )


@response.command()
@click.argument("cell")
@click.argument("level", type=click.Choice(["IV", "III", "II", "I", "none"]))
@click.option("--note", default="", help="what the flood-control office said")
@_api_options
def decide(cell: str, level: str, note: str, api: str, token: str, as_json: bool) -> None:
    """Record the flood-control decision for CELL (approver)."""
    body = {"level": None if level == "none" else level, "note": note}
    out = _call(api, token, "POST", f"/grid/cells/{cell}/decision", body)
    _show(
        out,
        as_json,
        lambda d: f"{d['cell']}: level {d['level']} by {d['by']} (proposed {d['proposed']})",
    )


@response.command()
@click.option("--state", type=click.Choice(["draft", "approved", "published", "rejected"]))
@_api_options
def warnings(state: str | None, api: str, token: str, as_json: bool) -> None:
    """Warnings (CAP messages), oldest first."""
    out = _call(api, token, "GET", "/warnings", params={"state": state} if state else None)
    _show(out, as_json, lambda ms: "\n".join(_warning_line(m) for m in ms))


@response.command()
@click.option("--cell", "cells_", multiple=True, required=True, help="grid cell (repeatable)")
@click.option(
    "--signal",
    "signal_",
    required=True,
    type=click.Choice(["rainstorm", "waterlogging", "gale", "thunderstorm"]),
)
@click.option("--level", required=True, type=click.Choice(["IV", "III", "II", "I"]))
@click.option("--drill", default=None, help="draft under this drill (status Exercise)")
@_api_options
def draft(
    cells_: tuple[str, ...],
    signal_: str,
    level: str,
    drill: str | None,
    api: str,
    token: str,
    as_json: bool,
) -> None:
    """Write a warning by hand."""
    body = {"cells": list(cells_), "signal": signal_, "level": level, "drill": drill}
    _show(_call(api, token, "POST", "/warnings", body), as_json, _warning_line)


@response.command("from-cell")
@click.argument("cell")
@_api_options
def from_cell(cell: str, api: str, token: str, as_json: bool) -> None:
    """Draft what brings CELL's warning in line with its proposal."""
    _show(_call(api, token, "POST", f"/warnings/from-cell/{cell}"), as_json, _warning_line)


def _step(name: str, path: str, help_text: str) -> None:
    @response.command(name, help=help_text)
    @click.argument("key")
    @_api_options
    def cmd(key: str, api: str, token: str, as_json: bool) -> None:
        out = _call(api, token, "POST", path.format(key=key))
        m = out.get("message", out)
        _show(out, as_json, lambda _o: _warning_line(m))


_step("approve", "/warnings/{key}/approve", "Approve KEY (an approver who did not write it).")
_step("reject", "/warnings/{key}/reject", "Reject KEY.")
_step("publish", "/warnings/{key}/publish", "Publish approved KEY on every channel (one click).")
_step("cancel", "/warnings/{key}/cancel", "Draft the Cancel of published KEY.")


@response.command()
@click.argument("key")
@click.option("--level", type=click.Choice(["IV", "III", "II", "I"]), default=None)
@_api_options
def update(key: str, level: str | None, api: str, token: str, as_json: bool) -> None:
    """Draft an Update of published KEY (optionally at another level)."""
    out = _call(api, token, "POST", f"/warnings/{key}/update", {"level": level})
    _show(out, as_json, _warning_line)


@response.command()
@click.argument("key")
@_api_options
def status(key: str, api: str, token: str, as_json: bool) -> None:
    """Delivery status of KEY per channel and per key unit."""
    out = _call(api, token, "GET", f"/warnings/{key}/deliveries")

    def line(o: dict[str, Any]) -> str:
        rows = [f"{c}: {s}" for c, s in o["channels"].items()]
        for u in o["units"].values():
            rows.append(
                f"{u['unit']}: reached by {','.join(u['reached_by']) or '-'}; "
                f"acknowledged {'yes' if u['acknowledged'] else 'no'}"
                f"{'; escalated' if u['escalated'] else ''}"
            )
        return "\n".join(rows)

    _show(out, as_json, line)


@response.command()
@click.option("--message", default=None, help="only this warning")
@_api_options
def unreached(message: str | None, api: str, token: str, as_json: bool) -> None:
    """Key units no channel has reached yet."""
    out = _call(
        api, token, "GET", "/units/unreached", params={"message": message} if message else None
    )
    _show(
        out, as_json, lambda us: "\n".join(f"{u['unit']} {u['identifier']}" for u in us) or "none"
    )


@response.command("test-channels")
@click.option("--mode", type=click.Choice(["live", "drill"]), default="live", show_default=True)
@_api_options
def test_channels(mode: str, api: str, token: str, as_json: bool) -> None:
    """Link-test every channel of a mode."""
    out = _call(api, token, "POST", "/channels/test", params={"mode": mode})
    _show(
        out,
        as_json,
        lambda ts: "\n".join(
            f"{t['channel']:<16} {'ok' if t['ok'] else 'FAILED'} {t['detail']}" for t in ts
        ),
    )
    if any(not t["ok"] for t in out):
        raise SystemExit(1)


@response.group()
def drill() -> None:
    """Drills: the whole chain with CAP status Exercise."""


@drill.command("start")
@click.argument("name")
@_api_options
def drill_start(name: str, api: str, token: str, as_json: bool) -> None:
    """Open a drill named NAME; prints its id."""
    _show(_call(api, token, "POST", "/drills", {"name": name}), as_json, lambda d: d["id"])


@drill.command("end")
@click.argument("ident")
@_api_options
def drill_end(ident: str, api: str, token: str, as_json: bool) -> None:
    """End drill IDENT (its warnings can no longer be published)."""
    _show(_call(api, token, "POST", f"/drills/{ident}/end"), as_json, lambda d: f"{d['id']} ended")


@drill.command("report")
@click.argument("ident")
@_api_options
def drill_report(ident: str, api: str, token: str, as_json: bool) -> None:
    """Per message: approval, publication, deliveries, units reached and acknowledged."""
    out = _call(api, token, "GET", f"/drills/{ident}/report")
    _show(
        out,
        as_json,
        lambda r: "\n".join(
            f"{m['identifier'] or m['id']} {m['msg_type']} reached {m['reached']}/{m['units']} "
            f"acknowledged {m['acknowledged']}"
            for m in r["messages"]
        ),
    )


@response.command()
@click.argument("name")
@click.option("--lon", type=float, required=True)
@click.option("--lat", type=float, required=True)
@click.option("--wind-from", type=float, default=None, help="degrees the wind blows from")
@click.option("--speed", type=float, default=None, help="m/s")
@click.option("--sigma", type=float, default=None, help="σθ of the last 10 min, degrees")
@_api_options
def incident(
    name: str,
    lon: float,
    lat: float,
    wind_from: float | None,
    speed: float | None,
    sigma: float | None,
    api: str,
    token: str,
    as_json: bool,
) -> None:
    """Open an incident; prints its downwind sector (GeoJSON with --json)."""
    wind = None
    if wind_from is not None or speed is not None or sigma is not None:
        if None in (wind_from, speed, sigma):
            raise click.UsageError("--wind-from, --speed and --sigma go together")
        wind = {"from_deg": wind_from, "speed_ms": speed, "sigma_deg": sigma}
    out = _call(
        api, token, "POST", "/incidents", {"name": name, "lon": lon, "lat": lat, "wind": wind}
    )

    def line(o: dict[str, Any]) -> str:
        if not o["sector"]:
            return f"{o['id']}: {o['detail']}"
        props = [f["properties"] for f in o["sector"]["features"]]
        inside = [p.get("code") or p.get("id") for p in props if p["kind"] in ("cell", "key_unit")]
        return (
            f"{o['id']}: half-angle {props[0]['half_angle_deg']:.0f}°; inside {', '.join(inside)}"
        )

    _show(out, as_json, line)


@response.command()
@click.option("--lon", type=float, required=True)
@click.option("--lat", type=float, required=True)
@click.option("--depth", type=click.Choice(["none", "<15cm", "15-30cm", ">30cm"]), required=True)
@click.option("--note", default="")
@click.option("--photo", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@_api_options
def report(
    lon: float,
    lat: float,
    depth: str,
    note: str,
    photo: Path | None,
    api: str,
    token: str,
    as_json: bool,
) -> None:
    """Send a field report (a grid worker's observation) into its cell."""
    b64 = base64.b64encode(photo.read_bytes()).decode() if photo else None
    body = {"lon": lon, "lat": lat, "depth_class": depth, "note": note, "photo_base64": b64}
    out = _call(api, token, "POST", "/reports", body)
    _show(out, as_json, lambda o: f"{o['id']} in {o['cell']}: proposed {o['proposal']['level']}")


@response.command("after-action")
@click.argument("cell")
@click.option("--start", type=float, required=True, help="epoch seconds")
@click.option("--end", type=float, required=True, help="epoch seconds")
@_api_options
def after_action(cell: str, start: float, end: float, api: str, token: str, as_json: bool) -> None:
    """The after-action report of CELL over [start, end)."""
    out = _call(
        api, token, "GET", f"/reports/after-action/{cell}", params={"start": start, "end": end}
    )
    _show(
        out,
        as_json,
        lambda o: (
            f"{o['cell']}: peak rain 1 h {o['peak_rain_1h']}, peak depth {o['peak_depth']}, "
            f"{len(o['warnings'])} warning(s), {len(o['decisions'])} decision(s), "
            f"{sum(a['state'] == 'done' for a in o['actions'])}/{len(o['actions'])} actions done"
        ),
    )


@response.command("partner-add")
@click.argument("name")
@_api_options
def partner_add(name: str, api: str, token: str, as_json: bool) -> None:
    """Create a partner department and print its read-only token (shown once; admin)."""
    _show(_call(api, token, "POST", "/partners", {"name": name}), as_json, lambda o: o["token"])
