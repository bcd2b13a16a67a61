"""Command line of roadside-sim (thin layer over the package's functions)."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import click

from roadside.exitcodes import click_error

DEFAULT_LINK_DIR = Path("/tmp/roadside-sim")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="roadside")
def main() -> None:
    """The sensor simulator: storms, devices on real byte streams, fault injection."""


def _param(text: str) -> tuple[str, Any]:
    """``k=v`` with v read as a number or true/false when it looks like one."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{text!r} is not key=value", param_hint="--param")
    if value.lower() in ("true", "false"):
        return key, value.lower() == "true"
    try:
        return key, int(value)
    except ValueError:
        pass
    try:
        return key, float(value)
    except ValueError:
        return key, value


def _state(path: Path) -> dict[str, Any]:
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise click.ClickException(f"{path}: no state file (is roadside-sim run going?)") from None
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{path}: unreadable state file: {exc}") from None
    if not doc.get("control"):
        raise click.ClickException(f"{path}: the simulator has no control socket")
    return doc


def _pairs(values: tuple[str, ...], option: str) -> dict[str, Path]:
    """``BUS=PATH`` options as a dict; one-line usage errors for anything else."""
    out: dict[str, Path] = {}
    for text in values:
        bus, sep, path = text.partition("=")
        if not sep or not bus or not path:
            raise click.BadParameter(f"{text!r} is not BUS=PATH", param_hint=option)
        if bus in out:
            raise click.BadParameter(f"bus {bus!r} given twice", param_hint=option)
        out[bus] = Path(path)
    return out


def _listen(address: str | None) -> str:
    """The address TCP devices listen on: loopback unless ``--listen`` names an IPv4 address."""
    import ipaddress

    from sim.devices.tcp import LOOPBACK

    if address is None:
        return LOOPBACK
    try:
        return str(ipaddress.IPv4Address(address))
    except ValueError:
        raise click.BadParameter(
            f"{address!r} is not an IPv4 address (e.g. 0.0.0.0 for every interface)",
            param_hint="--listen",
        ) from None


@main.command("run")
@click.argument("scenario")
@click.option("--speed", type=float, help="Scenario seconds per real second (default: scenario's).")
@click.option(
    "--link-dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_LINK_DIR,
    show_default=True,
    help="Directory for the serial port symlinks and the control socket.",
)
@click.option(
    "--state-file",
    type=click.Path(path_type=Path),
    help="Where to write endpoints, clock and control socket (default: LINK_DIR/state.json).",
)
@click.option("--no-pacing", is_flag=True, help="Serve bytes at once instead of at the baud rate.")
@click.option("--duration-min", type=float, help="Stop after this many scenario minutes.")
@click.option(
    "--bind", "binds", multiple=True, metavar="BUS=DEVICE",
    help="Serve serial BUS on a real serial device (e.g. rs485-1=/dev/ttyUSB0); repeatable.",
)  # fmt: skip
@click.option(
    "--listen", metavar="ADDRESS",
    help="Address Modbus TCP devices listen on (default 127.0.0.1; 0.0.0.0 for the lab LAN).",
)  # fmt: skip
@click.option(
    "--capture", "captures", multiple=True, metavar="BUS=FILE",
    help="Record serial BUS's traffic (both directions, timed) to FILE; repeatable.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the endpoints as one JSON object.")
