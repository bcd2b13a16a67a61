"""What the device under test reported, from wherever it reports it, on the scenario's time axis.

Three sources, as the run file's ``[dut]`` says: its MQTT uplink (batches on the fleet's topics,
decoded with :mod:`roadside.wire`, read with a controller certificate), its status JSON polled over
HTTP (or a ``file://`` URL), or its SQLite buffer copied back after the run. All give plain
:class:`Observed` data: readings (raw sensor values with their QC flags), derived values, and
warning events, each at scenario seconds.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent.warnings import LEVELS
from roadside import wire
from roadside.contract import RECORD_FIELDS, from_mapping
from sim.hil.errors import DutError
from sim.hil.runfile import DutSpec

TimeMap = Callable[[datetime], float]  # the DUT's timestamp -> scenario seconds


@dataclass(frozen=True)
class Value:
    """One value the DUT reported: a raw reading (``sensor`` set) or a derived product."""

    t_s: float
    sensor: str
    channel: str
    value: float | None
    flag: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class WarningEvent:
    """A warning the DUT raised, upgraded, lowered or cancelled."""

    t_s: float
    signal: str
    level: str
    kind: str
    certainty: str = ""


@dataclass
class Observed:
    """Everything collected from the DUT (deduplicated by the station's record seq)."""

    readings: list[Value] = field(default_factory=list)
    derived: list[Value] = field(default_factory=list)
    warnings: list[WarningEvent] = field(default_factory=list)
    seqs: set[int] = field(default_factory=set)

    def add_record(self, r: wire.WireRecord, t_s: float) -> None:
        """One record of the station's buffer or uplink."""
        if r.seq in self.seqs:
            return
        self.seqs.add(r.seq)
        if r.kind == "reading":
            self.readings.append(Value(t_s, r.sensor, r.channel, r.value, r.flag, r.reason))
        elif r.kind == "derived":
            self.derived.append(Value(t_s, r.sensor, r.channel, r.value, r.flag, r.reason))
        elif r.kind == "event" and r.payload and r.payload.get("signal"):
            p = r.payload
            self.warnings.append(
                WarningEvent(
                    t_s, str(p["signal"]), str(p.get("level")), str(p.get("kind")),
                    str(p.get("certainty", "")),
                )
            )  # fmt: skip

    def sort(self) -> Observed:
        for items in (self.readings, self.derived, self.warnings):
            items.sort(key=lambda v: v.t_s)
        return self


class MqttCollector:
    """Subscribes to the station's data and event topics and decodes every batch.

    With ``ack`` it acknowledges each batch as the fleet would (no fleet controller on the
    broker); without, a fleet controller on the same broker does and the collector only listens.
    """

    def __init__(
        self, settings: wire.BrokerSettings, station: str, to_s: TimeMap, *, ack: bool = True
    ) -> None:
        self.station, self.to_s, self.ack = station, to_s, ack
        self.observed = Observed()
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = wire.new_client(settings, f"hil-{station}")
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *a: self._subscribed.set()
        self._client.on_message = self._on_message
        self._settings = settings

    def start(self, timeout_s: float = 15.0) -> MqttCollector:
        try:
            self._client.connect(self._settings.host, self._settings.port, keepalive=30)
        except OSError as exc:
            where = f"{self._settings.host}:{self._settings.port}"
            raise DutError(f"dut.mqtt: cannot reach the broker at {where}: {exc}") from None
        self._client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise DutError("dut.mqtt: the broker did not accept the subscription")
        return self

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        client.subscribe(
            [(wire.up_topic(self.station, "data"), 1), (wire.up_topic(self.station, "events"), 1)]
        )

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            batch = wire.decode_batch(msg.payload)
        except wire.WireError as exc:
            self.errors.append(f"{msg.topic}: {exc}")
            return
        with self._lock:
            for r in batch.records:
                self.observed.add_record(r, self.to_s(r.time))
        if self.ack:  # standing in for the fleet: the records are kept, the station may sync them
            ack = wire.Ack(self.station, wire.seq_ranges(batch.seqs), lane=batch.lane)
            client.publish(wire.down_topic(self.station, "ack"), wire.encode_ack(ack), qos=1)

    def stop(self) -> Observed:
        self._client.loop_stop()
        self._client.disconnect()
        with self._lock:
            return self.observed.sort()


class HttpPoller:
    """Polls the DUT's status JSON (the agent's status document: ``derived``, ``warnings``)."""

    def __init__(self, url: str, interval_s: float, to_s: TimeMap) -> None:
        self.url, self.interval_s, self.to_s = url, interval_s, to_s
        self.observed = Observed()
        self.failures = 0
        self._seen: set[tuple[str, str]] = set()
        self._levels: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hil-http", daemon=True)

    def start(self) -> HttpPoller:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as resp:
                    doc = json.loads(resp.read())
            except (OSError, ValueError, urllib.error.URLError):
                self.failures += 1
                continue
            self.take(doc)

    def take(self, doc: dict[str, Any]) -> None:
        """One status document: new derived values; warning level changes as events."""
        for name, v in (doc.get("derived") or {}).items():
            key = (name, str(v.get("time")))
            if key in self._seen or v.get("time") is None:
                continue
            self._seen.add(key)
            t_s = self.to_s(datetime.fromisoformat(str(v["time"])))
            self.observed.derived.append(Value(t_s, "", name, v.get("value"), v.get("flag")))
        updated = doc.get("updated")
        if updated is None:
            return
        t_s = self.to_s(datetime.fromisoformat(str(updated)))
        for signal, level in (doc.get("warnings") or {}).items():
            level = int(level or 0)
            before = self._levels.get(signal, 0)
            if level != before:
                kind = "raise" if before == 0 else ("upgrade" if level > before else "lower")
                name = LEVELS[level] if 0 <= level < len(LEVELS) else str(level)
                self.observed.warnings.append(WarningEvent(t_s, signal, name, kind))
                self._levels[signal] = level

    def stop(self) -> Observed:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.observed.sort()


def read_buffer(path: Path, to_s: TimeMap) -> Observed:
    """Every record of a station buffer database (copied back from the DUT)."""
    if not Path(path).is_file():
        raise DutError(f"dut.sqlite: {path}: no such buffer database")
    out = Observed()
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            views = con.execute("SELECT name FROM sqlite_master WHERE type = 'view'")
            every = "buffered" if ("buffered",) in views.fetchall() else "records"  # older DUTs
            rows = con.execute(
                f"SELECT {', '.join(RECORD_FIELDS)} FROM {every} ORDER BY seq"
            ).fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise DutError(f"dut.sqlite: {path}: not a station buffer: {exc}") from None
    for row in rows:
        d = dict(zip(RECORD_FIELDS, row, strict=True))
        when = datetime.fromisoformat(d["time"])
        payload = json.loads(d["payload"]) if d["payload"] else None
        out.add_record(from_mapping(d, time=when, payload=payload), to_s(when))
    return out.sort()


def time_map(dut: DutSpec, scenario_start: datetime, wall_start: datetime, speed: float) -> TimeMap:
    """DUT timestamps to scenario seconds: its clock is the simulator's, or its own wall clock."""
    if dut.clock == "shared":
        return lambda when: (when - scenario_start).total_seconds()
    return lambda when: (when - wall_start).total_seconds() * speed
