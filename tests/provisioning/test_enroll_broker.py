"""Production admission: ``roadside-fleet run`` with a broker admin certificate creates each
enrolled station's dynamic-security client on the real Mosquitto; a station it did not enroll
gets nothing through."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from fleet.api import create_app
from fleet.auth import Auth
from fleet.enroll import attach
from fleet.errors import BrokerError
from fleet.loadgen import StationClient, readings
from fleet.store import open_store
from provisioning.enroll import make_csr
from roadside import signing, wire
from sim.broker import ADMIN_IDENTITY, MosquittoBroker, free_port
from sim.pki import TestPKI

CONTROLLER = "fleet-controller-7"
T0 = datetime(2026, 7, 21, 12, 0, tzinfo=UTC)


def _fleet(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "fleet", *args], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _probe(broker: MosquittoBroker, files: Any, station: str) -> dict[str, Any]:
    """Connect as ``station`` with ``files``, publish one batch to its uplink and subscribe to
    its downlink: the broker's answers."""
    settings = wire.BrokerSettings("127.0.0.1", broker.port, files.ca, files.cert, files.key)
    client = wire.new_client(settings, station)
    got: dict[str, Any] = {}
    done = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: got.setdefault("connect", rc)
    client.on_publish = lambda c, u, mid, rc, p: got.setdefault("publish", rc)

    def on_subscribe(_c: Any, _u: Any, _m: Any, codes: Any, _p: Any) -> None:
        got["subscribe"] = codes[0]
        done.set()

    client.on_subscribe = on_subscribe
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        _wait(lambda: "connect" in got, 10, "no CONNACK")
        batch = wire.Batch(station, "live", tuple(readings(1001, 5, T0)))
        client.publish(wire.up_topic(station, "data"), wire.encode_batch(batch), qos=1)
        _wait(lambda: "publish" in got, 10, "no PUBACK")
        client.subscribe(wire.down_topic(station, "config"), qos=1)
        assert done.wait(10), "no SUBACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return got


def test_the_fleet_admits_what_it_enrolls_and_nothing_else(tmp_path: Path) -> None:
    pki = TestPKI(tmp_path / "ca")  # the fleet CA (the enrollment directory) the broker trusts
    ctl = pki.client(CONTROLLER)
    admin = pki.client(ADMIN_IDENTITY)
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    with MosquittoBroker(tmp_path / "broker", pki) as broker:
        (tmp_path / "keys").mkdir()
        keys = json.loads(_fleet("keygen", str(tmp_path / "keys"), "--json"))
        _fleet("user", "add", "op", "--role", "operator", "--no-password", "--db", db)
        bearer = {"Authorization": f"Bearer {_fleet('token', 'create', 'op', '--db', db).strip()}"}
        port = free_port()
        log = open(tmp_path / "fleet.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleet", "run", "--db", db, "--broker",
             f"127.0.0.1:{broker.port}", "--ca", str(ctl.ca), "--cert", str(ctl.cert), "--key",
             str(ctl.key), "--client-id", CONTROLLER, "--signing-key", keys["private"],
             "--http", f"127.0.0.1:{port}", "--enroll-dir", str(pki.dir),
             "--broker-admin-cert", str(admin.cert), "--broker-admin-key", str(admin.key),
             "--tick-s", "1"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        api = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "fleet.log").read_text()
            try:
                return httpx.get(f"{api}/health", timeout=2).status_code < 500
            except httpx.HTTPError:
                return False

        try:
            _wait(up, 30, "the fleet's API never answered")
            station = "st-enrolled"
            r = httpx.post(f"{api}/enroll/tokens", json={"station": station}, headers=bearer)
            assert r.status_code == 201, r.text
            key = ec.generate_private_key(ec.SECP256R1())
            r = httpx.post(
                f"{api}/enroll", json={"token": r.json()["token"], "csr": make_csr(key, station)}
            )
            assert r.status_code == 200, r.text
            etc = tmp_path / station
            etc.mkdir()
            (etc / "station.crt").write_text(r.json()["certificate"])
            (etc / "station.key").write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            (etc / "ca.crt").write_text(r.json()["ca"])
            settings = wire.BrokerSettings(
                "127.0.0.1", broker.port, etc / "ca.crt", etc / "station.crt", etc / "station.key"
            )
            # the enrolled station connects, publishes, and the controller commits and acks
            st = StationClient(settings, station, ack_timeout_s=10.0).start()
            try:
                st.send(readings(1, 20, T0))
                assert st.drain(30), f"not acked: {st.errors}"
            finally:
                st.stop()
            # a certificate from the same CA, never enrolled: connected, but refused everything
            stranger = pki._issue("st-stranger", server=False)  # signed, not admitted
            got = _probe(broker, stranger, "st-stranger")
            assert got["publish"].is_failure and got["publish"].getName() == "Not authorized"
            assert got["subscribe"].is_failure
            # and the enrolled one again, through the same probe: allowed
            again = _probe(
                broker, type(stranger)(etc / "ca.crt", etc / "station.crt", etc / "station.key"),
                station,
            )  # fmt: skip
            assert not again["publish"].is_failure and not again["subscribe"].is_failure
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            log.close()
        store = open_store(db)
        try:
            assert store.count(station) >= 20  # acked: committed (the probe's 5 may be too)
            assert store.count("st-stranger") == 0
        finally:
            store.close()


def test_enrollment_answers_503_and_keeps_the_token_when_the_broker_refuses(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'f.db'}")
    auth = Auth(store)
    auth.add_user("op", None, ["operator"])
    app = create_app(store, auth=auth)
    calls: list[str] = []

    def admit(station: str) -> None:
        calls.append(station)
        if len(calls) == 1:
            raise BrokerError("broker 127.0.0.1:8883: cannot connect as broker admin: refused")

    attach(app, tmp_path / "ca", ("127.0.0.1", 8883), signing.generate_key(), admit)
    client = TestClient(app, base_url="http://127.0.0.1")
    bearer = {"Authorization": f"Bearer {auth.issue_token('op', 't')}"}
    token = client.post("/enroll/tokens", json={"station": "st-1"}, headers=bearer).json()["token"]
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), "st-1")
    first = client.post("/enroll", json={"token": token, "csr": csr})
    assert first.status_code == 503 and first.json()["code"] == "broker_admission_failed"
    assert "cannot connect as broker admin" in first.json()["detail"]
    second = client.post("/enroll", json={"token": token, "csr": csr})
    assert second.status_code == 200 and calls == ["st-1", "st-1"]
    store.close()


def test_the_admin_certificate_and_key_go_together() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "fleet", "run", "--ca", "x", "--cert", "x", "--key", "x",
         "--broker-admin-cert", "x"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 2 and "--broker-admin-cert and --broker-admin-key" in out.stderr
