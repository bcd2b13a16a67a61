"""One row a poll: packs hold a poll's readings, and every reader still sees one record a seq.

A model of what the buffer promised (every record by seq, synced or not) is checked against the
buffer after random polls, events, acks naming any part of a pack, drops, and reopening.
"""

from __future__ import annotations

import json
import math
import random
import re
import sqlite3
from datetime import timedelta
from pathlib import Path

from test_buffer import LEGACY_RECORDS

from agent.buffer import Buffer, snapshot
from roadside.clock import ManualClock
from roadside.contract import RECORD_FIELDS, UNNUMBERED, Record, from_ms, to_ms

FIELDS = RECORD_FIELDS[1:]  # what a record says besides its seq


def poll(clock: ManualClock, sensor: str, channels: int, *, base: float = 0.0) -> list[Record]:
    """One poll of ``sensor``: ``channels`` readings at one time."""
    now = clock.now()
    return [
        Record(seq=UNNUMBERED, kind="reading", time=now, sensor=sensor, channel=f"reg{i}",
               value=base + i + 0.25, unit="hPa" if i % 2 else "", raw=str(1000 + i),
               status="ok" if i % 3 else "", flag=i % 4, reason="range" if i == 1 else "")
        for i in range(channels)
    ]  # fmt: skip


def event(clock: ManualClock) -> Record:
    return Record(seq=UNNUMBERED, kind="event", time=clock.now(), payload={"signal": "rain"})


def fields(r: Record) -> tuple[object, ...]:
    return tuple(getattr(r, n) for n in FIELDS)


def packs(buffer: Buffer) -> list[tuple[int, int]]:
    return [tuple(r) for r in buffer._conn.execute("SELECT seq, n FROM packs ORDER BY seq")]


def test_a_poll_is_one_row_and_reads_back_as_its_records(
    buffer: Buffer, clock: ManualClock
) -> None:
    records = poll(clock, "dev1", 10)
    assert buffer.append(records) == list(range(1, 11))
    assert packs(buffer) == [(1, 10)]
    assert buffer._conn.execute("SELECT count(*) FROM records").fetchone()[0] == 0
    stored = buffer.where("1")
    assert [r.seq for r in stored] == list(range(1, 11))
    assert [fields(r) for r in stored] == [fields(r) for r in records]
    assert all(r.lane == "live" and not r.synced for r in stored)
    rows = buffer.pending_rows("live")
    assert [Record.from_row(r).seq for r in rows] == list(range(1, 11))
    for row, want in zip(rows, records, strict=True):
        got = Record.from_row(row)
        assert fields(got)[1:] == fields(want)[1:] and got.time == from_ms(row[2])
    stats = buffer.stats()
    assert (stats.rows, stats.unsynced, stats.last_seq) == (10, 10, 10)


def test_only_a_run_of_one_kind_time_and_sensor_without_payload_is_packed(
    buffer: Buffer, clock: ManualClock
) -> None:
    a = poll(clock, "dev1", 3)
    marked = [a[0], Record(**{**_as_dict(a[1]), "payload": {"clock": "unsynced"}}), a[2]]
    b = poll(clock, "dev2", 2)
    buffer.append([*marked, event(clock), *b, *poll(clock, "dev3", 1)])
    # dev1's middle reading carries a payload: three singles; the event; dev2 packed; dev3 alone
    assert packs(buffer) == [(5, 2)]
    singles = buffer._conn.execute("SELECT seq FROM records ORDER BY seq").fetchall()
    assert [s[0] for s in singles] == [1, 2, 3, 4, 7]
    assert [r.seq for r in buffer.pending("live")] == [1, 2, 3, 5, 6, 7]
    assert [r.seq for r in buffer.pending("event")] == [4]


def _as_dict(r: Record) -> dict[str, object]:
    return {n: getattr(r, n) for n in RECORD_FIELDS}


def test_a_non_finite_value_stays_out_of_packs_and_every_reader_sees_it(
    buffer: Buffer, clock: ManualClock
) -> None:
    """JSON has no NaN or infinity: in a pack's body, SQLite's json_each refuses the whole view."""
    records = poll(clock, "dev1", 5)
    records[2] = Record(**{**_as_dict(records[2]), "value": math.inf})
    buffer.append(records)
    assert packs(buffer) == [(1, 2), (4, 2)]
    assert [fields(r) for r in buffer.where("1")] == [fields(r) for r in records]
    assert [Record.from_row(r).value for r in buffer.pending_rows("live")] == [
        r.value for r in records
    ]


def test_a_body_the_standard_library_wrote_with_nan_still_reads(
    buffer: Buffer, clock: ManualClock
) -> None:
    buffer.append(poll(clock, "dev1", 3))
    body = json.dumps([["reg0", math.nan, "", "1000", "", 0, ""], ["reg1", 1.5, "", "", "", 0, ""]])
    buffer._conn.execute("UPDATE packs SET n = 2, body = ? WHERE seq = 1", (body,))
    buffer._conn.execute("DELETE FROM packs WHERE seq > 1")
    values = [r[5] for r in buffer.pending_rows("live")]
    assert math.isnan(values[0]) and values[1:] == [1.5]
    buffer.mark_synced([2])  # an ack splits the pack: both halves are rewritten as JSON
    assert [(r.seq, r.value) for r in buffer.where("synced = 0")] == [(1, None)]


