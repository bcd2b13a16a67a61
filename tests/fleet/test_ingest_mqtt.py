"""Ingest over the real broker: idempotency, acks after commit, registry from status and batches."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from fleet.loadgen import StationClient, readings
from fleet.service import FleetService
from fleet.store import Store
from roadside import wire
from roadside.clock import SystemClock
from sim.broker import MosquittoBroker
from sim.pki import CONTROLLER_IDENTITY

T0 = datetime(2026, 7, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def station(broker: MosquittoBroker) -> Iterator[StationClient]:
    st = StationClient(
        broker.settings("st-001"), "st-001", grid_cell="cell-7", ack_timeout_s=1.0
    ).start()
    try:
        yield st
    finally:
        st.stop()


def test_batches_are_committed_then_acked_and_a_resend_is_stored_once(
    controller: FleetService, station: StationClient, store: Store
) -> None:
    for first in (1, 51, 101):
        station.send(readings(first, 50, T0))
    assert station.drain(15), "batches not acked"
    assert station.acked == set(range(1, 151))
    # the same batch again (a station that never saw the ack resends it)
    again = station.send(readings(51, 50, T0))
    assert station.drain(15)
    assert store.seqs("st-001") == list(range(1, 151))
    stats = controller.worker.stats.snapshot()
    assert stats["inserted"] == 150 and stats["duplicates"] == len(again.records)
    rows = store.records(station="st-001", channel="rain_total", limit=2)
    assert [r.seq for r in rows] == [1, 2] and rows[0].value == pytest.approx(0.1)


def test_registry_from_status_and_batches(
    controller: FleetService, station: StationClient, store: Store, wait_for
) -> None:
    station.send(readings(1, 10, T0))
    assert station.drain(15)
    wait_for(lambda: (s := store.station("st-001")) is not None and s.online is True, what="status")
    info = store.station("st-001")
    assert info is not None
    assert info.software == "sim-1.0" and info.grid_cell == "cell-7"
    assert info.last_seq == 10 and info.records == 10
    assert info.clock_offset_s is not None and abs(info.clock_offset_s) < 5


def test_a_batch_for_another_station_is_refused_with_an_error_ack(
    controller: FleetService, station: StationClient, store: Store, wait_for
) -> None:
    forged = wire.Batch("st-002", "live", tuple(readings(1, 5, T0)))
    station.client.publish(wire.up_topic("st-001", "data"), wire.encode_batch(forged), qos=1)
    wait_for(lambda: bool(station.errors), what="error ack")
    assert "st-002" in station.errors[0]
    assert store.count() == 0
    garbage_sent = controller.worker.stats.snapshot()["rejected"]
    station.client.publish(wire.up_topic("st-001", "data"), b"\x00not a batch", qos=1)
    wait_for(lambda: controller.worker.stats.snapshot()["rejected"] > garbage_sent, what="reject")
    station.send(readings(1, 5, T0))  # and the station still gets through afterwards
    assert station.drain(15)
    assert store.seqs("st-001") == [1, 2, 3, 4, 5]


def test_controller_restart_mid_stream_loses_nothing(
    store: Store, broker: MosquittoBroker, fleet_key, station: StationClient
) -> None:
    settings = broker.settings(CONTROLLER_IDENTITY)
    first = FleetService(store, SystemClock(), settings, fleet_key, client_id="ctl-a")
    first.start()
    sent = 0
    for i in range(20):
        station.send(readings(1 + 20 * i, 20, T0))
        sent += 20
        if i == 8:
            first.stop()  # mid-stream: batches keep coming while no controller runs
    time.sleep(0.2)
    second = FleetService(store, SystemClock(), settings, fleet_key, client_id="ctl-a")
    second.start()
    try:
        assert station.drain(30), f"{station.unacked()} batches never acked"
    finally:
        second.stop()
    assert store.seqs("st-001") == list(range(1, sent + 1))


def test_a_batch_the_database_cannot_take_is_refused_and_does_not_stall_ingest(
    controller: FleetService, station: StationClient, store: Store, wait_for
) -> None:
    # CBOR carries byte strings, which the store's JSON payload column cannot hold
    poison = wire.WireRecord(seq=1, kind="event", time=T0, payload={"blob": b"\x00\x01"})
    bad = wire.encode_batch(wire.Batch("st-001", "event", (poison,)), "cbor")
    station.client.publish(wire.up_topic("st-001", "events"), bad, qos=1)
    station.send(readings(2, 5, T0))
    assert station.drain(15)
    wait_for(lambda: any("cannot store" in e for e in station.errors), what="error ack")
    assert store.seqs("st-001") == [2, 3, 4, 5, 6]
    assert controller.worker.stats.snapshot()["rejected"] == 1


def test_broker_restart_mid_stream_loses_nothing(
    controller: FleetService,
    station: StationClient,
    store: Store,
    broker: MosquittoBroker,
    wait_for,
) -> None:
    for i in range(10):
        station.send(readings(1 + 10 * i, 10, T0))
    broker.restart()
    for i in range(10, 20):
        station.send(readings(1 + 10 * i, 10, T0))
    wait_for(lambda: controller.connected, what="controller reconnected")
    assert station.drain(30), f"{station.unacked()} batches never acked"
    assert store.seqs("st-001") == list(range(1, 201))


def test_broker_acks_are_released_after_commit_so_ingest_never_stalls(
    controller: FleetService, station: StationClient, store: Store
) -> None:
    # the broker sends at most 32 unacknowledged messages to a client (max_inflight_messages):
    # a controller that forgot its PUBACKs would stall here and only resends would trickle in
    station.ack_timeout_s = 30.0
    for i in range(100):
        station.send(readings(1 + 3 * i, 3, T0))
    assert station.drain(20), f"{station.unacked()} batches never acked"
    assert store.count("st-001") == 300
