"""Command line of roadside-fleet (thin layer over the package's functions)."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from fleet.auth import ROLES, Auth, Principal
from fleet.errors import FleetError
from fleet.keys import generate_keypair, load_signing_key
from fleet.response.cli import response as response_group
from fleet.rollout import RolloutPolicy
from fleet.service import DEFAULT_CLIENT_ID, FleetService
from fleet.store import DEFAULT_URL, open_store
from roadside import wire
from roadside.clock import SystemClock
from roadside.errors import RoadsideError
from roadside.exitcodes import FAILURE, click_error, fail


def _host_port(value: str, option: str, default_port: int) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host:
        host, port = value, str(default_port)
    try:
        number = int(port)
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected host:port", param_hint=option) from None
    if not 0 < number < 65536:
        raise click.BadParameter(f"{value!r}: port out of range", param_hint=option)
    return host, number


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="roadside")
def main() -> None:
    """The fleet controller: ingest, station registry, signed configuration rollout."""


@main.command()
@click.option(
    "--db", default=DEFAULT_URL, show_default=True, help="sqlite:///path or postgresql://..."
)
@click.option("--broker", default="127.0.0.1:8883", show_default=True, help="MQTT broker host:port")
@click.option("--ca", type=click.Path(dir_okay=False), required=True, help="CA certificate (PEM)")
@click.option("--cert", type=click.Path(dir_okay=False), required=True, help="controller cert")
@click.option("--key", type=click.Path(dir_okay=False), required=True, help="controller TLS key")
@click.option(
    "--signing-key",
    type=click.Path(dir_okay=False),
    default=None,
    help="Ed25519 key from `keygen` (without it the controller ingests but cannot push)",
)
@click.option(
    "--client-id",
    default=DEFAULT_CLIENT_ID,
    show_default=True,
    help="MQTT client id; stable across restarts, distinct per process sharing the load",
)
@click.option("--http", default="127.0.0.1:8080", show_default=True, help="API host:port or off")
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    help="Host header the API answers (repeat; default: 127.0.0.1, localhost, ::1 and --http's)",
)
@click.option("--retry-s", default=60.0, show_default=True, help="resend unanswered documents")
@click.option("--canary-timeout-s", default=600.0, show_default=True, help="halt if canaries wait")
@click.option("--tick-s", default=5.0, show_default=True, help="rollout/retry check period")
@click.option(
    "--enroll-dir",
    type=click.Path(file_okay=False),
    help="fleet CA folder: serve /enroll (stations get --broker; needs --signing-key)",
)
@click.option(
    "--broker-admin-cert",
    type=click.Path(dir_okay=False),
    help="certificate of a broker client in role broker-admin: enrolled stations are admitted "
    "at the broker (dynamic security); one per controller process",
)
@click.option(
    "--broker-admin-key", type=click.Path(dir_okay=False), help="its key (with --broker-admin-cert)"
)
@click.option("-v", "--verbose", is_flag=True, help="log at INFO")
def run(
    db: str,
    broker: str,
    ca: str,
    cert: str,
    key: str,
    signing_key: str | None,
    client_id: str,
    http: str,
    allowed_hosts: tuple[str, ...],
    retry_s: float,
    canary_timeout_s: float,
    tick_s: float,
    enroll_dir: str | None,
    broker_admin_cert: str | None,
    broker_admin_key: str | None,
    verbose: bool,
) -> None:
    """Run the controller: ingest through the shared subscription, serve the HTTP API."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    host, port = _host_port(broker, "--broker", 8883)
    settings = wire.BrokerSettings(host, port, Path(ca), Path(cert), Path(key))
    policy = RolloutPolicy(canary_timeout_s=canary_timeout_s, retry_s=retry_s)
    if (broker_admin_cert is None) != (broker_admin_key is None):
        raise click.UsageError("--broker-admin-cert and --broker-admin-key go together")
    if enroll_dir and signing_key is None:
        raise click.UsageError("--enroll-dir needs --signing-key (stations pin its public half)")
    admin = (
        wire.BrokerSettings(host, port, Path(ca), Path(broker_admin_cert), Path(broker_admin_key))
        if broker_admin_cert and broker_admin_key
        else None
    )
    try:
        signer = load_signing_key(Path(signing_key)) if signing_key else None
        store = open_store(db)
        from fleet.response.db import ResponseDB
        from fleet.response.grid import Grid

        service = FleetService(
            store,
            SystemClock(),
            settings,
            signer,
            client_id=client_id,
            policy=policy,
            tick_s=tick_s,
            cells=Grid(ResponseDB(store)).assigned_cells,  # a status naming another is refused
        )
        service.start()
    except RoadsideError as exc:  # bad key or TLS files, unreachable database or broker
        raise click_error(exc) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = None
    try:
        if http != "off":
            import uvicorn

            from fleet.api import DEFAULT_ALLOWED_HOSTS, create_app
            from fleet.auth import Auth

            api_host, api_port = _host_port(http, "--http", 8080)
            hosts = allowed_hosts or (*DEFAULT_ALLOWED_HOSTS, api_host)
            app = create_app(
                store, service.config, service.health, auth=Auth(store), allowed_hosts=hosts
            )
            if enroll_dir and signer is not None:
                from fleet.broker_admin import BrokerAdmin
                from fleet.enroll import attach

                admit = BrokerAdmin(admin).admit if admin is not None else None
                if admit is None:
                    click.echo(
                        "warning: no --broker-admin-cert: enrolled stations must be registered "
                        "at the broker by its admin (fleet/mosquitto/README.md)",
                        err=True,
                    )
                attach(app, Path(enroll_dir), (host, port), signer, admit)
            server = uvicorn.Server(
                uvicorn.Config(app, host=api_host, port=api_port, log_level="warning")
            )
            # in a thread, so uvicorn installs no signal handlers: SIGTERM must reach the
            # clean stop below (leave the share, commit what was received, end the session)
            thread = threading.Thread(target=server.run, name="fleet-http", daemon=True)
            thread.start()
            while not server.started and thread.is_alive():
                time.sleep(0.05)
            if not server.started:  # uvicorn logged why (the port is taken) and gave up
                raise fail(f"--http {http}: cannot listen there (is the port taken?)", FAILURE)
        click.echo(f"fleet controller {client_id}: ingesting from {host}:{port}", err=True)
        stop.wait()
    finally:
        if server is not None:
            server.should_exit = True
        service.stop()
        store.close()


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="replace an existing key (stations must be re-keyed)")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
def keygen(directory: Path, force: bool, as_json: bool) -> None:
    """Create the fleet's Ed25519 signing key pair in DIRECTORY (the .pub goes to stations)."""
    try:
        pair = generate_keypair(directory, force=force)
    except FleetError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({k: str(v) for k, v in asdict(pair).items()}))
    else:
        click.echo(f"private key {pair.private} (keep it on the controller)")
        click.echo(f"public key  {pair.public} (provision it onto every station)")
        click.echo(f"key id      {pair.key_id}")


