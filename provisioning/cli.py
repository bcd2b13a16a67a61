"""Command line of roadside-provisioning (thin layer over the package's functions)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="roadside")
def main() -> None:
    """The field technician's tool: find, check and commission sensors and stations."""


@main.command("read")
@click.option(
    "--port", required=True, help="Serial device path, or tcp://host:port for Modbus TCP."
)
@click.option(
    "--profile", "profile", required=True, help="Profile name (see drivers/profiles) or file."
)
@click.option(
    "--slave", type=click.IntRange(0, 247), help="Slave/device address (default: profile's)."
)
@click.option(
    "--count",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Polls to make; 0 reads until interrupted.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds between polls (on clock boundaries).",
)
@click.option("--baudrate", type=click.IntRange(min=1), help="Override the profile's baud rate.")
@click.option("--timeout", type=click.FloatRange(min=0.01), help="Answer timeout in seconds.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per reading per line.")
def read_cmd(
    port: str,
    profile: str,
    slave: int | None,
    count: int,
    interval: float,
    baudrate: int | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Print live, decoded readings from one device.

    Exit codes: 0 some good reading, 1 none, 2 usage, 3 unknown profile, 4 malformed profile,
    5 port missing, 6 port not permitted, 7 port unusable.
    """
    from provisioning.read import (
        EXIT_NO_READING,
        ReadError,
        read_device,
        reading_json,
        reading_line,
    )
    from roadside.clock import SystemClock

    line = reading_json if as_json else reading_line
    last: list[str] = []

    def show(batch: list) -> None:
        for r in batch:
            click.echo(line(r))
            if not r.ok and r.detail:
                last[:] = [f"{r.status.value}: {r.detail}"]

    try:
        good = read_device(
            port,
            profile,
            clock=SystemClock(),
            on_batch=show,
            slave=slave,
            count=count,
            interval_s=interval,
            baudrate=baudrate,
            timeout_s=timeout,
        )
    except ReadError as exc:
        raise _failure(str(exc), exc.exit_code) from None
    except KeyboardInterrupt:
        return
    if not good:
        reason = last[0] if last else "no answer"
        raise _failure(f"{port}: no good reading ({reason})", EXIT_NO_READING)


def _failure(message: str, exit_code: int) -> click.ClickException:
    """A one-line error with its own exit code."""
    err = click.ClickException(message)
    err.exit_code = exit_code  # type: ignore[misc]
    return err


def _ids(text: str) -> tuple[int, ...]:
    """``1-247`` or ``1,2,10-20`` as addresses."""
    out: set[int] = set()
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            first, last = int(lo), int(hi) if sep else int(lo)
            if not 0 <= first <= last <= 247:
                raise ValueError
            out.update(range(first, last + 1))
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected addresses like 1-247 or 1,2,10-20") from None
    return tuple(sorted(out))


@main.command("ports")
@click.argument("extra", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
def ports_cmd(extra: tuple[str, ...], as_json: bool) -> None:
    """List serial ports: USB vendor:product, serial number, and which process holds each.

    EXTRA paths (pty links, /dev/serial/by-id/...) are listed too. Exit codes: 0 ok.
    """
    import json

    from provisioning.ports import list_ports

    found = list_ports(extra)
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in found]))
        return
    if not found:
        click.echo("no serial ports")
        return
    for p in found:
        usb = f"{p.vid}:{p.pid}" if p.vid else "-"
        who = ", ".join(p.in_use_by) or "free"
        click.echo(
            f"{p.device:<28} {usb:<10} {p.serial_number or '-':<14} {who:<24} {p.description}"
        )


@main.command("scan")
@click.argument("port", required=False)
@click.option("--tcp", "tcp", metavar="HOST[:PORT]", help="Scan a Modbus TCP endpoint instead.")
@click.option(
    "--baud", "bauds", multiple=True, type=click.IntRange(min=300), help="Baud rate (repeatable)."
)
@click.option(
    "--parity", "parities", multiple=True, type=click.Choice(["N", "E", "O"]), help="Repeatable."
)
@click.option("--ids", default="1-247", show_default=True, help="Slave addresses to sweep.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.005),
    default=0.1,
    show_default=True,
    help="Seconds to wait for each answer.",
)
@click.option(
    "--listen",
    type=click.FloatRange(min=0),
    default=1.2,
    show_default=True,
    help="Seconds to listen for unsolicited ASCII output at each setting.",
)
@click.option("--thorough", is_flag=True, help="Sweep every address at every setting.")
@click.option("--no-ascii", is_flag=True, help="Do not listen for or poll ASCII sensors.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def scan_cmd(
    port: str | None,
    tcp: str | None,
    bauds: tuple[int, ...],
    parities: tuple[str, ...],
    ids: str,
    timeout: float,
    listen: float,
    thorough: bool,
    no_ascii: bool,
    as_json: bool,
) -> None:
    """Find the devices on PORT (or --tcp HOST): address, baud rate, parity and profile.

    Settings where nothing answers the profiles' default addresses are left after the quick
    probe; where something answers, every address in --ids is asked (--thorough: everywhere).
    Exit codes: 0 devices found, 1 none, 2 usage, 5 port missing, 6 not permitted, 7 unusable.
    """
    import json
    import time

    from provisioning.read import EXIT_CODES, EXIT_PORT_UNUSABLE
    from provisioning.scan import BAUDRATES, PARITIES, ScanError, ScanPlan, scan_serial, scan_tcp

    if (port is None) == (tcp is None):
        raise click.UsageError("give either PORT or --tcp HOST[:PORT]")
    plan = ScanPlan(
        baudrates=bauds or BAUDRATES,
        parities=parities or PARITIES,  # type: ignore[arg-type]
        ids=_ids(ids),
        timeout_s=timeout,
        listen_s=listen,
        thorough=thorough,
        ascii=not no_ascii,
    )
    started = time.monotonic()
    try:
        with _progress_bar("scanning") as progress:
            if tcp is not None:
                host, _, number = tcp.partition(":")
                if number and not number.isdigit():
                    raise click.BadParameter(f"{tcp!r}: expected HOST[:PORT]", param_hint="--tcp")
                found = scan_tcp(host, int(number or 502), plan, progress=progress)
            else:
                assert port is not None
                found = scan_serial(port, plan, progress=progress)
    except ScanError as exc:
        raise _failure(str(exc), EXIT_CODES.get(exc.reason, EXIT_PORT_UNUSABLE)) from None
    elapsed = time.monotonic() - started
    where = port or f"tcp://{tcp}"
    if as_json:
        click.echo(
            json.dumps(
                {
                    "port": where,
                    "seconds": round(elapsed, 2),
                    "devices": [f.as_dict() for f in found],
                }
            )
        )
    else:
        click.echo(f"{where}: {len(found)} device(s) in {elapsed:.1f} s")
        for f in found:
            slave = "-" if f.slave is None else str(f.slave)
            line = "-" if f.baudrate is None else f"{f.baudrate} 8{f.parity}1"
            name = f.profile or "(unknown)"
            also = f"  (also matches {', '.join(f.candidates)})" if f.candidates else ""
            click.echo(f"  {f.protocol:<6} slave {slave:<4} {line:<10} {name}{also} {f.detail}")
    if not found:
        raise _failure(f"{where}: no device answered", 1)


def _progress_bar(what: str) -> Any:
    """A rich progress bar with ETA on stderr, driven through a :class:`scan.Progress`."""
    import contextlib
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from provisioning.scan import Progress as Hooks

    @contextlib.contextmanager
    def bar() -> Iterator[Hooks]:
        console = Console(stderr=True)
        with Progress(
            TextColumn(f"{what} {{task.description}}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not sys.stderr.isatty(),
        ) as bar:
            task = bar.add_task("", total=0)
            yield Hooks(
                grow=lambda n: bar.update(task, total=(bar.tasks[0].total or 0) + n),
                step=lambda text: bar.update(task, advance=1, description=text),
            )

    return bar()


@main.command("write")
@click.argument("port")
@click.argument("setting")
@click.argument("value", type=float)
@click.option("--profile", "profile", required=True, help="Profile name or file.")
@click.option("--slave", type=click.IntRange(0, 247), help="Address (default: profile's).")
@click.option("--timeout", type=click.FloatRange(min=0.01), help="Answer timeout in seconds.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def write_cmd(
    port: str,
    setting: str,
    value: float,
    profile: str,
    slave: int | None,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Write SETTING = VALUE (engineering units) to a device and read it back.

    Only settings the profile declares writable, within their declared range, are written.
    Exit codes: 0 written and read back, 1 no answer or another value read back, 2 refused
    (not writable, out of range, usage), 3 unknown profile, 4 malformed profile, 5-7 port.
    """
    import json

    from provisioning.read import ReadError
    from provisioning.settings import write_setting

    try:
        r = write_setting(port, profile, slave, setting, value, timeout)
    except ReadError as exc:
        raise _failure(str(exc), exc.exit_code) from None
    if as_json:
        click.echo(json.dumps(vars(r)))
    else:
        click.echo(f"{setting}: {r.before:g} -> {r.wanted:g} {r.unit} (read back {r.after:g})")


def _load_station(config: Path) -> Any:
    from agent.config import load_config
    from agent.errors import ConfigError

    try:
        return load_config(config)
    except ConfigError as exc:
        raise _failure(str(exc), 2) from None


@main.command("check")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Station configuration (TOML).",
)
@click.option("--polls", type=click.IntRange(1, 100), default=3, show_default=True)
@click.option("--pour-mm", type=click.FloatRange(min=0.1), help="Water poured into the gauge.")
@click.option(
    "--pour-wait",
    type=click.FloatRange(min=1),
    default=120,
    show_default=True,
    help="Seconds to wait for the tips after asking for the pour.",
)
@click.option("--north-offset", type=click.FloatRange(-360, 360), help="Anemometer north offset.")
@click.option(
    "--installation-height",
    type=click.FloatRange(min=1),
    help="Radar face above the road (cm), from the site survey.",
)
@click.option(
    "--record",
    type=click.Path(path_type=Path),
    help="Write the checklist and live values as JSON here (for `report`).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def check_cmd(
    config_path: Path,
    polls: int,
    pour_mm: float | None,
    pour_wait: float,
    north_offset: float | None,
    installation_height: float | None,
    record: Path | None,
    as_json: bool,
) -> None:
    """Commissioning checklist: live readings with QC flags from every configured sensor.

    Checks that every sensor answers with unflagged values, that the level sensor's datum is the
    road surface (and its installation height is the surveyed one), that the gauge counts the
    water poured into it (--pour-mm) and that the anemometer's north offset is recorded.
    Exit codes: 0 nothing failed, 1 some check failed, 2 bad configuration or usage.
    """
    import json
    import time

    from drivers.profile import load_profile
    from provisioning.commission import Observations, checklist, items_json, live_readings
    from provisioning.read import ReadError
    from provisioning.settings import read_setting
    from roadside.clock import SystemClock

    config = _load_station(config_path)
    clock = SystemClock()
    seen = Observations(north_offset_deg=north_offset, installation_height_cm=installation_height)
    readings = live_readings(config, clock, polls)
    if pour_mm is not None:
        gauges = [
            s.name
            for s in config.sensors
            if any(r.reading.channel == "rain_total" and r.reading.ok for r in readings[s.name])
        ]
        for name in gauges:
            last = [r for r in readings[name] if r.reading.channel == "rain_total" and r.reading.ok]
            seen.rain_before_mm[name] = float(last[-1].reading.value or 0.0)
        seen.poured_mm = pour_mm
        click.echo(
            f"pour {pour_mm:g} mm into {', '.join(gauges) or 'the gauge'} now "
            f"(waiting up to {pour_wait:g} s)",
            err=True,
        )
        deadline = time.monotonic() + pour_wait
        while time.monotonic() < deadline:
            more = live_readings(config, clock, 1)
            for name, rows in more.items():
                readings[name] += rows
            counted = [
                max(
                    (r.reading.value or 0.0)
                    for r in readings[n]
                    if r.reading.channel == "rain_total"
                )
                - seen.rain_before_mm[n]
                for n in gauges
            ]
            if counted and min(counted) >= pour_mm * 0.9:
                break
            time.sleep(1.0)
    settings: dict[str, float] = {}
    for s in config.sensors:
        profile = load_profile(s.profile)
        if any(f.name == "installation_height" and f.writable for f in profile.settings):
            for _attempt in range(3):  # a busy bus may miss one answer: ask again
                try:
                    value, _unit = read_setting(s.port, s.profile, s.slave, "installation_height")
                except ReadError:
                    continue
                settings[f"{s.name}.installation_height"] = value
                break
    items = checklist(config, readings, seen, settings)
    doc = {
        "station": config.station_id,
        "config": str(config_path),
        "config_hash": config.content_hash,
        "time": clock.now().isoformat(),
        "items": items_json(items),
        "observations": {
            "pour_mm": pour_mm,
            "north_offset_deg": north_offset,
            "installation_height_cm": installation_height,
        },
        "settings": settings,
        "devices": [
            {"name": s.name, "profile": s.profile, "port": s.port, "slave": s.slave}
            for s in config.sensors
        ],
    }
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    if as_json:
        click.echo(json.dumps(doc))
    else:
        for i in items:
            mark = {"pass": "[ok]  ", "fail": "[FAIL]", "todo": "[todo]"}[i.status]
            click.echo(f"{mark} {i.sensor:<10} {i.check:<26} {i.value}  {i.detail}".rstrip())
    if any(i.status == "fail" for i in items):
        raise _failure(f"{sum(i.status == 'fail' for i in items)} check(s) failed", 1)


