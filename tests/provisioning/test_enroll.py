"""Enrollment end to end: real HTTP API, Mosquitto with the fleet CA and its CRL, real agent."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from provisioning.commission import Site, render_config, write_config
from roadside.testing.sink import CommittingSink
from sim.pki import CONTROLLER_IDENTITY
from tests.provisioning.conftest import SimRun
from tests.provisioning.fleet_fixture import Fleet, connects

STATION = "bs-enroll-01"


def _station(tmp: Path, port: str, station: str = STATION) -> Path:
    etc = tmp / station / "etc"
    sensors = [
        {"name": "level", "profile": "hlk-ld8001h", "port": port, "slave": 1, "interval_s": 1.0}
    ]
    text = render_config(
        Site(station, 31.39, 121.44, "310113-G042"),
        sensors,
        version="1",
        buffer_path=str(tmp / station / "buffer.db"),
    )
    write_config(etc / "station.toml", text + "\n[metrics]\nport = 0\n")
    return etc / "station.toml"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provisioning", *args], capture_output=True, text=True, timeout=60
    )


def _enroll(config: Path, fleet: Fleet, token: str) -> subprocess.CompletedProcess[str]:
    return _cli("enroll", "--config", str(config), "--fleet", fleet.url, "--token", token)


def test_enroll_then_the_agent_connects_and_syncs(
    sim_run: SimRun, fleet: Fleet, tmp_path: Path
) -> None:
    config = _station(tmp_path, sim_run.port("level"))
    out = _enroll(config, fleet, fleet.token(STATION))
    assert out.returncode == 0, out.stderr
    etc = config.parent
    assert stat.S_IMODE(os.stat(etc / "station.key").st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((etc / "station.crt").read_bytes())
    key = serialization.load_pem_private_key((etc / "station.key").read_bytes(), None)
    assert cert.public_key() == key.public_key()  # signed for the key made on the station
    assert (etc / "fleet.pub").read_text() == fleet.fleet_pub.read_text()  # pinned
    sink = CommittingSink(fleet.broker.settings(CONTROLLER_IDENTITY), tmp_path / "sink.db")
    sink.start()
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent", "run", "--config", str(config), "--no-metrics"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert sink.wait_for(lambda: sink.count(STATION) >= 3, 60), (
            agent.stderr and agent.poll() is not None and agent.stderr.read()
        )
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
        sink.stop()


def test_a_token_works_once_and_not_after_it_expires(fleet: Fleet, tmp_path: Path) -> None:
    config = _station(tmp_path, "/dev/ttyUSB0")
    token = fleet.token(STATION)
    assert _enroll(config, fleet, token).returncode == 0
    again = _enroll(config, fleet, token)
    assert again.returncode == 1
    assert "already used at" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    late = fleet.token(STATION, ttl_s=600)
    fleet.clock.advance(601)
    out = _enroll(config, fleet, late)
    assert out.returncode == 1 and f"enrollment token for {STATION} expired at" in out.stderr
    other = _station(tmp_path, "/dev/ttyUSB0", "bs-enroll-02")
    out = _enroll(other, fleet, fleet.token(STATION))  # a token for another station
    assert out.returncode == 1 and "CN 'bs-enroll-02' but the token is for" in out.stderr


def test_a_revoked_station_is_refused_by_the_broker(fleet: Fleet, tmp_path: Path) -> None:
    a = _station(tmp_path, "/dev/ttyUSB0", "bs-rev-a")
    b = _station(tmp_path, "/dev/ttyUSB0", "bs-rev-b")
    for config in (a, b):
        assert _enroll(config, fleet, fleet.token(config.parent.parent.name)).returncode == 0

    def can(config: Path) -> bool:
        etc = config.parent
        return connects(fleet.broker, etc / "ca.crt", etc / "station.crt", etc / "station.key")

    assert can(a) and can(b)
    fleet.revoke("bs-rev-a")
    assert fleet.broker.proc is not None
    os.kill(fleet.broker.proc.pid, signal.SIGHUP)  # the broker re-reads its TLS files and CRL
    deadline = time.monotonic() + 20
    while can(a):
        assert time.monotonic() < deadline, "broker still accepts the revoked certificate"
    assert not can(a)
    assert can(b)


def test_offline_bundle_then_apply_then_enrollment_on_first_contact(
    fleet: Fleet, tmp_path: Path
) -> None:
    office = _station(tmp_path / "office", "/dev/ttyUSB0")
    bundle = tmp_path / "st.bundle"
    out = _cli(
        "bundle",
        "--config",
        str(office),
        "--fleet",
        fleet.url,
        "--token",
        fleet.token(STATION),
        "--out",
        str(bundle),
    )
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(os.stat(bundle).st_mode) == 0o600
    field = tmp_path / "field" / "etc" / "station.toml"
    out = _cli("apply", str(bundle), "--config", str(field))
    assert out.returncode == 0, out.stderr
    assert not (field.parent / "station.crt").exists()
    out = _cli("enroll", "--config", str(field), "--pending")
    assert out.returncode == 0, out.stderr
    etc = field.parent
    assert connects(fleet.broker, etc / "ca.crt", etc / "station.crt", etc / "station.key")
    assert "no pending enrollment" in _cli("enroll", "--config", str(field), "--pending").stdout


def test_attach_serves_enrollment_with_the_signing_keys_public_half(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from fastapi.testclient import TestClient

    from fleet.api import create_app
    from fleet.auth import Auth
    from fleet.enroll import attach
    from fleet.store import open_store
    from provisioning.enroll import make_csr
    from roadside import signing

    store = open_store(f"sqlite:///{tmp_path / 'f.db'}")
    auth = Auth(store)
    auth.add_user("op", None, ["operator"])
    app = create_app(store, auth=auth)
    signer = signing.generate_key()
    attach(app, tmp_path / "ca", ("broker.example", 8883), signer)
    client = TestClient(app, base_url="http://127.0.0.1")
    assert client.post("/enroll/tokens", json={"station": "st-1"}).status_code == 401
    bearer = {"Authorization": f"Bearer {auth.issue_token('op', 't')}"}
    token = client.post("/enroll/tokens", json={"station": "st-1"}, headers=bearer).json()["token"]
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), "st-1")
    answer = client.post("/enroll", json={"token": token, "csr": csr}).json()
    assert answer["broker"] == {"host": "broker.example", "port": 8883}
    pinned = serialization.load_pem_public_key(answer["fleet_key"].encode())
    assert signing.key_id(pinned) == signing.key_id(signer.public_key())  # type: ignore[arg-type]
    replay = client.post("/enroll", json={"token": token, "csr": csr})
    assert replay.status_code == 409 and replay.json()["code"] == "enroll_token_used"
    store.close()