@main.command()
@click.option(
    "--db", default=DEFAULT_URL, show_default=True, help="sqlite:///path or postgresql://..."
)
@click.option("--json", "as_json", is_flag=True, help="print the registry as JSON")
def stations(db: str, as_json: bool) -> None:
    """List the stations the controller knows, from the database."""
    try:
        store = open_store(db, create=False)
        rows = store.stations()
        store.close()
    except FleetError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps([_plain(asdict(r)) for r in rows], indent=1))
        return
    for r in rows:
        state = {True: "online", False: "offline", None: "?"}[r.online]
        click.echo(
            f"{r.station:<16} {state:<8} last_seq={r.last_seq} records={r.records} "
            f"backlog={r.backlog} software={r.software or '-'} cell={r.grid_cell or '-'}"
        )


@main.command()
@click.argument("scope")
@click.argument("body", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--api", default="http://127.0.0.1:8080", show_default=True, help="controller API")
@click.option("--stage", "group", default=None, help="staged rollout: this group goes first")
@click.option(
    "--token",
    envvar="ROADSIDE_TOKEN",
    required=True,
    help="bearer token of an operator (`roadside-fleet token create`; env ROADSIDE_TOKEN)",
)
@click.option("--json", "as_json", is_flag=True, help="print the API's answer as JSON")
def push(scope: str, body: Path, api: str, group: str | None, token: str, as_json: bool) -> None:
    """Push BODY (a JSON file of qc/derived/warnings/sampling sections) to SCOPE.

    SCOPE is fleet, grid:<cell> or station:<id>. With --stage the document goes to the group's
    stations in scope first and to everyone else once they have all acked.
    """
    import httpx

    try:
        content = json.loads(body.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{body}: not a JSON document: {exc}") from None
    request: dict[str, Any] = {"scope": scope, "body": content}
    path = "/config/documents" if group is None else "/rollouts"
    if group is not None:
        request["group"] = group
    try:
        resp = httpx.post(
            api.rstrip("/") + path,
            json=request,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(f"--api {api}: {exc}") from None
    answer = (
        resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
    )
    if resp.status_code >= 400:
        detail = answer.get("detail", resp.text) if isinstance(answer, dict) else resp.text
        raise click.ClickException(f"{scope}: {detail}")
    if as_json:
        click.echo(json.dumps(answer))
    elif group is None:
        click.echo(f"{answer['scope']} version {answer['version']} pushed ({answer['hash'][:12]})")
    else:
        click.echo(
            f"rollout {answer['id']}: {answer['scope']} version {answer['version']} "
            f"to canaries {', '.join(answer['canaries'])}"
        )


@main.group()
def user() -> None:
    """Users of the controller's API (roles: viewer, operator, approver, admin)."""


@user.command("add")
@click.argument("name")
@click.option(
    "--role", "roles", multiple=True, required=True, type=click.Choice(ROLES), help="repeatable"
)
@click.option("--password-stdin", is_flag=True, help="read the password from stdin (one line)")
@click.option("--no-password", is_flag=True, help="token-only user (scripts): cannot log in")
@click.option(
    "--db", default=DEFAULT_URL, show_default=True, help="sqlite:///path or postgresql://..."
)
@click.option("--json", "as_json", is_flag=True, help="print the user as JSON")
def user_add(
    name: str,
    roles: tuple[str, ...],
    password_stdin: bool,
    no_password: bool,
    db: str,
    as_json: bool,
) -> None:
    """Create user NAME with its roles (asks for a password unless --no-password)."""
    if no_password and password_stdin:
        raise click.UsageError("--no-password and --password-stdin exclude each other")
    password: str | None = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif not no_password:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    with _auth(db) as auth:
        auth.add_user(name, password, roles)
    if as_json:
        click.echo(json.dumps({"name": name, "roles": sorted(roles)}))
    else:
        click.echo(f"user {name} added with roles {', '.join(sorted(roles))}")


@user.command("list")
@click.option(
    "--db", default=DEFAULT_URL, show_default=True, help="sqlite:///path or postgresql://..."
)
@click.option("--json", "as_json", is_flag=True, help="print the users as JSON")
def user_list(db: str, as_json: bool) -> None:
    """List the users and their roles."""
    with _auth(db) as auth:
        users = auth.users()
    if as_json:
        click.echo(json.dumps(users))
        return
    for u in users:
        flags = ("" if u["password"] else " token-only") + (" disabled" if u["disabled"] else "")
        click.echo(f"{u['name']:<20} {','.join(u['roles'])}{flags}")


@main.group()
def token() -> None:
    """Bearer tokens for scripts (`Authorization: Bearer <token>`)."""


@token.command("create")
@click.argument("name")
@click.option("--label", default="", help="what the token is for")
@click.option(
    "--db", default=DEFAULT_URL, show_default=True, help="sqlite:///path or postgresql://..."
)
@click.option("--json", "as_json", is_flag=True, help="print the token as JSON")
def token_create(name: str, label: str, db: str, as_json: bool) -> None:
    """Issue a token for user NAME and print it (it is shown only this once)."""
    with _auth(db) as auth:
        issued = auth.issue_token(name, label)
        auth.audit(Principal("cli", frozenset({"admin"}), "cli"), "token_create", name, {})
    click.echo(json.dumps({"name": name, "label": label, "token": issued}) if as_json else issued)


@token.command("revoke")
@click.argument("name")
@click.option("--label", default=None, help="only the tokens with this label")
@click.option(
    "--db", default=DEFAULT_URL, show_default=True, help="sqlite:///path or postgresql://..."
)
def token_revoke(name: str, label: str | None, db: str) -> None:
    """Revoke user NAME's tokens."""
    with _auth(db) as auth:
        revoked = auth.revoke_tokens(name, label)
        auth.audit(Principal("cli", frozenset({"admin"}), "cli"), "token_revoke", name, {})
    click.echo(f"{revoked} token(s) of {name} revoked")


@contextlib.contextmanager
def _auth(db: str) -> Iterator[Auth]:
    """The user database in the store ``db``; fleet errors become one-line CLI errors."""
    try:
        store = open_store(db)
    except FleetError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        yield Auth(store)
    except FleetError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


main.add_command(response_group)
