"""Backlog drain: a day of one-minute readings from 10 channels, station buffer -> fleet store.

Ours: the station's SQLite buffer holds 14,400 readings (a day offline); the uplink, in its own
process as on a station, drains them through a real Mosquitto (TLS, client certificates, the
shipped ACL) to the fleet controller (``fleet.service.FleetService``, SQLite store) in this
process, which commits and acknowledges; the clock runs from "go" until the station has every
row acknowledged, i.e. committed (checked afterwards: store holds exactly 1..n, none unsynced).

Baseline, same broker, same run, same arrangement: raw paho-mqtt, QoS 1, one reading per message
(compact JSON), a publisher process to a subscriber in this process over the same TLS listener
(the controller identity publishing to a station's downlink, which the fleet controller does not
consume): messages per second from "go" to the last message received.
``ratio`` = our readings/s / raw messages/s.

Before that it prints the codec comparison on the same day of data (the measurement
:mod:`roadside.wire` chose its default codec by). Medians of ``--runs`` runs.

    .venv/bin/python bench/bench_backlog_drain.py [--runs 5] [--json-only]
"""

from __future__ import annotations

import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import msgspec

from agent.buffer import Buffer
from agent.uplink import Uplink, UplinkSettings
from fleet.service import FleetService
from fleet.store import open_store
from roadside import wire
from roadside.clock import SystemClock
from roadside.contract import UNNUMBERED, Record
from sim.broker import MosquittoBroker
from sim.pki import CONTROLLER_IDENTITY, TestPKI

STATION = "bench-st"
RAW_RECEIVER = "bench-raw"
DAY_START = datetime(2026, 7, 21, tzinfo=UTC)
CHANNELS = (
    ("rain", "rain_total", "mm"),
    ("rain", "rain_intensity", "mm/h"),
    ("rain", "tip_count", ""),
    ("wind", "wind_speed", "m/s"),
    ("wind", "wind_dir", "deg"),
    ("wind", "wind_gust", "m/s"),
    ("level", "water_distance", "mm"),
    ("level", "water_depth", "mm"),
    ("level", "air_gap", "mm"),
    ("rain", "uptime", "min"),
)


def day_of_readings(start: datetime = DAY_START, seed: int = 1) -> list[Record]:
    """1,440 minutes x 10 channels with a storm in the afternoon (plausible values and raws)."""
    rng = random.Random(seed)
    out: list[Record] = []
    total = 0.0
    for m in range(1440):
        t = start + timedelta(minutes=m)
        intensity = max(0.0, 30 * math.sin((m - 600) / 95)) if 600 < m < 900 else 0.0
        total += intensity / 60
        depth = max(0.0, total * 2 - 20)
        values = [
            round(total, 4),
            round(intensity, 1),
            int(total / 0.1),
            round(abs(rng.gauss(4, 2)), 2),
            float(rng.randrange(360)),
            round(abs(rng.gauss(7, 3)), 2),
            round(2000 - depth, 0),
            round(depth, 0),
            round(2000 - depth, 0),
            float(m),
        ]
        for (sensor, channel, unit), v in zip(CHANNELS, values, strict=True):
            out.append(
                Record(
                    seq=UNNUMBERED,
                    kind="reading",
                    time=t,
                    sensor=sensor,
                    channel=channel,
                    value=float(v),
                    unit=unit,
                    raw=str(v),
                    status="ok",
                    flag=0,
                )
            )
    return out


# -- codecs -------------------------------------------------------------------------------------


def codec_table(records: list[Record], batch_size: int = 500) -> dict[str, dict]:
    """Median bytes per batch and encode+decode ms per batch for each codec."""
    wire_records = [msgspec.structs.replace(r, seq=i + 1) for i, r in enumerate(records)]
    batches = [
        wire.Batch(STATION, "backlog", tuple(wire_records[i : i + batch_size]))
        for i in range(0, len(wire_records), batch_size)
    ]
    table = {}
    for codec in wire.CODECS:
        sizes, times = [], []
        for _ in range(3):
            for b in batches:
                t0 = time.perf_counter()
                data = wire.encode_batch(b, codec)  # type: ignore[arg-type]
                wire.decode_batch(data)
                times.append(time.perf_counter() - t0)
                sizes.append(len(data))
        size = statistics.median(sizes)
        table[codec] = {
            "bytes_per_batch": size,
            "bytes_per_reading": size / batch_size,
            "enc_dec_ms": statistics.median(times) * 1000,
        }
    return table


