"""A/B updates of the agent and the model: install beside, switch, health gate, commit or roll back.

Layout under ``root/<name>/``::

    slots/<version>/payload      one complete, verified artifact per version
    current -> slots/<v>         what runs (an atomic symlink swap switches it)
    state.json                   committed version, trial in progress, failures and why

An update (:meth:`Updater.update`) checks the fleet's signature (the pinned key) and that the
version only grows, downloads into ``slots/<v>.partial`` and renames it complete, records a trial
in ``state.json`` (fsync'd), swaps ``current``, restarts and runs the health gate: the agent's
status file must show polling, buffering and (when it has one) the uplink healthy for ``gate_s``.
Then the trial is committed; otherwise ``current`` goes back and the failure is recorded with its
reason. Every step is a rename, so a power cut at any moment leaves ``current`` on a complete slot;
:meth:`Updater.recover` (run at start) rolls an unfinished trial back and sweeps partial files.

A model goes to ``shadow`` first: :func:`promote` is the rule (shadow at least as good on every
skill) that decides whether it replaces ``current``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from roadside import signing

PAYLOAD = "payload"
LOWER_IS_BETTER = frozenset({"brier", "mae", "rmse", "false_alarm_rate", "lead_time_error_s"})

Health = Callable[[], tuple[bool, str]]


class UpdateError(Exception):
    """An update refused before anything changed (signature, version, hash)."""


@dataclass(frozen=True)
class Outcome:
    name: str
    version: int
    ok: bool
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "ok": self.ok, "reason": self.reason}


def check_manifest(envelope: Any, key: Ed25519PublicKey, name: str, committed: int) -> dict:
    """The signed manifest's document, if it is for ``name`` and newer than ``committed``."""
    try:
        doc = signing.verify(envelope, key)
    except signing.SignatureError as exc:
        raise UpdateError(f"manifest refused: {exc}") from None
    if doc.get("kind") != "artifact" or doc.get("name") != name:
        raise UpdateError(f"manifest is for {doc.get('kind')}/{doc.get('name')}, not {name}")
    version = doc.get("version")
    if not isinstance(version, int) or version <= committed:
        raise UpdateError(f"{name} version {version} is not newer than {committed} (only grows)")
    return doc


def promote(current: Mapping[str, float], shadow: Mapping[str, float]) -> bool:
    """Whether the shadow model's skill is at least as good as the current one's on every score
    they share (lower is better for errors such as ``brier``, higher for ``csi``, ``pod``...)."""
    shared = set(current) & set(shadow)
    if not shared:
        return False
    for k in shared:
        worse = shadow[k] > current[k] if k in LOWER_IS_BETTER else shadow[k] < current[k]
        if worse:
            return False
    return True


def status_health(path: Path, since: float, max_age_s: float = 30.0) -> Health:
    """A health check over the agent's status file, for the gate after a switch at ``since``."""

    def check() -> tuple[bool, str]:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            return False, f"{path}: no status from the new agent"
        return judge_status(doc, since, time.time(), max_age_s)

    return check


def judge_status(
    doc: Mapping[str, Any], since: float, now: float, max_age_s: float
) -> tuple[bool, str]:
    """Polling, buffering and uplink healthy in one status document (pure)."""
    updated = float(doc.get("updated_epoch") or 0.0)
    if updated < since:
        return False, "no status from the new agent yet"
    if now - updated > max_age_s:
        return False, f"status is {now - updated:.0f} s old"
    if not doc.get("healthy"):
        return False, f"agent unhealthy: {doc.get('summary', '')}"
    devices = doc.get("devices") or {}
    if not any(d.get("state") == "ok" for d in devices.values()):
        return False, "no device polled ok"
    if doc.get("buffer") is None:
        return False, "buffer not open"
    uplink = doc.get("uplink")
    if isinstance(uplink, Mapping) and uplink.get("connected") is False:
        return False, "uplink not connected"
    return True, ""


