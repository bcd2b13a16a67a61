"""The station's uplink: buffered records to the fleet over MQTT v5, nothing lost.

One worker thread owns the paho client and the send queue. It sleeps in ``select`` on the
broker socket and a wake-up pipe until a packet arrives, :meth:`Uplink.notify` says records were
appended, or the next deadline (ack timeout, status, idle poll, keepalive) comes: no polling
wake-ups while nothing happens (paho's own ``loop`` wakes every few milliseconds). While live
rows are held (``live_linger_s``) a commit of routine rows does not wake it either.

- Three streams, filled in this order each turn: warning **events** (buffer lane ``event``), then
  **live** data (lane ``live`` appended since the current connection came up; with
  ``live_linger_s`` it waits that long, or for a full batch, so a message carries many polls and
  compresses to a byte or two a value), then **backlog**
  (older ``live`` rows), which is metered by a token bucket of ``backfill_bytes_per_s`` on metered
  links. Each stream goes in ascending sequence order, in batches of up to ``batch_size``.
  Backlog may fill the in-flight window; events and live data always have two more slots.
- Every batch is a QoS 1 publish. Up to ``window`` batches are in flight; the controller answers
  on ``.../down/ack`` with the seq ranges it has *committed*, and only then are those rows marked
  synced in the buffer. A batch unacknowledged after ``ack_timeout_s`` is sent again; the
  controller stores on (station, seq), so a resend is harmless.
- A lost connection drops the in-flight bookkeeping (everything unsynced will be sent again) and
  reconnects with exponential backoff and jitter. The session is kept by the broker
  (clean_start false) so acknowledgements published while the station was away still arrive.
- A retained status message goes out on connect and every ``status_interval_s``; the last will is
  the same message with ``state: offline``.
- Configuration documents arriving on the station's, its grid cell's or the fleet's config topic
  are handed to ``on_config``; :meth:`Uplink.publish_config_ack` answers.

Run on its own (tests, benchmarks, a station without the full agent)::

    python -m agent.uplink --station st-001 --buffer buf.db --host 127.0.0.1 --port 8883 \\
        --ca ca.crt --cert st-001.crt --key st-001.key
"""

from __future__ import annotations

import contextlib
import logging
import random
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import click
import paho.mqtt.client as mqtt

from agent.buffer import Buffer
from agent.errors import BufferStoreError
from roadside import wire
from roadside.clock import Clock, SystemClock
from roadside.threads import name_os_thread

log = logging.getLogger(__name__)

CONNACK_TIMEOUT_S = 10.0
NO_SUBSCRIBERS = 16  # MQTT v5 PUBACK reason: the broker delivered the batch to nobody
UNHEARD_HOLD_S = 0.5  # real seconds without new batches after one went to nobody
PRIORITY_SLOTS = 2  # in-flight batches beyond the window that only events and live data use
MAX_BATCH_BYTES = 256 * 1024  # well under the broker's max_packet_size (1 MiB)
KEEPALIVE_CHECKS = 4  # the worker looks at paho's keepalive this often an interval
StatusFn = Callable[[], dict[str, Any]]
ConfigFn = Callable[[str, bytes], None]


@dataclass(frozen=True)
class UplinkSettings:
    """Tuning of the uplink (defaults suit a cellular station)."""

    # Times are in the station clock's seconds (scaled in accelerated runs); the CONNACK wait is
    # the only real-time one.
    batch_size: int = 500
    window: int = 8
    ack_timeout_s: float = 30.0
    backfill_bytes_per_s: float | None = None  # None: backlog is not metered
    backfill_burst_s: float = 5.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 300.0
    idle_poll_s: float = 30.0  # a look at the buffer with no notify (every commit notifies)
    status_interval_s: float = 60.0
    live_linger_s: float = 0.0  # hold live rows up to this long (or a full batch) per message
    codec: wire.Codec = "columnar"
    software: str = ""


@dataclass
class Backoff:
    """Exponential backoff with jitter: ``initial * 2**n`` capped at ``maximum``, then a uniform
    draw between half and all of it ("equal jitter"), so stations do not reconnect in lockstep."""

    initial: float
    maximum: float
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def next(self) -> float:
        ceiling = min(self.maximum, self.initial * 2**self.attempts)
        self.attempts += 1
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        self.attempts = 0


