"""The durable buffer: every reading, derived value and event the station promised to keep.

One SQLite file (WAL). ``seq`` is the per-station sequence: a number names one record forever and
its order never depends on wall time. Records are written in batches, one transaction per
:meth:`Buffer.append`, in two tables:

- ``packs``: one row a poll and device. The readings of one poll (one kind, time and sensor, no
  payload) share a row holding seqs ``seq .. seq + n - 1``; what differs between them (the
  fields in :data:`PACKED`: channel, value and the rest) is its ``body``, one JSON array a
  record. Appending a row a record cost 5.6 us a value against 3.0 packed, and the uplink's
  read and mark 3.4 against 1.4 (``bench/bench_buffer_append.py``). An ack that names part of
  a pack splits it; every record keeps its seq.
- ``records``: every other record (events, gaps, forecasts, a reading alone or with a payload),
  one row each. Its ``seq INTEGER PRIMARY KEY AUTOINCREMENT`` counter is kept at the last seq
  of either table, so nothing reuses a number, even after the newest rows are deleted, and an
  older agent (an OTA rollback) numbers above the packs. That agent does not read the packs:
  they wait, unsent and kept, until a newer one runs again.

The view ``buffered`` shows both as one row a record in the columns of ``records``, for the
status tool, tests and the HIL observer; the agent reads the tables through their indexes.

The records are the contract's :class:`roadside.contract.Record`: the pipeline builds them with
``seq`` :data:`~roadside.contract.UNNUMBERED` (the table numbers them on append) and reads them
back as :class:`StoredRecord`, the same record plus ``lane`` and ``synced``. The table's columns
are the record's fields by name (:data:`INSERT_COLUMNS`); times are ISO 8601 text in SQL,
``datetime`` in Python.

A record leaves only after :meth:`Buffer.mark_synced` (the fleet confirmed it) or through the size
policy of :meth:`Buffer.enforce_cap`: above ``max_bytes`` synced rows go first, then the oldest
unsynced routine rows (readings, derived values, forecasts). Each such drop writes a ``gap`` row
saying which sequence range, time range and how many records were lost. Warning events and gap rows
are never dropped unsynced; when nothing else is left to drop, :class:`BufferFullError` is raised.

Durability: ``synchronous=FULL`` by default. In WAL mode NORMAL already survives a killed process
(kill -9 loses nothing committed), but a power cut may lose the last transactions; stations lose
power in exactly the storms that matter, and at a few small transactions per second the extra
fsync per commit costs little. ``normal`` is available for hardware with a UPS or for benchmarks.
The marks of :meth:`Buffer.mark_synced` alone commit without an fsync of their own (the next
commit's fsync carries them, the WAL keeps the order): a power cut may undo a mark, and then the
record is sent again, which the controller takes once by its seq. Under profile that fsync was a
fifth of the uplink thread's CPU at 100 ms polls.

At open the file gets ``PRAGMA quick_check``. A file that fails it (or is not a database) is moved
aside as ``<name>.corrupt-<UTC timestamp>`` (with its -wal/-shm) and reported in
:attr:`Buffer.recovered_from`; the unsynced rows still readable in it are copied into the new
file under their own sequence numbers (and sent as usual), the sequence continues above the old
file's high-water mark, and a gap row names the moved file and the seq range that could not be
read. Nothing is silently emptied. A path that cannot be opened at all (a directory, a card not
mounted yet, no permission) is not corrupt: :class:`BufferStoreError` says so and nothing moves.

The sequence is never reused. Beside the file, ``<name>.hwm`` holds a reservation: a number no
record has reached yet (rewritten and fsynced every ``HWM_RESERVE / 2`` records), and after a
clean close the exact last seq. At every open the file's last seq is checked against it: after
an unclean stop, or when the database lost its newest transactions (a damaged WAL frame after a
power cut passes ``quick_check`` but rolls the sequence back), numbering continues above the
reservation and a ``seq_skipped`` gap row records the range skipped.

Storage errors (a full card, an I/O error) never escape as raw ``sqlite3`` errors: they are
:class:`BufferStoreError` (the agent holds its records and keeps running its warnings); when
writes work again a ``storage_unavailable`` gap row records how long they failed.

A small key-value table ``state`` keeps agent state (rain counters) in the same transaction as the
readings it belongs to.

The running agent talks to SQLite through the standard ``sqlite3`` module: its few statements are
all here, and importing sqlite-utils (with tabulate, dateutil, pluggy) would add about 5 MB to a
process that must stay under 60 MB on a Raspberry Pi. The read-side tools (``roadside-agent
status``) use sqlite-utils.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import math
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import msgspec
from msgspec.structs import astuple

from agent.errors import BufferFullError, BufferStoreError
from roadside.clock import Clock
from roadside.contract import (
    KINDS,
    RECORD_FIELDS,
    TEXT_FIELDS,
    UNNUMBERED,
    Record,
    from_mapping,
    record_sql_types,
)

log = logging.getLogger(__name__)

Lane = Literal["event", "live"]
EVENT_KINDS = frozenset({"event", "gap"})  # never dropped unsynced; sent on the event lane
SALVAGE_CHUNK = 200  # rows read at once from a corrupt file before going row by row
HWM_RESERVE = 10_000  # the high-water-mark reservation runs this far ahead of the last seq (its
# fsynced rewrite, every 5,000 records, was 8 % of the main loop at 100 ms polls with 1,000)
LOW_WATER = 0.9  # enforce_cap frees space down to this fraction of max_bytes

_SQL = record_sql_types("TEXT")  # time as ISO 8601 text


def one_of(column: str, values: Iterable[str]) -> str:
    """A CHECK that ``column`` holds one of ``values``, as ``=`` tests joined by OR. The same
    constraint written ``IN (...)`` makes SQLite build an ephemeral table at every execution of
    the INSERT: 12.1 against 8.8 us a row (``bench/bench_buffer_append.py``)."""
    return "CHECK (" + " OR ".join(f"{column} = {v!r}" for v in values) + ")"


_CHECKS = {"kind": f"NOT NULL {one_of('kind', KINDS)}", "time": "NOT NULL"}
_LEGACY_CHECK = re.compile(r"CHECK \((\w+) IN \(([^()]*)\)\)")
"""A CHECK of an older buffer file written as ``IN (...)``; :func:`upgrade_checks` rewrites it."""
_RECORD_DDL = ",\n    ".join(
    f"{name} {_SQL[name]} {_CHECKS.get(name, '')}".rstrip()
    for name in RECORD_FIELDS
    if name != "seq"
)
PACKED_KINDS = ("reading", "derived")
"""Kinds whose records of one poll (same kind, time and sensor, no payload) share one row of
``packs``; their other fields go in its ``body``, one JSON array a record, :data:`PACKED`."""
PACKED = RECORD_FIELDS[RECORD_FIELDS.index("sensor") + 1 : RECORD_FIELDS.index("payload")]
_PACKED_EXPR = {name: f"json_extract(j.value, '$[{i}]')" for i, name in enumerate(PACKED)}
_PACKED_SELECT = (
    "SELECT p.seq + j.key AS seq, "
    + ", ".join(
        f"{_PACKED_EXPR.get(n, 'NULL' if n == 'payload' else 'p.' + n)} AS {n}"
        for n in RECORD_FIELDS[1:]
    )
    + ", 'live' AS lane, p.synced AS synced FROM packs AS p, json_each(p.body) AS j"
)
"""The packs' records, one row each, in the columns of ``records`` (``p.seq`` is indexed)."""
_PACK_AT = "coalesce((SELECT seq FROM packs WHERE seq <= :{0} ORDER BY seq DESC LIMIT 1), 0)"
"""The first seq of the last pack starting at or before a named parameter: scans from there
find the pack that holds it."""
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    lane TEXT NOT NULL {one_of("lane", ("event", "live"))},
    {_RECORD_DDL},
    synced INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS records_pending ON records (lane, seq) WHERE synced = 0;
