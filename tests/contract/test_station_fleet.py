"""The station and the fleet against each other for real (see conftest.py for the set-up)."""

from __future__ import annotations

import time

import pytest
from contract_env import CELLS, Station, wait_for
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.documents import parse_scope
from fleet.errors import DocumentError
from fleet.service import FleetService
from roadside import contract, signing, wire
from roadside.clock import SystemClock
from sim.broker import MosquittoBroker
from sim.pki import CONTROLLER_IDENTITY


def _hold_s(station: Station) -> float:
    return station.agent.config.sampling.hold_s


def test_readings_are_committed_then_acked_and_the_status_names_the_grid_cell(
    fleet: FleetService, stations: dict[str, Station]
) -> None:
    store = fleet.store
    for st, station in stations.items():
        buffer = station.agent.buffer
        assert buffer is not None

        def synced() -> list[int]:
            return [r.seq for r in buffer.where("kind = 'reading' AND synced = 1")]  # noqa: B023

        wait_for(lambda: len(synced()) >= 3, what=f"{st}: readings acked")
        # a reading leaves the station's backlog only after the fleet committed it
        assert set(synced()) <= set(store.seqs(st))
        info = store.station(st)
        assert info is not None and info.grid_cell == CELLS[st]  # from the real status message
        assert info.config_version == "contract-1" and info.online
        wait_for(
            lambda: (store.station(st).devices or {}).get("rain") == "ok",  # type: ignore[union-attr]  # noqa: B023
            what=f"{st}: device health in the registry",
        )
    # and the registry's cells are the ones the stations were configured with
    assert {s.station: s.grid_cell for s in store.stations()} == CELLS


def test_a_grid_document_reaches_exactly_the_stations_of_that_cell(
    fleet: FleetService, stations: dict[str, Station]
) -> None:
    assert fleet.config is not None
    before = _hold_s(stations["bs-c"])
    doc = fleet.config.push("grid:G1", {"sampling": {"hold_s": 321}})
    wait_for(
        lambda: _hold_s(stations["bs-a"]) == 321 and _hold_s(stations["bs-b"]) == 321,
        what="G1 stations applied the grid document",
    )
    wait_for(
        lambda: (
            {r.station for r in fleet.store.reports() if r.scope == "grid:G1" and r.result == "ack"}
            == {"bs-a", "bs-b"}
        ),
        what="acks of both G1 stations stored",
    )
    assert fleet.config.targets(parse_scope("grid:G1")) == ["bs-a", "bs-b"]
    assert all(r.version == doc.version for r in fleet.store.reports() if r.scope == "grid:G1")
    # the other cell's station never saw it
    assert _hold_s(stations["bs-c"]) == before
    assert stations["bs-c"].agent.remote is not None
    assert "grid:G1" not in stations["bs-c"].agent.remote.versions()
    assert not [r for r in fleet.store.reports("bs-c") if r.scope == "grid:G1"]