def test_an_ack_naming_part_of_a_pack_splits_it_and_keeps_every_seq(
    buffer: Buffer, clock: ManualClock
) -> None:
    records = poll(clock, "dev1", 10)
    buffer.append(records)
    assert buffer.mark_synced([3, 4, 5]) == 3
    assert packs(buffer) == [(1, 2), (3, 3), (6, 5)]
    assert [r.seq for r in buffer.pending("live")] == [1, 2, 6, 7, 8, 9, 10]
    assert [r[0] for r in buffer.pending_rows("live", after_seq=1, limit=3)] == [2, 6, 7]
    assert buffer.mark_synced([3, 4, 5]) == 0  # again: nothing new
    assert buffer.mark_synced(range(1, 11)) == 7
    assert buffer.pending("live") == []
    assert [fields(r) for r in buffer.where("1")] == [fields(r) for r in records]
    assert (buffer.stats().rows, buffer.stats().unsynced) == (10, 0)


def test_pending_rows_resume_inside_a_pack(buffer: Buffer, clock: ManualClock) -> None:
    buffer.append(poll(clock, "dev1", 10))
    buffer.append([event(clock)])
    buffer.append(poll(clock, "dev2", 10))
    got, after = [], 0
    while rows := buffer.pending_rows("live", after_seq=after, limit=4):
        got += [r[0] for r in rows]
        after = rows[-1][0]
    assert got == [*range(1, 11), *range(12, 22)]


def test_replay_reads_channels_from_packs_from_a_seq_on(buffer: Buffer, clock: ManualClock) -> None:
    start = clock.now()
    for _ in range(5):
        clock.advance(1)
        buffer.append(poll(clock, "dev1", 10))
    got = buffer.records_since(14, "reading", ["reg2", "reg7"], limit=3)
    assert [(r.seq, r.channel) for r in got] == [(18, "reg7"), (23, "reg2"), (28, "reg7")]
    assert buffer.records_since(60, "reading", ["reg2"], limit=3) == []
    assert buffer.seq_since(start + timedelta(seconds=3)) == 21  # the third poll's first
    assert buffer.seq_since(start + timedelta(seconds=30)) == 51


def test_an_older_agent_continues_the_sequence_above_the_packs(
    buffer: Buffer, clock: ManualClock
) -> None:
    """An OTA rollback: the previous agent numbers by AUTOINCREMENT on ``records`` alone."""
    buffer.append(poll(clock, "dev1", 10))
    buffer.close()
    conn = sqlite3.connect(buffer.path, isolation_level=None)
    conn.execute("INSERT INTO records (lane, kind, time) VALUES ('live', 'reading', 't')")
    assert conn.execute("SELECT last_insert_rowid()").fetchone()[0] == 11
    conn.close()
    with Buffer(buffer.path, max_bytes=1 << 26, clock=clock) as again:
        assert again.append(poll(clock, "dev1", 2)) == [12, 13]