CREATE INDEX IF NOT EXISTS records_synced ON records (seq) WHERE synced = 1;
CREATE TABLE IF NOT EXISTS packs (
    seq INTEGER PRIMARY KEY,
    n INTEGER NOT NULL CHECK (n >= 1),
    kind TEXT NOT NULL {one_of("kind", PACKED_KINDS)},
    time TEXT NOT NULL,
    sensor TEXT,
    body TEXT NOT NULL,
    synced INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS packs_pending ON packs (seq) WHERE synced = 0;
CREATE INDEX IF NOT EXISTS packs_synced ON packs (seq) WHERE synced = 1;
DROP VIEW IF EXISTS buffered;
CREATE VIEW buffered AS
    SELECT seq, {", ".join(RECORD_FIELDS[1:])}, lane, synced FROM records
    UNION ALL {_PACKED_SELECT};
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
INSERT_COLUMNS = (*("lane" if name == "seq" else name for name in RECORD_FIELDS), "synced")
"""Columns an append writes: the contract's record fields by name (``lane`` in ``seq``'s place:
the table numbers records), plus ``synced``."""
COLUMNS = ", ".join(INSERT_COLUMNS)
_SEQ, _TIME, _RAW, _PAYLOAD = (RECORD_FIELDS.index(n) for n in ("seq", "time", "raw", "payload"))
_STORED = (*RECORD_FIELDS, "lane", "synced")
assert _TIME < _PAYLOAD  # pending_rows converts the two in this order
_PENDING_ROWS = (
    "SELECT "
    + ", ".join(f"coalesce({n}, '')" if n in TEXT_FIELDS else n for n in RECORD_FIELDS)
    + " FROM records WHERE synced = 0 AND lane = ? AND seq > ? ORDER BY seq LIMIT ?"
)
"""The wire rows of :meth:`Buffer.pending_rows`: :data:`RECORD_FIELDS` by name, absent text
as ``""`` (time and payload are converted in Python)."""
_PENDING_PACKS = (
    "SELECT seq, kind, time, sensor, body FROM packs WHERE synced = 0 AND seq >= "
    + _PACK_AT.replace(":{0}", "?1")
    + " ORDER BY seq LIMIT ?2"
)
_PACKED_TEXT = [i for i, name in enumerate(PACKED) if name in TEXT_FIELDS]
assert ("seq", "kind", "time", "sensor", *PACKED, "payload") == RECORD_FIELDS  # a pack's wire row


_FIRST_ROW_FROM = (
    "SELECT seq, 1, time FROM records WHERE seq >= ? ORDER BY seq LIMIT 1",
    "SELECT seq, n, time FROM packs WHERE seq >= ? ORDER BY seq LIMIT 1",
)
"""(seq, records, time) of the first row at or after a seq, in either table."""


def _first(row: list[Any]) -> Any:
    return row[0]


_R_KIND, _R_TIME, _R_SENSOR, _R_PAYLOAD = (
    INSERT_COLUMNS.index(n) for n in ("kind", "time", "sensor", "payload")
)
_R_VALUE = INSERT_COLUMNS.index("value")
_R_PACKED = slice(INSERT_COLUMNS.index(PACKED[0]), INSERT_COLUMNS.index(PACKED[-1]) + 1)
assert INSERT_COLUMNS[_R_PACKED] == PACKED and _R_SENSOR == _R_KIND + 2
_INSERT_SINGLE = (
    f"INSERT INTO records (seq, {COLUMNS}) VALUES ({','.join('?' * (1 + len(INSERT_COLUMNS)))})"
)
_PACK_COLUMNS = "seq, n, kind, time, sensor, body"
INSERT_PACK = f"INSERT INTO packs ({_PACK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
_encode_body = msgspec.json.Encoder().encode
_decode_body = msgspec.json.Decoder().decode


def count_sql(kind: str) -> str:
    """A query counting the buffered records of ``kind`` (a trusted literal) without unpacking
    a pack: for tools and benchmarks that watch a buffer grow."""
    return (
        f"SELECT (SELECT count(*) FROM records WHERE kind = '{kind}') + "
        f"(SELECT coalesce(sum(n), 0) FROM packs WHERE kind = '{kind}')"
    )


def upgrade_checks(conn: sqlite3.Connection) -> bool:
    """Rewrite the ``IN (...)`` CHECKs of a buffer file made by an older agent into
    :func:`one_of`'s form, in place; True if it did. The constraints say the same, so the rows
    on disk need no change: SQLite's documented procedure for changing a CHECK (the table's
    ``sql`` in the schema table, then a new schema version, in one transaction) does it in
    constant time, where a rebuild would copy the whole buffer at start-up."""
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'records'")
    sql = (row.fetchone() or [""])[0]

    def or_form(m: re.Match[str]) -> str:
        values = [v.strip().strip("'") for v in m[2].split(",")]
        return one_of(m[1], values)

    new = _LEGACY_CHECK.sub(or_form, sql)
    if new == sql:
        return False
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA schema_version").fetchone()[0])
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'records'", (new,)
        )
        conn.execute(f"PRAGMA schema_version = {version + 1}")
        conn.execute("PRAGMA writable_schema = OFF")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        conn.execute("PRAGMA writable_schema = OFF")
        raise
    return True


