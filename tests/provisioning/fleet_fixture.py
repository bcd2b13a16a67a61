"""A fleet for enrollment tests: its CA, a real Mosquitto trusting it (with its CRL), and the
controller's HTTP API served by uvicorn on a loopback port."""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import uvicorn

from fleet.api import create_app
from fleet.artifacts import ArtifactStore
from fleet.auth import Auth
from fleet.enroll import EnrollContext, Enrollment
from fleet.store import Store, open_store
from roadside import signing
from roadside.clock import ManualClock
from sim.broker import MosquittoBroker, free_port
from sim.pki import TestPKI


@dataclass
class Fleet:
    url: str
    broker: MosquittoBroker
    enrollment: Enrollment
    clock: ManualClock
    store: Store
    operator_token: str
    fleet_pub: Path
    server: uvicorn.Server
    thread: threading.Thread
    artifacts: ArtifactStore
    pki: TestPKI

    def token(self, station: str, ttl_s: float = 3600.0) -> str:
        r = httpx.post(
            f"{self.url}/enroll/tokens",
            json={"station": station, "ttl_s": ttl_s},
            headers={"Authorization": f"Bearer {self.operator_token}"},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def revoke(self, station: str) -> None:
        r = httpx.post(
            f"{self.url}/enroll/revoke/{station}",
            headers={"Authorization": f"Bearer {self.operator_token}"},
        )
        assert r.status_code == 200, r.text

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.broker.stop()
        self.store.close()


def start_fleet(tmp: Path) -> Fleet:
    pki = TestPKI(tmp / "ca")  # the fleet CA: Enrollment signs with the key the broker trusts
    clock = ManualClock(dt.datetime.now(dt.UTC))
    enrollment = Enrollment(pki.dir, clock)
    broker = MosquittoBroker(tmp / "broker", pki)
    broker.start()
    store = open_store(f"sqlite:///{tmp / 'fleet.db'}")
    auth = Auth(store)
    auth.add_user("op", None, ["operator"])
    key = signing.generate_key()
    fleet_pub = tmp / "fleet-signing.pub"
    signing.save_public_key(key.public_key(), fleet_pub)
    app = create_app(store, auth=auth)
    artifacts = ArtifactStore(tmp / "artifacts", key)
    app.state.artifacts = artifacts
    app.state.enrollment = EnrollContext(
        enrollment, "127.0.0.1", broker.port, fleet_pub.read_text(), admit=broker.register
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "fleet API did not start"
        time.sleep(0.02)
    return Fleet(
        f"http://127.0.0.1:{port}",
        broker,
        enrollment,
        clock,
        store,
        auth.issue_token("op", "tests"),
        fleet_pub,
        server,
        thread,
        artifacts,
        pki,
    )


def connects(broker: MosquittoBroker, ca: Path, cert: Path, key: Path, timeout: float = 10) -> bool:
    """Whether the broker accepts a TLS connection with this certificate (CONNACK success)."""
    result: list[bool] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{time.monotonic_ns()}")
    client.tls_set(ca_certs=str(ca), certfile=str(cert), keyfile=str(key))
    client.on_connect = lambda c, u, f, rc, p: result.append(not rc.is_failure)
    try:
        client.connect("127.0.0.1", broker.port)
    except OSError:  # TLS handshake refused
        return False
    deadline = time.monotonic() + timeout
    try:
        while not result and time.monotonic() < deadline:
            if client.loop(0.1) != mqtt.MQTT_ERR_SUCCESS:
                return False
    finally:
        client.disconnect()
    return bool(result and result[0])