def test_a_corrupt_buffers_unsynced_packs_are_salvaged(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "buffer.db"
    with Buffer(path, max_bytes=1 << 26, clock=clock) as buf:
        buf.append(poll(clock, "dev1", 10))
        buf.append([event(clock)])
        buf.append(poll(clock, "dev2", 10))
        buf.mark_synced(range(1, 6))
    with open(path, "r+b") as f:  # not a database any more at its header
        f.write(b"\0" * 100)
    with Buffer(path, max_bytes=1 << 26, clock=clock) as again:
        assert again.recovered_from is not None
        gap = next(g for g in again.gaps() if g.reason == "buffer_corrupt")
        salvaged = [r.seq for r in again.pending("live")]
        assert gap.payload["salvaged"] == len(salvaged) + len(again.pending("event")) - 1
        assert again.append(poll(clock, "dev1", 1))[0] > 21


def test_the_buffer_keeps_what_a_model_of_it_promised(tmp_path: Path, clock: ManualClock) -> None:
    """Random polls, events, acks of any seqs, drops and reopenings: every record not dropped
    reads back with its seq and fields, synced exactly when acked, and every drop has a gap."""
    rng = random.Random(20261201)
    path = tmp_path / "buffer.db"
    buf = Buffer(path, max_bytes=1 << 26, clock=clock)
    model: dict[int, tuple[object, ...]] = {}
    synced: set[int] = set()
    dropped: set[int] = set()
    try:
        for step in range(400):
            op = rng.random()
            clock.advance(rng.choice([0.1, 1.0]))
            if op < 0.45:
                batch = [
                    r
                    for d in range(rng.randint(1, 3))
                    for r in poll(clock, f"d{d}", rng.randint(1, 12), base=step)
                ]
                if rng.random() < 0.2:
                    batch.insert(rng.randrange(len(batch) + 1), event(clock))
                for seq, r in zip(buf.append(batch), batch, strict=True):
                    model[seq] = fields(r)
            elif op < 0.75 and model:
                top = max(model)
                a = rng.randint(1, top)
                picked = set(range(a, min(top, a + rng.randint(0, 25)) + 1))
                picked |= {rng.randint(1, top) for _ in range(rng.randint(0, 5))}
                new = (picked & model.keys()) - synced - dropped
                assert buf.mark_synced(picked) == len(new)
                synced |= new
            elif op < 0.85:
                gone = buf._drop_routine(rng.randint(1, 30))
                gaps = [g for g in buf.gaps() if g.reason == "buffer_full"]
                if gone:
                    p = gaps[-1].payload
                    span = set(range(p["first_seq"], p["last_seq"] + 1))
                    lost = {
                        s
                        for s in span - synced - dropped
                        if s in model and model[s][0] not in ("event", "gap")
                    }
                    assert p["count"] == len(lost) == gone
                    dropped |= lost
                    model[gaps[-1].seq] = fields(gaps[-1])
            elif op < 0.9:
                buf._drop_synced(rng.randint(1, 40))
                held = {r.seq for r in buf.where("synced = 1")}
                for seq in synced - held:
                    model.pop(seq, None)
                synced &= held
            elif op < 0.95:
                buf.close()
                buf = Buffer(path, max_bytes=1 << 26, clock=clock)
                for g in buf.gaps():
                    model.setdefault(g.seq, fields(g))
            held = {s: v for s, v in model.items() if s not in dropped}
            if step % 20 == 0 or op >= 0.9:
                got = buf.where("1")
                assert {r.seq: fields(r) for r in got} == held
                assert {r.seq for r in got if r.synced} == synced & held.keys()
                stats = buf.stats()
                assert (stats.rows, stats.unsynced) == (len(held), len(held.keys() - synced))
            live = [
                s for s, v in held.items() if s not in synced and v[0] != "event" and v[0] != "gap"
            ]
            after = rng.choice([0, *sorted(live)[:3]]) if live else 0
            limit = rng.randint(1, 40)
            rows = buf.pending_rows("live", after_seq=after, limit=limit)
            assert [r[0] for r in rows] == sorted(s for s in live if s > after)[:limit]
            for r in rows:  # the wire row says what the record said
                v = held[r[0]]
                assert (r[1], r[2], *r[3:]) == (v[0], to_ms(v[1]), *v[2:])  # type: ignore[arg-type]
    finally:
        buf.close()


def test_the_status_snapshot_reads_packs_and_older_files(
    tmp_path: Path, clock: ManualClock
) -> None:
    path, t0 = tmp_path / "buffer.db", clock.now()
    with Buffer(path, max_bytes=1 << 26, clock=clock) as buf:
        buf.append(poll(clock, "dev1", 4))
        clock.advance(1)
        buf.append([event(clock), *poll(clock, "dev1", 4, base=10)])
        buf.mark_synced([1, 2])
    snap = snapshot(path, 20)
    assert snap is not None
    assert snap["pending"] == {"event": 1, "live": 6} and snap["last_seq"] == 9
    assert snap["oldest_unsynced"] == t0.isoformat()
    latest = {r["channel"]: r["value"] for r in snap["latest"]}
    assert latest == {f"reg{i}": 10 + i + 0.25 for i in range(4)}  # the newest poll's
    older = tmp_path / "older.db"  # written by an agent from before packs
    conn = sqlite3.connect(older)
    conn.execute(LEGACY_RECORDS)
    conn.execute("INSERT INTO records (lane, kind, time, channel, value) VALUES (?, ?, ?, ?, ?)",
                 ("live", "reading", t0.isoformat(), "reg0", 1.5))  # fmt: skip
    conn.commit()
    conn.close()
    snap = snapshot(older, 20)
    assert snap is not None and snap["pending"] == {"event": 0, "live": 1}
    assert [r["value"] for r in snap["latest"]] == [1.5]


def test_the_agents_reads_use_indexes_and_never_sort_the_buffer(
    buffer: Buffer, clock: ManualClock
) -> None:
    """Replay, refill and the uplink read from a seq on: a scan or a sort of everything after
    it would make a restart on a full buffer quadratic in its chunks."""
    for _ in range(3):
        clock.advance(1)
        buffer.append([*poll(clock, "dev1", 5), event(clock)])
    statements: list[str] = []
    buffer._conn.set_trace_callback(statements.append)
    buffer.records_since(3, "reading", ["reg1", "reg2"], 4)
    buffer.pending("live", after_seq=3, limit=4)
    buffer.pending_rows("live", after_seq=3, limit=4)
    buffer.seq_since(clock.now())
    buffer._conn.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) >= 6
    for sql in selects:
        plan = " | ".join(r[3] for r in buffer._conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "TEMP B-TREE" not in plan, (sql, plan)
        assert not re.search(r"\bSCAN (p|packs|records)\b", plan), (sql, plan)