def lane_of(kind: str) -> Lane:
    """The lane a record of ``kind`` travels on: events and gaps ``event``, the rest ``live``."""
    return "event" if kind in EVENT_KINDS else "live"


def record_row(record: Record, iso: dict[int, str] | None = None) -> tuple[Any, ...]:
    """An appended record's values in :data:`INSERT_COLUMNS` order, taken by field name (its
    ``seq`` is ignored: the table numbers it; time as ISO 8601, payload as JSON). ``iso`` keeps
    the times already formatted, by object (the readings of one poll share one; ``isoformat``
    was two thirds of the cost of a row), for records that all live while it is used."""
    values = list(astuple(record))
    t = record.time
    if iso is None:
        values[_TIME] = t.isoformat()
    elif (text := iso.get(id(t))) is not None:
        values[_TIME] = text
    else:
        values[_TIME] = iso[id(t)] = t.isoformat()
    raw = values[_RAW]
    if raw is not None and not isinstance(raw, str):
        values[_RAW] = str(raw)
    payload = values[_PAYLOAD]
    values[_PAYLOAD] = json.dumps(payload, separators=(",", ":"), default=str) if payload else None
    values[_SEQ] = lane_of(record.kind)  # the lane, in seq's place
    return (*values, 0)


def pack_rows(rows: Sequence[tuple[Any, ...]], first: int) -> tuple[list[Any], list[Any]]:
    """:func:`record_row` rows numbered from ``first``, split into rows of ``records`` (seq,
    then :data:`INSERT_COLUMNS`) and rows of ``packs``: each run of two or more records of a
    :data:`PACKED_KINDS` kind with the same time and sensor, no payload and a finite or no value
    is one pack (JSON has no NaN or infinity: SQLite's ``json_each`` refuses the whole body)."""
    singles: list[Any] = []
    packs: list[Any] = []
    i, end = 0, len(rows)
    while i < end:
        row = rows[i]
        j = i + 1
        if row[_R_KIND] in PACKED_KINDS and _packable(row):
            key = row[_R_KIND : _R_SENSOR + 1]
            while j < end and _packable(rows[j]) and rows[j][_R_KIND : _R_SENSOR + 1] == key:
                j += 1
        if j - i == 1:
            singles.append((first + i, *row))
        else:
            body = _body([r[_R_PACKED] for r in rows[i:j]])
            packs.append((first + i, j - i, row[_R_KIND], row[_R_TIME], row[_R_SENSOR], body))
        i = j
    return singles, packs


def _packable(row: tuple[Any, ...]) -> bool:
    value = row[_R_VALUE]
    return row[_R_PAYLOAD] is None and (value is None or -math.inf < value < math.inf)


def _body(values: list[Any]) -> str:
    """A pack's body: its records' :data:`PACKED` values as JSON text (msgspec: a seventh of
    the standard library's time for a poll's ten records)."""
    return _encode_body(values).decode()


def unpack(seq: int, body: str) -> list[tuple[int, list[Any]]]:
    """A pack's records as (seq, values in :data:`PACKED` order)."""
    try:
        values = _decode_body(body)
    except msgspec.DecodeError:  # a body the standard library wrote, with NaN or Infinity
        values = json.loads(body)
    return list(enumerate(values, seq))


class StoredRecord(Record, frozen=True, kw_only=True):
    """A record as the buffer holds it: the contract's :class:`~roadside.contract.Record` with
    its sequence number, plus the lane it travels on and whether the fleet committed it."""

    lane: Lane
    synced: bool = False

    @classmethod
    def from_sql(cls, row: sqlite3.Row | dict[str, Any]) -> StoredRecord:
        """A row of ``records`` (``SELECT *``), by column name."""
        d = {name: row[name] for name in _STORED}
        d["time"] = datetime.fromisoformat(d["time"])
        d["payload"] = json.loads(d["payload"]) if d["payload"] else None
        d["synced"] = bool(d["synced"])
        return from_mapping(d, cls)


