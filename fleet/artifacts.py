"""Signed artifacts (the agent, the model) and their staged rollout to stations.

:class:`ArtifactStore` keeps each published artifact with a manifest signed by the fleet's key
(name, version, size, SHA-256); a version must be larger than every one before it. An update
rollout is plain data (:class:`UpdateRollout`) moved by :func:`record`::

    canary ──every canary reports ok──► rolling ──everyone reports ok──► done
      └───────────any failure───────────┴──────────► halted (with the station and its reason)

:class:`UpdateService` carries it over MQTT: the signed manifest goes to each target's
``roadside/v1/st/<id>/down/update`` (QoS 1, queued for an offline station), stations report on
``roadside/v1/st/<id>/up/update``. Stations fetch the bytes from ``GET /artifacts/<name>/<v>``
(no credentials needed: the signed hash is what they trust).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, Request, Response

from fleet.auth import api_error
from fleet.errors import FleetError
from roadside import signing, wire

NAMES = ("agent", "model")
MAX_BYTES = 64 * 1024 * 1024
DOWN = "roadside/v1/st/{}/down/update"
UP = "roadside/v1/st/+/up/update"

Stage = Literal["canary", "rolling", "done", "halted"]


class ArtifactError(FleetError):
    """An artifact refused (unknown name, version not growing, too large)."""


class ArtifactStore:
    """Published artifacts in ``directory/<name>/<version>`` with their signed manifests."""

    def __init__(self, directory: Path, key: Ed25519PrivateKey) -> None:
        self.dir = Path(directory)
        self.key = key

    def versions(self, name: str) -> list[int]:
        d = self.dir / name
        return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []

    def publish(self, name: str, version: int, data: bytes) -> dict[str, Any]:
        """Store and sign ``data`` as ``name`` ``version``; the signed manifest."""
        if name not in NAMES:
            raise ArtifactError(f"unknown artifact {name!r} (expected one of {', '.join(NAMES)})")
        if len(data) > MAX_BYTES:
            raise ArtifactError(f"{name} {version}: {len(data)} bytes is over {MAX_BYTES}")
        latest = max(self.versions(name), default=0)
        if version <= latest:
            raise ArtifactError(f"{name} version {version} must be above {latest} (only grows)")
        doc = {
            "kind": "artifact",
            "name": name,
            "version": version,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "path": f"/artifacts/{name}/{version}",
        }
        envelope = signing.sign(doc, self.key)
        slot = self.dir / name / str(version)
        partial = slot.with_name(f"{version}.partial")
        partial.mkdir(parents=True, exist_ok=True)
        (partial / "data").write_bytes(data)
        (partial / "manifest.json").write_text(json.dumps(envelope))
        partial.rename(slot)
        return envelope

    def manifest(self, name: str, version: int) -> dict[str, Any]:
        path = self.dir / name / str(version) / "manifest.json"
        try:
            doc: dict[str, Any] = json.loads(path.read_text())
        except OSError:
            raise ArtifactError(f"no artifact {name} {version}") from None
        return doc

    def data(self, name: str, version: int) -> bytes:
        try:
            return (self.dir / name / str(version) / "data").read_bytes()
        except OSError:
            raise ArtifactError(f"no artifact {name} {version}") from None


# -- staged rollout (pure) -------------------------------------------------------------------
@dataclass(frozen=True)
class UpdateRollout:
    name: str
    version: int
    canaries: tuple[str, ...]
    rest: tuple[str, ...]
    stage: Stage = "canary"
    results: dict[str, tuple[bool, str]] = field(default_factory=dict)
    reason: str = ""

    @property
    def targets(self) -> tuple[str, ...]:
        """Stations that should have the offer in the current stage."""
        if self.stage == "canary":
            return self.canaries
        if self.stage in ("rolling", "done"):
            return self.canaries + self.rest
        return tuple(s for s in self.canaries + self.rest if s in self.results)


def start(
    name: str, version: int, stations: Sequence[str], canaries: Sequence[str]
) -> UpdateRollout:
    unknown = sorted(set(canaries) - set(stations))
    if unknown or not canaries:
        raise ArtifactError(f"canaries must be some of the stations (not {unknown or 'none'})")
    rest = tuple(s for s in stations if s not in canaries)
    return UpdateRollout(name, version, tuple(canaries), rest)


def record(r: UpdateRollout, station: str, version: int, ok: bool, reason: str) -> UpdateRollout:
    """The rollout after ``station`` reported on ``version`` (other reports change nothing)."""
    if version != r.version or station not in r.targets or r.stage in ("done", "halted"):
        return r
    results = {**r.results, station: (ok, reason)}
    if not ok:
        return replace(r, results=results, stage="halted", reason=f"{station}: {reason}")
    if r.stage == "canary" and all(results.get(c, (False, ""))[0] for c in r.canaries):
        return replace(r, results=results, stage="rolling" if r.rest else "done")
    if r.stage == "rolling" and all(results.get(s, (False, ""))[0] for s in r.canaries + r.rest):
        return replace(r, results=results, stage="done")
    return replace(r, results=results)


# -- over MQTT -------------------------------------------------------------------------------
class UpdateService:
    """Runs update rollouts through the controller's broker connection."""

    def __init__(self, store: ArtifactStore, broker: wire.BrokerSettings) -> None:
        self.store = store
        self.rollouts: dict[tuple[str, int], UpdateRollout] = {}
        self.changed = threading.Condition()
        self._offered: set[tuple[str, int, str]] = set()
        self.client = wire.new_client(broker, client_id="fleet-updates")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(UP, qos=1)
        self.client.on_message = self._on_message
        self._broker = broker

    def start(self, timeout: float = 10.0) -> UpdateService:
        connected = threading.Event()
        self.client.on_subscribe = lambda *a: connected.set()
        self.client.connect(self._broker.host, self._broker.port)
        self.client.loop_start()
        if not connected.wait(timeout):
            raise FleetError("update service could not subscribe at the broker")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def begin(
        self, name: str, version: int, stations: Sequence[str], canaries: Sequence[str]
    ) -> None:
        self.store.manifest(name, version)  # exists
        with self.changed:
            self.rollouts[(name, version)] = start(name, version, stations, canaries)
            self._offer(self.rollouts[(name, version)])

    def _offer(self, r: UpdateRollout) -> None:
        envelope = self.store.manifest(r.name, r.version)
        for station in r.targets if r.stage in ("canary", "rolling") else ():
            key = (r.name, r.version, station)
            if key not in self._offered:
                self._offered.add(key)
                self.client.publish(DOWN.format(station), signing.encode_envelope(envelope), qos=1)

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        m = re.fullmatch(r"roadside/v1/st/([^/]+)/up/update", msg.topic)
        try:
            doc = json.loads(msg.payload)
            name, version, ok = str(doc["name"]), int(doc["version"]), bool(doc["ok"])
        except (ValueError, KeyError, TypeError):
            return  # a malformed report changes nothing
        if m is None:
            return
        with self.changed:
            r = self.rollouts.get((name, version))
            if r is None:
                return
            self.rollouts[(name, version)] = after = record(
                r, m.group(1), version, ok, str(doc.get("reason", ""))
            )
            self._offer(after)
            self.changed.notify_all()

    def wait(
        self, name: str, version: int, cond: Callable[[UpdateRollout], bool], timeout: float
    ) -> UpdateRollout:
        with self.changed:
            self.changed.wait_for(lambda: cond(self.rollouts[(name, version)]), timeout)
            return self.rollouts[(name, version)]


router = APIRouter()


def _store(request: Request) -> ArtifactStore:
    store = getattr(request.app.state, "artifacts", None)
    if not isinstance(store, ArtifactStore):
        raise api_error(503, "artifacts_unavailable", "this controller serves no artifacts")
    return store


@router.get("/artifacts/{name}/{version}")
def get_artifact(name: str, version: int, request: Request) -> Response:
    """The artifact's bytes (stations check them against the signed manifest)."""
    try:
        data = _store(request).data(name, version)
    except ArtifactError as exc:
        raise api_error(404, "unknown_artifact", str(exc)) from None
    return Response(data, media_type="application/octet-stream")


@router.get("/artifacts/{name}/{version}/manifest")
def get_manifest(name: str, version: int, request: Request) -> dict[str, Any]:
    """The signed manifest."""
    try:
        return _store(request).manifest(name, version)
    except ArtifactError as exc:
        raise api_error(404, "unknown_artifact", str(exc)) from None