def run_cmd(
    scenario: str,
    speed: float | None,
    link_dir: Path,
    state_file: Path | None,
    no_pacing: bool,
    duration_min: float | None,
    binds: tuple[str, ...],
    listen: str | None,
    captures: tuple[str, ...],
    as_json: bool,
) -> None:
    """Start a simulated station for SCENARIO (a bundled name or a file) and run it.

    Prints where each device is (port, slave address, profile) and serves until the scenario ends,
    --duration-min passes or Ctrl-C. Serial buses are served on pseudo-terminals linked in
    LINK_DIR, or with --bind on real serial devices (a USB-RS485 adapter wired to the device under
    test) at the bus's baud rate, parity and stop bits; Modbus TCP devices listen on loopback
    unless --listen names another address.
    """
    from roadside.clock import ScaledClock
    from sim.devices.errors import SimDeviceError
    from sim.errors import SimError
    from sim.scenario import load_scenario
    from sim.station import SimStation

    if speed is not None and speed <= 0:
        raise click.BadParameter("must be positive", param_hint="--speed")
    bind, capture = _pairs(binds, "--bind"), _pairs(captures, "--capture")
    address = _listen(listen)
    try:
        sc = load_scenario(scenario)
        clock = ScaledClock(sc.start, speed or sc.speed)
        station = SimStation(
            sc,
            clock,
            link_dir,
            pacing=False if no_pacing else None,
            bind=bind,
            listen=address,
            capture=capture,
        )
        station.start()
    except SimError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(
            f"{link_dir}: cannot serve devices: {exc.strerror or exc}"
        ) from None
    state_path = state_file or link_dir / "state.json"
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started in the background
        signal.signal(sig, _interrupt)
    try:
        station.serve_control(link_dir / "control.sock")
        station.write_state(state_path)
        _announce(station, state_path, as_json)
        end_s = sc.duration_s if duration_min is None else min(sc.duration_s, duration_min * 60)
        while station.scenario_time() < end_s:
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    except (SimDeviceError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        station.stop()
        state_path.unlink(missing_ok=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _announce(station: Any, state_path: Path, as_json: bool) -> None:
    if as_json:
        doc = {name: vars(ep) for name, ep in station.endpoints.items()}
        click.echo(json.dumps({"state": str(state_path), "endpoints": doc}), nl=True)
        return
    sc = station.scenario
    click.echo(f"scenario {sc.name}: {sc.duration_s / 60:g} min at x{station.clock.speed:g}")
    for ep in station.endpoints.values():
        slave = "-" if ep.slave is None else str(ep.slave)
        click.echo(f"  {ep.device:<12} {ep.port:<40} slave {slave:<4} {ep.profile}")
    click.echo(f"state {state_path}  control {station.control_path}")


@main.command("capture")
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--master",
    "master",
    type=click.Path(path_type=Path),
    required=True,
    help="Serial device towards the master (gateway, logger).",
)
@click.option(
    "--sensor",
    "sensor",
    type=click.Path(path_type=Path),
    required=True,
    help="Serial device towards the sensor.",
)
@click.option(
    "--kind",
    type=click.Choice(["rtu", "ascii"]),
    default="rtu",
    show_default=True,
    help="What the line carries (how a replay cuts requests).",
)
@click.option("--baudrate", type=int, default=9600, show_default=True)
@click.option("--parity", type=click.Choice(["N", "E", "O"]), default="N", show_default=True)
@click.option("--stopbits", type=click.Choice(["1", "2"]), default="1", show_default=True)
@click.option(
    "--turnaround-ms",
    type=float,
    default=5.0,
    show_default=True,
    help="Turnaround a replay of this capture keeps.",
)
def capture_cmd(
    out: Path,
    master: Path,
    sensor: Path,
    kind: str,
    baudrate: int,
    parity: str,
    stopbits: str,
    turnaround_ms: float,
) -> None:
    """Sit between a master and a real sensor: forward both ways and record to OUT.

    Replay OUT later as a device with ``roadside-sim replay OUT``. Runs until Ctrl-C.
    """  # fmt: skip
    from sim.devices.errors import SimDeviceError
    from sim.devices.tap import Tap
    from sim.spec import BusSpec

    if baudrate <= 0:
        raise click.BadParameter("must be positive", param_hint="--baudrate")
    bus = BusSpec(
        "tap", kind, baudrate, parity=parity, stopbits=int(stopbits),  # type: ignore[arg-type]
        turnaround_ms=turnaround_ms, link="ttyTAP",
    )  # fmt: skip
    tap = Tap(bus, master, sensor, out)
    try:
        tap.start()
    except (OSError, SimDeviceError) as exc:
        raise click.ClickException(f"cannot start the tap: {exc}") from None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    try:
        click.echo(f"capturing {master} <-> {sensor} to {out}")
        while True:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        tap.stop()
    click.echo(f"{tap.counts['rx']} bytes from the master, {tap.counts['tx']} from the sensor")


@main.command("replay")
@click.argument("capture", type=click.Path(path_type=Path))
@click.option(
    "--link-dir", type=click.Path(path_type=Path), default=DEFAULT_LINK_DIR, show_default=True,
    help="Directory for the replayed port's symlink (named as the captured bus's link).",
)  # fmt: skip
@click.option("--bind", "device", type=click.Path(path_type=Path), help="Serve on this device.")
@click.option("--json", "as_json", is_flag=True, help="Print the port as one JSON object.")
def replay_cmd(capture: Path, link_dir: Path, device: Path | None, as_json: bool) -> None:
    """Serve the bus traffic recorded in CAPTURE (``run --capture``) as a device again.

    Each recorded request is answered with what was recorded for it, in order; unsolicited output
    is re-sent on its recorded times. Serves until Ctrl-C.
    """
    from sim.devices.capture import load_capture
    from sim.devices.replay import replay_bus
    from sim.errors import SimError

    try:
        cap = load_capture(capture)
        t0 = time.monotonic()
        start_s = cap.chunks[0].s if cap.chunks else 0.0
        line = replay_bus(
            cap,
            link_dir / (cap.bus.link or cap.bus.name),
            lambda: start_s + time.monotonic() - t0,
            device,
        )
        line.start()
    except SimError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot serve the replay: {exc.strerror or exc}") from None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    try:
        if as_json:
            click.echo(json.dumps({"port": line.path, "bus": cap.bus.name, "kind": cap.bus.kind}))
        else:
            click.echo(f"replaying {capture} ({cap.bus.kind} bus {cap.bus.name}) on {line.path}")
        while True:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        line.stop()


@main.command("qualify")
@click.argument("run_file", type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("hil-results"), show_default=True,
    help="Directory for scorecard.json, scorecard.html and the run's logs.",
)  # fmt: skip
@click.option(
    "--listen", metavar="ADDRESS",
    help="Address Modbus TCP devices listen on (overrides the run file; 0.0.0.0 for the LAN).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the scorecard as one JSON object.")
def qualify_cmd(run_file: Path, out: Path, listen: str | None, as_json: bool) -> None:
    """Qualify a device under test with RUN_FILE (TOML): simulator, faults, checkpoints, scorecard.

    Serves the run's scenario on its ports, collects what the DUT reports (MQTT uplink, HTTP
    status or SQLite buffer), and writes OUT/scorecard.json and OUT/scorecard.html. Exit status:
    0 every checkpoint and warning target met, 1 the DUT failed one (or the run could not be
    carried out), 2 a bad run file or option.
    """
    from sim.errors import SimError
    from sim.hil.errors import RunFileError
    from sim.hil.report import render_html
    from sim.hil.run import HilRun
    from sim.hil.runfile import load_run_file

    address = None if listen is None else _listen(listen)
    try:
        spec = load_run_file(run_file)
    except RunFileError as exc:
        raise click.UsageError(str(exc)) from None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    run = HilRun(spec, out / "work", listen=address)
    total = int(spec.duration_s // 60)
    try:
        with run, click.progressbar(length=total, label="scenario minutes", file=None) as bar:
            run.wait(lambda m: bar.update(int(m) - bar.pos))
            run.stop()
    except KeyboardInterrupt:
        click.echo("interrupted: scoring what was collected", err=True)
    except (SimError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    card = run.scorecard()
    out.mkdir(parents=True, exist_ok=True)
    (out / "scorecard.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    assert run.observed is not None
    (out / "scorecard.html").write_text(render_html(card, spec, run.observed), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(card))
    else:
        for c in card["checkpoints"]:
            click.echo(f"{'pass' if c['passed'] else 'FAIL'}  {c['name']}: {c['detail']}")
        click.echo(f"scorecard {out / 'scorecard.json'}  page {out / 'scorecard.html'}")
    raise SystemExit(0 if card["passed"] else 1)


@main.command("fault")
@click.argument("state_file", type=click.Path(path_type=Path))
@click.argument("device")
@click.argument("kind")
@click.option("--duration", type=float, help="Scenario seconds (default: until cleared).")
@click.option("--param", "params", multiple=True, help="Fault parameter key=value (repeatable).")
def fault_cmd(
    state_file: Path, device: str, kind: str, duration: float | None, params: tuple[str, ...]
) -> None:
    """Inject fault KIND on DEVICE of the simulator whose state file is STATE_FILE."""
    from sim.devices.control import request
    from sim.devices.errors import ControlError

    fault_params = dict(_param(p) for p in params)
    doc = _state(state_file)
    req = {
        "op": "inject",
        "device": device,
        "kind": kind,
        "duration_s": duration,
        "params": fault_params,
    }
    try:
        reply = request(doc["control"], req)
    except ControlError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{device}: {kind} from scenario second {reply['scenario_time_s']:.0f}")


@main.command("clear")
@click.argument("state_file", type=click.Path(path_type=Path))
@click.argument("device")
@click.option("--kind", help="Only this fault kind (default: every fault on the device).")
def clear_cmd(state_file: Path, device: str, kind: str | None) -> None:
    """End the faults on DEVICE of the simulator whose state file is STATE_FILE."""
    from sim.devices.control import request
    from sim.devices.errors import ControlError

    doc = _state(state_file)
    try:
        reply = request(doc["control"], {"op": "clear", "device": device, "kind": kind})
    except ControlError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{device}: {reply['cleared']} fault(s) cleared")


@main.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def list_cmd(as_json: bool) -> None:
    """Show the bundled scenarios and device profiles."""
    from drivers.profile import bundled_profiles, load_profile
    from sim.scenario import bundled_scenarios

    scenarios = {name: str(path) for name, path in sorted(bundled_scenarios().items())}
    profiles = {}
    for name in sorted(bundled_profiles()):
        p = load_profile(name)
        profiles[name] = {
            "kind": p.device.kind,
            "protocol": p.device.protocol,
            "channels": [c.name for c in p.channels],
        }
    if as_json:
        click.echo(json.dumps({"scenarios": scenarios, "profiles": profiles}))
        return
    click.echo("scenarios:")
    for name, path in scenarios.items():
        click.echo(f"  {name:<16} {path}")
    click.echo("profiles:")
    for name, info in profiles.items():
        click.echo(f"  {name:<26} {info['protocol']:<10} {', '.join(info['channels'])}")


@main.command("demo")
@click.option("--scenario", default="storm-50y-3h", show_default=True, help="Bundled name or file.")
@click.option("--speed", type=float, default=60.0, show_default=True, help="Scenario s per real s.")
@click.option(
    "--push-at-min", type=float, default=20.0, show_default=True,
    help="Scenario minute at which the fleet pushes a threshold change.",
)  # fmt: skip
@click.option(
    "--workdir", type=click.Path(path_type=Path), default=None,
    help="Keep logs and databases here (default: a temporary directory, removed on success).",
)  # fmt: skip
@click.option(
    "--until-min", type=click.FloatRange(min=1.0), default=None,
    help="Stop at this scenario minute (default: the scenario's end).",
)  # fmt: skip
def demo_cmd(
    scenario: str, speed: float, push_at_min: float, workdir: Path | None, until_min: float | None
) -> None:
    """Run a simulated station, its agent, a broker and the fleet through a storm, live."""
    from sim.demo import run_demo
    from sim.errors import SimError
    from sim.scenario import load_scenario

    try:
        load_scenario(scenario)  # an unknown or broken scenario: one line, exit 2
    except SimError as exc:
        raise click_error(exc) from None
    raise SystemExit(run_demo(scenario, speed, push_at_min, workdir, until_min=until_min))
