"""The station side of signed configuration: check, apply atomically, persist, answer.

The fleet publishes documents retained on three topics (fleet-wide, the station's grid cell, the
station itself); each is a :mod:`roadside.signing` envelope around::

    {"c": "1.0", "scope": "fleet"|"grid"|"station", "target": ""|cell|station id,
     "version": 3, "issued": "2026-07-21T12:00:00+00:00", "body": {"warnings": {...}, ...}}

A document's body overlays sections (:data:`REMOTE_SECTIONS`) of the local station file; the
effective configuration is local < fleet < grid < station, merged key by key. A document is
applied only when all of these hold, checked in this order (the nack reason starts with the code):

1. ``malformed``/``unsigned``/``bad-signature``: it is an envelope whose Ed25519 signature verifies
   with the public key from provisioning;
2. ``contract``/``scope``/``schema``/``unsafe``: it speaks a contract major we speak, is addressed
   to this station or its cell on the topic it came on, and passes
   :func:`roadside.contract.check_document` (version, time, and every body section through
   :func:`roadside.contract.check_body`: the very check the fleet ran before signing it);
3. ``older``: its version is newer than the one running for that scope (the same version with the
   same hash is acknowledged again without re-applying: retained documents come back on reconnect);
4. ``schema``: the resulting station configuration validates
   (:func:`agent.config.config_from_dict`);
5. ``unsafe``: the effective configuration as a whole (local file included) still passes the
   sections' safety rules (:func:`roadside.contract.check_sections`: QC that does not flag
   plausible weather, derived products that keep real rain, warnings that can still be raised).

Then the new state is written to ``state_path`` atomically (temporary file, fsync, rename, fsync of
the directory), handed to ``apply``, and acknowledged with version and hash. If ``apply`` fails
the previous state file is restored and the answer is a nack ``apply: ...``. A bad document never
replaces a good one. At start the persisted documents are verified again; any that no longer
verify are dropped with an error in the log (the station falls back to the broader scopes).

Replay protection survives the loss of any one file: besides the documents in ``state_path``,
the newest (version, hash) applied per scope is kept in ``<state>.versions.json``; at start the
floor per scope is the newest of both, so a captured older document is refused ``older`` even
after ``remote-config.json`` is deleted (and the documents still hold the floor if the versions
file is lost). A payload over :data:`MAX_DOCUMENT_BYTES` or nested deeper than
:data:`MAX_DEPTH` is refused ``malformed`` before or right after parsing, with an answer.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.config import StationConfig, config_from_dict
from agent.errors import AgentError, ConfigError
from roadside import contract, signing, wire
from roadside.clock import Clock
from roadside.structs import asdict

log = logging.getLogger(__name__)

REMOTE_SECTIONS = contract.REMOTE_SECTIONS
SCOPE_ORDER = contract.SCOPE_KINDS
scope_key = contract.scope_key

MAX_DOCUMENT_BYTES = 512 * 1024
"""Largest configuration payload parsed (the fleet signs at most 256 KiB)."""
MAX_DEPTH = 32
"""Deepest nesting of objects and lists in a document."""

ApplyFn = Callable[[StationConfig], None]
AckFn = Callable[[wire.ConfigAck], None]


class Refused(AgentError):
    """A configuration document was refused; ``code`` is a :data:`roadside.contract.NACK_CODES`."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