@main.command("init")
@click.option(
    "--scan",
    "scans",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="`scan --json` output (repeatable, one per port).",
)
@click.option("--id", "station_id", required=True, help="Station id (also its certificate CN).")
@click.option("--name", default="", help="Human name of the site.")
@click.option("--lat", type=float, required=True)
@click.option("--lon", type=float, required=True)
@click.option("--grid-cell", required=True, help="Warning grid cell of the site.")
@click.option("--version", "version", default="1", show_default=True, help="Configuration version.")
@click.option("--buffer-path", default="/var/lib/roadside/buffer.db", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Where to write it.")
@click.option("--force", is_flag=True, help="Replace an existing file.")
def init_cmd(
    scans: tuple[Path, ...],
    station_id: str,
    name: str,
    lat: float,
    lon: float,
    grid_cell: str,
    version: str,
    buffer_path: str,
    out: Path,
    force: bool,
) -> None:
    """Write the station configuration from scan results and the site details.

    The file is validated exactly as the agent validates it before it is put in place.
    Exit codes: 0 written, 2 invalid input (the message names the file and key).
    """
    import json

    from agent.errors import ConfigError
    from provisioning.commission import Site, render_config, sensors_from_scan, write_config

    docs = []
    for path in scans:
        try:
            docs.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise _failure(f"{path}: not a scan result: {exc}", 2) from None
    sensors = sensors_from_scan(docs)
    if not sensors:
        raise _failure("no identified device in the scan results", 2)
    if out.exists() and not force:
        raise _failure(f"{out}: exists (use --force to replace it)", 2)
    site = Site(station_id, lat, lon, grid_cell, name)
    text = render_config(site, sensors, version=version, buffer_path=buffer_path)
    try:
        config = write_config(out, text)
    except ConfigError as exc:
        raise _failure(str(exc), 2) from None
    click.echo(
        f"{out}: station {config.station_id}, {len(config.sensors)} sensor(s), "
        f"hash {config.content_hash[:12]}"
    )


_CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Station configuration (TOML).",
)
_DIR = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the key, certificates and pinned fleet key live (default: the config's folder).",
)
_CAFILE = click.option(
    "--fleet-ca",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CA that signed the fleet's HTTPS certificate (default: the system's).",
)