def _fsync_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Updater:
    """The A/B slots of one artifact (``agent`` or ``model``) under ``root``."""

    def __init__(self, root: Path, name: str, key: Ed25519PublicKey) -> None:
        self.dir = Path(root) / name
        self.name = name
        self.key = key
        self.slots = self.dir / "slots"
        self.slots.mkdir(parents=True, exist_ok=True)
        self.current = self.dir / "current"
        self.shadow = self.dir / "shadow"
        self.state_path = self.dir / "state.json"

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads(self.state_path.read_text())
            return doc
        except (OSError, ValueError):
            return {"committed": 0, "trial": None, "failed": {}}

    def _save(self, state: dict[str, Any]) -> None:
        _fsync_write(self.state_path, json.dumps(state, sort_keys=True))

    def running(self) -> int | None:
        """The version ``current`` points at (None: nothing installed yet)."""
        try:
            return int(os.readlink(self.current).rsplit("/", 1)[-1])
        except (OSError, ValueError):
            return None

    def _point(self, link: Path, version: int) -> None:
        tmp = link.with_name(f".{link.name}.new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(f"slots/{version}")
        tmp.replace(link)
        _fsync_dir(self.dir)

    # -- steps ---------------------------------------------------------------------------------
    def install(self, doc: Mapping[str, Any], data: bytes) -> Path:
        """Put a verified artifact into its own slot beside the running one."""
        version = int(doc["version"])
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != doc.get("size") or digest != doc.get("sha256"):
            raise UpdateError(f"{self.name} {version}: download does not match its manifest")
        slot = self.slots / str(version)
        if slot.exists():
            return slot
        partial = self.slots / f"{version}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        with open(partial / PAYLOAD, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        (partial / "manifest.json").write_text(json.dumps(dict(doc)))
        _fsync_dir(partial)
        partial.rename(slot)
        _fsync_dir(self.slots)
        return slot

    def recover(self) -> str | None:
        """After a crash or power cut: sweep partial files, roll back an unfinished trial."""
        for p in self.slots.glob("*.partial"):
            shutil.rmtree(p, ignore_errors=True)
        for p in self.dir.glob(".*.new"):
            p.unlink(missing_ok=True)
        state = self.state()
        trial = state.get("trial")
        if trial is None:
            committed = int(state.get("committed") or 0)
            if committed and self.running() != committed and (self.slots / str(committed)).is_dir():
                self._point(self.current, committed)
            return None
        previous = trial.get("previous")
        if previous:
            self._point(self.current, int(previous))
        else:
            self.current.unlink(missing_ok=True)
        state["trial"] = None
        self._save(state)
        return f"{self.name} {trial['version']}: interrupted during its trial; back on {previous}"

    def update(
        self,
        envelope: Any,
        fetch: Callable[[Mapping[str, Any]], bytes],
        restart: Callable[[], None],
        health: Callable[[float], Health],
        *,
        gate_s: float,
        deadline_s: float,
        poll_s: float = 0.5,
    ) -> Outcome:
        """The whole update; never leaves ``current`` on anything but a complete slot."""
        state = self.state()
        committed = int(state.get("committed") or 0)
        doc = check_manifest(envelope, self.key, self.name, committed)
        version = int(doc["version"])
        if str(version) in state.get("failed", {}):
            return Outcome(
                self.name, version, False, f"refused again: {state['failed'][str(version)]}"
            )
        self.install(doc, fetch(doc))
        previous = self.running()
        state["trial"] = {"version": version, "previous": previous, "started": time.time()}
        self._save(state)
        self._point(self.current, version)
        switched = time.time()
        restart()
        ok, reason = gate(health(switched), gate_s, deadline_s, poll_s)
        state = self.state()
        state["trial"] = None
        if ok:
            state["committed"] = version
            self._save(state)
            self._prune(keep={version, previous})
            return Outcome(self.name, version, True)
        if previous is not None:
            self._point(self.current, previous)
        else:
            self.current.unlink(missing_ok=True)
        state.setdefault("failed", {})[str(version)] = reason
        self._save(state)
        restart()
        return Outcome(self.name, version, False, f"rolled back to {previous}: {reason}")

    # -- models: shadow first ------------------------------------------------------------------
    def stage_shadow(self, envelope: Any, data: bytes) -> int:
        """Install a signed model beside the current one as ``shadow`` (runs, decides nothing)."""
        doc = check_manifest(envelope, self.key, self.name, int(self.state().get("committed") or 0))
        self.install(doc, data)
        self._point(self.shadow, int(doc["version"]))
        return int(doc["version"])

    def settle_shadow(self, current: Mapping[str, float], shadow: Mapping[str, float]) -> Outcome:
        """Promote the shadow model if its skill is at least as good (:func:`promote`), else
        drop it; either way the outcome says why."""
        try:
            version = int(os.readlink(self.shadow).rsplit("/", 1)[-1])
        except (OSError, ValueError):
            raise UpdateError(f"{self.name}: no shadow model") from None
        state = self.state()
        if promote(current, shadow):
            previous = self.running()
            self._point(self.current, version)
            state["committed"] = version
            self._save(state)
            self.shadow.unlink()
            self._prune(keep={version, previous})
            return Outcome(self.name, version, True, "promoted: shadow skill at least as good")
        worse = sorted(
            k for k in set(current) & set(shadow) if not promote({k: current[k]}, {k: shadow[k]})
        )
        reason = f"kept {self.running()}: shadow worse on {', '.join(worse) or 'no shared score'}"
        state.setdefault("failed", {})[str(version)] = reason
        self._save(state)
        self.shadow.unlink()
        shutil.rmtree(self.slots / str(version), ignore_errors=True)
        return Outcome(self.name, version, False, reason)

    def _prune(self, keep: set[int | None]) -> None:
        for slot in self.slots.iterdir():
            if slot.name.isdigit() and int(slot.name) not in keep:
                shutil.rmtree(slot, ignore_errors=True)


def gate(check: Health, gate_s: float, deadline_s: float, poll_s: float) -> tuple[bool, str]:
    """Healthy for ``gate_s`` in a row within ``deadline_s``; the last reason otherwise."""
    start = time.monotonic()
    healthy_since: float | None = None
    reason = "no health report"
    while time.monotonic() - start < deadline_s:
        ok, why = check()
        now = time.monotonic()
        if ok:
            healthy_since = now if healthy_since is None else healthy_since
            if now - healthy_since >= gate_s:
                return True, ""
        else:
            healthy_since, reason = None, why
        time.sleep(poll_s)
    return False, f"health gate not passed in {deadline_s:g} s: {reason}"


# -- over MQTT ---------------------------------------------------------------------------------
class UpdateListener:
    """Takes signed offers from ``roadside/v1/st/<id>/down/update``, updates, reports on ``up``.

    ``fetch_base`` is the fleet's HTTP address the artifact's ``path`` is fetched from.
    """

    def __init__(
        self,
        settings: Any,  # roadside.wire.BrokerSettings
        station: str,
        updaters: Mapping[str, Updater],
        fetch_base: str,
        restart: Mapping[str, Callable[[], None]],
        health: Mapping[str, Callable[[float], Health]],
        *,
        gate_s: float,
        deadline_s: float,
    ) -> None:
        import queue

        from roadside import wire

        self.station = station
        self.updaters = updaters
        self.fetch_base = fetch_base.rstrip("/")
        self.restart, self.health = restart, health
        self.gate_s, self.deadline_s = gate_s, deadline_s
        self.outcomes: list[Outcome] = []
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._settings = settings
        self.client = wire.new_client(settings, client_id=f"{station}-updates")
        topic = f"roadside/v1/st/{station}/down/update"
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_message = lambda c, u, msg: self._queue.put(bytes(msg.payload))
        import threading

        self._worker = threading.Thread(target=self._run, name="updates", daemon=True)

    def start(self) -> UpdateListener:
        self.client.connect(self._settings.host, self._settings.port)
        self.client.loop_start()
        self._worker.start()
        return self

    def stop(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=30)
        self.client.disconnect()
        self.client.loop_stop()

    def _fetch(self, doc: Mapping[str, Any]) -> bytes:
        import urllib.request

        with urllib.request.urlopen(self.fetch_base + str(doc["path"]), timeout=60) as resp:
            data: bytes = resp.read()
            return data

    def _run(self) -> None:
        while (payload := self._queue.get()) is not None:
            name, version = "?", 0
            try:
                envelope = json.loads(payload)
                doc = envelope.get("doc", {})
                name, version = str(doc.get("name")), int(doc.get("version", 0))
                updater = self.updaters[name]
                outcome = updater.update(
                    envelope,
                    self._fetch,
                    self.restart[name],
                    self.health[name],
                    gate_s=self.gate_s,
                    deadline_s=self.deadline_s,
                )
            except (UpdateError, KeyError, ValueError, OSError) as exc:
                outcome = Outcome(name, version, False, f"refused: {exc}")
            self.outcomes.append(outcome)
            self.client.publish(
                f"roadside/v1/st/{self.station}/up/update",
                json.dumps(outcome.as_dict()),
                qos=1,
            )


def main(argv: list[str] | None = None) -> int:
    """``python -m agent.update apply|recover``: one update from files, or crash recovery."""
    import argparse
    import subprocess

    p = argparse.ArgumentParser(prog="python -m agent.update")
    p.add_argument("action", choices=("apply", "recover"))
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--name", default="agent")
    p.add_argument("--key", type=Path, required=True, help="The pinned fleet key (PEM).")
    p.add_argument("--manifest", type=Path)
    p.add_argument("--payload", type=Path)
    p.add_argument("--restart", default="true", help="Shell command restarting the service.")
    p.add_argument("--status", type=Path, help="The agent's status file (health gate).")
    p.add_argument("--gate-s", type=float, default=60.0)
    p.add_argument("--deadline-s", type=float, default=300.0)
    args = p.parse_args(argv)
    updater = Updater(args.root, args.name, signing.load_public_key(args.key))
    if args.action == "recover":
        print(updater.recover() or f"{args.name}: nothing to recover")
        return 0
    if not (args.manifest and args.payload and args.status):
        p.error("apply needs --manifest, --payload and --status")

    def restart() -> None:
        subprocess.run(args.restart, shell=True, check=False)

    outcome = updater.update(
        json.loads(args.manifest.read_text()),
        lambda doc: args.payload.read_bytes(),
        restart,
        lambda since: status_health(args.status, since),
        gate_s=args.gate_s,
        deadline_s=args.deadline_s,
        poll_s=0.1,
    )
    print(json.dumps(outcome.as_dict()))
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
