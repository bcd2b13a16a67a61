"""Pushing configuration: direct pushes, staged (canary) rollouts, acks/nacks and retries.

Direct push: the new version of a scope's document is stored, signed and published *retained* on
the scope's topic, so every station (online now or reconnecting later) gets the newest.

Staged rollout of a fleet or grid document::

    canary ──all canaries ack──► rolling ──all targets ack──► done
      │  └─canary timeout──► halted      │
      └──────any nack──► halted ◄────────┘ any nack

In the canary stage the document goes only to the canaries, on each one's own topic (QoS 1, not
retained: the broker queues it for an offline canary's session); the scope's retained topic still
holds the previous version, so nobody else sees it. When every canary has acked, it is published
retained on the scope's topic (released). A nack halts the rollout with the station's reason.

Retries: when a station's desired version is still unanswered after ``retry_s``, the document
is published again, at most ``max_retries`` times per station: retained on its scope's topic
(once per period however many stations lag), or, for a canary's copy, to that canary's topic.
Nothing is retried after a nack (the document itself is refused; a new version is the fix).

Station side (``agent.remote_config``): the canary's copy of a fleet or grid document arrives on
the station's own topic, so the station must accept a fleet document, or its own cell's, there.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.documents import (
    Scope,
    ScopeStatus,
    build_document,
    check_body,
    config_status,
    parse_scope,
    released_to_all,
)
from fleet.errors import BrokerError, DocumentError, DocumentTooLarge, RolloutError
from fleet.store import ConfigReport, Document, Rollout, StationInfo, Store
from roadside import signing, wire
from roadside.clock import Clock

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes, bool], None]
"""``publish(topic, payload, retain)``: QoS 1 publish through the controller's MQTT client;
raises :class:`fleet.errors.BrokerError` for a message the broker would refuse (never retried)."""

MAX_DOCUMENT_BYTES = 256 * 1024
"""Largest signed document (well inside the broker's 1 MiB packet limit and the station's
parse limit); larger bodies are refused before they are signed or stored."""
ENVELOPE_OVERHEAD = 1024  # signature, key id, scope, version, time around the body
MAX_BODY_DEPTH = 16


def check_size(body: dict[str, Any]) -> None:
    """Refuse a body whose signed document would exceed :data:`MAX_DOCUMENT_BYTES` or that
    nests deeper than :data:`MAX_BODY_DEPTH` (checked before anything is signed)."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_BODY_DEPTH:
            raise DocumentError(f"document body nests deeper than {MAX_BODY_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    size = len(signing.encode_envelope(body)) + ENVELOPE_OVERHEAD
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentTooLarge(
            f"document of about {size} bytes is over the {MAX_DOCUMENT_BYTES} byte limit "
            "(the broker would drop it); split it or push per scope"
        )


@dataclass(frozen=True)
class RolloutPolicy:
    """Timing of rollouts and retries (seconds of the controller's clock)."""

    canary_timeout_s: float = 600.0
    retry_s: float = 60.0
    max_retries: int = 5


DEFAULT_POLICY = RolloutPolicy()
ACTIVE = ("canary", "rolling")


def _acked(report: ConfigReport | None, version: int) -> bool:
    return report is not None and report.result == "ack" and report.version >= version


def _nacked(report: ConfigReport | None, version: int) -> bool:
    return report is not None and report.result == "nack" and report.version == version


def advance(
    rollout: Rollout,
    reports: Mapping[str, ConfigReport],
    targets: Sequence[str],
    now: float,
    canary_timeout_s: float,
) -> Rollout:
    """The rollout's next state given each station's newest report for its scope (pure).

    A returned rollout whose ``extra['released']`` became true must now be published retained.
    """
    if rollout.state not in ACTIVE:
        return rollout
    group = rollout.canaries if rollout.state == "canary" else tuple(targets)
    for station in group:
        report = reports.get(station)
        if report is not None and _nacked(report, rollout.version):
            reason = f"{station} refused version {rollout.version}: {report.reason}"
            return replace(rollout, state="halted", reason=reason, updated=now)
    waiting = [s for s in group if not _acked(reports.get(s), rollout.version)]
    if rollout.state == "canary":
        if not waiting:
            extra = {**rollout.extra, "released": True, "released_at": now}
            return replace(rollout, state="rolling", reason="", updated=now, extra=extra)
        if now - rollout.created > canary_timeout_s:
            reason = f"canaries did not answer within {canary_timeout_s:g} s: {', '.join(waiting)}"
            return replace(rollout, state="halted", reason=reason, updated=now)
        return rollout
    if not waiting:
        return replace(rollout, state="done", reason="", updated=now)
    return rollout


class ConfigManager:
    """Stores, signs and publishes documents; runs rollouts and retries from reports."""

    def __init__(
        self,
        store: Store,
        key: Ed25519PrivateKey,
        clock: Clock,
        publish: Publish,
        *,
        policy: RolloutPolicy = DEFAULT_POLICY,
    ) -> None:
        self.store = store
        self.key = key
        self.clock = clock
        self.publish = publish
        self.policy = policy
        self._lock = threading.Lock()
        self._attempts: dict[tuple[str, int, str], tuple[int, float]] = {}
        self._refused: set[tuple[str, int]] = set()  # documents the broker would not take
        self._by_hash: dict[str, Document] = {}

    # -- documents -------------------------------------------------------------------------------
    def _new_document(
        self,
        scope: Scope,
        body: dict[str, Any],
        staged: Callable[[Document], Rollout] | None = None,
    ) -> Document:
        check_size(body)
        check_body(body)
        issued = self.clock.now()

        def make(version: int) -> tuple[dict[str, Any], str]:
            return build_document(scope, version, body, issued, self.key)

        return self.store.add_document(scope.key, make, issued.timestamp(), staged=staged)

    def push(self, scope_text: str, body: dict[str, Any]) -> Document:
        """Store the next version for a scope and publish it retained to everyone in it."""
        scope = parse_scope(scope_text)
        doc = self._new_document(scope, body)
        self.publish(scope.topic, signing.encode_envelope(doc.signed), True)
        log.info("pushed %s version %d (%s)", doc.scope, doc.version, doc.hash[:12])
        return doc

    def targets(self, scope: Scope, stations: Sequence[StationInfo] | None = None) -> list[str]:
        """Stations a scope applies to (from the registry)."""
        known = self.store.stations() if stations is None else stations
        if scope.kind == "fleet":
            return [s.station for s in known]
        if scope.kind == "grid":
            return [s.station for s in known if s.grid_cell == scope.target]
        return [scope.target]

    def start_rollout(self, scope_text: str, body: dict[str, Any], group: str) -> Rollout:
        """Stage a fleet or grid document: the ``group`` members in scope get it first."""
        scope = parse_scope(scope_text)
        if scope.kind == "station":
            raise RolloutError(f"scope {scope_text!r}: a single station needs no rollout; push it")
        members = set(self.store.groups().get(group, []))
        canaries = tuple(sorted(members & set(self.targets(scope))))
        if not canaries:
            raise RolloutError(f"group {group!r} has no known station in scope {scope.key}")
        now = self.clock.now().timestamp()
        made: list[Rollout] = []

        def staged(doc: Document) -> Rollout:
            made[:] = [
                Rollout(
                    id=uuid.uuid4().hex[:12],
                    scope=doc.scope,
                    version=doc.version,
                    canary_group=group,
                    canaries=canaries,
                    state="canary",
                    reason="",
                    created=now,
                    updated=now,
                    extra={"hash": doc.hash},
                )
            ]
            return made[0]

        doc = self._new_document(scope, body, staged)
        rollout = made[0]
        payload = signing.encode_envelope(doc.signed)
        for station in canaries:
            self.publish(wire.down_topic(station, "config"), payload, False)
        log.info(
            "rollout %s: %s version %d to canaries %s",
            rollout.id,
            doc.scope,
            doc.version,
            ", ".join(canaries),
        )
        return rollout

    # -- reports ---------------------------------------------------------------------------------
    def _document(self, digest: str) -> Document | None:
        """The document with this hash (documents never change, so found ones are cached)."""
        doc = self._by_hash.get(digest)
        if doc is None and digest:
            doc = self.store.document_by_hash(digest)
            if doc is not None:
                if len(self._by_hash) > 10_000:
                    self._by_hash.clear()
                self._by_hash[digest] = doc
        return doc

    def report_from_ack(self, ack: wire.ConfigAck, received: datetime) -> tuple[ConfigReport, bool]:
        """The report an ack makes, and whether it answers a document this controller issued.

        The document is found by the hash the station computed, so a refusal that arrived on
        another scope's topic is still charged to the document refused.
        """
        doc = self._document(ack.hash)
        scope, version = (doc.scope, doc.version) if doc else (ack.scope, ack.version or 0)
        report = ConfigReport(
            station=ack.station,
            scope=scope,
            version=version,
            hash=ack.hash,
            result="ack" if ack.ok else "nack",
            reason=ack.reason,
            time=received.timestamp(),
        )
        return report, doc is not None

    def on_acks(self, acks: Sequence[wire.ConfigAck]) -> list[ConfigReport]:
        """Record stations' acks and nacks (one transaction) and move the rollouts they concern.

        An answer about a document this controller never issued (forged, garbled) goes to the
        log only, so it cannot mask the station's answer to the real desired version.
        """
        now = self.clock.now()
        made = [self.report_from_ack(a, now) for a in acks]
        known = [r for r, ok in made if ok]
        self.store.add_reports(known)
        self.store.add_reports([r for r, ok in made if not ok], latest=False)
        for scope in sorted({r.scope for r in known}):
            self.advance_rollouts(scope)
        return [r for r, _ in made]

    def on_status(self, station: str, running: Mapping[str, Mapping[str, Any]]) -> int:
        """Count what a status says a station runs as acks (an ack lost on the way is no gap).

        Only versions newer than the newest recorded answer are added; returns how many.
        """
        latest = {r.scope: r for r in self.store.reports(station)}
        added = 0
        for scope, state in running.items():
            digest = str(state.get("hash", ""))
            doc = self._document(digest)
            if doc is None or doc.scope != scope:
                continue
            have = latest.get(scope)
            if have is not None and have.version >= doc.version:
                continue
            now = self.clock.now().timestamp()
            self.store.add_report(
                ConfigReport(station, scope, doc.version, digest, "ack", "running (status)", now)
            )
            added += 1
        if added:
            for scope in running:
                self.advance_rollouts(scope)
        return added

    # -- rollouts and retries --------------------------------------------------------------------
    def advance_rollouts(self, scope: str | None = None) -> list[Rollout]:
        """Move active rollouts (of one scope or all) on; publish a release when it happens."""
        changed: list[Rollout] = []
        with self._lock:
            active = [r for s in ACTIVE for r in self.store.rollouts(s)]
            active = [r for r in active if scope is None or r.scope == scope]
            if not active:
                return changed
            stations = self.store.stations()
            now = self.clock.now().timestamp()
            for rollout in active:
                reports = {r.station: r for r in self.store.reports() if r.scope == rollout.scope}
                targets = self.targets(parse_scope(rollout.scope), stations)
                new = advance(rollout, reports, targets, now, self.policy.canary_timeout_s)
                if new == rollout:
                    continue
                if new.extra.get("released") and not rollout.extra.get("released"):
                    self._release(new)
                self.store.save_rollout(new)
                log.info("rollout %s: %s -> %s %s", new.id, rollout.state, new.state, new.reason)
                changed.append(new)
        return changed

    def _release(self, rollout: Rollout) -> None:
        doc = self.store.document(rollout.scope, rollout.version)
        if doc is None:
            raise RolloutError(
                f"rollout {rollout.id}: document {rollout.scope} v{rollout.version} "
                "is missing from the store"
            )
        topic = parse_scope(rollout.scope).topic
        self.publish(topic, signing.encode_envelope(doc.signed), True)

    def status(self, station: StationInfo) -> list[ScopeStatus]:
        """Desired vs reported for one station."""
        return config_status(
            station.station,
            station.grid_cell,
            self.store.documents(),
            self.store.rollouts(),
            self.store.reports(station.station),
        )

    def retry(self) -> int:
        """Republish desired documents that online stations have not answered; returns how many.

        A station document goes again to the station's topic; a fleet or grid document goes again
        retained to its scope's topic (once per period however many stations lag; stations that
        already run it answer without re-applying).
        """
        now = self.clock.now().timestamp()
        documents = self.store.documents()
        rollouts = self.store.rollouts()
        reports = self.store.reports()
        unreleased = {(r.scope, r.version) for r in rollouts if not released_to_all(r)}
        due: dict[tuple[str, int], list[str]] = {}
        for info in self.store.stations():
            if info.online is False:
                continue  # the retained topic or its session queue will deliver on reconnect
            mine = [r for r in reports if r.station == info.station]
            for st in config_status(info.station, info.grid_cell, documents, rollouts, mine):
                if st.state != "pending" or st.desired_version is None:
                    continue
                key = (st.scope, st.desired_version, info.station)
                attempts, last = self._attempts.setdefault(key, (0, now))
                if now - last < self.policy.retry_s or attempts >= self.policy.max_retries:
                    continue
                self._attempts[key] = (attempts + 1, now)
                due.setdefault((st.scope, st.desired_version), []).append(info.station)
        sent = 0
        for (scope, version), stations in sorted(due.items()):
            doc = self.store.document(scope, version)
            if doc is None or (scope, version) in self._refused:
                continue
            payload = signing.encode_envelope(doc.signed)
            try:
                if (scope, version) in unreleased:  # a canary's copy: only to the canaries
                    for station in stations:
                        self.publish(wire.down_topic(station, "config"), payload, False)
                        sent += 1
                else:
                    self.publish(parse_scope(scope).topic, payload, True)
                    sent += 1
            except BrokerError as exc:  # refused for good: never again (a new version is the fix)
                self._refused.add((scope, version))
                log.error("%s version %d is not retried: %s", scope, version, exc)
        return sent

    def tick(self) -> None:
        """Periodic work: rollout timeouts and retries."""
        self.advance_rollouts()
        self.retry()
