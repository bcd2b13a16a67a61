"""Ingest: uplink messages in, committed rows and acknowledgements out.

The MQTT network thread only queues messages; one worker thread takes up to ``max_group``
queued messages at a time, decodes them, commits every batch among them in one transaction
(group commit: each batch lies wholly inside one transaction), and only then publishes the
application ack (``down/ack`` with the committed seq ranges) and releases the MQTT-level ack.
A resent batch commits nothing new and is acked again. If the database fails, nothing is acked:
the worker retries the same messages after a pause, and the station resends anyway.

Status messages update the registry; configuration acks go to :class:`fleet.rollout.ConfigManager`.

One station cannot starve the others (:class:`IngestLimits`): the queue is bounded (messages,
bytes, and messages per station); each station has a byte budget per minute; a batch may hold at
most ``max_records`` records; payloads are decoded with the bounds of :mod:`roadside.wire`. A
message refused by these limits is released at the broker without an application ack, so a
station that is merely busy resends it later and loses nothing. A message that cannot be decoded
(or makes the decoder fail in any way) is refused alone with an error ack: the rest of its group
commits. A repeated ``(station, seq)`` with other content is kept as a conflict (see
:meth:`fleet.store.Store.conflicts`), counted and logged, never acked as a silent duplicate.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import msgspec

from fleet.store import IngestBatch, IngestResult, StationUpdate, Store
from roadside import contract, wire
from roadside.clock import Clock

log = logging.getLogger(__name__)

MAX_GROUP = 64
DB_RETRY_S = 1.0


@dataclass(frozen=True)
class IngestLimits:
    """What one controller process accepts; beyond it messages are released unacknowledged."""

    max_queue: int = 4096  # messages waiting for the worker
    max_queue_bytes: int = 64 << 20
    max_station_queued: int = 128  # one station's share of the queue
    station_bytes_per_min: int = 8 << 20  # a day of backlog drains in minutes, a flood does not
    station_burst_bytes: int = 8 << 20
    max_records: int = 5000  # per batch (the agent sends 500)


class _Budget:
    """Token bucket of bytes per station, refilled continuously."""

    __slots__ = ("level", "t")

    def __init__(self, level: float, t: float) -> None:
        self.level, self.t = level, t


def batch_to_ingest(batch: wire.Batch, received: datetime) -> IngestBatch:
    """A decoded wire batch as the store's ingest unit: the same records, with the controller's
    receive time and the station's send time in epoch seconds."""
    return IngestBatch(
        station=batch.station,
        lane=batch.lane,
        first_seq=batch.first_seq,
        last_seq=batch.last_seq,
        records=batch.records,
        received=received.timestamp(),
        sent=batch.sent.timestamp() if batch.sent else None,
    )


def status_to_update(status: wire.Status, received: datetime) -> StationUpdate:
    """A status message as a registry update; clock offset = station time - receive time.

    Grid cell, backlog and devices are typed fields of :class:`roadside.contract.Status`; a
    station without a cell in its status is placed by the cell of a running grid document.
    """
    cell = status.grid_cell
    if not cell:  # a station that runs a grid document says its cell in the scope key
        cells = [k.partition(":")[2] for k in status.remote_config if k.startswith("grid:")]
        cell = cells[0] if cells else None
    return StationUpdate(
        station=status.station,
        seen=received.timestamp(),
        online=status.state == "online",
        contract=status.contract,
        software=status.software or None,
        config_version=status.config_version,
        model_version=status.model_version or None,
        grid_cell=cell or None,
        health=_health(status),
        devices=dict(status.devices) or None,
        backlog=status.backlog,
        clock_offset_s=(status.time - received).total_seconds(),
    )


def _health(status: contract.Status) -> dict[str, Any]:
    """The status's health, with the nowcast's shadow skill beside it (a drifting model shows)."""
    skill = status.nowcast_skill
    extra = {"nowcast_skill": msgspec.structs.asdict(skill)} if skill is not None else {}
    return {**status.health, **extra}


class Transport(Protocol):
    """What the worker needs from the MQTT client."""

    def publish(self, topic: str, payload: bytes, retain: bool) -> None:
        """QoS 1 publish."""
        ...

    def mqtt_ack(self, mid: int, qos: int) -> None:
        """Release the MQTT-level acknowledgement of a received message."""
        ...


@dataclass(frozen=True, slots=True)
class Inbound:
    """One received uplink message, not yet acknowledged to the broker."""

    topic: str
    payload: bytes
    mid: int
    qos: int


@dataclass
class IngestStats:
    """Counters since start (read by the API and benchmarks)."""

    messages: int = 0
    batches: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    throttled: int = 0  # released unacknowledged: over a station's budget or the queue bound
    conflicts: int = 0  # rows whose (station, seq) was stored with other content
    statuses: int = 0
    config_acks: int = 0
    commits: int = 0
    db_errors: int = 0
    last_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {k: v for k, v in vars(self).items() if k != "lock"}