@dataclass
class TokenBucket:
    """Byte budget refilled at ``rate`` per clock second; may go into debt by one batch."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def can_send(self, now: float) -> bool:
        self.refill(now)
        return self.tokens > 0

    def spend(self, nbytes: int) -> None:
        self.tokens -= nbytes


@dataclass
class _InFlight:
    topic: str
    payload: bytes
    seqs: frozenset[int]
    sent_at: float
    stream: str  # event | live | backlog
    mid: int  # the MQTT message id of its latest publish

    @property
    def backlog(self) -> bool:
        return self.stream == "backlog"


@dataclass(frozen=True)
class UplinkStatus:
    """What the uplink is doing, for the agent's status and metrics."""

    connected: bool
    inflight_batches: int
    batches_sent: int
    batches_resent: int
    batches_unheard: int  # delivered to nobody by the broker, then sent again in order
    records_acked: int
    bytes_sent: int
    reconnects: int
    last_error: str


class Uplink:
    """Sends a station's buffer to the fleet (see the module docstring)."""

    def __init__(
        self,
        station: str,
        buffer: Buffer,
        broker: wire.BrokerSettings,
        clock: Clock,
        *,
        settings: UplinkSettings | None = None,
        grid_cell: str | None = None,
        status_fn: StatusFn | None = None,
        on_config: ConfigFn | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.station = wire.check_id(station)
        self.buffer = buffer
        self.broker = broker
        self.clock = clock
        self.settings = settings or UplinkSettings()
        self.grid_cell = grid_cell
        self.status_fn = status_fn
        self.on_config = on_config
        self._backoff = Backoff(
            self.settings.backoff_initial_s, self.settings.backoff_max_s, rng or random.Random()
        )
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._connected = False
        self._lost = False
        self._refused = False  # the broker answered CONNACK with a failure
        self._inflight: dict[int, _InFlight] = {}  # key: first seq of the batch
        self._cursor: dict[str, int] = {}
        self._live_from = 0
        self._acks: list[wire.Ack] = []
        self._to_mark: set[int] = set()  # acknowledged, not yet marked synced in the buffer
        self._acks_lock = threading.Lock()
        self._unheard: list[int] = []  # mids the broker delivered to nobody (under _acks_lock)
        self._hold_until = 0.0  # nobody subscribed: no new batches before this (clock monotonic)
        self._bucket: TokenBucket | None = None
        self._next_status = 0.0
        self._next_poll = 0.0
        self._live_due: float | None = None  # clock monotonic when held live rows must go
        self._full_at: int | None = None  # while live rows are held: the seq that fills a batch
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._counts = {
            "sent": 0, "resent": 0, "acked": 0, "bytes": 0, "reconnects": 0, "unheard": 0
        }  # fmt: skip
        self._last_error = ""
        self.topic_ack = wire.down_topic(station, "ack")

    # -- public ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread (connects in the background; a broker down is retried)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"uplink-{self.station}")
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Publish ``offline`` status, disconnect cleanly and join the worker."""
        self._stop.set()
        self._wake.clear()
        self.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def notify(self, urgent: bool = True) -> None:
        """New records were appended: look at the buffer now rather than at the next poll.

        ``urgent=False`` (only routine rows, no warning event) does not wake a worker that
        holds live rows for ``live_linger_s``, until a batch is full: it wakes at its deadline
        anyway (a wake-up a commit cost the station as much as sending the batch)."""
        full_at = self._full_at
        if not urgent and full_at is not None and self.buffer.last_seq < full_at:
            return
        if not self._wake.is_set():
            self._wake.set()
            with contextlib.suppress(OSError):  # full: a wake-up is pending anyway
                self._wake_w.send(b"\0")

    def status(self) -> UplinkStatus:
        c = self._counts
        return UplinkStatus(
            connected=self._connected,
            inflight_batches=len(self._inflight),
            batches_sent=c["sent"],
            batches_resent=c["resent"],
            batches_unheard=c["unheard"],
            records_acked=c["acked"],
            bytes_sent=c["bytes"],
            reconnects=c["reconnects"],
            last_error=self._last_error,
        )

    def publish_config_ack(self, ack: wire.ConfigAck) -> None:
        """Answer a configuration document (QoS 1; dropped with a warning when offline).

        Call it from ``on_config`` (the worker thread); the retained status follows an ack.
        """
        if self._client is None or not self._connected:
            log.warning("config ack for %s v%s not sent: offline", ack.scope, ack.version)
            return
        self._client.publish(
            wire.up_topic(self.station, "cfg_ack"), wire.encode_config_ack(ack), qos=1
        )
        if ack.ok:
            self._publish_status()  # the versions it runs changed

    def __enter__(self) -> Uplink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- worker ----------------------------------------------------------------------------

    def _run(self) -> None:
        name_os_thread("uplink")
        try:
            while not self._stop.is_set():
                try:
                    self._step()
                except Exception as exc:  # never a dead uplink: start over with a new client
                    self._last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("uplink %s: unexpected error; reconnecting", self.station)
                    self._on_lost(self._last_error)
                    self._sleep_backoff()
        finally:
            self._shutdown()

    def _step(self) -> None:
        """One pass of the worker: connect if needed, run the network loop, then one turn."""
        if not self._connected and not self._connect():
            self._sleep_backoff()
            return
        rc = self._io(self._timeout()) if self._client else mqtt.MQTT_ERR_NO_CONN
        if rc != mqtt.MQTT_ERR_SUCCESS or self._lost:
            self._on_lost(f"connection lost ({mqtt.error_string(rc)})")
            self._sleep_backoff()
            return
        if not self._connected:
            return  # waiting for CONNACK
        try:
            self._turn()
        except BufferStoreError as exc:  # the buffer is unwell: keep the link, retry
            self._last_error = f"buffer: {exc}"
            log.error("uplink %s: %s", self.station, self._last_error)
            self._sleep_backoff()

    def _timeout(self) -> float:
        """Real seconds until the next thing this worker must do unprompted."""
        now = self.clock.monotonic()
        if now < self._hold_until:  # nobody listens yet: only acks, resends and status
            due = [self._hold_until, self._next_status]
        elif self._wake.is_set():
            return 0.0
        else:
            due = [self._next_poll, self._next_status]
        due += [f.sent_at + self.settings.ack_timeout_s for f in self._inflight.values()]
        if self._live_due is not None and now >= self._hold_until:
            due.append(self._live_due)
        speed = max(self.clock.speed, 1e-9)  # clock seconds per real second
        wait = (min(due) - now) / speed
        # paho's keepalive: a PINGREQ at most a quarter of the interval late (a lost link shows
        # as the socket turning readable, or as the PINGRESP that never comes)
        keepalive = self.broker.keepalive / KEEPALIVE_CHECKS if self.broker.keepalive else 60.0
        return min(max(wait, 0.0), keepalive)

    def _io(self, timeout: float) -> int:
        """Wait for the socket, a wake-up or ``timeout``; then let paho read, write and ping."""
        client = self._client
        assert client is not None
        sock = client.socket()
        if sock is None:
            return int(mqtt.MQTT_ERR_NO_CONN)
        pending = isinstance(sock, socket.socket) and getattr(sock, "pending", lambda: 0)()
        readable: list[Any] = []
        writable: list[Any] = []
        if not pending:
            want = [sock] if client.want_write() else []
            readable, writable, _ = select.select([sock, self._wake_r], want, [], timeout)
        if self._wake_r in readable:
            with contextlib.suppress(OSError):
                self._wake_r.recv(4096)
        if pending or sock in readable:
            rc = client.loop_read()
            if rc != mqtt.MQTT_ERR_SUCCESS:
                return int(rc)
        if writable or client.want_write():
            rc = client.loop_write()
            if rc != mqtt.MQTT_ERR_SUCCESS:
                return int(rc)
        return int(client.loop_misc())

    def _connect(self) -> bool:
        """Open TCP+TLS and send CONNECT; then wait for the CONNACK in the loop."""
        self._lost = False
        self._refused = False
        client = wire.new_client(self.broker, client_id=self.station)
        client.max_inflight_messages_set(self.settings.window + 8)
        client.max_queued_messages_set(0)
        client.will_set(
            wire.up_topic(self.station, "status"), self._status_bytes("offline"), qos=1, retain=True
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        self._client = client
        try:
            client.connect(
                self.broker.host,
                self.broker.port,
                keepalive=self.broker.keepalive,
                clean_start=False,
                properties=wire.connect_properties(self.broker),
            )
        except (OSError, ValueError) as exc:
            self._last_error = f"connect to {self.broker.host}:{self.broker.port}: {exc}"
            log.info("uplink %s: %s", self.station, self._last_error)
            self._drop_client()
            return False
        # Network timeouts are real seconds whatever the station clock's speed.
        deadline = time.monotonic() + CONNACK_TIMEOUT_S
        where = f"connect to {self.broker.host}:{self.broker.port}"
        error = f"{where}: closed before CONNACK (certificate refused?)"
        while not self._connected and not self._lost and not self._stop.is_set():
            rc = client.loop(timeout=0.05)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                error = f"{where}: closed before CONNACK ({mqtt.error_string(rc)})"
                break
            if time.monotonic() > deadline:
                error = f"{where}: no CONNACK within {CONNACK_TIMEOUT_S:.0f} s"
                break
        if not self._connected:
            if not self._refused:
                self._last_error = error
            self._drop_client()
        return self._connected

    def _drop_client(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):  # the socket may already be gone
                self._client.disconnect()
            self._client = None
        self._connected = False

    def _on_connect(
        self, client: mqtt.Client, _u: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._refused = reason.is_failure
        if reason.is_failure:
            self._last_error = (
                f"connect to {self.broker.host}:{self.broker.port}: broker refused: {reason}"
            )
            log.warning("uplink %s: %s", self.station, self._last_error)
            self._lost = True
            return
        self._connected = True
        self._backoff.reset()
        self._inflight.clear()
        self._cursor = {"event": 0, "live": 0, "backlog": 0}
        self._hold_until = 0.0
        try:
            self._live_from = self.buffer.stats().last_seq
        except BufferStoreError as exc:  # then everything counts as live; nothing is lost
            log.error("uplink %s: buffer stats: %s", self.station, exc)
            self._live_from = 0
        rate = self.settings.backfill_bytes_per_s
        if rate:
            now = self.clock.monotonic()
            burst = rate * self.settings.backfill_burst_s
            self._bucket = TokenBucket(rate, burst, burst, now)
        client.subscribe([(t, 1) for t in wire.station_subscriptions(self.station, self.grid_cell)])
        self._publish_status()
        self._next_poll = 0.0
        log.info("uplink %s: connected to %s:%s", self.station, self.broker.host, self.broker.port)

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if self._connected:
            self._last_error = f"disconnected: {reason}"
        self._lost = True

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.topic_ack:
            try:
                ack = wire.decode_ack(msg.payload)
            except wire.WireError as exc:
                log.warning("uplink %s: bad ack ignored: %s", self.station, exc)
                return
            with self._acks_lock:
                self._acks.append(ack)
            return
        if msg.topic.endswith("/down/config") and self.on_config is not None:
            try:
                self.on_config(msg.topic, bytes(msg.payload))
            except Exception:
                log.exception("uplink %s: configuration handler failed", self.station)

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _props: Any) -> None:
        if getattr(reason, "value", reason) == NO_SUBSCRIBERS:
            with self._acks_lock:
                self._unheard.append(mid)

    def _on_lost(self, why: str) -> None:
        if self._connected:
            self._counts["reconnects"] += 1
            self._last_error = why
            log.info("uplink %s: %s", self.station, why)
        self._drop_client()
        self._inflight.clear()

    def _sleep_backoff(self) -> None:
        delay = self._backoff.next()
        self.clock.wait(self._stop, delay)

    def _shutdown(self) -> None:
        self._wake_r.close()
        self._wake_w.close()
        client = self._client
        if client is not None and self._connected:
            info = client.publish(
                wire.up_topic(self.station, "status"),
                self._status_bytes("offline"),
                qos=1,
                retain=True,
            )
            for _ in range(50):
                if info.is_published():
                    break
                client.loop(timeout=0.02)
        self._drop_client()

    # -- one turn of the send loop -----------------------------------------------------------

    def _turn(self) -> None:
        acked = self._apply_acks()
        now = self.clock.monotonic()
        self._rewind_unheard(now)
        self._resend_overdue(now)
        if now >= self._next_status:
            self._publish_status()
        woken = self._wake.is_set()
        due = self._live_due is not None and now >= self._live_due
        if now < self._hold_until:
            return
        if acked or woken or due or now >= self._next_poll:
            self._wake.clear()
            self._fill(now)
            self._next_poll = now + self.settings.idle_poll_s

    def _apply_acks(self) -> bool:
        """Take the acks that arrived; mark what they cover synced, in one transaction a turn.

        Seqs stay in ``_to_mark`` until the buffer took them, so a failing buffer retries them
        rather than forgetting an ack.
        """
        with self._acks_lock:
            acks, self._acks = self._acks, []
        for ack in acks:
            covered = set(ack.seqs())
            done = [k for k, f in self._inflight.items() if f.seqs <= covered]
            for k in done:
                del self._inflight[k]
            if ack.error:
                # The controller refused these (e.g. a contract it does not speak): keep the rows,
                # stop resending them on this connection, and say so.
                self._last_error = f"controller refused seqs {ack.ranges[:3]}: {ack.error}"
                log.warning("uplink %s: %s", self.station, self._last_error)
                continue
            self._to_mark |= covered
        if self._to_mark:
            self._counts["acked"] += self.buffer.mark_synced(sorted(self._to_mark))
            self._to_mark = set()
        return bool(acks)

    def _rewind_unheard(self, now: float) -> None:
        """A batch the broker delivered to nobody (the controller not yet back after a broker
        restart) goes again, and so does every later batch of its stream, in sequence order:
        the stream's cursor moves back to it and sending pauses for a moment."""
        with self._acks_lock:
            mids, self._unheard = self._unheard, []
        by_mid = {f.mid: first for first, f in self._inflight.items()}
        for mid in mids:
            first = by_mid.get(mid)
            if first is None or first not in self._inflight:
                continue
            stream = self._inflight[first].stream
            for k in [k for k, f in self._inflight.items() if f.stream == stream and k >= first]:
                del self._inflight[k]
            self._cursor[stream] = min(self._cursor.get(stream, 0), first - 1)
            self._counts["unheard"] += 1
            self._hold_until = now + UNHEARD_HOLD_S * self.clock.speed

    def _resend_overdue(self, now: float) -> None:
        client = self._client
        if client is None:
            return
        for f in self._inflight.values():
            if now - f.sent_at > self.settings.ack_timeout_s:
                f.mid = client.publish(f.topic, f.payload, qos=1).mid
                f.sent_at = now
                self._counts["resent"] += 1

    def _fill(self, now: float) -> None:
        """Send batches while the window has room: events, then live, then metered backlog.

        Backlog may fill the window; events and live data have ``PRIORITY_SLOTS`` more, so a
        warning never waits behind a window full of yesterday's readings.
        """
        while len(self._inflight) < self.settings.window + PRIORITY_SLOTS:
            if self._send_next("event", now):
                continue
            if self._send_next("live", now):
                continue
            if sum(f.backlog for f in self._inflight.values()) >= self.settings.window:
                return
            if self._bucket is not None and not self._bucket.can_send(now):
                return
            if not self._send_next("backlog", now):
                return

    def _send_next(self, stream: str, now: float) -> bool:
        lane = "event" if stream == "event" else "live"
        after = self._cursor[stream]
        if stream == "live":
            after = max(after, self._live_from)
        size = self.settings.batch_size
        if stream == "live" and self._holding(after, now):
            return False
        if stream == "backlog" and after >= self._live_from:
            return False  # the backlog is sent: no query for rows it would only filter out
        rows = self.buffer.pending_rows(lane, after_seq=after, limit=size)  # type: ignore[arg-type]
        if stream == "live":
            self._live_due = None
        elif stream == "backlog":
            rows = [r for r in rows if r[0] <= self._live_from]
        if not rows:
            return False
        lane_out: wire.Lane = stream  # type: ignore[assignment]
        records = rows
        while True:
            payload = wire.encode_rows(
                self.station, lane_out, records, sent=self.clock.now(), codec=self.settings.codec
            )
            if len(payload) <= MAX_BATCH_BYTES or len(records) == 1:
                break
            records = records[: len(records) // 2]  # large event payloads: send fewer at once
        topic = wire.up_topic(self.station, "events" if stream == "event" else "data")
        assert self._client is not None
        mid = self._client.publish(topic, payload, qos=1).mid
        seqs = frozenset(r[0] for r in records)
        self._inflight[records[0][0]] = _InFlight(topic, payload, seqs, now, stream, mid)
        self._cursor[stream] = records[-1][0]
        self._counts["sent"] += 1
        self._counts["bytes"] += len(payload)
        if stream == "backlog" and self._bucket is not None:
            self._bucket.spend(len(payload))
        return True

    def _holding(self, after: int, now: float) -> bool:
        """Whether live rows after ``after`` wait for more (``live_linger_s``, not a full batch)."""
        self._full_at = None
        linger = self.settings.live_linger_s
        if linger <= 0 or self.buffer.last_seq - after >= self.settings.batch_size:
            return False
        if self.buffer.last_seq <= after:
            return False  # nothing new: nothing to hold
        if self._live_due is None:
            self._live_due = now + linger
        if now >= self._live_due:
            return False
        self._full_at = after + self.settings.batch_size
        return True

    # -- status ----------------------------------------------------------------------------

    def _status_bytes(self, state: str) -> bytes:
        info: dict[str, Any] = dict(self.status_fn()) if self.status_fn else {}
        health = dict(info.pop("health", {}) or {})
        fields = {k: v for k, v in info.items() if k in wire.STATUS_FIELDS}
        fields.setdefault("grid_cell", self.grid_cell)
        try:
            stats = self.buffer.stats()
            fields.setdefault("backlog", stats.unsynced)
            health.setdefault("oldest_unsynced_age_s", stats.oldest_unsynced_age_s)
        except Exception as exc:  # the status must still go out if the buffer is unwell
            health.setdefault("buffer_error", str(exc))
        fields.setdefault("software", self.settings.software)
        status = wire.Status(
            station=self.station,
            state=state,  # type: ignore[arg-type]
            time=self.clock.now(),
            health=health,
            **fields,
        )
        return wire.encode_status(status)

    def _publish_status(self) -> None:
        if self._client is not None:
            self._client.publish(
                wire.up_topic(self.station, "status"),
                self._status_bytes("online"),
                qos=1,
                retain=True,
            )
        self._next_status = self.clock.monotonic() + self.settings.status_interval_s


# -- running it on its own ---------------------------------------------------------------------


def drain(buffer: Buffer, timeout_s: float, poll_s: float = 0.05) -> bool:
    """Block until ``buffer`` has nothing unsynced or ``timeout_s`` real seconds pass."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if buffer.stats().unsynced == 0:
            return True
        time.sleep(poll_s)
    return buffer.stats().unsynced == 0


@click.command("uplink")
@click.option("--station", required=True, help="Station id (the CN of its certificate).")
@click.option(
    "--buffer", "buffer_path", required=True, type=click.Path(path_type=Path), help="Buffer file."
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, required=True, help="Broker TLS port.")
@click.option("--ca", type=click.Path(exists=True, path_type=Path), required=True, help="CA PEM.")
@click.option("--cert", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--key", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--batch-size", type=int, default=500, show_default=True)
@click.option("--window", type=int, default=8, show_default=True)
@click.option("--backfill-bps", type=float, default=None, help="Backlog budget, bytes/s.")
@click.option("--until-drained", is_flag=True, help="Exit 0 once nothing is left unsynced.")
@click.option("--timeout", type=float, default=0.0, help="With --until-drained: give up (exit 1).")
def main(
    station: str,
    buffer_path: Path,
    host: str,
    port: int,
    ca: Path,
    cert: Path,
    key: Path,
    batch_size: int,
    window: int,
    backfill_bps: float | None,
    until_drained: bool,
    timeout: float,
) -> None:
    """Send a station buffer to the fleet until stopped (or until drained)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    clock = SystemClock()
    broker = wire.BrokerSettings(host, port, ca, cert, key)
    settings = replace(
        UplinkSettings(), batch_size=batch_size, window=window, backfill_bytes_per_s=backfill_bps
    )
    try:
        wire.check_id(station)
        wire.new_client(broker, station)  # loads the TLS files: fail here, in one line
        buffer = Buffer(buffer_path, max_bytes=1 << 34, clock=clock)
    except (wire.WireError, BufferStoreError) as exc:
        raise click.ClickException(str(exc)) from None
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise click.ClickException(f"TLS files --ca/--cert/--key: {exc}") from None
    uplink = Uplink(station, buffer, broker, clock, settings=settings)
    uplink.start()
    try:
        if until_drained:
            ok = drain(buffer, timeout or float("inf"))
            if not ok:
                raise click.ClickException(f"buffer not drained within {timeout}s")
        else:
            threading.Event().wait()
    finally:
        uplink.stop()
        buffer.close()


if __name__ == "__main__":
    main()
