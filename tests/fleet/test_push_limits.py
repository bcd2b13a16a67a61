"""Issue 9 (4), (9): a document too large for the broker is refused before it is signed, a
publish the broker would refuse is never retried in a loop, and the signing key is 0600 from
its first byte — against the real controller and the real Mosquitto."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleet.documents import parse_scope
from fleet.errors import KeyFileError
from fleet.keys import PRIVATE_NAME, generate_keypair
from fleet.loadgen import StationClient, readings
from fleet.rollout import RolloutPolicy
from fleet.service import FleetService
from fleet.store import Store
from roadside import contract, signing
from roadside.clock import SystemClock
from sim.broker import MosquittoBroker
from sim.pki import CONTROLLER_IDENTITY

T0 = datetime(2026, 7, 21, 12, 0, tzinfo=UTC)


def _big_body(size: int) -> dict:
    return {"qc": {f"ch{i}": {"note": "x" * 1000} for i in range(size // 1000)}}


def test_a_document_over_the_packet_limit_is_refused_before_signing(
    api_client, controller: FleetService, broker: MosquittoBroker, store: Store
) -> None:
    api = api_client(controller.config)
    drops = controller.worker.stats.snapshot()
    resp = api.post("/config/documents", json={"scope": "fleet", "body": _big_body(1_100_000)})
    assert resp.status_code == 413 and resp.json()["code"] == "document_too_large", resp.text
    assert "over the 262144 byte limit" in resp.json()["detail"]
    assert store.documents() == []  # neither signed nor stored
    deep: dict = {"x": 1}
    for _ in range(40):
        deep = {"a": deep}
    resp = api.post("/config/documents", json={"scope": "fleet", "body": {"qc": deep}})
    assert resp.status_code == 400 and "deeper than" in resp.json()["detail"]
    assert controller.connected and drops is not None
    assert api.get("/config/documents").json() == []


def test_a_publish_the_broker_would_refuse_is_never_retried_and_ingest_goes_on(
    broker: MosquittoBroker, store: Store, fleet_key, wait_for
) -> None:
    """A 1.1 MB document already in the store (as an older controller let through), retried on
    every tick: it must never reach the broker, which would drop the controller on every
    reconnect (and paho would send it again each time)."""
    scope = parse_scope("station:st-001")
    body = _big_body(1_100_000)

    def unchecked(version: int) -> tuple[dict, str]:  # signed without today's checks
        doc = {"c": contract.CONTRACT_VERSION, "scope": scope.kind, "target": scope.target,
               "version": version, "issued": T0.isoformat(), "body": body}  # fmt: skip
        return signing.sign(doc, fleet_key), signing.document_hash(doc)

    store.add_document(scope.key, unchecked, T0.timestamp())
    policy = RolloutPolicy(retry_s=0.0, max_retries=10_000)
    ctl = FleetService(
        store, SystemClock(), broker.settings(CONTROLLER_IDENTITY), fleet_key, tick_s=0.05,
        policy=policy,
    )  # fmt: skip
    ctl.start()
    st = StationClient(broker.settings("st-001"), "st-001", ack_timeout_s=120).start()
    try:
        wait_for(lambda: store.station("st-001") is not None, what="station registered")
        assert ctl.config is not None
        wait_for(lambda: bool(ctl.config._refused), what="the retry tried once")
        for i in range(5):
            st.send(readings(1 + 10 * i, 10, T0))
        assert st.drain(60), "ingest stopped"
        assert ctl.connected
        assert ctl.config._refused == {("station:st-001", 1)}
    finally:
        st.stop()
        ctl.stop()
    connects = broker.log.count(f"as {CONTROLLER_IDENTITY} ")
    assert connects == 1, f"the controller connected {connects} times"
    assert store.seqs("st-001") == list(range(1, 51))


def test_the_signing_key_is_never_readable_by_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even with umask 0 and chmod failing, the private key is created 0600 (no window)."""
    old = os.umask(0)
    try:

        def no_chmod(*_a, **_k):
            raise OSError("chmod blocked")

        monkeypatch.setattr(os, "chmod", no_chmod)
        monkeypatch.setattr(Path, "chmod", no_chmod)
        try:
            pair = generate_keypair(tmp_path)
        except (OSError, KeyFileError):
            pair = None
        key = tmp_path / PRIVATE_NAME
        assert key.exists()
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert pair is not None
        again = generate_keypair(tmp_path, force=True)
        assert stat.S_IMODE(again.private.stat().st_mode) == 0o600
        assert again.key_id != pair.key_id
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "fleet-signing.key",
            "fleet-signing.pub",
        ]
    finally:
        os.umask(old)
