"""A/B updates: real agent behind the health gate, rollout over a real broker, kill -9 anywhere."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.update import Outcome, UpdateError, Updater, judge_status, promote, status_health
from fleet.artifacts import ArtifactError, ArtifactStore, UpdateService, record, start
from provisioning.commission import Site, render_config, write_config
from roadside import signing
from sim.pki import CONTROLLER_IDENTITY
from tests.provisioning.conftest import SimRun
from tests.provisioning.fleet_fixture import Fleet


@pytest.fixture
def key() -> signing.Ed25519PrivateKey:  # type: ignore[name-defined]
    return signing.generate_key()


def _pub(tmp: Path, key) -> Path:  # type: ignore[no-untyped-def]
    path = tmp / "fleet.pub"
    signing.save_public_key(key.public_key(), path)
    return path


# -- pure rules ---------------------------------------------------------------------------------
def test_versions_only_grow_and_manifests_are_checked(tmp_path: Path, key) -> None:  # type: ignore[no-untyped-def]
    store = ArtifactStore(tmp_path / "a", key)
    store.publish("model", 3, b"m3")
    with pytest.raises(ArtifactError, match="must be above 3"):
        store.publish("model", 3, b"again")
    with pytest.raises(ArtifactError, match="unknown artifact"):
        store.publish("firmware", 1, b"x")
    up = Updater(tmp_path / "st", "model", key.public_key())
    env = store.manifest("model", 3)
    up.install(env["doc"], b"m3")
    with pytest.raises(UpdateError, match="does not match its manifest"):
        up.install({**env["doc"], "version": 4}, b"m4")
    forged = {**env, "doc": {**env["doc"], "version": 9}}
    from agent.update import check_manifest

    with pytest.raises(UpdateError, match="bad signature"):
        check_manifest(forged, key.public_key(), "model", 0)
    with pytest.raises(UpdateError, match="not newer than 3"):
        check_manifest(env, key.public_key(), "model", 3)


def test_rollout_canary_then_all_halting_on_failure() -> None:
    r = start("agent", 2, ["a", "b", "c"], ["a"])
    assert r.targets == ("a",)
    assert record(r, "b", 2, True, "").stage == "canary"  # not a target yet: ignored
    r = record(r, "a", 2, True, "")
    assert r.stage == "rolling" and r.targets == ("a", "b", "c")
    r = record(record(r, "b", 2, True, ""), "c", 2, True, "")
    assert r.stage == "done"
    bad = record(start("agent", 3, ["a", "b"], ["a"]), "a", 3, False, "gate failed")
    assert bad.stage == "halted" and bad.reason == "a: gate failed" and bad.targets == ("a",)


def test_shadow_model_promoted_only_when_at_least_as_good() -> None:
    assert promote({"brier": 0.10, "csi": 0.5}, {"brier": 0.10, "csi": 0.55})
    assert not promote({"brier": 0.10, "csi": 0.5}, {"brier": 0.12, "csi": 0.9})
    assert not promote({"brier": 0.1}, {"csi": 0.9})  # nothing to compare
    ok = {"updated_epoch": 100.0, "healthy": True, "devices": {"l": {"state": "ok"}}, "buffer": {}}
    assert judge_status(ok, 99.0, 101.0, 30) == (True, "")
    assert judge_status(ok, 101.0, 102.0, 30)[1] == "no status from the new agent yet"
    assert judge_status({**ok, "devices": {"l": {"state": "timeout"}}}, 0, 101, 30)[1] == (
        "no device polled ok"
    )
    assert judge_status({**ok, "uplink": {"connected": False}}, 0, 101, 30)[1] == (
        "uplink not connected"
    )


# -- the real agent behind the gate --------------------------------------------------------------
class Service:
    """Stands in for systemd: (re)starts whatever ``current/payload`` is."""

    def __init__(self, up: Updater) -> None:
        self.up = up
        self.proc: subprocess.Popen[bytes] | None = None

    def restart(self) -> None:
        self.stop()
        self.proc = subprocess.Popen(
            ["sh", str(self.up.current / "payload")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)


def test_broken_agent_update_rolls_back_by_itself(sim_run: SimRun, tmp_path: Path, key) -> None:  # type: ignore[no-untyped-def]
    sensors = [
        {
            "name": "level",
            "profile": "hlk-ld8001h",
            "port": sim_run.port("level"),
            "slave": 1,
            "interval_s": 1.0,
        }
    ]
    config = tmp_path / "station.toml"
    write_config(
        config,
        render_config(
            Site("bs-upd-01", 31.3, 121.4, "G1"),
            sensors,
            version="1",
            buffer_path=str(tmp_path / "buffer.db"),
        )
        + "\n[metrics]\nport = 0\n",
    )
    status = tmp_path / "buffer.db.status.json"
    good = f"exec {sys.executable} -m agent run --config {config} --no-metrics\n".encode()
    broken = b"echo 'agent 3: cannot import' >&2; exit 3\n"
    store = ArtifactStore(tmp_path / "fleet", key)
    up = Updater(tmp_path / "station", "agent", key.public_key())
    service = Service(up)

    def run(version: int, data: bytes, deadline_s: float) -> Outcome:
        env = store.publish("agent", version, data)
        return up.update(
            env,
            lambda doc: data,
            service.restart,
            lambda since: status_health(status, since),
            gate_s=2.0,
            deadline_s=deadline_s,
        )

    try:
        first = run(2, good, 60.0)
        assert first.ok, first.reason
        assert up.running() == 2 and up.state()["committed"] == 2
        bad = run(3, broken, 4.0)
        assert not bad.ok
        assert bad.reason.startswith("rolled back to 2: health gate not passed in 4 s")
        assert up.running() == 2 and up.state()["failed"]["3"]
        # the old agent runs again and reports
        since = time.time()
        deadline = time.monotonic() + 45
        while not status_health(status, since)()[0]:
            assert time.monotonic() < deadline, "old agent not healthy again after rollback"
            time.sleep(0.2)
        again = up.update(
            store.manifest("agent", 3),
            lambda doc: broken,
            service.restart,
            lambda since: status_health(status, since),
            gate_s=1,
            deadline_s=5,
        )
        assert not again.ok and again.reason.startswith("refused again")
    finally:
        service.stop()


# -- rollout over MQTT ---------------------------------------------------------------------------


def test_agent_update_rolls_out_to_a_canary_then_all(fleet: Fleet, tmp_path: Path) -> None:
    from agent.update import UpdateListener

    stations = ["st-a", "st-b", "st-c"]
    key = signing.load_public_key(fleet.fleet_pub)
    listeners, updaters = {}, {}
    for st in stations:
        up = Updater(tmp_path / st, "agent", key)
        updaters[st] = up

        def healthy(since: float, up: Updater = up) -> Callable[[], tuple[bool, str]]:
            return lambda: (b"healthy" in (up.current / "payload").read_bytes(), "not healthy")

        listeners[st] = UpdateListener(
            fleet.broker.settings(st),
            st,
            {"agent": up},
            fleet.url,
            {"agent": lambda: None},
            {"agent": healthy},
            gate_s=0.2,
            deadline_s=5,
        ).start()
    service = UpdateService(fleet.artifacts, fleet.broker.settings(CONTROLLER_IDENTITY)).start()
    try:
        fleet.artifacts.publish("agent", 2, b"healthy agent 2")
        service.begin("agent", 2, stations, ["st-a"])
        r = service.wait("agent", 2, lambda r: r.stage in ("done", "halted"), 60)
        assert r.stage == "done", r
        assert {st: updaters[st].running() for st in stations} == dict.fromkeys(stations, 2)
        fleet.artifacts.publish("agent", 3, b"broken agent 3")
        service.begin("agent", 3, stations, ["st-a"])
        r = service.wait("agent", 3, lambda r: r.stage in ("done", "halted"), 60)
        assert r.stage == "halted" and r.reason.startswith("st-a: rolled back to 2")
        assert {st: updaters[st].running() for st in stations} == dict.fromkeys(stations, 2)
        assert [o.version for o in listeners["st-b"].outcomes] == [2]  # never offered 3
    finally:
        service.stop()
        for listener in listeners.values():
            listener.stop()


# -- power cut at any moment ---------------------------------------------------------------------
def test_kill_9_at_random_moments_of_an_update_leaves_a_working_station(
    tmp_path: Path, key
) -> None:  # type: ignore[no-untyped-def]
    store = ArtifactStore(tmp_path / "fleet", key)
    pub = _pub(tmp_path, key)
    root, status = tmp_path / "station", tmp_path / "status.json"
    write_status = (
        f"{sys.executable} -c \"import json,time; json.dump({{'updated_epoch': "
        f"time.time(), 'healthy': True, 'devices': {{'l': {{'state': 'ok'}}}}, "
        f"'buffer': {{}}}}, open('{status}', 'w'))\""
    )

    def apply(version: int) -> subprocess.Popen[bytes]:
        data = f"echo agent {version}\n".encode() + b"#" * 200_000
        env = store.publish("agent", version, data)
        (tmp_path / "m.json").write_text(json.dumps(env))
        (tmp_path / "p.bin").write_bytes(data)
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent.update",
                "apply",
                "--root",
                str(root),
                "--key",
                str(pub),
                "--manifest",
                str(tmp_path / "m.json"),
                "--payload",
                str(tmp_path / "p.bin"),
                "--restart",
                write_status,
                "--status",
                str(status),
                "--gate-s",
                "0.5",
                "--deadline-s",
                "20",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    assert apply(1).wait(timeout=60) == 0  # the first install
    rng = random.Random(14)
    up = Updater(root, "agent", key.public_key())
    for version in range(2, 10):
        proc = apply(version)
        time.sleep(rng.uniform(0.0, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        up.recover()
        running = up.running()
        assert running is not None, f"nothing to run after a kill during update {version}"
        slot = up.slots / str(running)
        manifest = json.loads((slot / "manifest.json").read_text())
        payload = (slot / "payload").read_bytes()
        assert hashlib.sha256(payload).hexdigest() == manifest["sha256"]
        out = subprocess.run(["sh", str(up.current / "payload")], capture_output=True, text=True)
        assert out.returncode == 0 and out.stdout.strip() == f"agent {running}"
        assert running == up.state()["committed"]  # what runs is committed, never a trial
        assert not list(up.slots.glob("*.partial"))


def test_a_new_model_runs_in_shadow_and_is_promoted_only_if_as_good(tmp_path: Path, key) -> None:  # type: ignore[no-untyped-def]
    store = ArtifactStore(tmp_path / "fleet", key)
    up = Updater(tmp_path / "station", "model", key.public_key())
    up.stage_shadow(store.publish("model", 1, b"m1"), b"m1")
    first = up.settle_shadow({"brier": 0.2}, {"brier": 0.15})  # nothing ran before: as good
    assert first.ok and up.running() == 1
    up.stage_shadow(store.publish("model", 2, b"m2"), b"m2")
    assert up.running() == 1 and (up.shadow / "payload").read_bytes() == b"m2"
    kept = up.settle_shadow({"brier": 0.15, "csi": 0.6}, {"brier": 0.14, "csi": 0.5})
    assert not kept.ok and kept.reason == "kept 1: shadow worse on csi" and up.running() == 1
    up.stage_shadow(store.publish("model", 3, b"m3"), b"m3")
    better = up.settle_shadow({"brier": 0.15, "csi": 0.6}, {"brier": 0.15, "csi": 0.61})
    assert better.ok and up.running() == 3 and up.state()["committed"] == 3
