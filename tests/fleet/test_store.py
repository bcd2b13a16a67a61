"""The storage interface, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from fleet.errors import StoreError
from fleet.store import (
    ConfigReport,
    IngestBatch,
    Rollout,
    StationUpdate,
    Store,
    open_store,
)
from roadside.contract import Record

T0 = 1_784_635_200.0  # 2026-07-21T12:00:00Z


def at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _batch(station: str, first: int, n: int, *, received: float = T0, channel: str = "rain_total"):
    records = tuple(
        Record(
            seq=first + i,
            kind="reading",
            time=at(T0 + 60 * (first + i)),
            sensor="rain",
            channel=channel,
            value=0.2 * (first + i),
            unit="mm",
            status="ok",
            flag=0,
            reason="",
        )
        for i in range(n)
    )
    return IngestBatch(station, "live", first, first + n - 1, records, received, received + 2.5, 7)


def test_resent_batch_is_stored_once(store: Store) -> None:
    first = store.ingest([_batch("st-a", 1, 10)])
    again = store.ingest([_batch("st-a", 1, 10)])
    overlap = store.ingest([_batch("st-a", 6, 10)])
    assert (first[0].inserted, first[0].duplicates) == (10, 0)
    assert (again[0].inserted, again[0].duplicates) == (0, 10)
    assert (overlap[0].inserted, overlap[0].duplicates) == (5, 5)
    assert store.seqs("st-a") == list(range(1, 16))
    assert store.station("st-a").records == 15  # type: ignore[union-attr]


def test_same_seq_on_two_stations_are_two_records(store: Store) -> None:
    store.ingest([_batch("st-a", 1, 3), _batch("st-b", 1, 3)])
    assert store.count() == 6
    assert store.count("st-b") == 3


def test_failed_transaction_stores_nothing(store: Store) -> None:
    bad = IngestBatch("st-a", "live", 1, 1, (Record(seq=1, kind="reading", time=at(T0)),), T0)
    broken = IngestBatch(
        "st-a",
        "live",
        2,
        2,
        (Record(seq=2, kind=None, time=at(T0)),),  # type: ignore[arg-type]
        T0,
    )
    with pytest.raises(Exception):  # noqa: B017 - the back ends raise their own IntegrityError
        store.ingest([bad, broken])
    assert store.count() == 0
    assert store.station("st-a") is None


def test_readings_query_by_channel_and_time_range(store: Store) -> None:
    store.ingest([_batch("st-a", 1, 10), _batch("st-a", 11, 5, channel="wind_speed")])
    rows = store.records(station="st-a", channel="rain_total", start=T0 + 180, end=T0 + 360)
    assert [r.seq for r in rows] == [3, 4, 5]
    assert rows[0].value == pytest.approx(0.6)
    assert rows[0].unit == "mm" and rows[0].flag == 0
    assert [r.seq for r in store.records(channel="wind_speed")] == [11, 12, 13, 14, 15]
    assert store.records(kinds=("event",)) == []
    assert len(store.records(station="st-a", limit=4)) == 4


def test_event_payload_round_trips(store: Store) -> None:
    payload = {"signal": "rainstorm", "level": "yellow", "evidence": {"rain_1h": 31.5}}
    event = Record(seq=1, kind="event", time=at(T0), payload=payload)
    store.ingest([IngestBatch("st-a", "event", 1, 1, (event,), T0)])
    (row,) = store.records(kinds=("event",))
    assert row.payload == payload and row.value is None


def test_registry_from_batches_and_status(store: Store) -> None:
    store.ingest([_batch("st-a", 1, 3, received=T0)])
    store.update_station(
        StationUpdate(
            "st-a",
            seen=T0 + 30,
            online=True,
            software="1.2.0",
            config_version="fleet:3",
            model_version="nowcast-7",
            grid_cell="cell-12",
            health={"state": "ok"},
            devices={"rain": {"state": "degraded"}},
        )
    )
    store.update_station(StationUpdate("st-a", seen=T0 + 10, backlog=42))  # late, out of order
    info = store.station("st-a")
    assert info is not None
    assert info.last_seen == T0 + 30  # never goes back
    assert info.first_seen == T0
    assert info.online is True and info.software == "1.2.0" and info.grid_cell == "cell-12"
    assert info.devices == {"rain": {"state": "degraded"}}
    assert info.backlog == 42 and info.last_seq == 3
    assert info.clock_offset_s == pytest.approx(2.5)
    store.ingest([_batch("st-a", 4, 2, received=T0 + 40)])
    info = store.station("st-a")
    assert info is not None and info.last_seq == 5 and info.backlog == 7
    assert info.software == "1.2.0"  # a batch does not erase status fields


def test_groups(store: Store) -> None:
    store.update_station(StationUpdate("st-a", seen=T0))
    store.set_group("canary", ["st-a", "st-b", "st-a"])
    store.set_group("canary", ["st-a", "st-c"])
    assert store.groups() == {"canary": ["st-a", "st-c"]}
    assert store.station("st-a").groups == ("canary",)  # type: ignore[union-attr]


def test_document_versions_per_scope(store: Store) -> None:
    def maker(body: dict):
        return lambda v: ({"doc": {"body": body, "version": v}, "sig": "s"}, f"h{v}")

    d1 = store.add_document("fleet", maker({"x": 1}), T0)
    d2 = store.add_document("fleet", maker({"x": 2}), T0 + 1)
    g1 = store.add_document("grid:c1", maker({"y": 1}), T0 + 2)
    assert (d1.version, d2.version, g1.version) == (1, 2, 1)
    assert store.document("fleet").body == {"x": 2}  # type: ignore[union-attr]
    assert store.document("fleet", 1).hash == "h1"  # type: ignore[union-attr]
    assert store.document("fleet", 1).created == T0  # type: ignore[union-attr]
    assert [d.version for d in store.documents("fleet")] == [2, 1]
    assert store.document("station:nope") is None


def test_concurrent_document_versions_never_collide(store: Store) -> None:
    got: list[int] = []

    def add() -> None:
        for _ in range(5):
            doc = store.add_document("fleet", lambda v: ({"version": v}, f"h{v}"), T0)
            got.append(doc.version)

    threads = [threading.Thread(target=add) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 16))


def test_newest_report_wins_and_log_keeps_all(store: Store) -> None:
    store.add_report(ConfigReport("st-a", "fleet", 2, "h2", "ack", "", T0))
    store.add_report(ConfigReport("st-a", "fleet", 1, "h1", "nack", "older", T0 + 1))  # late
    store.add_report(ConfigReport("st-a", "grid:c1", 1, "g1", "nack", "unsafe", T0 + 2))
    latest = {(r.scope, r.version, r.result) for r in store.reports("st-a")}
    assert latest == {("fleet", 2, "ack"), ("grid:c1", 1, "nack")}
    assert [r.version for r in store.report_log("st-a")] == [2, 1, 1]


def test_rollouts_saved_and_updated(store: Store) -> None:
    r = Rollout("r1", "fleet", 3, "canary", ("st-a",), "canary", "", T0, T0, {"n": 1})
    store.save_rollout(r)
    store.save_rollout(Rollout("r1", "fleet", 3, "canary", ("st-a",), "halted", "nack", T0, T0 + 5))
    got = store.rollout("r1")
    assert got is not None and got.state == "halted" and got.reason == "nack"
    assert got.canaries == ("st-a",)
    assert [x.id for x in store.rollouts("halted")] == ["r1"]
    assert store.rollouts("done") == []


def test_bad_urls_are_one_line_errors(tmp_path) -> None:
    with pytest.raises(StoreError, match="expected sqlite"):
        open_store("mysql://x")
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path}/no/such/dir/f.db")
    with pytest.raises(StoreError, match="cannot connect"):
        open_store("postgresql://postgres@127.0.0.1:1/test")


def test_a_staged_document_and_its_rollout_are_stored_together(store: Store) -> None:
    def make(v: int):
        return {"doc": {"version": v}, "sig": "s"}, f"h{v}"

    def rollout(doc):
        return Rollout("r1", doc.scope, doc.version, "canary", ("st-a",), "canary", "", T0, T0)

    doc = store.add_document("fleet", make, T0, staged=rollout)
    assert store.rollout("r1").version == doc.version == 1  # type: ignore[union-attr]

    def broken(doc):
        raise RuntimeError("no rollout")

    with pytest.raises(RuntimeError):
        store.add_document("fleet", make, T0, staged=broken)
    assert [d.version for d in store.documents("fleet")] == [1]  # nothing half-done
