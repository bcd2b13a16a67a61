"""Pure conversions of the ingest: wire batch -> store batch, status -> registry update."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fleet.ingest import batch_to_ingest, status_to_update
from roadside import wire

T0 = datetime(2026, 7, 21, 12, 0, tzinfo=UTC)


def test_batch_to_ingest_keeps_every_field_and_the_sending_time() -> None:
    rec = wire.WireRecord(
        seq=7,
        kind="reading",
        time=T0,
        sensor="rain",
        channel="rain_total",
        value=1.5,
        unit="mm",
        raw=15,
        status="ok",
        flag=3,
        reason="corrected",
    )
    event = wire.WireRecord(seq=8, kind="event", time=T0, payload={"signal": "gale"})
    batch = wire.decode_batch(
        wire.encode_batch(wire.Batch("st-1", "live", (rec, event), sent=T0 + timedelta(seconds=2)))
    )
    got = batch_to_ingest(batch, T0 + timedelta(seconds=5))
    assert (got.station, got.lane, got.first_seq, got.last_seq) == ("st-1", "live", 7, 8)
    assert got.sent == T0.timestamp() + 2 and got.received == T0.timestamp() + 5
    assert got.records == batch.records == (rec, event)  # the contract's records, as sent


def test_status_to_update_reads_the_typed_fields_and_the_clock_offset() -> None:
    status = wire.Status(
        station="st-1",
        state="online",
        time=T0 + timedelta(seconds=30),  # the station's clock runs 30 s ahead
        software="agent 1.4",
        config_version="7",
        model_version="nowcast-3",
        devices={"rain": "failed"},
        backlog=1234,
        grid_cell="c7",
        health={"summary": "0/1 devices ok"},
    )
    upd = status_to_update(status, T0)
    assert upd.online is True and upd.software == "agent 1.4" and upd.config_version == "7"
    assert upd.devices == {"rain": "failed"} and upd.health == {"summary": "0/1 devices ok"}
    assert upd.backlog == 1234 and upd.grid_cell == "c7"
    assert upd.clock_offset_s == 30.0
    offline = status_to_update(wire.Status("st-1", "offline", T0), T0)
    assert offline.online is False and offline.backlog is None and offline.software is None


def test_the_grid_cell_can_come_from_the_running_grid_document() -> None:
    status = wire.Status(
        "st-1", "online", T0, remote_config={"grid:c9": {"version": 2, "hash": "h"}}
    )
    assert status_to_update(status, T0).grid_cell == "c9"