class IngestWorker:
    """One thread that commits queued uplink messages and acknowledges them after commit."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        transport: Transport,
        *,
        on_config_acks: Callable[[list[wire.ConfigAck]], object] | None = None,
        on_status: Callable[[wire.Status], object] | None = None,
        max_group: int = MAX_GROUP,
        limits: IngestLimits | None = None,
    ) -> None:
        self.store = store
        self.limits = limits or IngestLimits()
        self.clock = clock
        self.transport = transport
        self.on_config_acks = on_config_acks
        self.on_status = on_status
        self.max_group = max_group
        self.assigned_cells: frozenset[str] | None = None  # None: a station names its own cell
        self.stats = IngestStats()
        self._queue: queue.Queue[Inbound] = queue.Queue()
        self._held_lock = threading.Lock()
        self._held_bytes = 0
        self._held: dict[str, int] = {}  # station -> messages queued
        self._budgets: dict[str, _Budget] = {}
        self.throttled_by_station: dict[str, int] = {}
        self._stop = threading.Event()
        self._draining = False
        self._thread: threading.Thread | None = None

    def submit(self, message: Inbound) -> bool:
        """Queue a message (called from the MQTT network thread; never blocks). A message over
        the limits is released at the broker unacknowledged (the station resends it later);
        returns whether it was queued."""
        station = _topic_station(message.topic)
        size = len(message.payload)
        lim = self.limits
        with self._held_lock:
            why = ""
            if (
                self._queue.qsize() >= lim.max_queue
                or self._held_bytes + size > lim.max_queue_bytes
            ):
                why = "queue full"
            elif self._held.get(station, 0) >= lim.max_station_queued:
                why = "station's share of the queue is full"
            elif not self._spend(station, size):
                why = f"over {lim.station_bytes_per_min} bytes per minute"
            if not why:
                self._held[station] = self._held.get(station, 0) + 1
                self._held_bytes += size
                self._queue.put(message)
                return True
            self.throttled_by_station[station] = self.throttled_by_station.get(station, 0) + 1
            count = self.throttled_by_station[station]
        with self.stats.lock:
            self.stats.throttled += 1
        if count & (count - 1) == 0:  # 1st, 2nd, 4th, 8th...: a flood does not flood the log
            log.warning("throttled %s (%d so far): %s", station or message.topic, count, why)
        self._release(message)
        return False

    def _spend(self, station: str, size: int) -> bool:
        """Take ``size`` bytes from the station's budget (held lock)."""
        lim, now = self.limits, self.clock.monotonic()
        budget = self._budgets.get(station)
        if budget is None:
            budget = self._budgets[station] = _Budget(lim.station_burst_bytes, now)
        budget.level = min(
            lim.station_burst_bytes,
            budget.level + (now - budget.t) * lim.station_bytes_per_min / 60.0,
        )
        budget.t = now
        if budget.level < size:
            return False
        budget.level -= size
        return True

    def _taken(self, message: Inbound) -> None:
        station = _topic_station(message.topic)
        with self._held_lock:
            self._held_bytes -= len(message.payload)
            left = self._held.get(station, 1) - 1
            if left > 0:
                self._held[station] = left
            else:
                self._held.pop(station, None)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fleet-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0, *, drain: bool = False) -> None:
        """Stop after the group in hand (``drain``: after everything queued); messages left in
        the queue stay unacknowledged and come again."""
        self._draining = drain
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def pending(self) -> int:
        """Messages queued and not yet processed."""
        return self._queue.qsize()

    def _run(self) -> None:
        while not self._stop.is_set() or (self._draining and not self._queue.empty()):
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            group = [first]
            while len(group) < self.max_group:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for msg in group:
                self._taken(msg)
            while not self._stop.is_set():
                try:
                    self.process(group)
                    break
                except Exception as exc:  # the database is down, or a message it cannot take
                    with self.stats.lock:
                        self.stats.db_errors += 1
                        self.stats.last_error = f"{type(exc).__name__}: {exc}"
                    if self._store_answers():
                        self._isolate(group)  # the database works: find the bad message
                        break
                    log.warning("ingest: %s; retrying %d messages", exc, len(group))
                    self._stop.wait(DB_RETRY_S)

    def _store_answers(self) -> bool:
        try:
            self.store.count("")
            return True
        except Exception:
            return False

    def _isolate(self, group: list[Inbound]) -> None:
        """Commit the group's messages one by one; refuse (with an error ack) those that fail
        while the database works, so one bad message cannot stall a station or the controller."""
        for msg in group:
            try:
                self.process([msg])
            except Exception as exc:
                if not self._store_answers():
                    raise
                error = f"cannot store: {type(exc).__name__}: {exc}"
                self._reject(msg, _topic_station(msg.topic), error)
                with self.stats.lock:
                    self.stats.rejected += 1
                    self.stats.messages += 1

    def _reject(self, msg: Inbound, station: str, error: str) -> None:
        """Tell the station its message was refused (error ack) and release it at the broker."""
        log.warning("rejected %s: %s", msg.topic, error)
        try:
            ack = wire.Ack(wire.check_id(station), (), error=error)
            self._send(wire.down_topic(station, "ack"), wire.encode_ack(ack))
        except wire.WireError:
            pass  # not even a station topic: nobody to tell
        self._release(msg)

    def _send(self, topic: str, payload: bytes) -> None:
        """Publish an ack; a failure is logged, never raised (the station resends, harmlessly)."""
        try:
            self.transport.publish(topic, payload, False)
        except Exception as exc:
            log.warning("ack to %s not sent: %s", topic, exc)

    def _release(self, msg: Inbound) -> None:
        """MQTT-level ack; a failure is logged (the broker redelivers, harmlessly)."""
        try:
            self.transport.mqtt_ack(msg.mid, msg.qos)
        except Exception as exc:
            log.warning("PUBACK for %s not sent: %s", msg.topic, exc)

    def process(self, group: list[Inbound]) -> list[IngestResult]:
        """Decode, commit and acknowledge one group of messages (raises if the store fails)."""
        received = self.clock.now()
        batches: list[tuple[Inbound, IngestBatch]] = []
        others: list[tuple[Inbound, wire.Status | wire.ConfigAck | None]] = []
        rejected: list[tuple[Inbound, str, str]] = []
        for msg in group:
            try:
                topic = wire.parse_topic(msg.topic)
                if topic.kind in ("data", "events"):
                    batch = wire.decode_batch(msg.payload, now=received)
                    _check_station(batch.station, topic.target, "batch")
                    if len(batch.records) > self.limits.max_records:
                        raise wire.WireError(
                            f"batch of {len(batch.records)} records is over the "
                            f"{self.limits.max_records} limit"
                        )
                    batches.append((msg, batch_to_ingest(batch, received)))
                elif topic.kind == "status":
                    if not msg.payload:  # a cleared retained status
                        others.append((msg, None))
                        continue
                    status = wire.decode_status(msg.payload, now=received)
                    try:
                        contract.check_grid_cell(status, self.assigned_cells)
                    except contract.ContractError as exc:
                        raise wire.WireError(exc.detail, exc.code) from None
                    _check_station(status.station, topic.target, "status")
                    others.append((msg, status))
                else:
                    cfg_ack = wire.decode_config_ack(msg.payload)
                    _check_station(cfg_ack.station, topic.target, "config ack")
                    others.append((msg, cfg_ack))
            except wire.WireError as exc:
                rejected.append((msg, _topic_station(msg.topic), str(exc)))
            except Exception as exc:  # a poison message: refused alone, never the group
                error = f"undecodable: {type(exc).__name__}: {str(exc)[:200]}"
                rejected.append((msg, _topic_station(msg.topic), error))
        results = self.store.ingest([b for _, b in batches])  # one transaction
        for r in results:
            if r.conflicts:
                log.warning(
                    "%s: %d rows in %d..%d reuse stored seqs with other content (kept as "
                    "conflicts)",
                    r.station,
                    r.conflicts,
                    r.first_seq,
                    r.last_seq,
                )
        for _, obj in others:
            if isinstance(obj, wire.Status):
                self.store.update_station(status_to_update(obj, received))
                if self.on_status is not None:
                    self.on_status(obj)
        cfg_acks = [o for _, o in others if isinstance(o, wire.ConfigAck)]
        if cfg_acks and self.on_config_acks is not None:
            self.on_config_acks(cfg_acks)
        # committed: now acknowledge
        for msg, done in batches:
            seqs = [r.seq for r in done.records]
            ack = wire.Ack(done.station, wire.seq_ranges(seqs), lane=done.lane)
            ack_topic = wire.down_topic(done.station, "ack")
            self._send(ack_topic, wire.encode_ack(ack))
            self._release(msg)
        for msg, _ in others:
            self._release(msg)
        for msg, station, error in rejected:
            self._reject(msg, station, error)
        with self.stats.lock:
            s = self.stats
            s.messages += len(group)
            s.batches += len(batches)
            s.inserted += sum(r.inserted for r in results)
            s.duplicates += sum(r.duplicates - r.conflicts for r in results)
            s.conflicts += sum(r.conflicts for r in results)
            s.rejected += len(rejected)
            s.statuses += sum(1 for _, o in others if isinstance(o, wire.Status))
            s.config_acks += sum(1 for _, o in others if isinstance(o, wire.ConfigAck))
            s.commits += 1 if batches else 0
        return results


def _topic_station(topic: str) -> str:
    """The station level of an uplink topic ("" when there is none)."""
    parts = topic.split("/")
    return parts[3] if len(parts) > 3 else ""


def _check_station(claimed: str, topic_station: str, what: str) -> None:
    """A station may speak only for itself: the payload's station must be the topic's."""
    if claimed != topic_station:
        raise wire.WireError(f"{what} for {claimed!r} on {topic_station!r}'s topic")