def test_a_body_a_station_would_refuse_is_refused_by_the_fleet_first_with_the_same_code(
    fleet: FleetService,
    stations: dict[str, Station],
    contract_broker: MosquittoBroker,
    fleet_key: Ed25519PrivateKey,
) -> None:
    assert fleet.config is not None
    unsafe = {"qc": {"channels": {"wind_speed": {"high": 20.0}}}}  # would flag a gale as wrong
    with pytest.raises(DocumentError) as refused:
        fleet.config.push("station:bs-c", unsafe)
    assert refused.value.code == "unsafe" and "plausible" in str(refused.value)
    assert fleet.store.documents("station:bs-c") == []  # nothing signed, nothing sent
    unknown = {"warnings": {"rainstorm": {"blue_1h_mm": 20}}}  # a key no station parses
    with pytest.raises(DocumentError) as schema:
        fleet.config.push("station:bs-c", unknown)
    assert schema.value.code == "schema"
    # the same body, signed by the fleet's key anyway and delivered, is nacked with that code
    doc = {
        "c": contract.CONTRACT_VERSION,
        "scope": "station",
        "target": "bs-c",
        "version": 1,
        "issued": SystemClock().now().isoformat(),
        "body": unsafe,
    }
    publisher = wire.new_client(contract_broker.settings(CONTROLLER_IDENTITY), "contract-forger")
    publisher.connect("127.0.0.1", contract_broker.port)
    publisher.loop_start()
    try:
        info = publisher.publish(
            wire.down_topic("bs-c", "config"),
            signing.encode_envelope(signing.sign(doc, fleet_key)),
            qos=1,
        )
        info.wait_for_publish(10)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
    remote = stations["bs-c"].agent.remote
    assert remote is not None
    wait_for(
        lambda: any(a.scope == "station:bs-c" for a in remote.acks),
        what="the station's answer",
    )
    ack = next(a for a in remote.acks if a.scope == "station:bs-c")
    assert not ack.ok and ack.version == 1
    assert ack.reason.split(":")[0] == refused.value.code
    assert ack.reason == str(refused.value)  # word for word what the fleet said
    assert stations["bs-c"].agent.config.qc == {}  # the station kept what it ran


def test_a_staged_rollout_reaches_the_canary_first_then_everyone(
    fleet: FleetService, stations: dict[str, Station]
) -> None:
    assert fleet.config is not None
    fleet.store.set_group("canary", ["bs-b"])
    body = {"warnings": {"rainstorm": {"preset": "national"}}}
    rollout = fleet.config.start_rollout("fleet", body, "canary")
    assert rollout.canaries == ("bs-b",)
    wait_for(
        lambda: (r := fleet.store.rollout(rollout.id)) is not None and r.state == "done",
        timeout=60,
        what="rollout done",
    )
    log = [r for r in fleet.store.report_log() if r.scope == "fleet" and r.result == "ack"]
    first = {}
    for r in sorted(log, key=lambda r: r.time):
        first.setdefault(r.station, r.time)
    assert set(first) == set(CELLS)
    assert first["bs-b"] < min(first["bs-a"], first["bs-c"])  # the canary acked before others
    for station in stations.values():
        assert station.agent.config.warnings["rainstorm"] == {"preset": "national"}
        assert station.agent.remote is not None
        assert station.agent.remote.versions()["fleet"]["version"] == rollout.version


def test_a_status_naming_a_cell_the_registry_did_not_assign_is_refused(
    fleet: FleetService, stations: dict[str, Station], contract_broker: MosquittoBroker
) -> None:
    """Once the grid register holds cells (imported as an operator would), the controller takes
    only those from a station's status: within a tick, without a restart."""
    from fleet.loadgen import StationClient
    from fleet.response.db import ResponseDB
    from fleet.response.grid import Grid

    square = "POLYGON((121.40 31.30, 121.41 31.30, 121.41 31.31, 121.40 31.31, 121.40 31.30))"
    csv = "code,name,kind,vulnerability,wkt\n" + "".join(
        f'{cell},cell {cell},transport,0.5,"{square}"\n' for cell in sorted(set(CELLS.values()))
    )
    Grid(ResponseDB(fleet.store)).import_cells(csv, "cells.csv", "admin", time.time())
    wait_for(lambda: fleet.worker.assigned_cells == frozenset(CELLS.values()), what="cells read")
    rejected = fleet.worker.stats.rejected
    intruder = StationClient(contract_broker.settings("bs-x"), "bs-x", grid_cell="G7").start()
    try:
        wait_for(lambda: fleet.worker.stats.rejected > rejected, what="status refused")
        assert fleet.store.station("bs-x") is None or fleet.store.station("bs-x").grid_cell != "G7"  # type: ignore[union-attr]
    finally:
        intruder.stop()
    honest = StationClient(contract_broker.settings("bs-y"), "bs-y", grid_cell="G2").start()
    try:
        wait_for(
            lambda: (info := fleet.store.station("bs-y")) is not None and info.grid_cell == "G2",
            what="a registered cell taken",
        )
    finally:
        honest.stop()
