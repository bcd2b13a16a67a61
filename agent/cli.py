"""Command line of roadside-agent (thin layer over the package's functions).

Exit codes (the shared table, :mod:`roadside.exitcodes`): 0 success (``status``: agent running
and healthy); 1 runtime failure (``status``: running but degraded); 2 bad usage or an invalid
configuration; 3 (``status``) the agent is not running (no status file, a stale one, or its
process is gone).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from agent.config import StationConfig, load_config
from agent.errors import AgentError, ConfigError
from drivers.errors import DriverError
from roadside import exitcodes
from roadside.clock import Clock, ScaledClock, SystemClock
from roadside.structs import to_json

STALE_S = 30.0  # a status file not rewritten for this long (real seconds) means the agent is gone
EXIT_DEGRADED = exitcodes.FAILURE
EXIT_NOT_RUNNING = exitcodes.NOT_RUNNING


class ConfigProblem(click.ClickException):
    """An invalid configuration: one line, exit code 2."""

    exit_code = exitcodes.USAGE


def _load(path: str) -> StationConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise ConfigProblem(str(exc)) from None


def clock_from_state(path: str) -> ScaledClock:
    """The simulator's accelerated clock from its state file (``clock``: start, speed, anchor)."""
    try:
        doc = json.loads(Path(path).read_text())
        c = doc["clock"]
        return ScaledClock(
            datetime.fromisoformat(c["start"]), speed=float(c["speed"]), anchor=float(c["anchor"])
        )
    except FileNotFoundError:
        raise click.BadParameter(f"{path}: no such file", param_hint="--clock-state") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise click.BadParameter(
            f"{path}: expected JSON with clock.start/speed/anchor ({exc})",
            param_hint="--clock-state",
        ) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="roadside")
def main() -> None:
    """The station agent: polls sensors, runs QC, derives products, buffers and syncs."""


@main.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Station configuration (TOML).",
)
@click.option(
    "--clock-state",
    type=click.Path(dir_okay=False),
    help="Share the simulator's accelerated clock (its state JSON file).",
)
@click.option(
    "--buffer",
    "buffer_path",
    type=click.Path(dir_okay=False),
    help="Buffer database (overrides [buffer] path).",
)
@click.option(
    "--status-file",
    type=click.Path(dir_okay=False),
    help="Status file (overrides [buffer] status_path).",
)
@click.option("--no-metrics", is_flag=True, help="Do not serve Prometheus metrics.")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def run(
    config_path: str,
    clock_state: str | None,
    buffer_path: str | None,
    status_file: str | None,
    no_metrics: bool,
    log_level: str,
) -> None:
    """Run the agent until SIGTERM/SIGINT (then flush the buffer and exit 0)."""
    from agent.runner import Agent
    from agent.service import Notifier, setup_logging

    config = _load(config_path)
    setup_logging(getattr(logging, log_level.upper()), station=config.station_id)
    clock: Clock = clock_from_state(clock_state) if clock_state else SystemClock()
    notifier = Notifier()
    agent = Agent(
        config,
        clock,
        buffer_path=buffer_path,
        status_path=status_file,
        notifier=notifier,
        serve_metrics=not no_metrics,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        logging.getLogger("agent").info("signal %s: stopping", signal.Signals(signum).name)
        notifier.stopping()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        agent.run(stop)
    except ConfigError as exc:
        raise ConfigProblem(str(exc)) from None
    except (AgentError, DriverError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


@main.command("check-config")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the validated configuration as JSON.")
def check_config(file: str, as_json: bool) -> None:
    """Validate a station configuration; exit 2 with one line naming the key if it is wrong."""
    config = _load(file)
    if as_json:
        click.echo(to_json(config))
        return
    click.echo(
        f"{file}: ok: station {config.station_id}, version {config.version}, "
        f"hash {config.content_hash[:12]}, {len(config.sensors)} sensors"
    )


@main.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Station configuration (TOML).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(config_path: str, as_json: bool) -> None:
    """Device health, last readings with flags and pending backlog of the station's agent.

    Exit 0 when the agent runs and is healthy, 1 when degraded, 3 when it is not running.
    """
    from agent.runner import read_status

    config = _load(config_path)
    try:
        report = read_status(config)
    except (OSError, sqlite3.Error) as exc:
        raise click.ClickException(f"{config.buffer.path}: {exc}") from None
    code, verdict = _verdict(report.get("agent"))
    report["verdict"] = verdict
    if as_json:
        click.echo(json.dumps(report, indent=1, default=str))
    else:
        _print_status(report)
    raise SystemExit(code)


def _verdict(agent: dict[str, Any] | None) -> tuple[int, str]:
    if not agent or "error" in agent:
        return EXIT_NOT_RUNNING, "not running"
    if not agent.get("running"):
        return EXIT_NOT_RUNNING, "stopped"
    if time.time() - float(agent.get("updated_epoch", 0)) > STALE_S or not _alive(agent.get("pid")):
        return EXIT_NOT_RUNNING, "not running (stale status file)"
    devices = agent.get("devices") or {}
    if not agent.get("healthy") or any(d.get("state") != "ok" for d in devices.values()):
        return EXIT_DEGRADED, "degraded"
    return 0, "healthy"


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, TypeError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def _print_status(report: dict[str, Any]) -> None:
    agent = report.get("agent") or {}
    click.echo(f"station {report['station']}  configuration {report['config_version']}")
    click.echo(
        f"agent: {report['verdict']}" + (f"  ({agent['summary']})" if agent.get("summary") else "")
    )
    for name, h in sorted((agent.get("devices") or {}).items()):
        err = f"  last error: {h['last_error']}" if h.get("last_error") else ""
        click.echo(f"  device {name:<10} {h.get('state', '?')}{err}")
    nowcast, fc = agent.get("nowcast"), agent.get("forecast")
    if nowcast:
        line = f"nowcast: {nowcast['model_version']} on {nowcast['backend']}"
        if fc:
            line += (
                f"; +15/+30/+60 min {fc['depth_15_mm']:.0f}/{fc['depth_30_mm']:.0f}/"
                f"{fc['depth_60_mm']:.0f} mm, P(>15 cm) {fc['p_15cm']:.2f}, "
                f"P(>30 cm) {fc['p_30cm']:.2f} ({fc['issued']})"
            )
        click.echo(line)
    if agent.get("warnings"):
        click.echo("warnings: " + ", ".join(f"{k} {v}" for k, v in agent["warnings"].items()))
    buf = report.get("buffer")
    if buf is None:
        click.echo("buffer: none yet")
        return
    pending = buf["pending"]
    click.echo(
        f"buffer: last seq {buf['last_seq']}, pending {pending['live']} live + "
        f"{pending['event']} events, gaps {buf['gaps']}, oldest unsynced {buf['oldest_unsynced']}"
    )
    for r in buf["latest"]:
        value = "-" if r["value"] is None else f"{r['value']:.2f}"
        why = f" ({r['reason']})" if r["reason"] else ""
        status = "" if r["status"] in (None, "ok") else f" [{r['status']}]"
        click.echo(
            f"  {r['kind']:<8} {r['sensor'] or '':<6} {r['channel']:<16} {value:>9} "
            f"{r['unit'] or '':<5} {r['flag'] or '':<8}{why}{status}  {r['time']}"
        )
