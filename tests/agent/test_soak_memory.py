"""Memory over time: a day of the peer's workload, accelerated, grows the agent's RSS < 5 MB.

The real agent (``python -m agent run``, QC, derived, nowcast, buffer, mutual-TLS uplink to a real
Mosquitto, a committing controller acking) polls the benchmark's Modbus TCP simulator (three
devices x ten registers, :mod:`bench.bench_peer`) every clock minute on a clock running 24
hours in three real minutes. RSS is read from ``/proc`` an hour after the first delivery
(start-up done, first windows filled) and at the end of the day; the difference must stay under
5 MB, and every reading of the day must have reached the controller. ``make soak`` runs it.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from roadside.clock import ScaledClock
from roadside.testing.sink import CommittingSink
from sim.broker import MosquittoBroker
from sim.pki import CONTROLLER_IDENTITY, TestPKI

ROOT = Path(__file__).resolve().parents[2]
DAY_S = 24 * 3600.0
SPEED = 480.0  # a day in three real minutes
POLL_S = 60.0  # clock seconds between polls: 24 polls a real second over the three devices
START = datetime(2026, 7, 21, tzinfo=UTC)


def _bench_peer():
    spec = importlib.util.spec_from_file_location("bench_peer", ROOT / "bench" / "bench_peer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _readings(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(
            conn.execute("SELECT count(*) FROM buffered WHERE kind = 'reading'").fetchone()[0]
        )
    finally:
        conn.close()


@pytest.mark.soak
@pytest.mark.timeout(900)
def test_a_day_of_polling_grows_rss_less_than_5_mb(tmp_path: Path) -> None:
    bp = _bench_peer()
    clock = ScaledClock(START, speed=SPEED, anchor=time.time())
    state = tmp_path / "clock.json"
    state.write_text(
        json.dumps({"clock": {"start": START.isoformat(), "speed": SPEED, "anchor": clock.anchor}})
    )
    profile = tmp_path / "peer.toml"
    profile.write_text(bp.profile_text())
    sim = bp.start_simulator(profile)
    sim.now_s = lambda: clock.now().timestamp()
    pki = TestPKI(tmp_path / "pki")
    station = "soak-st"
    db = tmp_path / "agent.db"
    try:
        with (
            MosquittoBroker(tmp_path / "broker", pki) as broker,
            CommittingSink(broker.settings(CONTROLLER_IDENTITY), tmp_path / "sink.db") as sink,
        ):
            cfg = tmp_path / "agent.toml"
            text = bp.agent_config(station, profile, sim.tcp_port, POLL_S, db, broker, "auto")
            # network timeouts in real seconds: the uplink's are clock seconds, scaled here
            linger = "live_linger_s = 10.0\n"
            text = text.replace(linger, f"{linger}ack_timeout_s = {30.0 * SPEED}\n")
            cfg.write_text(text)
            cmd = [sys.executable, "-m", "agent", "run", "--config", str(cfg)]
            cmd += ["--clock-state", str(state), "--log-level", "error"]
            proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE)
            try:
                deadline = time.monotonic() + 120
                while not sink.count(station):  # started: imports done, polling, delivering
                    assert proc.poll() is None and time.monotonic() < deadline, "agent not up"
                    time.sleep(0.2)
                t0 = clock.monotonic()

                def at(clock_s: float) -> None:
                    while clock.monotonic() - t0 < clock_s:
                        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                        time.sleep(0.5)

                at(3600.0)
                first = _rss_mb(proc.pid)
                at(DAY_S)
                last = _rss_mb(proc.pid)
                polled = _readings(db)
                # the day was polled (a loaded machine skips some polls) and reached the fleet
                assert polled > 0.5 * DAY_S / POLL_S * 30
                delivered = sink.wait_for(lambda: sink.count(station) >= polled, 120)
                assert delivered, f"{sink.count(station)} of {polled} readings reached the fleet"
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
    finally:
        sim.stop()
    print(f"RSS {first:.1f} -> {last:.1f} MB over the day ({polled} readings)")  # pytest -s
    assert last - first < 5.0, (
        f"RSS grew {last - first:.1f} MB over the day ({first:.1f} -> {last:.1f})"
    )