# -- the sending side, in its own process (as on a real station) ------------------------------


def _settings_args(broker: MosquittoBroker, identity: str) -> list[str]:
    s = broker.settings(identity)
    return ["--port", str(s.port), "--ca", str(s.ca), "--cert", str(s.cert), "--key", str(s.key)]


def _spawn(role: str, *args: str) -> subprocess.Popen[str]:
    """Start this script in ``role``; it prints ``ready`` once set up and waits for ``go``."""
    proc = subprocess.Popen(
        [sys.executable, __file__, role, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise click.ClickException(f"{role} process did not start")
    return proc


def _go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def _sender_options(f: Any) -> Any:
    for opt in (
        click.option("--port", type=int, required=True),
        click.option("--ca", type=click.Path(path_type=Path), required=True),
        click.option("--cert", type=click.Path(path_type=Path), required=True),
        click.option("--key", type=click.Path(path_type=Path), required=True),
    ):
        f = opt(f)
    return f


@click.command()
@click.option("--buffer", "buffer_path", type=click.Path(path_type=Path), required=True)
@click.option("--batch-size", type=int, required=True)
@click.option("--window", type=int, required=True)
@_sender_options
def station_role(
    buffer_path: Path, batch_size: int, window: int, port: int, ca: Path, cert: Path, key: Path
) -> None:
    """Drain a buffer once told to go; print ``done`` when the controller acked every row."""
    clock = SystemClock()
    buf = Buffer(buffer_path, max_bytes=1 << 31, clock=clock)
    n = buf.stats().unsynced
    settings = replace(UplinkSettings(), batch_size=batch_size, window=window)
    uplink = Uplink(
        STATION,
        buf,
        wire.BrokerSettings("127.0.0.1", port, ca, cert, key),
        clock,
        settings=settings,
    )
    print("ready", flush=True)
    sys.stdin.readline()
    uplink.start()
    # An ack follows the controller's commit, so "all acked" means "all committed". Watch the
    # uplink's in-memory counter: polling the buffer would take its lock.
    while uplink.status().records_acked < n:
        time.sleep(0.005)
    print("done", flush=True)
    uplink.stop()
    buf.close()


@click.command()
@click.option("--n", type=int, required=True)
@_sender_options
def rawpub_role(n: int, port: int, ca: Path, cert: Path, key: Path) -> None:
    """Publish ``n`` one-reading QoS 1 messages to the raw receiver once told to go."""
    pub = wire.new_client(wire.BrokerSettings("127.0.0.1", port, ca, cert, key), "raw-pub")
    connected = threading.Event()
    pub.on_connect = lambda *a: connected.set()
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    connected.wait(10)
    payloads = [
        json.dumps(
            {
                "st": STATION,
                "seq": i,
                "t": 1784592000000 + i * 6000,
                "ch": "rain_total",
                "v": round(i * 0.01, 2),
                "u": "mm",
                "q": 0,
            },
            separators=(",", ":"),
        ).encode()
        for i in range(n)
    ]
    topic = wire.down_topic(RAW_RECEIVER, "ack")
    print("ready", flush=True)
    sys.stdin.readline()
    infos = [pub.publish(topic, p, qos=1) for p in payloads]
    for info in infos:
        info.wait_for_publish(60)
    pub.disconnect()
    pub.loop_stop()


# -- ours ---------------------------------------------------------------------------------------


def drain_once(
    broker: MosquittoBroker, workdir: Path, records: list[Record], batch: int, window: int
) -> float:
    """Seconds to drain ``records`` from a fresh station buffer into a fresh fleet store.

    The station is its own process (the uplink); the fleet controller runs in this one.
    """
    clock = SystemClock()
    buf_path = workdir / "station.db"
    with Buffer(buf_path, max_bytes=1 << 31, clock=clock) as buf:
        buf.append(records)
    store = open_store(f"sqlite:///{workdir / 'fleet.db'}")
    # One client id for every run: a controller session left behind would stay in the shared
    # subscription's group and take its share of batches until the session expires.
    service = FleetService(store, clock, broker.settings(CONTROLLER_IDENTITY), None)
    service.start()
    n = len(records)
    try:
        proc = _spawn(
            "station",
            "--buffer",
            str(buf_path),
            "--batch-size",
            str(batch),
            "--window",
            str(window),
            *_settings_args(broker, STATION),
        )
        assert proc.stdout is not None
        t0 = time.perf_counter()
        _go(proc)
        if proc.stdout.readline().strip() != "done":
            raise click.ClickException("station process ended before draining")
        elapsed = time.perf_counter() - t0
        proc.wait(30)
        with Buffer(buf_path, max_bytes=1 << 31, clock=clock) as buf:
            unsynced = buf.stats().unsynced
        if unsynced or store.seqs(STATION) != list(range(1, n + 1)):
            raise click.ClickException("not drained: store must hold exactly seqs 1..n, all synced")
    finally:
        service.stop()
        store.close()
    return elapsed


# -- baseline -----------------------------------------------------------------------------------


def raw_paho_once(broker: MosquittoBroker, n: int) -> float:
    """Seconds for ``n`` QoS 1 one-reading messages, publish to receive, through ``broker``.

    A publisher process with the controller identity publishes to a station's downlink and this
    process, as that station, receives: the same broker, TLS and ACL path, on a topic the fleet
    controller does not consume.
    """
    topic = wire.down_topic(RAW_RECEIVER, "ack")
    got = 0
    all_in = threading.Event()
    subscribed = threading.Event()

    def on_message(*_a: object) -> None:
        nonlocal got
        got += 1
        if got == n:
            all_in.set()

    sub = wire.new_client(broker.settings(RAW_RECEIVER), "raw-sub")
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    if not subscribed.wait(10):
        raise click.ClickException("raw receiver did not subscribe")
    proc = _spawn("rawpub", "--n", str(n), *_settings_args(broker, CONTROLLER_IDENTITY))
    t0 = time.perf_counter()
    _go(proc)
    if not all_in.wait(300):
        raise click.ClickException(f"raw baseline received {got}/{n}")
    elapsed = time.perf_counter() - t0
    proc.wait(30)
    sub.disconnect()
    sub.loop_stop()
    return elapsed


@click.command()
@click.option("--runs", default=5, show_default=True, help="Runs of each side (median quoted).")
@click.option("--batch-size", default=500, show_default=True)
@click.option("--window", default=8, show_default=True)
@click.option("--json-only", is_flag=True, help="Print only the final JSON line.")
def main(runs: int, batch_size: int, window: int, json_only: bool) -> None:
    """Backlog drain end to end vs raw paho-mqtt QoS 1 messages/s."""
    records = day_of_readings()
    n = len(records)
    say = (lambda *_a: None) if json_only else click.echo
    say(f"codec comparison, {n} readings in batches of 500 (median per batch):")
    say(f"  {'codec':<10} {'bytes/batch':>12} {'bytes/reading':>14} {'enc+dec ms':>11}")
    for codec, row in codec_table(records).items():
        say(
            f"  {codec:<10} {row['bytes_per_batch']:>12.0f} {row['bytes_per_reading']:>14.1f}"
            f" {row['enc_dec_ms']:>11.2f}"
        )
    ours, raw = [], []
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
        root = Path(tmp)
        with MosquittoBroker(root / "broker", TestPKI(root / "pki")) as broker:
            for i in range(runs):
                work = root / f"run{i}"
                work.mkdir()
                ours.append(n / drain_once(broker, work, records, batch_size, window))
                raw.append(n / raw_paho_once(broker, n))
                say(
                    f"run {i + 1}: ours {ours[-1]:,.0f} readings/s, raw {raw[-1]:,.0f} msg/s,"
                    f" ratio {ours[-1] / raw[-1]:.2f}"
                )
    value, baseline = statistics.median(ours), statistics.median(raw)
    print(
        json.dumps(
            {
                "bench": "backlog_drain",
                "metric": "readings_per_s_end_to_end",
                "value": round(value, 1),
                "unit": "readings/s",
                "baseline": round(baseline, 1),
                "ratio": round(value / baseline, 2),
            }
        )
    )


ROLES = {"station": station_role, "rawpub": rawpub_role}

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ROLES:
        ROLES[sys.argv[1]](sys.argv[2:])
    else:
        main()
