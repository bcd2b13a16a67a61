"""One record, mapped by field name through every layer (no positional copies to drift apart)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.buffer import Buffer, BufferRecord
from agent.buffer import StoredRecord as BufferStored
from fleet.api import RecordOut
from fleet.ingest import batch_to_ingest
from fleet.store import IngestRecord, open_store
from fleet.store import StoredRecord as FleetStored
from roadside import contract, wire
from roadside.clock import ManualClock

T0 = datetime(2026, 7, 21, 12, tzinfo=UTC)
FIELDS = set(contract.RECORD_FIELDS)


def names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_every_record_shape_is_the_contract_record_plus_its_own_extras() -> None:
    assert names(BufferRecord) == FIELDS - {"seq"} | {"lane"}
    assert names(BufferStored) == FIELDS | {"lane", "synced"}
    assert names(IngestRecord) == FIELDS | {"lane"}
    assert names(FleetStored) == FIELDS | {"station", "lane", "received"}
    assert set(RecordOut.model_fields) <= names(FleetStored)
    assert wire.RECORD_FIELDS == contract.RECORD_FIELDS == contract.Record.__struct_fields__


def test_a_record_keeps_every_field_from_buffer_to_wire_to_fleet_store(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.db", max_bytes=1 << 20, clock=ManualClock(T0))
    rec = BufferRecord(
        kind="reading",
        time=T0,
        sensor="rain",
        channel="rain_total",
        value=12.5,
        unit="mm",
        raw="125",
        status="ok",
        flag=1,
        reason="step",
        payload={"detail": "x"},
    )
    (seq,) = buf.append([rec])
    stored = buf.pending("live")[0]
    buf.close()
    assert {n: getattr(stored, n) for n in FIELDS - {"seq", "payload"}} == {
        n: getattr(rec, n) for n in FIELDS - {"seq", "payload"}
    }
    on_wire = contract.from_mapping(dataclasses.asdict(stored))
    batch = wire.decode_batch(wire.encode_batch(wire.Batch("st-1", "live", (on_wire,))), now=T0)
    assert batch.records == (on_wire,)
    store = open_store(f"sqlite:///{tmp_path / 'fleet.db'}")
    try:
        store.ingest([batch_to_ingest(batch, T0)])
        (back,) = store.records(station="st-1")
    finally:
        store.close()
    assert back.seq == seq and back.time == T0.timestamp() and back.payload == {"detail": "x"}
    for name in FIELDS - {"seq", "time", "payload"}:
        assert getattr(back, name) == getattr(rec, name), name


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"value": float("nan")}, "not finite"),
        ({"seq": 0}, "seq outside"),
        ({"flag": 12}, "not a digit"),
        ({"kind": "bogus"}, "kind"),
        ({"time": datetime(2040, 1, 1, tzinfo=UTC)}, "ahead of the receiver"),
        ({"time": datetime(1990, 1, 1, tzinfo=UTC)}, "too old"),
    ],
)
def test_the_receiver_refuses_records_off_the_contract(change: dict, why: str) -> None:
    base = {"seq": 1, "kind": "reading", "time": T0, "value": 1.0}
    rec = contract.Record(**{**base, **change})
    payload = wire.encode_rows("st-1", "live", [rec.row()], codec="cbor")
    with pytest.raises(wire.WireError, match=why):
        wire.decode_batch(payload, now=T0)


def test_the_receiver_refuses_an_oversized_or_malformed_status() -> None:
    big = contract.Status("st-1", "online", T0, health={"log": "x" * 20_000})
    with pytest.raises(wire.WireError, match="bytes"):
        wire.decode_status(wire.encode_status(big), now=T0)
    many = contract.Status("st-1", "online", T0, devices={f"d{i}": "ok" for i in range(300)})
    with pytest.raises(wire.WireError, match="length"):
        wire.decode_status(wire.encode_status(many), now=T0)
    bad_cell = b'{"c":"1.0","st":"st-1","state":"online","time":"2026-07-21T12:00:00Z",'
    with pytest.raises(wire.WireError, match="grid_cell"):
        wire.decode_status(bad_cell + b'"grid_cell":"a/b"}', now=T0)
    status = contract.Status("st-1", "online", T0, grid_cell="G9")
    with pytest.raises(contract.ContractError, match="not assigned") as refused:
        contract.check_grid_cell(status, frozenset({"G1", "G2"}))
    assert refused.value.code == "scope"


def test_the_nowcast_shadow_skill_travels_in_the_status_into_the_registry() -> None:
    from fleet.ingest import status_to_update

    skill = contract.NowcastSkill(rmse_cm=2.5, hits=3, misses=1, false_alarms=0, n=40)
    sent = contract.Status("st-1", "online", T0, health={"healthy": True}, nowcast_skill=skill)
    received = wire.decode_status(wire.encode_status(sent), now=T0)
    update = status_to_update(received, T0)
    assert update.health == {
        "healthy": True,
        "nowcast_skill": {"rmse_cm": 2.5, "hits": 3, "misses": 1, "false_alarms": 0, "n": 40},
    }
    bare = status_to_update(contract.Status("st-1", "online", T0, health={"healthy": True}), T0)
    assert bare.health == {"healthy": True}