def seq_runs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sequence numbers as (first, last) runs of consecutive ones: ``[1, 2, 3, 7]`` ->
    ``[(1, 3), (7, 7)]`` (an ack names ranges; one ``BETWEEN`` a run marks them)."""
    runs: list[list[int]] = []
    for seq in sorted(set(seqs)):
        if runs and seq == runs[-1][1] + 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])
    return [(a, b) for a, b in runs]


@dataclass(frozen=True, slots=True)
class BufferStats:
    """How full the buffer is."""

    rows: int
    unsynced: int
    bytes: int
    oldest_unsynced_age_s: float | None
    last_seq: int


class Buffer:
    """The station's durable record store (see the module docstring). Thread-safe."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int,
        clock: Clock,
        synchronous: Literal["full", "normal"] = "full",
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.clock = clock
        self.recovered_from: Path | None = None
        self._lock = threading.RLock()
        self._closed = False
        self._synchronous = synchronous.upper()
        self._failing: dict[str, Any] | None = None  # a run of failed writes, for its gap row
        self._salvaged: list[tuple[Any, ...]] = []  # unsynced rows read from a corrupt file
        self._salvaged_packs: list[tuple[Any, ...]] = []  # and unsynced packs
        self._cannot_open_check()
        floor = self._check_or_move_aside()
        try:
            self._conn = self._connect()
            self._last_seq = self._read_last_seq()
        except sqlite3.Error as exc:
            raise BufferStoreError(f"{self.path}: cannot open the buffer: {exc}") from exc
        reserved, clean = self._read_hwm_state()
        self._hwm_written = 0
        self._counts: list[int] | None = None  # [rows, unsynced], kept as rows come and go
        self._since_cap_check = 0  # bytes appended since the size was last looked at
        if self.recovered_from is not None:
            self._restart_after_corruption(floor)
        else:
            self._check_high_water(reserved, clean)
        self._write_hwm()  # a fresh reservation: the clean marker must not outlive this start

    # -- opening ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA journal_size_limit=4194304")
        conn.execute("PRAGMA cache_size=-512")  # 512 KiB: the workload appends; keep RSS low
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        # A hard ceiling twice the cap: a runaway batch meets SQLITE_FULL, not a full SD card.
        conn.execute(f"PRAGMA max_page_count={max(1024, 2 * self.max_bytes // page_size)}")
        conn.executescript(SCHEMA)
        try:
            if upgrade_checks(conn):
                log.info("buffer %s: CHECK constraints rewritten for faster appends", self.path)
        except sqlite3.Error as exc:  # the old form works, only slower
            log.warning("buffer %s: kept its CHECK constraints as they were: %s", self.path, exc)
        return conn

    def _cannot_open_check(self) -> None:
        """Refuse (without touching anything) a path that cannot hold the buffer right now."""
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BufferStoreError(f"{self.path}: cannot create {parent}: {exc.strerror}") from exc
        if self.path.is_dir():
            raise BufferStoreError(f"{self.path}: is a directory, not a buffer file")
        if self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK):
            raise BufferStoreError(f"{self.path}: cannot read and write it (permissions)")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise BufferStoreError(f"{self.path}: cannot write in {parent} (read-only or mode)")

    def _check_or_move_aside(self) -> int:
        """Quick-check an existing file; move a bad one aside. Returns the old high-water mark."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return 0
        problem = ""
        try:
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                rows = conn.execute("PRAGMA quick_check").fetchall()
                if [r[0] for r in rows] != ["ok"]:
                    problem = "; ".join(str(r[0]) for r in rows[:5])
            finally:
                conn.close()
        except sqlite3.OperationalError as exc:
            if "unable to open" in str(exc) or "disk I/O" in str(exc) or "locked" in str(exc):
                raise BufferStoreError(f"{self.path}: cannot open the buffer: {exc}") from exc
            problem = str(exc)
        except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed"
            problem = str(exc)
        if not problem:
            return 0
        floor = max(self._salvage_last_seq(), self._read_hwm_state()[0])
        stamp = self.clock.now().strftime("%Y%m%dT%H%M%SZ")
        moved = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                os.replace(src, Path(str(moved) + suffix))
        self.recovered_from = moved
        self._salvaged = self._salvage_rows(moved, max(floor, 1), "records")
        self._salvaged_packs = self._salvage_rows(moved, max(floor, 1), "packs")
        log.error(
            "buffer %s failed its integrity check (%s); moved aside to %s",
            self.path,
            problem,
            moved,
            extra={"BUFFER_PATH": str(self.path), "MOVED_TO": str(moved)},
        )
        return floor

    def _salvage_last_seq(self) -> int:
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            try:
                sql = "SELECT seq FROM sqlite_sequence WHERE name='records'"
                row = conn.execute(sql).fetchone()
                top = int(row[0]) if row else 0
                with contextlib.suppress(sqlite3.DatabaseError):  # a file from before packs
                    sql = "SELECT seq + n - 1 FROM packs ORDER BY seq DESC LIMIT 1"
                    top = max(top, (conn.execute(sql).fetchone() or [0])[0])
                return top
            finally:
                conn.close()
        except sqlite3.DatabaseError:
            return 0

    def _salvage_rows(self, moved: Path, upto: int, table: str) -> list[tuple[Any, ...]]:
        """The unsynced rows of ``table`` still readable in a moved-aside file, with their own
        seqs: read in chunks, and row by row through a chunk that hits a damaged page."""
        out: list[tuple[Any, ...]] = []
        try:
            conn = sqlite3.connect(f"file:{moved}?mode=ro", uri=True)
        except sqlite3.Error:
            return out
        columns = f"seq, {COLUMNS}" if table == "records" else f"{_PACK_COLUMNS}, synced"
        select = f"SELECT {columns} FROM {table}"
        with contextlib.suppress(sqlite3.DatabaseError):  # unreadable: try the rows all the same
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
            if conn.execute(sql, (table,)).fetchone() is None:  # a file from before packs
                conn.close()
                return out
        try:
            after, dead = 0, 0
            while after < upto and dead < 50:  # 50 unreadable chunks in a row: the tree is gone
                try:
                    rows = conn.execute(
                        f"{select} WHERE seq > ? AND seq <= ? ORDER BY seq",
                        (after, after + SALVAGE_CHUNK),
                    ).fetchall()
                    dead = 0
                except sqlite3.DatabaseError:
                    rows = []
                    for seq in range(after + 1, after + SALVAGE_CHUNK + 1):
                        try:
                            rows += conn.execute(f"{select} WHERE seq = ?", (seq,)).fetchall()
                        except sqlite3.DatabaseError:
                            continue
                    dead = 0 if rows else dead + 1
                out.extend(r for r in rows if not r[-1])
                after += SALVAGE_CHUNK
        finally:
            conn.close()
        return out

    def _restart_after_corruption(self, floor: int) -> None:
        salvaged, self._salvaged = self._salvaged, []
        packs, self._salvaged_packs = self._salvaged_packs, []
        with self._lock, self._tx():
            if salvaged:
                self._conn.executemany(_INSERT_SINGLE.replace("INTO", "OR IGNORE INTO"), salvaged)
            if packs:
                self._conn.executemany(
                    INSERT_PACK.replace("INTO", "OR IGNORE INTO"), [r[:-1] for r in packs]
                )
            readable = max(
                [int(r[0]) for r in salvaged] + [int(r[0]) + int(r[1]) - 1 for r in packs],
                default=0,
            )
            top = max(floor, readable, self._read_last_seq())
            self._set_sequence(top)
            self._last_seq = top
            gap = Record(
                seq=UNNUMBERED,
                kind="gap",
                time=self.clock.now(),
                reason="buffer_corrupt",
                payload={
                    "moved_to": str(self.recovered_from),
                    "seq_floor": top,
                    "salvaged": len(salvaged) + sum(int(r[1]) for r in packs),
                    "first_seq": readable + 1,
                    "last_seq": top,
                },
            )
            self._insert([gap])
        self._counts = None
        log.error(
            "buffer %s: %d unsynced rows salvaged from %s; seq %d-%d unreadable",
            self.path,
            len(salvaged) + sum(int(r[1]) for r in packs),
            self.recovered_from,
            readable + 1,
            top,
        )

    def _set_sequence(self, top: int) -> None:
        """Make AUTOINCREMENT continue above ``top`` (sqlite_sequence has no unique key)."""
        cur = self._conn.execute(
            "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'records'", (top,)
        )
        if cur.rowcount == 0:
            self._conn.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('records', ?)", (top,)
            )

    def _check_high_water(self, reserved: int, clean: int | None) -> None:
        """Continue above every seq ever used: after a clean close its exact last seq, else the
        reservation (the newest transactions may be lost; their numbers are not reused)."""
        top = clean if clean is not None else reserved
        if top <= self._last_seq:
            return
        first = self._last_seq + 1
        why = "rolled back" if clean is not None else "after an unclean stop"
        with self._lock, self._tx():
            self._set_sequence(top)
            self._last_seq = top
            gap = Record(
                seq=UNNUMBERED,
                kind="gap",
                time=self.clock.now(),
                reason="seq_skipped",
                payload={"first_seq": first, "last_seq": top, "why": why},
            )
            self._insert([gap])
        self._counts = None
        level = logging.ERROR if clean is not None else logging.INFO
        log.log(level, "buffer %s: sequence %s; continuing above %d", self.path, why, top)

    @property
    def _hwm_path(self) -> Path:
        return Path(str(self.path) + ".hwm")

    def _read_hwm_state(self) -> tuple[int, int | None]:
        """The reservation, and the exact last seq if the buffer was closed cleanly."""
        try:
            parts = self._hwm_path.read_text().split()
            reserved = int(parts[0]) if parts else 0
            clean = int(parts[2]) if len(parts) >= 3 and parts[1] == "clean" else None
            return reserved, clean
        except (OSError, ValueError):
            return 0, None

    def _write_hwm(self, *, clean: bool = False) -> None:
        """Keep the reservation ahead of the last seq (fsynced: it must survive a power cut)."""
        if not clean and self._last_seq < self._hwm_written - HWM_RESERVE // 2:
            return
        bound = max(self._hwm_written, self._last_seq + HWM_RESERVE)
        text = f"{bound} clean {self._last_seq}\n" if clean else f"{bound}\n"
        tmp = self._hwm_path.with_suffix(".hwm.tmp")
        try:
            with open(tmp, "w") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self._hwm_path)
            dirfd = os.open(self._hwm_path.parent, os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
        except OSError as exc:  # a full card: the next append tries again
            log.warning("buffer %s: high-water mark not written: %s", self.path, exc)
            return
        self._hwm_written = bound

    def _read_last_seq(self) -> int:
        row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name='records'").fetchone()
        end = self._conn.execute("SELECT seq + n - 1 FROM packs ORDER BY seq DESC LIMIT 1")
        return max(int(row[0]) if row else 0, (end.fetchone() or [0])[0])

    # -- writing ---------------------------------------------------------------------------

    def _tx(self, durable: bool = True) -> _Transaction:
        return _Transaction(self, durable)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Storage errors as :class:`BufferStoreError` naming the file (never raw sqlite3)."""
        try:
            yield
        except sqlite3.Error as exc:
            kind = BufferFullError if "full" in str(exc) else BufferStoreError
            raise kind(f"{self.path}: {exc}") from exc

    def _count(self, rows: int, unsynced: int) -> None:
        if self._counts is not None:
            self._counts[0] += rows
            self._counts[1] += unsynced

    def _counted(self) -> list[int]:
        if self._counts is None:
            rows, unsynced = self._conn.execute(
                "SELECT count(*), coalesce(sum(synced = 0), 0) FROM records"
            ).fetchone()
            packed, packed_unsynced = self._conn.execute(
                "SELECT coalesce(sum(n), 0), coalesce(sum(n * (synced = 0)), 0) FROM packs"
            ).fetchone()
            self._counts = [rows + packed, unsynced + packed_unsynced]
        return self._counts

    def _insert(self, records: Sequence[Record]) -> list[int]:
        """Write ``records`` under the next seqs: a poll's readings as one row of ``packs``,
        the rest one row each in ``records``; AUTOINCREMENT's counter follows the last seq."""
        times: dict[int, str] = {}
        first = self._last_seq + 1
        singles, packs = pack_rows([record_row(r, times) for r in records], first)
        if singles:
            self._conn.executemany(_INSERT_SINGLE, singles)
        if packs:
            self._conn.executemany(INSERT_PACK, packs)
        last = first + len(records) - 1
        self._set_sequence(last)
        self._last_seq = last
        self._count(len(records), len(records))
        return list(range(first, last + 1))

    def append(
        self, records: Sequence[Record], *, state: dict[str, Any] | None = None
    ) -> list[int]:
        """Store ``records`` (and optional ``state`` keys) in one transaction; their seqs in order.

        Enforces the size cap afterwards; on a full disk frees space by the same policy and
        retries once.
        """
        if not records and not state:
            return []
        with self._lock:
            try:
                seqs = self._append_or_free(records, state)
            except BufferStoreError as exc:
                self._note_failure(records, exc)
                raise
            self._since_cap_check += sum(map(_size, records))
            try:
                if self._since_cap_check >= max(4096, self.max_bytes // 100):
                    self.enforce_cap()
            except BufferStoreError as exc:  # committed all the same; the next append may fail
                log.error("%s", exc)
            self._write_hwm()
            if self._failing is not None:
                self._record_failure_gap()
            return seqs

    def _append_or_free(self, records: Sequence[Record], state: dict[str, Any] | None) -> list[int]:
        try:
            return self._append_once(records, state)
        except sqlite3.Error as exc:
            if "full" not in str(exc):
                raise BufferStoreError(f"{self.path}: {exc}") from exc
        # a full card: first give the WAL's pages back (a checkpoint truncates it), then drop
        # by the size policy (deleting needs WAL space too)
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return self._append_once(records, state)
        log.warning("buffer %s: disk full, dropping by the size policy", self.path)
        try:
            self._free(target=int(self.bytes_used() * LOW_WATER))
            return self._append_once(records, state)
        except sqlite3.Error as again:
            raise BufferFullError(f"{self.path}: {again}") from again

    def _note_failure(self, records: Sequence[Record], exc: Exception) -> None:
        """Remember a run of failed writes (times, error) for the gap row written on recovery."""
        now = self.clock.now().isoformat()
        times = [r.time.isoformat() for r in records] or [now]
        if self._failing is None:
            self._failing = {"since": now, "time_from": min(times), "failed_writes": 0}
        self._failing["failed_writes"] += 1
        self._failing["time_to"] = max(times)
        self._failing["error"] = str(exc)[:300]

    def _record_failure_gap(self) -> None:
        failing, self._failing = self._failing, None
        assert failing is not None
        payload = {**failing, "until": self.clock.now().isoformat()}
        try:
            with self._tx():
                self._insert(
                    [
                        Record(
                            seq=UNNUMBERED,
                            kind="gap",
                            time=self.clock.now(),
                            reason="storage_unavailable",
                            payload=payload,
                        )
                    ]
                )
        except sqlite3.Error:
            self._failing = failing  # next time
            return
        log.warning("buffer %s: writes work again after %s", self.path, failing["since"])

    def _append_once(self, records: Sequence[Record], state: dict[str, Any] | None) -> list[int]:
        with self._tx():
            seqs = self._insert(records) if records else []
            for key, value in (state or {}).items():
                self._conn.execute(
                    "INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)",
                    (key, json.dumps(value)),
                )
            return seqs

    def mark_synced(self, seqs: Iterable[int]) -> int:
        """Mark records the fleet confirmed; returns how many were newly marked."""
        runs = seq_runs(seqs)
        if not runs:
            return 0
        with self._lock, self._errors(), self._tx(durable=False):  # a lost mark: a resend
            cur = self._conn.executemany(
                "UPDATE records SET synced = 1 WHERE synced = 0 AND seq BETWEEN ? AND ?", runs
            )
            total = cur.rowcount
            for first, last in runs:
                self._cut(first)
                self._cut(last + 1)  # now no unsynced pack straddles the run's ends
                (packed,) = self._conn.execute(
                    "SELECT coalesce(sum(n), 0) FROM packs "
                    "WHERE synced = 0 AND seq BETWEEN ? AND ?",
                    (first, last),
                ).fetchone()
                if packed:
                    self._conn.execute(
                        "UPDATE packs SET synced = 1 WHERE synced = 0 AND seq BETWEEN ? AND ?",
                        (first, last),
                    )
                    total += packed
            self._count(0, -total)
            return total

    def _cut(self, at: int) -> None:
        """Split in two at ``at`` the unsynced pack, if any, that holds both ``at`` and records
        before it (an ack may name part of a pack); each record keeps its seq."""
        row = self._conn.execute(
            f"SELECT {_PACK_COLUMNS} FROM packs WHERE synced = 0 AND seq < ? "
            "ORDER BY seq DESC LIMIT 1",
            (at,),
        ).fetchone()
        if row is None or row[0] + row[1] <= at:
            return
        seq, n, kind, time, sensor, body = row
        values = [v for _, v in unpack(seq, body)]
        k = at - seq
        self._conn.execute("DELETE FROM packs WHERE seq = ?", (seq,))
        self._conn.executemany(
            INSERT_PACK,
            [
                (seq, k, kind, time, sensor, _body(values[:k])),
                (at, n - k, kind, time, sensor, _body(values[k:])),
            ],
        )

    # -- the size policy -------------------------------------------------------------------

    def bytes_used(self) -> int:
        """Bytes of pages in use (the file minus its free list), plus the WAL on disk."""
        with self._lock:
            page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
            pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
            free = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * page_size

    def enforce_cap(self) -> int:
        """Drop rows by the size policy while above ``max_bytes``; returns rows dropped."""
        with self._lock, self._errors():
            self._since_cap_check = 0
            if self.bytes_used() <= self.max_bytes:
                return 0
            return self._free(target=int(self.max_bytes * LOW_WATER))

    def _free(self, target: int) -> int:
        dropped = 0
        for step in (self._drop_synced, self._drop_routine):
            while self.bytes_used() > target:
                n = step(self._rows_to_free(target))
                if n == 0:
                    break
                dropped += n
            if self.bytes_used() <= target:
                return dropped
        if self.bytes_used() > self.max_bytes:
            raise BufferFullError(
                f"{self.path}: over its {self.max_bytes} byte cap with only warning events "
                "and gap rows left unsynced"
            )
        return dropped

    def _rows_to_free(self, target: int) -> int:
        used = self.bytes_used()
        per_row = used / max(self._counted()[0], 1)
        return max(16, int((used - target) / max(per_row, 1.0) * 1.2))

    def _oldest(self, synced: bool, n: int) -> list[tuple[int, int, str, str]]:
        """The oldest rows of both tables, synced or unsynced routine ones, holding at least
        ``n`` records (or all there are): (seq, records, time, kind), in seq order."""
        where = "synced = 1" if synced else "synced = 0 AND lane = 'live'"
        singles = self._conn.execute(
            f"SELECT seq, 1, time, kind FROM records WHERE {where} ORDER BY seq LIMIT ?", (n,)
        ).fetchall()
        packs = self._conn.execute(
            f"SELECT seq, n, time, kind FROM packs WHERE synced = {int(synced)} "
            "ORDER BY seq LIMIT ?",
            (n,),
        ).fetchall()
        out, held = [], 0
        for row in heapq.merge(map(tuple, singles), map(tuple, packs)):
            if held >= n:
                break
            out.append(row)
            held += row[1]
        return out

    def _drop_synced(self, n: int) -> int:
        with self._tx():
            rows = self._oldest(True, n)
            if not rows:
                return 0
            last = rows[-1][0]
            self._conn.execute("DELETE FROM records WHERE synced = 1 AND seq <= ?", (last,))
            self._conn.execute("DELETE FROM packs WHERE synced = 1 AND seq <= ?", (last,))
            dropped = sum(r[1] for r in rows)
            self._count(-dropped, 0)
            return dropped

    def _drop_routine(self, n: int) -> int:
        """Delete the oldest ``n`` unsynced routine records and record the gap, atomically."""
        with self._tx():
            rows = self._oldest(False, n)
            if not rows:
                return 0
            first, last = rows[0][0], rows[-1][0] + rows[-1][1] - 1
            times = sorted(r[2] for r in rows)
            kinds: dict[str, int] = {}
            for r in rows:
                kinds[r[3]] = kinds.get(r[3], 0) + r[1]
            count = sum(kinds.values())
            self._conn.execute(
                "DELETE FROM records WHERE synced = 0 AND lane = 'live' AND seq BETWEEN ? AND ?",
                (first, last),
            )
            self._conn.execute(
                "DELETE FROM packs WHERE synced = 0 AND seq BETWEEN ? AND ?", (first, last)
            )
            self._count(-count, -count)
            gap = Record(
                seq=UNNUMBERED,
                kind="gap",
                time=self.clock.now(),
                reason="buffer_full",
                payload={
                    "first_seq": first,
                    "last_seq": last,
                    "count": count,
                    "time_from": times[0],
                    "time_to": times[-1],
                    "kinds": kinds,
                },
            )
            self._insert([gap])
        log.warning(
            "buffer full: dropped %d unsynced routine records, seq %d-%d",
            count,
            first,
            last,
            extra={"GAP_FIRST_SEQ": first, "GAP_LAST_SEQ": last},
        )
        return count

    # -- reading ---------------------------------------------------------------------------

    def pending(self, lane: Lane, after_seq: int = 0, limit: int = 500) -> list[StoredRecord]:
        """Unsynced records of ``lane`` after ``after_seq``, in sequence order."""
        return self._both(
            "synced = 0 AND lane = :lane AND seq > :after",
            f"p.synced = 0 AND :lane = 'live' AND p.seq >= {_PACK_AT.format('after')} "
            "AND p.seq + j.key > :after",
            {"lane": lane, "after": after_seq},
            limit,
        )

    def pending_rows(self, lane: Lane, after_seq: int = 0, limit: int = 500) -> list[list[Any]]:
        """:meth:`pending` as wire rows (:data:`roadside.wire.RECORD_FIELDS` order, time in
        integer ms): what the uplink sends, without building a record per row."""
        with self._lock:
            cur = self._conn.cursor()
            cur.row_factory = None
            rows = cur.execute(_PENDING_ROWS, [lane, after_seq, limit]).fetchall()
            packs = (
                cur.execute(_PENDING_PACKS, (after_seq, limit)).fetchall() if lane == "live" else []
            )
        loads, t, p = json.loads, _TIME, _PAYLOAD
        ms: dict[str, int] = {}  # the rows of one poll share their time

        def millis(text: str) -> int:
            got = ms.get(text)
            if got is None:
                got = ms[text] = round(datetime.fromisoformat(text).timestamp() * 1000)
            return got

        out = []
        for r in rows:
            row = list(r)
            row[t] = millis(row[t])
            row[p] = loads(row[p]) if row[p] else None
            out.append(row)
        if not packs:
            return out
        packed = []
        for seq, kind, time, sensor, body in packs:
            head = [kind, millis(time), sensor or ""]
            for s, values in unpack(seq, body):
                if s > after_seq:
                    for i in _PACKED_TEXT:
                        values[i] = values[i] or ""
                    packed.append([s, *head, *values, None])
        # each side holds its first ``limit`` rows: the merge's first ``limit`` are the answer
        return list(heapq.merge(out, packed, key=_first))[:limit]

    @property
    def last_seq(self) -> int:
        """The newest seq written (cheap: no query)."""
        return self._last_seq

    def gaps(self) -> list[StoredRecord]:
        """All gap rows still held, in sequence order (gaps are never packed)."""
        with self._lock, self._errors():
            rows = self._conn.execute("SELECT * FROM records WHERE kind = 'gap' ORDER BY seq")
            return [StoredRecord.from_sql(r) for r in rows]

    def where(
        self, clause: str, params: Sequence[Any] = (), limit: int | None = None
    ) -> list[StoredRecord]:
        """Records matching an SQL ``clause`` over the ``buffered`` view's columns (a record's
        fields, ``lane``, ``synced``), in sequence order. The view unpacks every pack: for
        tools and tests; the agent's own reads go through the indexed methods."""
        sql = f"SELECT * FROM buffered WHERE {clause} ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock, self._errors():
            return [StoredRecord.from_sql(r) for r in self._conn.execute(sql, list(params))]

    def records_since(
        self, seq: int, kind: str, channels: Sequence[str], limit: int
    ) -> list[StoredRecord]:
        """Up to ``limit`` records of ``kind`` on ``channels`` from ``seq`` on, in order."""
        names = {f"c{i}": c for i, c in enumerate(channels)}
        marks = ",".join(f":{n}" for n in names)
        return self._both(
            f"seq >= :seq AND kind = :kind AND channel IN ({marks})",
            f"p.seq >= {_PACK_AT.format('seq')} AND p.kind = :kind "
            f"AND {_PACKED_EXPR['channel']} IN ({marks}) AND p.seq + j.key >= :seq",
            {"seq": seq, "kind": kind, **names},
            limit,
        )

    def _both(
        self, single: str, packed: str, params: dict[str, Any], limit: int | None
    ) -> list[StoredRecord]:
        """Records matching ``single`` in ``records`` and ``packed`` in the unpacked packs
        (each an indexed scan), merged in seq order."""
        tail = "" if limit is None else f" LIMIT {int(limit)}"
        with self._lock, self._errors():
            a = self._conn.execute(
                f"SELECT * FROM records WHERE {single} ORDER BY seq{tail}", params
            ).fetchall()
            # ORDER BY p.seq is the primary key's order, and json_each walks a pack's array in
            # order: no sort (``p.seq, j.key`` would sort every row from the start seq on)
            b = self._conn.execute(
                f"{_PACKED_SELECT} WHERE {packed} ORDER BY p.seq{tail}", params
            ).fetchall()
        merged = list(heapq.merge(a, b, key=lambda r: r["seq"]))[:limit]  # see pending_rows
        return [StoredRecord.from_sql(r) for r in merged]

    def seq_since(self, when: datetime) -> int:
        """The first seq stamped at or after ``when`` (binary search; assumes stamps grow with
        seq, which holds except across clock jumps: good enough to bound a replay)."""
        with self._lock:
            firsts = [
                self._conn.execute(f"SELECT min(seq) FROM {table}").fetchone()[0]
                for table in ("records", "packs")
            ]
            lo, hi = min((f for f in firsts if f is not None), default=1), self._last_seq + 1
            while lo < hi:
                mid = (lo + hi) // 2
                found = [
                    tuple(r)
                    for sql in _FIRST_ROW_FROM
                    if (r := self._conn.execute(sql, (mid,)).fetchone())
                ]
                row = min(found, default=None)
                if row is None or datetime.fromisoformat(row[2]) >= when:
                    hi = mid
                else:
                    lo = row[0] + row[1]  # after the row's last record
            return lo

    def get_state(self, key: str) -> Any:
        """A value stored with :meth:`append`'s ``state``, or None."""
        with self._lock, self._errors():
            row = self._conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def stats(self) -> BufferStats:
        """Row counts, bytes in use, age of the oldest unsynced record and the last seq."""
        with self._lock, self._errors():
            rows, unsynced = self._counted()
            firsts = [
                self._conn.execute(sql, args).fetchone()
                for sql, args in (
                    (
                        "SELECT min(seq), time FROM records WHERE synced = 0 AND lane = ?",
                        ("event",),
                    ),
                    ("SELECT min(seq), time FROM records WHERE synced = 0 AND lane = ?", ("live",)),
                    ("SELECT min(seq), time FROM packs WHERE synced = 0", ()),
                )
            ]
            oldest = min((tuple(f) for f in firsts if f[0] is not None), default=None)
            used = self.bytes_used()
            last = self._last_seq
        age = None
        if oldest:
            age = max(0.0, (self.clock.now() - datetime.fromisoformat(oldest[1])).total_seconds())
        return BufferStats(
            rows=rows, unsynced=unsynced, bytes=used, oldest_unsynced_age_s=age, last_seq=last
        )

    def integrity_check(self) -> list[str]:
        """Full ``PRAGMA integrity_check``; ``["ok"]`` when sound."""
        with self._lock:
            return [r[0] for r in self._conn.execute("PRAGMA integrity_check").fetchall()]

    # -- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Checkpoint the WAL and close; everything appended is already durable."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError as exc:
                log.warning("buffer %s: checkpoint at close failed: %s", self.path, exc)
            self._conn.close()
            self._write_hwm(clean=True)

    def __enter__(self) -> Buffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _size(record: Record) -> int:
    """A rough size of a record on disk (for deciding when to look at the file size)."""
    raw = record.raw
    return 96 + (len(raw) if isinstance(raw, str) else 8) + (len(record.payload or ()) * 24)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection.
    A rolled-back transaction makes the buffer recount its rows when next asked and takes back
    the seqs it numbered (none reached the table).

    ``durable=False`` commits without its own fsync (``synchronous=NORMAL`` for that one
    transaction): for what a power cut may undo harmlessly. The WAL keeps the order, so the next
    durable commit's fsync carries it too."""

    def __init__(self, buffer: Buffer, durable: bool = True) -> None:
        self.buffer = buffer
        self.conn = buffer._conn
        self.last_seq = buffer._last_seq
        self.relaxed = not durable and buffer._synchronous == "FULL"

    def __enter__(self) -> None:
        self._sync("NORMAL")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error:
            self._sync("FULL")
            raise

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            self._end(exc_type)
        finally:
            self._sync("FULL")

    def _sync(self, level: str) -> None:
        if self.relaxed:
            self.conn.execute(f"PRAGMA synchronous={level}")

    def _end(self, exc_type: object) -> None:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
                return
            except sqlite3.Error:
                self.buffer._counts = None
                self.buffer._last_seq = self.last_seq
                raise
        self.buffer._counts = None
        self.buffer._last_seq = self.last_seq
        if self.conn.in_transaction:  # SQLite may already have rolled back (disk full)
            self.conn.execute("ROLLBACK")


_NOT_SHOWN = frozenset({"seq", "raw", "payload"})  # what ``roadside-agent status`` leaves out


def snapshot(path: Path, max_readings: int) -> dict[str, Any] | None:
    """Backlog, gaps and the newest reading and derived value of each channel, read-only (for
    ``roadside-agent status``; never creates the file)."""
    import sqlite_utils  # the status command only: the running agent does without it

    from agent.flags import Flag

    if not path.exists():
        return None
    db = sqlite_utils.Database(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5))
    try:
        # an older agent's file has no packs (and no view)
        packed = "buffered" in db.view_names()
        every = "buffered" if packed else "records"
        records = db.table("records")
        pending = {
            lane: records.count_where("synced = 0 AND lane = ?", [lane])
            for lane in ("event", "live")
        }
        oldest = next(
            db.query("SELECT min(seq), time FROM records WHERE synced = 0"), {"time": None}
        )
        if packed:
            row = next(db.query("SELECT coalesce(sum(n), 0) AS n FROM packs WHERE synced = 0"))
            pending["live"] += row["n"]
            first = next(db.query("SELECT min(seq), time FROM packs WHERE synced = 0"))
            if first["time"] and (oldest["time"] is None or first["min(seq)"] < oldest["min(seq)"]):
                oldest = first
        latest = [
            StoredRecord.from_sql(row)
            for row in db.query(
                f"SELECT *, max(seq) FROM {every} WHERE kind = 'reading' OR kind = 'derived' "
                "GROUP BY kind, sensor, channel ORDER BY kind DESC, sensor, channel LIMIT ?",
                [max_readings],
            )
        ]
        last = next(db.query("SELECT seq FROM sqlite_sequence WHERE name = 'records'"), None)
        gaps = records.count_where("kind = 'gap'")
    finally:
        db.close()
    return {
        "pending": pending,
        "last_seq": last["seq"] if last else 0,
        "gaps": gaps,
        "oldest_unsynced": oldest["time"],
        "latest": [
            {
                **{n: getattr(r, n) for n in RECORD_FIELDS if n not in _NOT_SHOWN},
                "time": r.time.isoformat(),
                "flag": Flag(r.flag).name.lower() if r.flag is not None else None,
            }
            for r in latest
        ],
    }
