"""The durable buffer: sequence, sync, size policy with gap rows, corruption handling."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from agent.buffer import Buffer
from agent.errors import BufferFullError, BufferStoreError
from roadside.clock import ManualClock
from roadside.contract import UNNUMBERED, Record

POLLS = {"poll": False}
"""Whether :func:`readings` makes one poll (one time for all, stored as a pack) or a record a
second (each its own row): the :func:`polls` fixture runs a test both ways."""


@pytest.fixture(params=["record_a_second", "one_poll"])
def polls(request: pytest.FixtureRequest) -> Iterator[None]:
    POLLS["poll"] = request.param == "one_poll"
    yield
    POLLS["poll"] = False


pytestmark = pytest.mark.usefixtures("polls")


def readings(clock: ManualClock, n: int, *, pad: int = 0, poll: bool | None = None) -> list[Record]:
    """``n`` readings of one sensor: one poll, or one a second (``poll``; by default as the
    :func:`polls` fixture says)."""
    poll = POLLS["poll"] if poll is None else poll
    out = []
    for i in range(n):
        if i == 0 or not poll:
            clock.advance(1)
        out.append(
            Record(
                seq=UNNUMBERED,
                kind="reading",
                time=clock.now(),
                sensor="rain",
                channel="rain_total",
                value=float(i),
                unit="mm",
                raw=str(i) + "x" * pad,
                status="ok",
                flag=0,
                reason="",
            )
        )
    return out


def event(clock: ManualClock, level: str = "blue") -> Record:
    payload = {"signal": "rainstorm", "level": level}
    return Record(seq=UNNUMBERED, kind="event", time=clock.now(), payload=payload)


def test_sequence_grows_in_order_and_survives_deletes(buffer: Buffer, clock: ManualClock) -> None:
    first = buffer.append(readings(clock, 5))
    assert first == [1, 2, 3, 4, 5]
    buffer.mark_synced(first)
    buffer._drop_synced(10)  # the newest rows gone too: AUTOINCREMENT still never reuses
    assert buffer.stats().rows == 0
    assert buffer.append(readings(clock, 2)) == [6, 7]
    path = buffer.path
    buffer.close()
    with Buffer(path, max_bytes=1 << 26, clock=clock) as again:
        assert again.append(readings(clock, 1)) == [8]
        assert again.stats().last_seq == 8


def test_pending_is_per_lane_in_seq_order_and_mark_synced_removes(
    buffer: Buffer, clock: ManualClock
) -> None:
    buffer.append(readings(clock, 3))
    buffer.append([event(clock)])
    buffer.append(readings(clock, 2))
    live = buffer.pending("live")
    assert [r.seq for r in live] == [1, 2, 3, 5, 6]
    assert [r.seq for r in buffer.pending("event")] == [4]
    assert [r.seq for r in buffer.pending("live", after_seq=2, limit=2)] == [3, 5]
    assert live[0].value == 0.0 and live[0].unit == "mm" and live[0].time.tzinfo is not None
    assert buffer.mark_synced([1, 2, 4]) == 3
    assert buffer.mark_synced([1, 2]) == 0
    assert [r.seq for r in buffer.pending("live")] == [3, 5, 6]
    assert buffer.pending("event") == []
    stats = buffer.stats()
    assert (stats.rows, stats.unsynced, stats.last_seq) == (6, 3, 6)
    assert (stats.rows, stats.unsynced) == counted(buffer)


def test_oldest_unsynced_age_follows_the_clock(buffer: Buffer, clock: ManualClock) -> None:
    assert buffer.stats().oldest_unsynced_age_s is None
    buffer.append(readings(clock, 1))
    clock.advance(30)
    assert buffer.stats().oldest_unsynced_age_s == pytest.approx(30)


def test_state_is_written_with_the_records(buffer: Buffer, clock: ManualClock) -> None:
    buffer.append(readings(clock, 1), state={"counters": {"rain": {"base": 12.5}}})
    assert buffer.get_state("counters") == {"rain": {"base": 12.5}}
    assert buffer.get_state("nothing") is None


def counted(buffer: Buffer) -> tuple[int, int]:
    """Row and unsynced counts straight from the table (stats() keeps them incrementally)."""
    rows, unsynced = buffer._conn.execute(
        "SELECT count(*), coalesce(sum(synced = 0), 0) FROM buffered"
    ).fetchone()
    return rows, unsynced


def _fill(buffer: Buffer, clock: ManualClock, batches: int) -> None:
    for _ in range(batches):
        buffer.append(readings(clock, 50, pad=200))


def test_cap_drops_synced_rows_first_without_a_gap(tmp_path: Path, clock: ManualClock) -> None:
    buf = Buffer(tmp_path / "b.db", max_bytes=400_000, clock=clock)
    _fill(buf, clock, 10)
    buf.mark_synced(range(1, buf.stats().last_seq + 1))
    _fill(buf, clock, 10)
    assert buf.bytes_used() <= 400_000
    assert buf.gaps() == []
    assert buf.stats().unsynced == 500  # every unsynced row kept: synced ones made the room
    assert (buf.stats().rows, buf.stats().unsynced) == counted(buf)
    buf.close()


def test_cap_drops_oldest_routine_rows_and_records_the_gap(
    tmp_path: Path, clock: ManualClock
) -> None:
    buf = Buffer(tmp_path / "b.db", max_bytes=300_000, clock=clock)
    buf.append([event(clock, "blue")])
    _fill(buf, clock, 30)
    assert buf.bytes_used() <= 300_000
    gaps = buf.gaps()
    assert gaps, "dropping unsynced rows must leave a gap row"
    held = {r.seq for r in buf.where("1")}
    explained: set[int] = set()
    for g in gaps:
        p = g.payload
        assert g.reason == "buffer_full" and g.lane == "event"
        assert p["count"] == p["last_seq"] - p["first_seq"] + 1
        assert p["time_from"] <= p["time_to"]
        explained |= set(range(p["first_seq"], p["last_seq"] + 1))
    assert held | explained == set(range(1, buf.stats().last_seq + 1))
    assert not held & explained
    assert [r.payload["level"] for r in buf.where("kind = 'event'")] == ["blue"]
    assert (buf.stats().rows, buf.stats().unsynced) == counted(buf)
    # the oldest were dropped: what is left of the readings is the newest
    kept = [r.seq for r in buf.where("kind = 'reading'")]
    assert max(explained) < min(kept)
    buf.close()


def test_full_disk_keeps_warning_events(tmp_path: Path, clock: ManualClock) -> None:
    """The file meets SQLITE_FULL (a full card) before its cap: routine rows make room."""
    buf = Buffer(tmp_path / "b.db", max_bytes=50_000_000, clock=clock)
    buf._conn.execute("PRAGMA max_page_count=80")  # the disk: 80 pages of 4 KiB
    events = 0
    for i in range(40):
        _fill(buf, clock, 1)
        buf.append([event(clock, f"level-{i}")])
        events += 1
    assert buf.stats().bytes <= 80 * 4096
    assert [r.payload["level"] for r in buf.where("kind = 'event'")] == [
        f"level-{i}" for i in range(events)
    ]
    assert buf.gaps() and all(g.reason == "buffer_full" for g in buf.gaps())
    assert buf.integrity_check() == ["ok"]
    assert (buf.stats().rows, buf.stats().unsynced) == counted(buf)
    buf.close()


def test_full_of_events_only_raises(tmp_path: Path, clock: ManualClock) -> None:
    buf = Buffer(tmp_path / "b.db", max_bytes=60_000, clock=clock)
    buf._conn.execute("PRAGMA max_page_count=40")  # the disk fills at 160 KiB
    big = {"evidence": "x" * 2000}
    stored = 0
    with pytest.raises(BufferFullError):
        for _ in range(200):
            buf.append([Record(seq=UNNUMBERED, kind="event", time=clock.now(), payload=big)])
            stored += 1
    assert stored > 0 and buf.stats().bytes > 60_000  # over the soft cap: events are kept
    assert buf.stats().rows == buf.stats().unsynced == stored  # no event was dropped
    buf.close()


def test_corrupt_file_is_moved_aside_and_sequence_continues(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "buffer.db"
    with Buffer(path, max_bytes=1 << 26, clock=clock) as buf:
        buf.append(readings(clock, 20, pad=500))
    size = path.stat().st_size
    with open(path, "r+b") as f:  # wreck the pages after the header (not the header)
        f.seek(4096)
        f.write(os.urandom(size - 4096))
    clock.advance(60)
    with Buffer(path, max_bytes=1 << 26, clock=clock) as again:
        assert again.recovered_from is not None
        assert again.recovered_from.exists()
        assert again.recovered_from.name.startswith("buffer.db.corrupt-2026")
        assert again.recovered_from.stat().st_size == size  # moved, not emptied
        gap = again.gaps()[0]
        assert gap.reason == "buffer_corrupt"
        assert gap.payload["moved_to"] == str(again.recovered_from)
        assert gap.seq > 20  # sequence numbers are never reused
        assert again.integrity_check() == ["ok"]


def test_not_a_database_is_moved_aside(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "buffer.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with Buffer(path, max_bytes=1 << 26, clock=clock) as buf:
        assert buf.recovered_from is not None
        assert buf.recovered_from.read_bytes().startswith(b"this is not sqlite")
        assert buf.append(readings(clock, 1))[0] >= 1


def test_wal_mode_and_synchronous(buffer: Buffer) -> None:
    assert buffer._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert buffer._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    other = sqlite3.connect(buffer.path)  # another reader sees committed rows at once
    assert other.execute("SELECT count(*) FROM buffered").fetchone()[0] == 0
    other.close()


def test_only_acks_commit_without_their_own_fsync(buffer: Buffer, clock: ManualClock) -> None:
    """Appends commit under FULL; the marks of an ack under NORMAL (a power cut may undo one:
    the record goes again), and FULL holds again after, also when the mark fails."""
    seen: list[str] = []
    buffer._conn.set_trace_callback(seen.append)
    seqs = buffer.append(readings(clock, 5))
    assert not any("NORMAL" in s for s in seen)
    seen.clear()
    assert buffer.mark_synced(seqs[:3]) == 3
    normal = seen.index("PRAGMA synchronous=NORMAL")
    begin, commit = seen.index("BEGIN IMMEDIATE"), seen.index("COMMIT")
    assert normal < begin < commit < seen.index("PRAGMA synchronous=FULL")
    assert buffer._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    other = sqlite3.connect(buffer.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock: the mark cannot begin
    buffer._conn.execute("PRAGMA busy_timeout=0")
    with pytest.raises(BufferStoreError):
        buffer.mark_synced(seqs[3:])
    other.rollback()
    other.close()
    assert buffer._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert buffer.mark_synced(seqs[3:]) == 2


def test_seq_since_finds_the_first_record_at_a_time(buffer: Buffer, clock: ManualClock) -> None:
    start = clock.now()
    buffer.append(readings(clock, 100, poll=False))  # one per second from start + 1 s
    assert buffer.seq_since(start) == 1
    assert buffer.seq_since(start + timedelta(seconds=50)) == 50
    assert buffer.seq_since(start + timedelta(seconds=500)) == 101  # nothing that late


LEGACY_RECORDS = """CREATE TABLE records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    lane TEXT NOT NULL CHECK (lane IN ('event', 'live')),
    kind TEXT NOT NULL CHECK (kind IN ('reading', 'derived', 'event', 'gap', 'forecast')),
    time TEXT NOT NULL,
    sensor TEXT,
    channel TEXT,
    value REAL,
    unit TEXT,
    raw TEXT,
    status TEXT,
    flag INTEGER,
    reason TEXT,
    payload TEXT,
    synced INTEGER NOT NULL DEFAULT 0
)"""
"""The table as agents before the CHECK rewrite made it."""


def _refused(path: Path, lane: str, kind: str) -> bool:
    conn = sqlite3.connect(path)
    try:
        conn.execute(
            "INSERT INTO records (lane, kind, time) VALUES (?, ?, '2026-01-01T00:00:00+00:00')",
            (lane, kind),
        )
    except sqlite3.IntegrityError:
        return True
    finally:
        conn.rollback()
        conn.close()
    return False


def test_checks_refuse_an_unknown_kind_or_lane(buffer: Buffer) -> None:
    buffer.close()
    assert _refused(buffer.path, "live", "bogus") and _refused(buffer.path, "sideways", "reading")
    assert not _refused(buffer.path, "live", "reading")
    conn = sqlite3.connect(buffer.path)
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'records'").fetchone()
    conn.close()
    assert " IN (" not in sql  # IN (...) in a CHECK doubled the cost of appending a row


def test_an_older_file_gets_its_checks_rewritten_in_place_and_keeps_its_rows(
    tmp_path: Path, clock: ManualClock
) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(LEGACY_RECORDS + ";")
    rows = [("live", "reading", f"2026-01-01T00:00:0{i}+00:00", "rain", i) for i in range(3)]
    conn.executemany(
        "INSERT INTO records (lane, kind, time, channel, value) VALUES (?, ?, ?, ?, ?)", rows
    )
    conn.commit()
    conn.close()
    with Buffer(path, max_bytes=1 << 26, clock=clock) as buffer:
        assert [r.value for r in buffer.pending("live")] == [0.0, 1.0, 2.0]
        assert buffer.append(readings(clock, 1))[0] > 3
        assert buffer.integrity_check() == ["ok"]
    conn = sqlite3.connect(path)
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'records'").fetchone()
    assert conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    conn.close()
    assert " IN (" not in sql and "kind = 'forecast'" in sql and "lane = 'live'" in sql
    assert _refused(path, "live", "bogus") and _refused(path, "sideways", "reading")
    with Buffer(path, max_bytes=1 << 26, clock=clock) as again:  # and opens again as it is
        assert len(again.pending("live")) == 4