@main.command("enroll")
@_CONFIG
@click.option("--fleet", "fleet_url", help="Fleet API base URL (https://fleet.example.net).")
@click.option("--token", envvar="ROADSIDE_ENROLL_TOKEN", help="One-time enrollment token.")
@click.option("--pending", is_flag=True, help="Finish an enrollment left by `apply`, if any.")
@_DIR
@_CAFILE
@click.option("--repin", is_flag=True, help="Accept a changed fleet signing key.")
def enroll_cmd(
    config_path: Path,
    fleet_url: str | None,
    token: str | None,
    pending: bool,
    directory: Path | None,
    fleet_ca: Path | None,
    repin: bool,
) -> None:
    """Enroll this station: its key is made here and never leaves; a CSR and the one-time token
    go to the fleet, the certificate, broker address and fleet signing key come back.

    Exit codes: 0 enrolled (or nothing pending), 1 refused (used or expired token, ...) or
    unreachable, 2 bad input.
    """
    from provisioning.enroll import EnrollFailed, complete_pending, enroll

    where = directory or config_path.parent
    try:
        if pending:
            done = complete_pending(where, cafile=fleet_ca)
            if done is None:
                click.echo("no pending enrollment")
                return
        else:
            if not fleet_url or not token:
                raise click.UsageError("give --fleet and --token (or --pending)")
            done = enroll(config_path, fleet_url, token, where, cafile=fleet_ca, repin=repin)
    except EnrollFailed as exc:
        raise _failure(str(exc), exc.exit_code) from None
    click.echo(f"{done.station}: enrolled, certificate {done.certificate}, broker {done.broker}")


