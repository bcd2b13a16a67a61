"""Configuration documents: scopes, building and signing, and desired vs reported state (pure).

A document configures one *scope*: the whole fleet (``fleet``), one grid cell (``grid:<cell>``)
or one station (``station:<id>``). Its body overlays sections of the station configuration
(:data:`roadside.contract.SECTIONS`); a station applies fleet < grid < station. Each scope's
versions count 1, 2, 3...; the signed document (inside the :mod:`roadside.signing` envelope) is::

    {"c": "1.0", "scope": "fleet"|"grid"|"station", "target": ""|cell|station id,
     "version": 3, "issued": "2026-07-21T12:00:00+00:00", "body": {"warnings": {...}}}

*Desired* for a station and scope is the newest version *released* to it: every version is
released to all at once, except one under a staged rollout, which reaches only the canaries until
they have acked (see :mod:`fleet.rollout`). *Reported* is the station's newest ack or nack.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.errors import DocumentError
from fleet.store import ConfigReport, Document, Rollout
from roadside import contract, signing, wire

REMOTE_SECTIONS = contract.REMOTE_SECTIONS
KINDS = contract.SCOPE_KINDS


@dataclass(frozen=True, slots=True)
class Scope:
    """What a document configures: ``kind`` fleet/grid/station and its ``target`` id."""

    kind: str
    target: str = ""

    @property
    def key(self) -> str:
        """The store's name for the scope: ``fleet``, ``grid:<cell>``, ``station:<id>``."""
        return contract.scope_key(self.kind, self.target)

    @property
    def topic(self) -> str:
        """The retained topic this scope's documents are published on."""
        if self.kind == "fleet":
            return wire.FLEET_CONFIG_TOPIC
        if self.kind == "grid":
            return wire.grid_config_topic(self.target)
        return wire.down_topic(self.target, "config")


def parse_scope(text: str) -> Scope:
    """``fleet`` | ``grid:<cell>`` | ``station:<id>`` -> :class:`Scope` (or a one-line error)."""
    kind, _, target = text.partition(":")
    if kind == "fleet" and not target:
        return Scope("fleet")
    if kind in ("grid", "station") and target:
        try:
            wire.check_id(target, "grid cell" if kind == "grid" else "station id")
        except wire.WireError as exc:
            raise DocumentError(f"scope {text!r}: {exc}") from None
        return Scope(kind, target)
    raise DocumentError(f"scope {text!r}: expected fleet, grid:<cell> or station:<id>")


def scopes_for(station: str, grid_cell: str | None) -> list[Scope]:
    """The scopes that apply to a station, broadest first."""
    scopes = [Scope("fleet")]
    if grid_cell:
        scopes.append(Scope("grid", grid_cell))
    scopes.append(Scope("station", station))
    return scopes


def check_body(body: Any) -> dict[str, Any]:
    """A body every station would accept: :func:`roadside.contract.check_body` (the station's own
    check), refused as :class:`DocumentError` with the same ``code`` the station would nack."""
    try:
        contract.check_body(body)
        signing.canonical_bytes(body)
    except contract.ContractError as exc:
        raise DocumentError(str(exc), code=exc.code) from None
    except signing.SignatureError as exc:
        raise DocumentError(f"schema: document body: {exc}", code="schema") from None
    return body


def build_document(
    scope: Scope, version: int, body: dict[str, Any], issued: datetime, key: Ed25519PrivateKey
) -> tuple[dict[str, Any], str]:
    """The signed envelope of one document version and the hash stations report back."""
    doc = {
        "c": contract.CONTRACT_VERSION,
        "scope": scope.kind,
        "target": scope.target,
        "version": version,
        "issued": issued.isoformat(),
        "body": check_body(body),
    }
    return signing.sign(doc, key), signing.document_hash(doc)


def released_to_all(rollout: Rollout | None) -> bool:
    """Whether a document under ``rollout`` (None: no rollout) has reached every station."""
    return rollout is None or bool(rollout.extra.get("released"))


def desired_documents(
    station: str,
    grid_cell: str | None,
    documents: Iterable[Document],
    rollouts: Iterable[Rollout],
) -> dict[str, Document]:
    """Per scope key, the newest document version released to ``station``."""
    by_doc = {(r.scope, r.version): r for r in rollouts}
    wanted = {s.key for s in scopes_for(station, grid_cell)}
    best: dict[str, Document] = {}
    for doc in documents:
        if doc.scope not in wanted:
            continue
        rollout = by_doc.get((doc.scope, doc.version))
        if not (released_to_all(rollout) or (rollout and station in rollout.canaries)):
            continue
        if doc.scope not in best or doc.version > best[doc.scope].version:
            best[doc.scope] = doc
    return best


@dataclass(frozen=True, slots=True)
class ScopeStatus:
    """Desired vs reported for one station and scope; ``state`` in_sync, pending or nacked."""

    scope: str
    desired_version: int | None
    desired_hash: str | None
    reported_version: int | None
    reported_hash: str | None
    result: str | None  # ack | nack | None (no answer yet)
    reason: str
    state: str


def scope_status(
    desired: Document | None, reported: ConfigReport | None, scope: str
) -> ScopeStatus:
    """Compare what a station should run with what it last answered."""
    if desired is None:
        state = "in_sync"
    elif reported is None or reported.version < desired.version:
        state = "pending"
    elif reported.result == "nack" and reported.version == desired.version:
        state = "nacked"
    elif reported.result == "ack":
        state = "in_sync"
    else:  # a nack for something newer than desired (a stale or forged version): still pending
        state = "pending"
    return ScopeStatus(
        scope=scope,
        desired_version=desired.version if desired else None,
        desired_hash=desired.hash if desired else None,
        reported_version=reported.version if reported else None,
        reported_hash=reported.hash if reported else None,
        result=reported.result if reported else None,
        reason=reported.reason if reported else "",
        state=state,
    )


def config_status(
    station: str,
    grid_cell: str | None,
    documents: Iterable[Document],
    rollouts: Iterable[Rollout],
    reports: Iterable[ConfigReport],
) -> list[ScopeStatus]:
    """Desired vs reported for every scope that has a document or an answer for ``station``."""
    desired = desired_documents(station, grid_cell, documents, rollouts)
    reported = {r.scope: r for r in reports if r.station == station}
    keys = [s.key for s in scopes_for(station, grid_cell)]
    keys += sorted(k for k in reported if k not in keys)
    return [
        scope_status(desired.get(k), reported.get(k), k)
        for k in keys
        if k in desired or k in reported
    ]
