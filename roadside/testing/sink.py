"""A minimal real controller for link tests and benchmarks: subscribe, commit, acknowledge.

It speaks :mod:`roadside.wire` through the real broker with the ``fleet-controller`` identity and
the shared subscription, stores each batch in SQLite idempotently on (station, seq) in one
transaction, and only after the commit publishes the :class:`~roadside.wire.Ack`. It also keeps
the latest status and every configuration ack. The full controller is ``fleet``; this one exists
so the station side can be tested without it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from roadside import wire

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    station TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT, lane TEXT, time_ms INTEGER,
    sensor TEXT, channel TEXT, value REAL, unit TEXT, status TEXT, flag INTEGER,
    PRIMARY KEY (station, seq)
);
CREATE TABLE IF NOT EXISTS deliveries (station TEXT, lane TEXT, first_seq INTEGER,
    last_seq INTEGER, n INTEGER, new INTEGER, nbytes INTEGER);
"""


@dataclass
class SinkCounts:
    batches: int = 0
    records_new: int = 0
    records_dup: int = 0
    refused: int = 0


class CommittingSink:
    """Subscribe to every station's uplink; commit batches to ``db_path``; ack after commit."""

    def __init__(
        self, broker: wire.BrokerSettings, db_path: Path, *, client_id: str = "sink-1"
    ) -> None:
        self.broker = broker
        self.db_path = Path(db_path)
        self.db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        self.lock = threading.Lock()
        self.counts = SinkCounts()
        self.statuses: dict[str, wire.Status] = {}
        self.config_acks: list[wire.ConfigAck] = []
        self.connected = threading.Event()
        self.changed = threading.Condition()
        self.client = wire.new_client(broker, client_id=client_id)
        self.client.max_inflight_messages_set(64)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.reconnect_delay_set(1, 2)

    def start(self, timeout: float = 10.0) -> CommittingSink:
        self.client.connect_async(
            self.broker.host,
            self.broker.port,
            keepalive=self.broker.keepalive,
            clean_start=False,
            properties=wire.connect_properties(self.broker),
        )
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise RuntimeError("sink did not connect to the broker")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.db.close()

    def __enter__(self) -> CommittingSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        client.subscribe(wire.FLEET_UPLINK_SUBSCRIPTION, qos=1)
        self.connected.set()

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = wire.parse_topic(msg.topic)
        except wire.WireError:
            return
        try:
            if topic.kind in ("data", "events"):
                self._ingest(client, topic.target, msg.payload)
            elif topic.kind == "status" and msg.payload:
                self.statuses[topic.target] = wire.decode_status(msg.payload)
            elif topic.kind == "cfg_ack":
                self.config_acks.append(wire.decode_config_ack(msg.payload))
        except wire.WireError:
            self.counts.refused += 1
        with self.changed:
            self.changed.notify_all()

    def _ingest(self, client: mqtt.Client, station: str, payload: wire.Payload) -> None:
        try:
            batch = wire.decode_batch(payload)
        except wire.WireError as exc:
            self.counts.refused += 1
            ack = wire.Ack(station, (), error=str(exc))
            client.publish(wire.down_topic(station, "ack"), wire.encode_ack(ack), qos=1)
            return
        if batch.station != station:  # a payload must match the topic the ACL checked
            self.counts.refused += 1
            return
        rows = [
            (
                station,
                r.seq,
                r.kind,
                batch.lane,
                wire.to_ms(r.time),
                r.sensor,
                r.channel,
                r.value,
                r.unit,
                r.status,
                r.flag,
            )
            for r in batch.records
        ]
        with self.lock:
            before = self.db.total_changes
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT OR IGNORE INTO records VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows
            )
            new = self.db.total_changes - before
            self.db.execute(
                "INSERT INTO deliveries VALUES (?,?,?,?,?,?,?)",
                (
                    station,
                    batch.lane,
                    batch.first_seq,
                    batch.last_seq,
                    len(rows),
                    new,
                    len(payload),
                ),
            )
            self.db.execute("COMMIT")
        self.counts.batches += 1
        self.counts.records_new += new
        self.counts.records_dup += len(rows) - new
        ack = wire.Ack(station, wire.seq_ranges(batch.seqs), lane=batch.lane)
        client.publish(wire.down_topic(station, "ack"), wire.encode_ack(ack), qos=1)

    # -- queries for tests ----------------------------------------------------------------------

    def seqs(self, station: str) -> list[int]:
        with self.lock:
            cur = self.db.execute(
                "SELECT seq FROM records WHERE station = ? ORDER BY seq", (station,)
            )
            return [r[0] for r in cur]

    def count(self, station: str | None = None) -> int:
        with self.lock:
            if station is None:
                return int(self.db.execute("SELECT count(*) FROM records").fetchone()[0])
            return int(
                self.db.execute(
                    "SELECT count(*) FROM records WHERE station = ?", (station,)
                ).fetchone()[0]
            )

    def deliveries(self, station: str) -> list[tuple[str, int, int, int, int, int]]:
        """(lane, first_seq, last_seq, n, new, bytes) per batch received, in arrival order."""
        with self.lock:
            cur = self.db.execute(
                "SELECT lane, first_seq, last_seq, n, new, nbytes FROM deliveries WHERE station = ?"
                " ORDER BY rowid",
                (station,),
            )
            return [tuple(r) for r in cur]

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        """Wait (real seconds) until ``predicate()`` is true; re-checked on every message."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.1))
        return True