@main.command("bundle")
@_CONFIG
@click.option("--fleet", "fleet_url", required=True, help="Fleet API base URL.")
@click.option("--token", envvar="ROADSIDE_ENROLL_TOKEN", required=True, help="Enrollment token.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Bundle file.")
def bundle_cmd(config_path: Path, fleet_url: str, token: str, out: Path) -> None:
    """At the office: one station's configuration and enrollment token in one file (0600).

    Exit codes: 0 written, 2 bad configuration.
    """
    from provisioning.enroll import EnrollFailed, make_bundle

    try:
        make_bundle(config_path, fleet_url, token, out)
    except EnrollFailed as exc:
        raise _failure(str(exc), exc.exit_code) from None
    click.echo(f"{out}: bundle written")


@main.command("apply")
@click.argument("bundle", type=click.Path(dir_okay=False, path_type=Path))
@_CONFIG
@_DIR
def apply_cmd(bundle: Path, config_path: Path, directory: Path | None) -> None:
    """In the field, offline: install BUNDLE's configuration, make the station key, and leave the
    enrollment pending until the station first reaches the fleet (`enroll --pending`).

    Exit codes: 0 applied, 2 bad bundle or configuration.
    """
    from provisioning.enroll import EnrollFailed, apply_bundle

    try:
        station = apply_bundle(bundle, config_path, directory or config_path.parent)
    except EnrollFailed as exc:
        raise _failure(str(exc), exc.exit_code) from None
    click.echo(f"{station}: configuration {config_path} written; enrollment pending")


