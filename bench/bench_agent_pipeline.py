"""Agent pipeline cost: readings per CPU-second and peak RSS of the real agent, against a bare loop.

A simulated station (storm-5y-2h, pacing off, clock accelerated) runs in this process. Two kinds
of child process poll it, alternately, for the same real time each:

- **ours**: ``roadside-agent run`` (bus schedulers, QC, derived products, warnings, the buffer with
  its size policy, status file, Prometheus endpoint) with every device polled every clock second;
- **bare**: the least a station could do: poll each device as fast as it answers and insert the
  readings into SQLite (WAL, same ``synchronous``), one transaction per poll.

CPU time (user + system) and peak RSS (VmHWM) are read from ``/proc/<pid>`` of each child over a
steady-state window after start-up; readings come from the child's database. Medians of the runs
are reported. Targets: peak RSS under 60 MB, at least half the bare loop's readings per CPU-second.
The agent runs its waterlogging nowcast (``--nowcast`` picks the backend: auto = LiteRT here,
numpy, or off).

    .venv/bin/python bench/bench_agent_pipeline.py [--seconds 6] [--runs 3] [--speed 20]
        [--nowcast auto|numpy|off]
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from agent.buffer import count_sql
from sim.broker import free_port

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def status_mb(pid: int, key: str = "VmHWM") -> float:
    """A memory figure of ``/proc/<pid>/status`` in MB (VmHWM: peak RSS; RssAnon: the part not
    backed by files, i.e. not library code the kernel can drop and reload)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def count_readings(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            sql = count_sql("reading") if table == "records" else f"SELECT count(*) FROM {table}"
            return int(conn.execute(sql).fetchone()[0])
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def measure(cmd: list[str], db: Path, table: str, seconds: float) -> dict[str, float]:
    """Run ``cmd``; after it commits its first readings and warms up, measure for ``seconds``."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while count_readings(db, table) == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise click.ClickException(f"{cmd[:4]} produced no readings: {err[-800:]}")
            time.sleep(0.05)
        time.sleep(1.0)  # warm-up: imports done, first windows filled
        c0, n0 = cpu_s(proc.pid), count_readings(db, table)
        time.sleep(seconds)
        c1, n1 = cpu_s(proc.pid), count_readings(db, table)
        rss, anon = status_mb(proc.pid), status_mb(proc.pid, "RssAnon")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    readings = n1 - n0
    return {
        "readings": readings,
        "cpu_s": c1 - c0,
        "rate": readings / max(c1 - c0, 1e-6),
        "rss": rss,
        "anon": anon,
    }


def station_config(
    endpoints: dict[str, Any], db: Path, metrics_port: int = 0, nowcast: str = "auto"
) -> str:
    """A configuration polling every simulated device each clock second."""
    out = 'version = "bench"\n[station]\nid = "bench"\nlat = 31.4\nlon = 121.4\n'
    out += 'grid_cell = "g1"\n'
    for ep in endpoints.values():
        slave = "" if ep.slave is None else f"slave = {ep.slave}\n"
        out += f'[[sensors]]\nname = "{ep.device}"\nprofile = "{ep.profile}"\n'
        out += f'port = "{ep.port}"\ninterval_s = 1\n{slave}'
    out += f'[buffer]\npath = "{db}"\n[metrics]\nport = {metrics_port}\n'
    out += '[time]\nsync_check = "none"\n'
    if nowcast == "off":
        out += "[nowcast]\nenabled = false\n"
    else:
        out += f'[nowcast]\nbackend = "{nowcast}"\n'
    return out


def bare_loop(config_path: str, state_path: str, db_path: str, synchronous: str) -> None:
    """The baseline: poll every device back to back, insert each poll's readings in SQLite."""
    from datetime import datetime

    from agent.config import load_config
    from drivers.bus import DeviceConfig, open_buses
    from drivers.profile import load_profile
    from roadside.clock import ScaledClock

    config = load_config(config_path)
    c = json.loads(Path(state_path).read_text())["clock"]
    clock = ScaledClock(datetime.fromisoformat(c["start"]), c["speed"], c["anchor"])
    devices = [
        DeviceConfig(s.name, load_profile(s.profile), s.port, s.slave, s.channels, s.interval_s)
        for s in config.sensors
    ]
    buses = open_buses(devices, station=config.station_id, clock=clock, sink=print)
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS readings (id INTEGER PRIMARY KEY, sensor TEXT, channel TEXT,"
        " time TEXT, value REAL, unit TEXT, raw TEXT, status TEXT)"
    )
    stop = False

    def on_term(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    while not stop:
        for bus in buses:
            for device in bus.devices:
                rows = [
                    (
                        r.sensor,
                        r.channel,
                        r.time.isoformat(),
                        r.value,
                        r.unit,
                        str(r.raw),
                        r.status.value,
                    )
                    for r in bus.poll_once(device)
                ]
                conn.execute("BEGIN")
                conn.executemany(
                    "INSERT INTO readings (sensor, channel, time, value, unit, raw, status) "
                    "VALUES (?,?,?,?,?,?,?)",
                    rows,
                )
                conn.execute("COMMIT")
    conn.close()


@click.command()
@click.option("--seconds", default=6.0, show_default=True, help="Measured window per run (real s).")
@click.option("--runs", default=3, show_default=True, help="Runs of each loop (medians reported).")
@click.option("--speed", default=20.0, show_default=True, help="Clock speed (scenario s per s).")
@click.option(
    "--nowcast",
    type=click.Choice(["auto", "numpy", "off"]),
    default="auto",
    show_default=True,
    help="The agent's nowcast backend (auto: LiteRT where installed).",
)
@click.option("--bare", "bare_args", nargs=4, hidden=True, help="Internal: run the bare loop.")
def main(seconds: float, runs: int, speed: float, nowcast: str, bare_args: tuple[str, ...]) -> None:
    """Readings per CPU-second and peak RSS: the real agent against a bare poll-and-insert loop."""
    if bare_args:
        bare_loop(*bare_args)
        return
    from roadside.clock import ScaledClock
    from sim.scenario import load_scenario
    from sim.station import SimStation

    scenario = load_scenario("storm-5y-2h")
    clock = ScaledClock(scenario.start + timedelta(minutes=40), speed=speed, anchor=time.time())
    ours: list[dict[str, float]] = []
    bare: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with SimStation(scenario, clock, tmp / "links", pacing=False) as station:
            state = tmp / "state.json"
            station.write_state(state)
            for i in range(runs):
                db = tmp / f"agent-{i}.db"
                config = tmp / f"agent-{i}.toml"
                config.write_text(station_config(station.endpoints, db, free_port(), nowcast))
                agent_cmd = [
                    sys.executable,
                    "-m",
                    "agent",
                    "run",
                    "--config",
                    str(config),
                    "--clock-state",
                    str(state),
                    "--log-level",
                    "error",
                ]
                ours.append(measure(agent_cmd, db, "records", seconds))
                bare_db = tmp / f"bare-{i}.db"
                bare_cmd = [
                    sys.executable,
                    __file__,
                    "--bare",
                    str(config),
                    str(state),
                    str(bare_db),
                    "FULL",
                ]
                bare.append(measure(bare_cmd, bare_db, "readings", seconds))
    ours_rate = statistics.median(r["rate"] for r in ours)
    bare_rate = statistics.median(r["rate"] for r in bare)
    rss = statistics.median(r["rss"] for r in ours)
    for name, res in (("agent", ours), ("bare", bare)):
        click.echo(
            f"{name}: readings/CPU-s {[round(r['rate']) for r in res]}, "
            f"readings {[r['readings'] for r in res]}, "
            f"peak RSS MB {[round(r['rss'], 1) for r in res]}",
            err=True,
        )
    click.echo(
        json.dumps(
            {
                "bench": "agent_pipeline",
                "metric": "readings_per_cpu_second",
                "value": round(ours_rate, 1),
                "unit": "readings/cpu-s",
                "baseline": round(bare_rate, 1),
                "ratio": round(ours_rate / bare_rate, 3),
                "rss_mb": round(rss, 1),
                "bare_rss_mb": round(statistics.median(r["rss"] for r in bare), 1),
                "rss_anon_mb": round(statistics.median(r["anon"] for r in ours), 1),
                "bare_rss_anon_mb": round(statistics.median(r["anon"] for r in bare), 1),
                "runs": runs,
                "seconds": seconds,
                "speed": speed,
                "nowcast": nowcast,
            }
        )
    )


if __name__ == "__main__":
    main()
