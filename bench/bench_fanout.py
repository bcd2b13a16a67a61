"""Configuration fan-out: a threshold change pushed to 1,000 station clients, seconds until all ack.

Set-up (all real): a Mosquitto with the shipped TLS/ACL configuration; 1,000 simulated stations
(:class:`fleet.loadgen.StationClient`), each its own TLS connection with its own certificate (CN =
station id, so the ACLs apply as in the field), spread over ``--procs`` worker processes (each
paho client runs its own network thread: 1,000 connections rather than a few connections with
many subscriptions, because the broker's fan-out, ACL checks and the controller's per-station
acks are what is measured); one controller (:class:`fleet.service.FleetService`, SQLite store).

Ours: ``ConfigManager.push("fleet", {...})`` signs a new fleet document (Ed25519) and publishes it
retained; every station verifies the signature, checks scope and version, and publishes a
``cfg_ack``; the clock stops when the controller has committed 1,000 acks for that version.

Baseline, same broker, same 1,000 clients, same run: a bare MQTT round trip -- an unsigned
``PING`` published on the same topic, each client answering ``PONG`` on its ``cfg_ack`` topic
at once, counted by a plain subscriber (no signing, no verification, no database).
``ratio`` = ours / baseline (seconds; > 1 means slower than the bare round trip).

Each figure is the median of ``--repeat`` rounds. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization

from fleet.loadgen import StationClient
from fleet.service import FleetService
from fleet.store import open_store
from roadside import signing, wire
from roadside.clock import SystemClock
from sim.broker import MosquittoBroker
from sim.pki import CONTROLLER_IDENTITY, TestPKI


def station_id(i: int) -> str:
    return f"st-{i:04d}"


def worker(
    settings: list[wire.BrokerSettings],
    names: list[str],
    public_pem: bytes,
    conn: Any,
) -> None:
    """One worker process: its share of station clients, driven by commands on ``conn``."""
    public = serialization.load_pem_public_key(public_pem)
    clients = [
        StationClient(s, n, public_key=public)  # type: ignore[arg-type]
        for s, n in zip(settings, names, strict=True)
    ]
    for c in clients:
        c.connect_async()
    deadline = time.monotonic() + 120
    ready = sum(c.wait_ready(max(0.0, deadline - time.monotonic())) for c in clients)
    conn.send(("ready", ready))

    def pong(client: mqtt.Client, name: str) -> Any:
        topic = wire.up_topic(name, "cfg_ack")
        return lambda *_: client.publish(topic, b"PONG", qos=1)

    while True:
        cmd = conn.recv()
        if cmd == "baseline":
            for c in clients:
                c.client.message_callback_add(wire.FLEET_CONFIG_TOPIC, pong(c.client, c.station))
            conn.send("ok")
        elif cmd == "ours":
            for c in clients:
                c.client.message_callback_remove(wire.FLEET_CONFIG_TOPIC)
            conn.send("ok")
        elif cmd == "answers":
            conn.send([a.received for c in clients for a in c.answers if a.ok])
        elif cmd == "stop":
            for c in clients:
                c.stop()
            conn.send("ok")
            return


class Counter:
    """A plain subscriber counting PONGs (the baseline's receiving end)."""

    def __init__(self, settings: wire.BrokerSettings) -> None:
        self.count = 0
        self.done = threading.Event()
        self.target = 0
        self._lock = threading.Lock()
        self.client = wire.new_client(settings, "baseline-counter")
        self.client.on_message = self._on_message
        self.client.connect(settings.host, settings.port, clean_start=True)
        self.client.subscribe(f"{wire.PREFIX}/st/+/up/cfg_ack", qos=1)
        self.client.loop_start()

    def _on_message(self, *_: Any) -> None:
        with self._lock:
            self.count += 1
            if self.count >= self.target:
                self.done.set()

    def round(self, publisher: mqtt.Client, n: int, timeout: float) -> float:
        with self._lock:
            self.count, self.target = 0, n
            self.done.clear()
        t0 = time.monotonic()
        publisher.publish(wire.FLEET_CONFIG_TOPIC, b"PING", qos=1, retain=False)
        if not self.done.wait(timeout):
            raise SystemExit(f"baseline: only {self.count} of {n} PONGs")
        return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stations", type=int, default=1000)
    ap.add_argument("--procs", type=int, default=4, help="worker processes holding the clients")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = args.stations
    with tempfile.TemporaryDirectory() as tmp:
        wd = Path(tmp)
        pki = TestPKI(wd / "pki")
        t = time.monotonic()
        names = [station_id(i) for i in range(n)]
        with MosquittoBroker(wd / "broker", pki) as broker:
            settings = [broker.settings(name, keepalive=120) for name in names]
            print(f"{n} client certificates issued in {time.monotonic() - t:.1f} s")
            key = signing.generate_key()
            public_pem = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            ctx = mp.get_context("spawn")
            pipes, procs = [], []
            for w in range(args.procs):
                here, there = ctx.Pipe()
                sl = slice(w, n, args.procs)
                p = ctx.Process(target=worker, args=(settings[sl], names[sl], public_pem, there))
                p.start()
                pipes.append(here)
                procs.append(p)
            t = time.monotonic()
            ready = sum(pipe.recv()[1] for pipe in pipes)
            print(f"{ready}/{n} station clients connected in {time.monotonic() - t:.1f} s")
            if ready < n:
                raise SystemExit("not every station client connected")

            # -- baseline: bare MQTT round trip through the same broker and clients
            for pipe in pipes:
                pipe.send("baseline")
                pipe.recv()
            ctl_settings = broker.settings(CONTROLLER_IDENTITY)
            counter = Counter(ctl_settings)
            publisher = wire.new_client(ctl_settings, "baseline-publisher")
            publisher.connect(ctl_settings.host, ctl_settings.port)
            publisher.loop_start()
            time.sleep(0.5)
            base = [counter.round(publisher, n, 60) for _ in range(args.repeat)]
            publisher.disconnect()
            publisher.loop_stop()
            counter.client.disconnect()
            counter.client.loop_stop()
            for pipe in pipes:
                pipe.send("ours")
                pipe.recv()

            # -- ours: signed document, verified, acked, committed
            store = open_store(f"sqlite:///{wd / 'fleet.db'}")
            service = FleetService(store, SystemClock(), ctl_settings, key, client_id="fanout")
            service.start()
            assert service.config is not None
            deadline = time.monotonic() + 60
            while len(store.stations()) < n:
                if time.monotonic() > deadline:
                    raise SystemExit(f"registry holds {len(store.stations())} of {n} stations")
                time.sleep(0.1)
            ours, delivered = [], []
            for r in range(args.repeat):
                body = {"warnings": {"hold_s": 1200.0 + r}}
                t0 = time.monotonic()
                doc = service.config.push("fleet", body)
                deadline = time.monotonic() + 120
                while True:
                    acked = sum(
                        1
                        for rep in store.reports()
                        if rep.scope == "fleet"
                        and rep.version == doc.version
                        and rep.result == "ack"
                    )
                    if acked >= n:
                        break
                    if time.monotonic() > deadline:
                        raise SystemExit(f"only {acked} of {n} acks for version {doc.version}")
                    time.sleep(0.01)
                ours.append(time.monotonic() - t0)
                answered = []
                for pipe in pipes:
                    pipe.send("answers")
                    answered += pipe.recv()
                delivered.append(max(a for a in answered if a >= t0) - t0)
                print(
                    f"round {r + 1}: all {n} acks committed after {ours[-1]:.2f} s "
                    f"(last station answered after {delivered[-1]:.2f} s)"
                )
            service.stop()
            store.close()
            for pipe in pipes:
                pipe.send("stop")
                pipe.recv()
            for p in procs:
                p.join(30)
    value, baseline = statistics.median(ours), statistics.median(base)
    print(
        f"fan-out to {n} stations: {value:.2f} s until all acks committed "
        f"(stations all answered after {statistics.median(delivered):.2f} s); "
        f"bare MQTT PING/PONG round trip {baseline:.2f} s (medians of {args.repeat})"
    )
    print(
        json.dumps(
            {
                "bench": "fanout",
                "metric": "seconds_until_all_acked",
                "value": round(value, 3),
                "unit": "s",
                "baseline": round(baseline, 3),
                "ratio": round(value / baseline, 2),
                "stations": n,
                "stations_answered_s": round(statistics.median(delivered), 3),
                "worker_processes": args.procs,
            }
        )
    )


if __name__ == "__main__":
    main()
