"""Simulated station clients for the fleet's tests and benchmarks: real MQTT, real TLS, the wire.

A :class:`StationClient` speaks exactly what a station speaks (:mod:`roadside.wire`): a retained
status with an offline last will, numbered batches that it resends until the controller's ack
covers them, and answers to signed configuration documents. It keeps the station's rules for
documents in their simplest form (signature with the fleet's public key, addressed to it or its
cell or the fleet, version not older than the one running, ``refuse`` for anything a test wants
refused) and answers with a :class:`roadside.wire.ConfigAck`; the document itself is checked by
:func:`roadside.contract.check_document`, the station's own check. Unlike ``agent.remote_config``,
it accepts a fleet or grid document arriving on its own topic (the canary and retry channel of
:mod:`fleet.rollout`). It carries no sensors, QC or buffer: the real station is the agent; this
is a load and protocol generator.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fleet.documents import scopes_for
from roadside import contract, signing, wire
from roadside.clock import Clock, SystemClock

Refuse = Callable[[dict[str, Any]], str | None]
"""Given a verified document, a nack reason (``"unsafe: ..."``) or None to accept it."""


def readings(first_seq: int, n: int, start: datetime, *, step_s: float = 60.0, channels: int = 1):
    """``n`` numbered reading records from ``first_seq``, one time step per ``channels`` rows."""
    names = ["rain_total", "rain_intensity", "wind_speed", "wind_dir", "wind_gust", "water_depth"]
    return [
        wire.WireRecord(
            seq=first_seq + i,
            kind="reading",
            time=start + timedelta(seconds=step_s * ((first_seq + i) // max(1, channels))),
            sensor="sim",
            channel=names[(first_seq + i) % channels % len(names)] if channels > 1 else names[0],
            value=round(0.1 * (first_seq + i), 3),
            unit="mm",
            status="ok",
            flag=0,
        )
        for i in range(n)
    ]


@dataclass
class _Sent:
    batch: wire.Batch
    payload: bytes
    topic: str
    at: float


@dataclass
class ConfigAnswer:
    """What the simulated station answered to one document."""

    scope: str
    version: int | None
    ok: bool
    reason: str
    received: float  # clock.monotonic() when answered


@dataclass
class StationClient:
    """One simulated station connected to the broker with its own certificate."""

    settings: wire.BrokerSettings
    station: str
    public_key: Ed25519PublicKey | None = None
    grid_cell: str | None = None
    refuse: Refuse | None = None
    clock: Clock = field(default_factory=SystemClock)
    ack_timeout_s: float = 3.0
    software: str = "sim-1.0"
    client: mqtt.Client = field(init=False, repr=False)
    acked: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    answers: list[ConfigAnswer] = field(default_factory=list)
    running: dict[str, tuple[int, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._inflight: dict[int, _Sent] = {}  # first seq -> sent batch
        self._connected = threading.Event()
        self.answered = threading.Event()
        self.client = wire.new_client(self.settings, f"sim-{self.station}")
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self._connected.clear()
        self.client.on_message = self._on_message
        self.client.will_set(
            wire.up_topic(self.station, "status"), self._status("offline"), qos=1, retain=True
        )

    # -- connection ------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> StationClient:
        """Connect (persistent session), subscribe, publish status online."""
        self.client.connect(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive,
            clean_start=False,
            properties=wire.connect_properties(self.settings),
        )
        self.client.loop_start()
        if not self._connected.wait(timeout):
            raise TimeoutError(f"{self.station}: no connection to the broker within {timeout}s")
        return self

    def connect_async(self) -> None:
        """Start connecting without waiting (for many clients at once); see :meth:`wait_ready`."""
        self.client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive,
            clean_start=False,
            properties=wire.connect_properties(self.settings),
        )
        self.client.loop_start()

    def wait_ready(self, timeout: float) -> bool:
        """Whether connected and subscribed within ``timeout``."""
        return self._connected.wait(timeout)

    def stop(self) -> None:
        """Disconnect cleanly (the status stays as last published)."""
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            self.errors.append(f"connect refused: {rc}")
            return
        topics = wire.station_subscriptions(self.station, self.grid_cell)
        client.subscribe([(t, 1) for t in topics])
        client.publish(
            wire.up_topic(self.station, "status"), self._status("online"), qos=1, retain=True
        )
        self._connected.set()

    def _status(self, state: str) -> bytes:
        running = {k: {"version": v, "hash": h} for k, (v, h) in self.running.items()}
        return wire.encode_status(
            wire.Status(
                station=self.station,
                state=state,  # type: ignore[arg-type]
                time=self.clock.now(),
                software=self.software,
                grid_cell=self.grid_cell,
                backlog=len(self._inflight) if hasattr(self, "_lock") else 0,
                remote_config=running,
            )
        )

    # -- uplink ----------------------------------------------------------------------------------
    def send(self, records: Iterable[wire.WireRecord], lane: wire.Lane = "live") -> wire.Batch:
        """Publish one batch (QoS 1); it is resent by :meth:`resend_overdue` until acked."""
        batch = wire.Batch(self.station, lane, tuple(records), sent=self.clock.now())
        kind: wire.UpKind = "events" if lane == "event" else "data"
        sent = _Sent(
            batch,
            wire.encode_batch(batch),
            wire.up_topic(self.station, kind),
            self.clock.monotonic(),
        )
        with self._lock:
            self._inflight[batch.first_seq] = sent
        self.client.publish(sent.topic, sent.payload, qos=1)
        return batch

    def resend_overdue(self) -> int:
        """Publish again every batch not acked within ``ack_timeout_s``; returns how many."""
        now = self.clock.monotonic()
        with self._lock:
            overdue = [s for s in self._inflight.values() if now - s.at >= self.ack_timeout_s]
            for s in overdue:
                s.at = now
        for s in overdue:
            self.client.publish(s.topic, s.payload, qos=1)
        return len(overdue)

    def unacked(self) -> int:
        """Batches sent and not yet acked."""
        with self._lock:
            return len(self._inflight)

    def drain(self, timeout: float, poll_s: float = 0.05) -> bool:
        """Resend until every batch is acked or ``timeout`` (real seconds) passes."""
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while self.unacked():
                if deadline.wait(poll_s):
                    return False
                self.resend_overdue()
            return True
        finally:
            timer.cancel()

    # -- downlink --------------------------------------------------------------------------------
    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            where = wire.parse_topic(msg.topic)
        except wire.WireError as exc:
            self.errors.append(str(exc))
            return
        if where.kind == "ack":
            self._on_ack(wire.decode_ack(msg.payload))
        elif where.kind == "config" and msg.payload:
            self._on_config(bytes(msg.payload))

    def _on_ack(self, ack: wire.Ack) -> None:
        if ack.error:
            self.errors.append(ack.error)
            return
        seqs = set(ack.seqs())
        with self._lock:
            self.acked |= seqs
            for first, sent in list(self._inflight.items()):
                if set(sent.batch.seqs) <= self.acked:
                    del self._inflight[first]

    def _on_config(self, payload: bytes) -> None:
        try:
            envelope = signing.decode_envelope(payload)
        except signing.SignatureError:
            envelope = None
        doc = envelope.get("doc", {}) if isinstance(envelope, dict) else {}
        doc = doc if isinstance(doc, dict) else {}
        kind, target = doc.get("scope"), doc.get("target")
        scope = "fleet" if kind == "fleet" else f"{kind}:{target}"
        version = doc.get("version") if isinstance(doc.get("version"), int) else None
        digest = signing.document_hash(doc) if doc else ""
        reason = self._check(envelope, doc, scope, version, digest)
        if reason is None:
            self.running[scope] = (version or 0, digest)
        ack = wire.ConfigAck(
            station=self.station,
            ok=reason is None,
            scope=scope,
            version=version,
            hash=digest,
            reason=reason or "",
            running_version=self.running.get(scope, (None, ""))[0],
            time=self.clock.now(),
        )
        now = self.clock.monotonic()
        self.answers.append(ConfigAnswer(scope, version, ack.ok, ack.reason, now))
        self.client.publish(wire.up_topic(self.station, "cfg_ack"), wire.encode_config_ack(ack), 1)
        self.answered.set()

    def _check(
        self, envelope: Any, doc: dict[str, Any], scope: str, version: int | None, digest: str
    ) -> str | None:
        if not doc:
            return "malformed: not a signed document"
        if self.public_key is not None:
            try:
                signing.verify(envelope, self.public_key)
            except signing.SignatureError as exc:
                return f"bad-signature: {exc}"
        mine = {s.key for s in scopes_for(self.station, self.grid_cell)}
        if scope not in mine:
            return f"scope: document for {scope} is not for {self.station}"
        try:  # the contract's own check, as a real station runs it
            contract.check_document(doc)
        except contract.ContractError as exc:
            return str(exc)
        if version is None:
            return "schema: field version missing"
        current = self.running.get(scope)
        if current is not None and (version, digest) != current and version <= current[0]:
            return f"older: version {version} is not newer than running version {current[0]}"
        if self.refuse is not None:
            return self.refuse(doc)
        return None


def refuse_when(path: tuple[str, ...], predicate: Callable[[Any], bool], reason: str) -> Refuse:
    """A ``refuse`` rule: nack with ``reason`` when the body value at ``path`` satisfies
    ``predicate`` (e.g. a rainstorm threshold set so high that warnings never fire)."""

    def rule(doc: dict[str, Any]) -> str | None:
        node: Any = doc.get("body", {})
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return reason if predicate(node) else None

    return rule
