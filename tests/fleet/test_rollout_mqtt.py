"""Signed configuration over the real broker: push, retained delivery, staged rollout, API state."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from fleet.loadgen import StationClient, refuse_when
from fleet.rollout import RolloutPolicy
from fleet.service import FleetService
from fleet.store import Store
from roadside.clock import SystemClock
from sim.broker import MosquittoBroker
from sim.pki import CONTROLLER_IDENTITY

BODY = {"warnings": {"rainstorm": {"preset": "national"}}}
# valid for the contract, refused by these stations for a reason of their own (a local rule)
UNSAFE = {"warnings": {"hold_s": 7200.0}}
NEVER_WARNS = refuse_when(("warnings", "hold_s"), lambda v: v > 3600, "unsafe: local hold limit")


@pytest.fixture
def controller(store: Store, broker: MosquittoBroker, fleet_key) -> Iterator[FleetService]:
    service = FleetService(
        store,
        SystemClock(),
        broker.settings(CONTROLLER_IDENTITY),
        fleet_key,
        tick_s=0.1,
        policy=RolloutPolicy(canary_timeout_s=30, retry_s=0.5, max_retries=3),
    )
    service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def fleet(
    broker: MosquittoBroker, fleet_key, store: Store, wait_for
) -> Iterator[list[StationClient]]:
    """Three stations in cell-7, registered with the controller before the test starts."""
    stations = [
        StationClient(
            broker.settings(f"st-00{i}"),
            f"st-00{i}",
            public_key=fleet_key.public_key(),
            grid_cell="cell-7",
            refuse=NEVER_WARNS,
        ).start()
        for i in (1, 2, 3)
    ]
    wait_for(lambda: len(store.stations()) == 3, what="three stations in the registry")
    try:
        yield stations
    finally:
        for s in stations:
            s.stop()


def _state(api: TestClient, station: str, scope: str) -> dict:
    body = api.get(f"/stations/{station}/config").json()
    return next(s for s in body["scopes"] if s["scope"] == scope)


def test_push_reaches_every_station_and_the_api_shows_desired_vs_reported(
    api_client, controller: FleetService, fleet: list[StationClient], store: Store, wait_for
) -> None:
    assert controller.config is not None
    api = api_client(controller.config, controller.health)
    resp = api.post("/config/documents", json={"scope": "fleet", "body": BODY})
    assert resp.status_code == 201, resp.text
    doc = resp.json()
    assert doc["version"] == 1 and doc["signed"]["doc"]["body"] == BODY
    wait_for(
        lambda: all(_state(api, s.station, "fleet")["state"] == "in_sync" for s in fleet),
        what="all stations in sync",
    )
    assert all(s.running["fleet"] == (1, doc["hash"]) for s in fleet)
    status = api.get("/config/status").json()
    assert [s["in_sync"] for s in status] == [True, True, True]
    # a station-scope document the station refuses: desired stays, reported shows the nack
    resp = api.post("/config/documents", json={"scope": "station:st-002", "body": UNSAFE})
    assert resp.status_code == 201
    wait_for(lambda: _state(api, "st-002", "station:st-002")["state"] == "nacked", what="nack")
    st = _state(api, "st-002", "station:st-002")
    assert st["desired_version"] == 1 and st["result"] == "nack"
    assert st["reason"].startswith("unsafe")
    assert api.get("/stations/st-002/config").json()["in_sync"] is False


def test_an_offline_station_gets_the_newest_document_when_it_reconnects(
    controller: FleetService, broker: MosquittoBroker, fleet_key, store: Store, wait_for
) -> None:
    assert controller.config is not None
    controller.config.push("grid:cell-9", {"qc": {"channels": {"wind_speed": {"high": 60.0}}}})
    newest = controller.config.push("grid:cell-9", BODY)
    late = StationClient(
        broker.settings("st-009"), "st-009", public_key=fleet_key.public_key(), grid_cell="cell-9"
    ).start()
    try:
        wait_for(lambda: bool(late.answers), what="retained document")
        time.sleep(0.3)
        assert [(a.scope, a.version, a.ok) for a in late.answers] == [("grid:cell-9", 2, True)]
        wait_for(
            lambda: any(r.version == newest.version for r in store.reports("st-009")),
            what="ack stored",
        )
    finally:
        late.stop()


def test_staged_rollout_reaches_canaries_first_then_everyone(
    controller: FleetService, fleet: list[StationClient], store: Store, wait_for
) -> None:
    assert controller.config is not None
    store.set_group("canary", ["st-001"])
    rollout = controller.config.start_rollout("fleet", BODY, "canary")
    assert rollout.canaries == ("st-001",)
    wait_for(lambda: store.rollout(rollout.id).state == "done", what="rollout done")  # type: ignore[union-attr]
    first_canary = fleet[0].answers[0].received
    assert all(a.received > first_canary for s in fleet[1:] for a in s.answers)
    assert all(s.running["fleet"][0] == rollout.version for s in fleet)


def test_staged_rollout_halts_on_a_canary_nack_and_nobody_else_gets_it(
    api_client, controller: FleetService, fleet: list[StationClient], store: Store, wait_for
) -> None:
    assert controller.config is not None
    api = api_client(controller.config)
    assert api.put("/groups/canary", json={"stations": ["st-001", "st-002"]}).status_code == 200
    resp = api.post("/rollouts", json={"scope": "fleet", "body": UNSAFE, "group": "canary"})
    assert resp.status_code == 201, resp.text
    rid = resp.json()["id"]
    wait_for(lambda: api.get(f"/rollouts/{rid}").json()["state"] == "halted", what="halt")
    halted = api.get(f"/rollouts/{rid}").json()
    assert halted["released"] is False
    assert "refused version 1: unsafe" in halted["reason"]
    time.sleep(1.0)  # retries and ticks run meanwhile: still nothing for the third station
    assert fleet[2].answers == []
    assert "fleet" not in fleet[2].running
    scopes = api.get("/stations/st-003/config").json()["scopes"]
    assert all(s["scope"] != "fleet" for s in scopes)  # never desired for a non-canary


def test_rollout_needs_canaries_in_scope(
    api_client, controller: FleetService, store: Store
) -> None:
    assert controller.config is not None
    api = api_client(controller.config)
    resp = api.post("/rollouts", json={"scope": "fleet", "body": BODY, "group": "nobody"})
    assert resp.status_code == 400
    assert "no known station" in resp.json()["detail"]
    resp = api.post("/config/documents", json={"scope": "fleet", "body": {"uplink": {}}})
    assert resp.status_code == 400 and "cannot be set remotely" in resp.json()["detail"]


class DeafOnce(StationClient):
    """A station that loses the first document it is sent (a message lost on the way)."""

    deaf = True

    def _on_config(self, payload: bytes) -> None:
        if self.deaf:
            self.deaf = False
            return
        super()._on_config(payload)


def test_an_unanswered_document_is_sent_again(
    controller: FleetService, broker: MosquittoBroker, fleet_key, store: Store, wait_for
) -> None:
    assert controller.config is not None
    station = DeafOnce(broker.settings("st-005"), "st-005", public_key=fleet_key.public_key())
    station.start()
    try:
        wait_for(lambda: store.station("st-005") is not None, what="registered")
        doc = controller.config.push("station:st-005", BODY)
        wait_for(lambda: bool(station.answers), timeout=10, what="the retry")
        assert station.answers[0].version == doc.version and station.answers[0].ok
        wait_for(
            lambda: (
                controller.config is not None
                and controller.config.status(store.station("st-005"))[0].state == "in_sync"
            ),  # type: ignore[arg-type]
            what="in sync",
        )
    finally:
        station.stop()
