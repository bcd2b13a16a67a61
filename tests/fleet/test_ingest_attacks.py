"""Issue 9 (1) and (6): a station attacking the real controller through the real broker cannot
exhaust its memory, stall ingest for the others, or store junk; a reused (station, seq) with
other content is kept as a conflict, not acked as a silent duplicate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import cbor2
import msgspec
import pytest
import zstandard

from fleet.ingest import IngestLimits
from fleet.loadgen import StationClient, readings
from fleet.service import FleetService
from fleet.store import Store
from roadside import wire
from roadside.clock import SystemClock
from sim.broker import MosquittoBroker
from sim.pki import CONTROLLER_IDENTITY

T0 = datetime(2026, 7, 21, 12, 0, tzinfo=UTC)
ATTACKER = "st-666"


def _vm(field: str) -> int:
    """A VmRSS/VmHWM figure of this process in bytes (the controller runs in it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(field)


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS


def _header() -> bytes:
    return b'{"c":"1.0","st":"%s","lane":"live","first":1,"last":1,"pad":"' % ATTACKER.encode()


def declared_bomb(size: int) -> bytes:
    """A small zstd frame that declares (and holds) ``size`` bytes of JSON."""
    cobj = zstandard.ZstdCompressor(level=19).compressobj(size=size)
    head, tail = _header(), b'","rows":[]}'
    out = [cobj.compress(head)]
    left = size - len(head) - len(tail)
    chunk = b"a" * (1 << 20)
    while left > 0:
        out.append(cobj.compress(chunk[: min(left, len(chunk))]))
        left -= len(chunk)
    out.append(cobj.compress(tail))
    out.append(cobj.flush())
    return b"".join(out)


def undeclared_bomb(size: int) -> bytes:
    """The same without a declared content size (decoders must stream with a cap)."""
    comp = zstandard.ZstdCompressor(level=19, write_content_size=False)
    return comp.compress(_header() + b"a" * size + b'","rows":[]}')


def junk_rows(n: int) -> bytes:
    """Empty rows: tiny on the wire, a Python list each once parsed."""
    return zstandard.ZstdCompressor().compress(
        b'{"c":"1.0","st":"%s","lane":"live","first":1,"last":1,"rows":[' % ATTACKER.encode()
        + b",".join([b"[]"] * n)
        + b"]}"
    )


@pytest.fixture
def stations(broker: MosquittoBroker) -> Iterator[list[StationClient]]:
    made = [
        StationClient(broker.settings(f"st-00{i}"), f"st-00{i}", ack_timeout_s=2.0).start()
        for i in range(1, 4)
    ]
    try:
        yield made
    finally:
        for st in made:
            st.stop()


@pytest.fixture
def attacker(broker: MosquittoBroker) -> Iterator[StationClient]:
    st = StationClient(broker.settings(ATTACKER), ATTACKER, ack_timeout_s=2.0).start()
    try:
        yield st
    finally:
        st.stop()


def test_bombs_and_junk_are_refused_before_allocation_and_others_keep_ingesting(
    controller: FleetService,
    stations: list[StationClient],
    attacker: StationClient,
    store: Store,
    wait_for,
) -> None:
    attacks = [
        declared_bomb(200 << 20),  # main: the declared size bypassed the cap (200 MB + parse)
        undeclared_bomb(100 << 20),
        junk_rows(300_000),  # under the old 64 MiB cap: 300,000 rows stored as junk
        cbor2.dumps({"c": "1.0", "st": ATTACKER, "lane": "live", "rows": [[]] * 100_000}),
        b"[" * 200_000,  # nesting: RecursionError on main
        b"{" + b'"a":[' * 50_000 + b"1" + b"]" * 50_000 + b"}",
    ]
    assert all(len(a) < 600_000 for a in attacks)
    _reset_peak()
    base = _vm("VmRSS")
    refused = controller.worker.stats.snapshot()["rejected"]
    for payload in attacks:
        attacker.client.publish(wire.up_topic(ATTACKER, "data"), payload, qos=1)
    for i in range(5):
        for st in stations:
            st.send(readings(1 + 20 * i, 20, T0))
    assert all(st.drain(60) for st in stations), "honest stations starved"
    wait_for(
        lambda: controller.worker.stats.snapshot()["rejected"] >= refused + len(attacks),
        timeout=60,
        what="every attack refused",
    )
    growth = _vm("VmHWM") - base
    assert growth < 120 << 20, f"controller peak grew {growth >> 20} MiB"
    for st in stations:
        assert store.seqs(st.station) == list(range(1, 101))
    assert store.count(ATTACKER) == 0
    wait_for(  # error acks (a station id is in each topic) reach the attacker after the refusal
        lambda: len(attacker.errors) >= len(attacks) - 1, timeout=30, what="error acks"
    )


def test_a_flooding_station_is_throttled_and_others_keep_ingesting(
    store: Store,
    broker: MosquittoBroker,
    fleet_key,
    stations: list[StationClient],
    attacker,
    wait_for,
) -> None:
    limits = IngestLimits(station_bytes_per_min=200_000, station_burst_bytes=200_000)
    with FleetService(
        store, SystemClock(), broker.settings(CONTROLLER_IDENTITY), fleet_key, tick_s=0.2,
        limits=limits,
    ) as ctl:  # fmt: skip
        big = wire.encode_batch(
            wire.Batch(ATTACKER, "live", tuple(readings(1, 4000, T0))), codec="json"
        )
        for _ in range(30):  # 30 x ~600 kB: far over its budget
            attacker.client.publish(wire.up_topic(ATTACKER, "data"), big, qos=1)
        wait_for(  # the flood has reached the controller: the honest stations send into it
            lambda: ctl.worker.stats.snapshot()["throttled"] >= 1, timeout=60, what="the flood"
        )
        for i in range(5):
            for st in stations:
                st.send(readings(1 + 20 * i, 20, T0))
        assert all(st.drain(60) for st in stations), "honest stations starved by the flood"
        wait_for(  # the flood may still be arriving when the honest stations are done
            lambda: ctl.worker.stats.snapshot()["throttled"] >= 25,
            timeout=60,
            what="25 of the flood's 30 messages throttled",
        )
        assert ctl.worker.throttled_by_station.get(ATTACKER, 0) >= 25
        assert set(ctl.worker.throttled_by_station) == {ATTACKER}
    for st in stations:
        assert store.seqs(st.station) == list(range(1, 101))
    assert store.count(ATTACKER) <= 4000  # at most the one batch its burst allowed


def test_a_batch_over_the_record_limit_is_refused(
    controller: FleetService, attacker: StationClient, store: Store, wait_for
) -> None:
    batch = wire.Batch(ATTACKER, "live", tuple(readings(1, 6000, T0)))
    attacker.client.publish(wire.up_topic(ATTACKER, "data"), wire.encode_batch(batch), qos=1)
    wait_for(lambda: bool(attacker.errors), what="error ack")
    assert "over the 5000 limit" in attacker.errors[0]
    assert store.count(ATTACKER) == 0


def test_a_reused_seq_with_other_content_is_a_conflict_not_a_silent_duplicate(
    controller: FleetService, stations: list[StationClient], store: Store
) -> None:
    st = stations[0]
    st.send(readings(1, 10, T0))
    assert st.drain(30)
    # after a rollback the station numbers new readings 6..15 again: 6..10 are other readings
    later = [msgspec.structs.replace(r, value=r.value + 100.0) for r in readings(6, 10, T0)]
    st.send(later)
    assert st.drain(30)
    assert store.seqs(st.station) == list(range(1, 16))
    conflicts = store.conflicts(st.station)
    assert [c.seq for c in conflicts] == [6, 7, 8, 9, 10]
    assert conflicts[0].offered["value"] == pytest.approx(100.6)
    assert conflicts[0].stored["value"] == pytest.approx(0.6)
    stats = controller.worker.stats.snapshot()
    assert stats["conflicts"] == 5 and stats["duplicates"] == 0
    # an honest resend of the same content stays a plain duplicate
    st.send(readings(1, 5, T0))
    assert st.drain(30)
    assert controller.worker.stats.snapshot()["duplicates"] == 5
    assert len(store.conflicts(st.station)) == 5
    assert json.loads(json.dumps(conflicts[0].offered))["kind"] == "reading"
