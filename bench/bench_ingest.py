"""Controller ingest: readings committed per second on SQLite and PostgreSQL, one vs two processes.

Set-up (all real, on this machine): a Mosquitto with the shipped TLS/ACL configuration; N
``python -m fleet run`` processes sharing ``$share/fleet/...``; 8 simulated stations (paho, TLS)
publishing pre-encoded batches of 500 readings (json+zstd, the wire default) at QoS 1 as fast as
the broker takes them. The clock starts at the first publish and stops when the database holds
every reading (each batch committed in one transaction and acked after commit).

Baseline, same run, same database engine and schema: a bare ``executemany`` INSERT loop, one
transaction per 500-reading batch, in one process -- what the database does with no MQTT, no
decoding and no acks. ``ratio`` = ours / baseline. The scaling ratio is two processes / one.

Each figure is the median of ``--repeat`` runs. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import psycopg

from fleet.ingest import batch_to_ingest
from fleet.loadgen import readings
from fleet.store import open_store
from fleet.store_sql import INSERT_RECORD, record_rows
from roadside import wire
from sim.broker import MosquittoBroker, free_port
from sim.pki import CONTROLLER_IDENTITY, TestPKI

PG_URL = os.environ.get("ROADSIDE_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 7, 21, 12, 0, tzinfo=UTC)
STATIONS = 8
BATCH = 500


def make_payloads(batches_per_station: int) -> dict[str, list[bytes]]:
    """Pre-encoded batches per station (encoding is the station's cost, not the controller's)."""
    out: dict[str, list[bytes]] = {}
    for s in range(STATIONS):
        station = f"st-{s:03d}"
        out[station] = [
            wire.encode_batch(
                wire.Batch(station, "backlog", tuple(readings(1 + b * BATCH, BATCH, T0)))
            )
            for b in range(batches_per_station)
        ]
    return out


class Database:
    """A fresh SQLite file or PostgreSQL schema per run."""

    def __init__(self, backend: str, workdir: Path) -> None:
        self.backend = backend
        self.workdir = workdir
        self.schema = ""

    def __enter__(self) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.workdir / f'{uuid.uuid4().hex[:8]}.db'}"
        self.schema = f"bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {self.schema}")
        return f"{PG_URL}?options=-csearch_path%3D{self.schema}"

    def __exit__(self, *exc: object) -> None:
        if self.schema:
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {self.schema} CASCADE")


def start_controllers(
    n: int, url: str, broker: MosquittoBroker, workdir: Path
) -> list[subprocess.Popen[bytes]]:
    procs, apis = [], []
    for i in range(n):
        # one certificate per process: the broker binds the client id to the certificate's CN
        ident = f"{CONTROLLER_IDENTITY}-{uuid.uuid4().hex[:6]}-{i}"
        files = broker.pki.client(ident)
        port = free_port()
        cmd = [
            sys.executable, "-m", "fleet", "run", "--db", url,
            "--broker", f"127.0.0.1:{broker.port}", "--ca", str(files.ca),
            "--cert", str(files.cert), "--key", str(files.key),
            "--client-id", ident, "--http", f"127.0.0.1:{port}",
        ]  # fmt: skip
        log = open(workdir / f"ctl-{i}.log", "ab")  # noqa: SIM115
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
        apis.append(f"http://127.0.0.1:{port}/livez")
    for proc, api in zip(procs, apis, strict=True):
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"controller did not start; see {workdir}")
            try:
                if httpx.get(api, timeout=1).json()["broker_connected"]:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    return procs


def stop_controllers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def publishers(broker: MosquittoBroker) -> dict[str, mqtt.Client]:
    clients = {}
    for s in range(STATIONS):
        station = f"st-{s:03d}"
        c = wire.new_client(broker.settings(station), f"pub-{station}-{uuid.uuid4().hex[:4]}")
        c.max_inflight_messages_set(100)
        c.max_queued_messages_set(0)
        c.connect("127.0.0.1", broker.port, clean_start=True)
        c.loop_start()
        clients[station] = c
    deadline = time.monotonic() + 10
    while not all(c.is_connected() for c in clients.values()):
        if time.monotonic() > deadline:
            raise SystemExit("station publishers did not connect")
        time.sleep(0.02)
    return clients


def run_ours(
    backend: str, nproc: int, broker: MosquittoBroker, payloads: dict[str, list[bytes]], wd: Path
) -> float:
    total = sum(len(p) for p in payloads.values()) * BATCH
    with Database(backend, wd) as url:
        open_store(url).close()  # schema before the processes start
        procs = start_controllers(nproc, url, broker, wd)
        store = open_store(url)
        clients = publishers(broker)
        try:
            t0 = time.perf_counter()
            for b in range(max(len(p) for p in payloads.values())):
                for station, batches in payloads.items():
                    clients[station].publish(wire.up_topic(station, "data"), batches[b], qos=1)
            deadline = time.monotonic() + 300
            while store.count() < total:
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {store.count()} of {total} readings committed")
                time.sleep(0.02)
            elapsed = time.perf_counter() - t0
        finally:
            for c in clients.values():
                c.disconnect()
                c.loop_stop()
            stop_controllers(procs)
            store.close()
    return total / elapsed


def run_baseline(backend: str, payloads: dict[str, list[bytes]], wd: Path) -> float:
    """Bare INSERT loop: the store's own INSERT, one transaction per batch, rows pre-built."""
    received = datetime.now(UTC)
    batches = [
        batch_to_ingest(wire.decode_batch(p), received) for ps in payloads.values() for p in ps
    ]
    rows = [row for b in batches for row in record_rows(b)]
    with Database(backend, wd) as url:
        open_store(url).close()
        sql = INSERT_RECORD
        if backend == "sqlite":
            import sqlite3

            conn = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            t0 = time.perf_counter()
            for i in range(0, len(rows), BATCH):
                conn.execute("BEGIN")
                conn.executemany(sql, rows[i : i + BATCH])
                conn.execute("COMMIT")
            elapsed = time.perf_counter() - t0
            conn.close()
        else:
            with psycopg.connect(url, autocommit=True) as pg:
                t0 = time.perf_counter()
                for i in range(0, len(rows), BATCH):
                    with pg.transaction(), pg.cursor() as cur:
                        cur.executemany(sql.replace("?", "%s"), rows[i : i + BATCH])
                elapsed = time.perf_counter() - t0
    return len(rows) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=25, help="batches of 500 per station per run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args()
    backends = args.backends.split(",")
    payloads = make_payloads(args.batches)
    total = STATIONS * args.batches * BATCH
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(tmp)
        pki = TestPKI(wd / "pki")
        with MosquittoBroker(wd / "broker", pki) as broker:
            for backend in backends:
                base = [run_baseline(backend, payloads, wd) for _ in range(args.repeat)]
                one = [run_ours(backend, 1, broker, payloads, wd) for _ in range(args.repeat)]
                two = [run_ours(backend, 2, broker, payloads, wd) for _ in range(args.repeat)]
                r = {
                    "baseline_insert_loop": statistics.median(base),
                    "one_process": statistics.median(one),
                    "two_processes": statistics.median(two),
                }
                r["scaling_two_over_one"] = r["two_processes"] / r["one_process"]
                r["one_process_over_baseline"] = r["one_process"] / r["baseline_insert_loop"]
                results[backend] = r
                print(
                    f"{backend:<10} readings/s committed (median of {args.repeat}, {total}/run):"
                    f" 1 proc {r['one_process']:,.0f}  2 procs {r['two_processes']:,.0f}"
                    f"  (x{r['scaling_two_over_one']:.2f})  bare INSERT loop"
                    f" {r['baseline_insert_loop']:,.0f}"
                )
    main_backend = backends[0]
    m = results[main_backend]
    print(
        json.dumps(
            {
                "bench": "ingest",
                "metric": f"readings_committed_per_s_{main_backend}_1proc",
                "value": round(m["one_process"]),
                "unit": "readings/s",
                "baseline": round(m["baseline_insert_loop"]),
                "ratio": round(m["one_process_over_baseline"], 3),
                "results": {
                    b: {k: round(v, 3 if "over" in k else 0) for k, v in r.items()}
                    for b, r in results.items()
                },
                "readings_per_run": total,
                "batch": BATCH,
                "stations": STATIONS,
            }
        )
    )


if __name__ == "__main__":
    main()
