"""Crash test: kill -9 the real agent process at random moments during an accelerated storm.

After every kill: the database passes integrity_check, every row a reader saw committed just
before the kill is still there unchanged, sequence numbers have no holes except those a gap row
explains, and the rain total never goes backwards across restarts.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from roadside.clock import ScaledClock
from roadside.contract import RECORD_FIELDS

sim_station = pytest.importorskip("sim.station")
sim_scenario = pytest.importorskip("sim.scenario")

SPEED = 30.0  # scenario seconds per real second: a poll every ~33 ms real per device
STORM_OFFSET = timedelta(minutes=40)  # start inside the storm (it begins 20 min in)


@pytest.fixture
def storm(tmp_path: Path, station_toml: Callable[..., str]) -> Iterator[tuple[Path, Path, Path]]:
    """A running simulated station (pacing off), its state file, a config and the buffer path."""
    scenario = sim_scenario.load_scenario("storm-5y-2h")
    clock = ScaledClock(scenario.start + STORM_OFFSET, speed=SPEED, anchor=time.time())
    links = tmp_path / "links"
    station = sim_station.SimStation(scenario, clock, links, pacing=False)
    station.start()
    try:
        state = tmp_path / "sim-state.json"
        station.write_state(state)
        db = tmp_path / "buffer.db"
        config = tmp_path / "station.toml"
        config.write_text(station_toml(station.endpoints, db))
        yield config, state, db
    finally:
        station.stop()


def start_agent(config: Path, state: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent",
                "run",
                "--config",
                str(config),
                "--clock-state",
                str(state),
                "--no-metrics",
                "--log-level",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


# Forks agent processes with the imports already done, so twenty restarts do not spend most of
# the test importing: each child runs `roadside-agent run` from its start (buffer open, integrity
# check, replay, buses) and is the process that gets killed. The last run is a fresh interpreter.
FORKSERVER = r"""
import json, os, signal, sys
import agent.cli, agent.runner
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the killed children
for line in sys.stdin:
    args, log = json.loads(line)
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # stdout carries pids: keep it clean
        os.dup2(os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT), 2)
        try:
            agent.cli.main(args, prog_name="roadside-agent")
        except SystemExit as exc:
            os._exit(exc.code if isinstance(exc.code, int) else 1)
        os._exit(0)
    print(pid, flush=True)
"""


class Forker:
    """A process that forks agent runs on request (see FORKSERVER)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FORKSERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )

    def run(self, args: list[str], log: Path) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps([args, str(log)]) + "\n").encode())
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def rows(db: Path) -> dict[int, dict[str, Any]]:
    """Every record's fields by name, by seq."""
    if not db.exists():
        return {}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        cur = conn.execute(f"SELECT {', '.join(RECORD_FIELDS)} FROM buffered")
        return {r[0]: dict(zip(RECORD_FIELDS, r, strict=True)) for r in cur}
    except sqlite3.OperationalError:  # no table yet
        return {}
    finally:
        conn.close()


def last_seq(db: Path) -> int:
    """The newest reading's seq (a restart's seq_skipped gap row is not the agent committing)."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            row = conn.execute("SELECT max(seq) FROM buffered WHERE kind = 'reading'").fetchone()
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0
    return int(row[0]) if row and row[0] is not None else 0


def verify(db: Path, seen: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    conn = sqlite3.connect(db, timeout=10)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    now = rows(db)
    missing = [s for s in seen if s not in now]
    assert not missing, f"committed rows lost after kill -9: {missing[:10]}"
    changed = [s for s in seen if now[s] != seen[s]]
    assert not changed, f"committed rows changed: {changed[:10]}"
    explained: set[int] = set()
    for row in now.values():
        if row["kind"] == "gap":
            p = json.loads(str(row["payload"]))
            if "first_seq" in p:
                explained |= set(range(p["first_seq"], p["last_seq"] + 1))
    holes = set(range(1, max(now) + 1)) - set(now) - explained
    assert not holes, f"unexplained sequence holes: {sorted(holes)[:10]}"
    totals = [
        row["value"]
        for _, row in sorted(now.items())
        if row["kind"] == "reading" and row["channel"] == "rain_total" and row["value"] is not None
    ]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(totals)), (
        "rain total went backwards across restarts"
    )
    return now


def crash_cycles(config: Path, state: Path, db: Path, tmp_path: Path, kills: int) -> int:
    rng = random.Random(20260721)
    log = tmp_path / "agent.log"
    seen: dict[int, dict[str, Any]] = {}
    args = ["run", "--config", str(config), "--clock-state", str(state), "--no-metrics",
            "--log-level", "warning"]  # fmt: skip
    forker = Forker()
    try:
        for i in range(kills):
            before = last_seq(db)
            pid = forker.run(args, log)
            deadline = time.monotonic() + 20
            while last_seq(db) <= before:  # running and committing again
                assert alive(pid), f"agent died on its own: {log.read_text()[-2000:]}"
                assert time.monotonic() < deadline, "agent did not commit within 20 s"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.4))
            snapshot = rows(db)
            time.sleep(rng.uniform(0.0, 0.03))  # the kill lands anywhere: mid-transaction too
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while alive(pid):
                assert time.monotonic() < deadline, f"round {i}: killed agent still there"
                time.sleep(0.005)
            seen = verify(db, {**seen, **snapshot})
    finally:
        forker.close()
    # a last clean run: SIGTERM flushes and exits 0
    proc = start_agent(config, state, log)
    before = last_seq(db)
    while last_seq(db) <= before:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0, log.read_text()[-2000:]
    final = verify(db, seen)
    assert not Path(str(db) + "-wal").exists() or Path(str(db) + "-wal").stat().st_size == 0
    return len(final)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_kill_minus_nine_loses_nothing_committed(
    storm: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    config, state, db = storm
    n = crash_cycles(config, state, db, tmp_path, kills=8)  # 200 in make soak
    assert n > 200  # a real amount of data went through the kills


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_kill_minus_nine_soak(storm: tuple[Path, Path, Path], tmp_path: Path) -> None:
    config, state, db = storm
    crash_cycles(config, state, db, tmp_path, kills=200)


def test_the_service_process_speaks_sd_notify(
    storm: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """The real `roadside-agent run` under a NOTIFY_SOCKET: READY, WATCHDOG, STOPPING, exit 0."""
    config, state, db = storm
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(30)
        env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}
        env.pop("WATCHDOG_PID", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", "--config", str(config), "--clock-state",
             str(state), "--no-metrics"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            seen: list[dict[str, str]] = []

            def until(key: str) -> dict[str, str]:
                while True:
                    msg = dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())
                    seen.append(msg)
                    if key in msg:
                        return msg

            ready = until("READY")
            assert "devices ok" in ready["STATUS"]
            until("WATCHDOG")
            proc.send_signal(signal.SIGTERM)
            until("STOPPING")
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert last_seq(db) > 0