@main.command("install")
@_CONFIG
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Render into this folder (an image or a test) instead of the live system.",
)
@click.option("--user", default="roadside", show_default=True, help="Service user.")
@click.option("--agent-bin", help="roadside-agent executable (default: the one on PATH).")
@click.option("--no-enable", is_flag=True, help="Install without enabling the service.")
def install_cmd(
    config_path: Path, root: Path | None, user: str, agent_bin: str | None, no_enable: bool
) -> None:
    """Install the agent as a systemd service: unit, enrollment timer, service user in dialout,
    /etc/roadside and /var/lib/roadside with their permissions, the service enabled.

    Exit codes: 0 installed, 1 a system step failed, 2 bad configuration or usage.
    """
    import shutil
    import sys

    from provisioning.install import InstallError, activate, apply, plan

    _load_station(config_path)

    def exe(name: str, given: str | None) -> str:
        found = given or shutil.which(name) or str(Path(sys.executable).parent / name)
        return str(Path(found).absolute())

    try:
        entries = plan(
            config_path,
            agent_bin=exe("roadside-agent", agent_bin),
            provision_bin=exe("roadside-provision", None),
            user=user,
            enable=not no_enable,
        )
        written = apply(entries, root or Path("/"))
        steps = [] if root is not None else activate(Path("/"))
    except InstallError as exc:
        raise _failure(str(exc), 1) from None
    for path in written:
        click.echo(f"wrote {path}")
    for step in steps:
        click.echo(f"ran {step}")


@main.command("report")
@_CONFIG
@click.option(
    "--record",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The `check --record` file.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for commissioning-<station>.html and .pdf.",
)
@click.option("--no-pdf", is_flag=True, help="HTML only.")
def report_cmd(config_path: Path, record: Path, out: Path, no_pdf: bool) -> None:
    """Commissioning report (HTML and PDF): site, devices, live values, calibration, checklist
    and enrollment state.

    Exit codes: 0 written, 1 the PDF could not be printed, 2 bad configuration or record.
    """
    import json

    from provisioning.report import enrollment_state, render_html, to_pdf

    config = _load_station(config_path)
    try:
        doc = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _failure(f"{record}: not a check record: {exc}", 2) from None
    if doc.get("station") != config.station_id:
        raise _failure(
            f"{record}: a record of {doc.get('station')!r}, not {config.station_id!r}", 2
        )
    out.mkdir(parents=True, exist_ok=True)
    page = out / f"commissioning-{config.station_id}.html"
    page.write_text(render_html(doc, config, enrollment_state(config)), encoding="utf-8")
    click.echo(f"wrote {page}")
    if not no_pdf:
        try:
            click.echo(f"wrote {to_pdf(page, page.with_suffix('.pdf'))}")
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            raise _failure(str(exc), 1) from None