@dataclass(frozen=True)
class Applied:
    """A document this station runs for one scope."""

    scope: str  # scope key: fleet | grid:<cell> | station:<id>
    version: int
    hash: str
    doc: dict[str, Any]
    envelope: dict[str, Any]


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` laid on top, recursing into nested objects (neither is changed)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def nesting_depth(value: Any, limit: int) -> int:
    """Depth of nested dicts/lists (iteratively, stopping past ``limit``)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, depth + 1) for c in children)
    return deepest


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a crash leaves either the old or the new file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class RemoteConfig:
    """Receives configuration documents for one station (see the module docstring)."""

    def __init__(
        self,
        station: str,
        base: dict[str, Any],
        public_key: Ed25519PublicKey,
        state_path: Path,
        clock: Clock,
        *,
        grid_cell: str | None = None,
        apply: ApplyFn | None = None,
        publish_ack: AckFn | None = None,
        source: str = "station configuration",
        base_dir: Path | None = None,
    ) -> None:
        self.station = wire.check_id(station)
        self.grid_cell = grid_cell
        self.base = base
        self.public_key = public_key
        self.state_path = Path(state_path)
        self.clock = clock
        self.apply_fn = apply
        self.publish_ack = publish_ack
        self.source = source
        self.base_dir = base_dir
        self.running: dict[str, Applied] = {}
        self.acks: list[wire.ConfigAck] = []  # every answer given, newest last
        self.floors: dict[str, tuple[int, str]] = {}  # scope -> newest (version, hash) applied
        self._load()
        self._load_floors()
        self.config = self._effective(self.running)

    @classmethod
    def for_station(
        cls,
        cfg: StationConfig,
        clock: Clock,
        *,
        apply: ApplyFn | None = None,
        publish_ack: AckFn | None = None,
    ) -> RemoteConfig | None:
        """The remote configuration of a loaded station file, or None without a fleet key.

        ``[uplink] fleet_key`` names the fleet's public key (PEM, from provisioning; relative to
        the file); applied documents persist in ``remote-config.json`` next to the buffer.
        """
        key_file = cfg.uplink.get("fleet_key")
        if not key_file:
            return None
        source = Path(cfg.source)
        key_path = Path(str(key_file))
        if not key_path.is_absolute():
            key_path = source.parent / key_path
        try:
            public = signing.load_public_key(key_path)
            base = tomllib.loads(source.read_text(encoding="utf-8"))
        except (signing.SignatureError, OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{cfg.source}: key uplink.fleet_key: {exc}") from None
        return cls(
            cfg.station_id,
            base,
            public,
            Path(cfg.buffer.path).parent / "remote-config.json",
            clock,
            grid_cell=cfg.station.grid_cell,
            apply=apply,
            publish_ack=publish_ack,
            source=cfg.source,
            base_dir=source.parent,
        )

    # -- public ----------------------------------------------------------------------------

    def handle(self, topic: str, payload: wire.Payload) -> wire.ConfigAck | None:
        """Process one message from a config topic; publish and return the answer.

        Returns None (and answers nothing) for a cleared retained topic or a grid cell that is
        not this station's.
        """
        try:
            where = wire.parse_topic(topic)
        except wire.WireError as exc:
            log.warning("config on unexpected topic ignored: %s", exc)
            return None
        if where.kind != "config" or where.direction != "down" or not payload:
            return None
        if where.scope == "grid" and where.target != self.grid_cell:
            return None
        if where.scope == "st" and where.target != self.station:
            return None
        topic_scope = scope_key("station" if where.scope == "st" else where.scope, where.target)
        ack = self._answer(topic_scope, bytes(payload))
        self.acks.append(ack)
        level = logging.INFO if ack.ok else logging.WARNING
        log.log(level, "config %s v%s: %s", ack.scope, ack.version, ack.reason or "applied")
        if self.publish_ack is not None:
            self.publish_ack(ack)
        return ack

    def versions(self) -> dict[str, dict[str, Any]]:
        """Per scope key, the running document's version and hash (for the status message)."""
        return {k: {"version": a.version, "hash": a.hash} for k, a in self.running.items()}

    # -- checking ---------------------------------------------------------------------------

    def _answer(self, topic_scope: str, payload: bytes) -> wire.ConfigAck:
        claimed: dict[str, Any] = {}
        try:
            if len(payload) > MAX_DOCUMENT_BYTES:
                raise Refused(
                    "malformed", f"payload of {len(payload)} bytes is over {MAX_DOCUMENT_BYTES}"
                )
            try:
                envelope = signing.decode_envelope(payload)
            except signing.SignatureError as exc:
                raise Refused("malformed", str(exc)) from None
            except RecursionError:
                raise Refused("malformed", "document nests too deep to parse") from None
            if nesting_depth(envelope, MAX_DEPTH) > MAX_DEPTH:
                raise Refused("malformed", f"document nests deeper than {MAX_DEPTH} levels")
            if isinstance(envelope, dict) and isinstance(envelope.get("doc"), dict):
                claimed = envelope["doc"]
            doc = self._verify(envelope)
            applied = self._check(doc, envelope, topic_scope)
            current = self.running.get(applied.scope)
            if current is not None and current.hash == applied.hash:
                return self._ack(applied, ok=True, reason="")  # already running it
            self._apply(applied)
            return self._ack(applied, ok=True, reason="")
        except Refused as exc:
            version = claimed.get("version")
            running = self.running.get(topic_scope)
            try:
                digest = signing.document_hash(claimed) if claimed else ""
            except signing.SignatureError:
                digest = ""
            return wire.ConfigAck(
                station=self.station,
                ok=False,
                scope=topic_scope,
                version=version if isinstance(version, int) else None,
                hash=digest,
                reason=str(exc),
                running_version=running.version if running else None,
                time=self.clock.now(),
            )

    def _ack(self, applied: Applied, *, ok: bool, reason: str) -> wire.ConfigAck:
        running = self.running.get(applied.scope)
        return wire.ConfigAck(
            station=self.station,
            ok=ok,
            scope=applied.scope,
            version=applied.version,
            hash=applied.hash,
            reason=reason,
            running_version=running.version if running else None,
            time=self.clock.now(),
        )

    def _verify(self, envelope: Any) -> dict[str, Any]:
        if not isinstance(envelope, dict) or not isinstance(envelope.get("doc"), dict):
            raise Refused("malformed", "not a signed document (expected {doc, sig, key})")
        try:
            return signing.verify(envelope, self.public_key)
        except signing.SignatureError as exc:
            code = "unsigned" if "unsigned" in str(exc) else "bad-signature"
            raise Refused(code, str(exc)) from None

    def _canary_copy(self, key: str, topic_scope: str) -> bool:
        """A staged rollout sends the fleet's or this station's cell's document to each canary on
        the station's own topic (only the controller may write it; the signature still decides)."""
        own = topic_scope == scope_key("station", self.station)
        return own and key in (scope_key("fleet", ""), scope_key("grid", self.grid_cell or ""))

    def _check(self, doc: dict[str, Any], envelope: dict[str, Any], topic_scope: str) -> Applied:
        try:
            wire.check_contract(str(doc.get("c", "")))
        except wire.ContractVersionError as exc:
            raise Refused("contract", str(exc)) from None
        except wire.WireError as exc:
            raise Refused("schema", f"field c: {exc}") from None
        kind, target = doc.get("scope"), doc.get("target", "")
        if kind not in SCOPE_ORDER or not isinstance(target, str):
            raise Refused("schema", f"field scope: {kind!r} is not one of fleet, grid, station")
        key = scope_key(kind, target)
        if key != topic_scope and not self._canary_copy(key, topic_scope):
            raise Refused("scope", f"document for {key} arrived on the topic of {topic_scope}")
        try:
            typed = contract.check_document(doc)  # the same check the fleet ran before signing
        except contract.ContractError as exc:
            raise Refused(exc.code, exc.detail) from None
        version = typed.version
        applied = Applied(key, version, signing.document_hash(doc), doc, envelope)
        floor = self.floors.get(key) if key not in self.running else None
        if floor is not None:  # what ran here before, even if its document file was lost
            if version < floor[0]:
                raise Refused(
                    "older", f"version {version} is older than version {floor[0]} applied"
                )
            if version == floor[0] and applied.hash != floor[1]:
                raise Refused("older", f"version {version} was applied with different content")
        current = self.running.get(key)
        if current is not None:
            if version < current.version:
                raise Refused(
                    "older", f"version {version} is older than running version {current.version}"
                )
            if version == current.version and applied.hash != current.hash:
                raise Refused(
                    "older", f"version {version} is already running with different content"
                )
        return applied

    def _effective(self, running: dict[str, Applied]) -> StationConfig:
        merged = copy.deepcopy(self.base)
        ordered = sorted(running.values(), key=lambda a: SCOPE_ORDER.index(a.doc["scope"]))
        for applied in ordered:
            for name, section in applied.doc["body"].items():
                merged[name] = deep_merge(merged.get(name) or {}, section)
        return config_from_dict(merged, self.source, base_dir=self.base_dir)

    # -- applying ---------------------------------------------------------------------------

    def _apply(self, applied: Applied) -> None:
        candidate = {**self.running, applied.scope: applied}
        try:
            cfg = self._effective(candidate)
        except ConfigError as exc:
            raise Refused("schema", str(exc)) from None
        try:  # the effective configuration, local file included, must be safe as a whole
            sections = {n: getattr(cfg, n) for n in ("qc", "derived", "warnings")}
            sections["sampling"] = asdict(cfg.sampling)
            contract.check_sections(sections, "effective")
        except contract.ContractError as exc:
            raise Refused(exc.code, exc.detail) from None
        previous = self._state_bytes(self.running)
        try:
            write_atomically(self.state_path, self._state_bytes(candidate))
        except OSError as exc:
            raise Refused("apply", f"{self.state_path}: {exc}") from None
        if self.apply_fn is not None:
            try:
                self.apply_fn(cfg)
            except Exception as exc:
                with contextlib.suppress(OSError):
                    write_atomically(self.state_path, previous)
                raise Refused("apply", f"{type(exc).__name__}: {exc}") from None
        self.running = candidate
        self.config = cfg
        self._raise_floor(applied)

    @staticmethod
    def _state_bytes(running: dict[str, Applied]) -> bytes:
        docs = {k: a.envelope for k, a in sorted(running.items())}
        return json.dumps({"documents": docs}, indent=1, sort_keys=True).encode()

    @property
    def floor_path(self) -> Path:
        return self.state_path.with_name(f"{self.state_path.stem}.versions.json")

    def _raise_floor(self, applied: Applied) -> None:
        """Record the newest applied (version, hash) of a scope in the second file."""
        have = self.floors.get(applied.scope)
        if have is not None and have[0] > applied.version:
            return
        self.floors[applied.scope] = (applied.version, applied.hash)
        data = {k: {"version": v, "hash": h} for k, (v, h) in sorted(self.floors.items())}
        try:
            write_atomically(self.floor_path, json.dumps({"floors": data}, indent=1).encode())
        except OSError as exc:  # the documents file still holds it
            log.error("%s: replay floor not written: %s", self.floor_path, exc)

    def _load_floors(self) -> None:
        """Floors from the versions file and from the running documents, the newest of both."""
        for key, applied in self.running.items():
            self.floors[key] = (applied.version, applied.hash)
        try:
            saved = json.loads(self.floor_path.read_bytes())["floors"]
            items = [(k, int(v["version"]), str(v["hash"])) for k, v in saved.items()]
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            log.error("%s: unreadable replay floors (%s); documents used", self.floor_path, exc)
            return
        for key, version, digest in items:
            have = self.floors.get(key)
            if have is None or version > have[0]:
                self.floors[key] = (version, digest)

    def _load(self) -> None:
        """Read persisted documents, keeping only those that still verify and check out."""
        if not self.state_path.exists():
            return
        try:
            state = json.loads(self.state_path.read_bytes())
            docs = state["documents"]
            if not isinstance(docs, dict):
                raise TypeError("documents is not an object")
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            log.error(
                "%s: unreadable remote configuration state (%s); ignored", self.state_path, exc
            )
            return
        mine = {"fleet", scope_key("station", self.station)}
        if self.grid_cell:
            mine.add(scope_key("grid", self.grid_cell))
        for key, envelope in docs.items():
            if key not in mine:
                log.error(
                    "%s: persisted document %s is not for this station; dropped",
                    self.state_path,
                    key,
                )
                continue
            try:
                doc = self._verify(envelope)
                applied = self._check(doc, envelope, key)
                self._effective({**self.running, key: applied})
            except (Refused, ConfigError) as exc:
                log.error("%s: persisted document %s dropped: %s", self.state_path, key, exc)
                continue
            self.running[key] = applied
