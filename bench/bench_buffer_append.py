"""Appending a poll to the buffer, per value: one row a poll (shipped) against one a record.

The station commits every group of polls in one transaction (``agent.buffer.Buffer.append``).
Each variant below gets the same poll (three devices with ten registers each: 30 readings a
transaction, ``agent.buffer.record_row`` of each) into a WAL file already holding 90,000, with the
buffer's pragmas (``synchronous=NORMAL`` here: the fsync is the disk's, not SQLite's):

- ``packed`` (shipped): :func:`agent.buffer.pack_rows`, one row of ``packs`` a device;
- ``per_record`` (the baseline): one row of ``records`` a reading, as the buffer wrote them
  before 2026-12-01's evening;
- ``in_list``: the same with the CHECKs written ``IN (...)``, as buffers made before
  2026-12-01 had them. SQLite builds an ephemeral table for an ``IN`` list at every execution
  of the INSERT;
- ``bare``: a five-column table without constraints or indexes (what the peer benchmark's bare
  loop writes), for scale.

CPU time (``time.thread_time``) of packing, the INSERTs and the COMMIT, per value; medians over
``--rounds`` rounds, the variants interleaved in each round. Then the whole ``Buffer`` each
round, packed and with packing off: a minute of 100 ms polls, each second's appended, read back
by ``pending_rows`` and marked synced, as the agent's main loop and uplink do. Prints the
tables, then one JSON line LAST: ``value`` = packed, ``baseline`` = per_record, ``ratio`` =
baseline / value, and the round trip's [append, read and mark] per value for both.

    .venv/bin/python bench/bench_buffer_append.py [--rounds 9] [--transactions 100]

Measured 2026-12-01, 22:20 UTC, on the 2-core shared host, us a value (median of 9): packed
2.14, per_record 4.81 (ratio 2.25), in_list 5.73, bare 1.26. The whole buffer: append 2.97
packed against 5.60 a row a record; pending_rows and mark_synced 1.40 against 3.43.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import agent.buffer  # noqa: E402
from agent.buffer import COLUMNS, INSERT_COLUMNS, INSERT_PACK, SCHEMA, pack_rows, record_row  # noqa: E402
from roadside.clock import ManualClock  # noqa: E402
from roadside.contract import UNNUMBERED, Record  # noqa: E402

PREFILL = 3000  # transactions of 30 rows already in the file
DEVICES, REGISTERS = 3, 10
LEGACY = SCHEMA.replace(
    "CHECK (lane = 'event' OR lane = 'live')", "CHECK (lane IN ('event', 'live'))"
).replace(
    "CHECK (kind = 'reading' OR kind = 'derived' OR kind = 'event' OR kind = 'gap' OR "
    "kind = 'forecast')",
    "CHECK (kind IN ('reading', 'derived', 'event', 'gap', 'forecast'))",
)
assert " IN (" in LEGACY, "the shipped CHECKs changed: update LEGACY"
BARE = (
    "CREATE TABLE records (id INTEGER PRIMARY KEY, device INTEGER, register INTEGER,"
    " time TEXT, value REAL);"
)
INSERT = f"INSERT INTO records ({COLUMNS}) VALUES ({','.join('?' * len(INSERT_COLUMNS))})"
BARE_INSERT = "INSERT INTO records (device, register, time, value) VALUES (?, ?, ?, ?)"


def poll_rows() -> list[tuple[Any, ...]]:
    """One poll's rows as the buffer writes them."""
    now = datetime.now(UTC)
    records = [
        Record(seq=UNNUMBERED, kind="reading", time=now, sensor=f"dev{d}", channel=f"reg{i}",
               value=200.0 + i, unit="u", raw=str(2000 + i), status="ok", flag=1, reason="")
        for d in range(1, DEVICES + 1)
        for i in range(REGISTERS)
    ]  # fmt: skip
    iso: dict[int, str] = {}
    return [record_row(r, iso) for r in records]


def fresh(path: Path, schema: str) -> sqlite3.Connection:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-512")  # as the buffer
    conn.executescript(schema)
    return conn


Write = Callable[[sqlite3.Connection, int], None]
"""Writes one poll into a connection; the int is the poll's first seq."""


def per_value(conn: sqlite3.Connection, write: Write, n: int, per: int) -> float:
    """CPU microseconds a value (``per`` values a transaction) over ``n`` transactions."""
    conn.execute("BEGIN")
    for i in range(PREFILL):
        write(conn, 1 + i * per)
    conn.execute("COMMIT")
    spent = 0.0
    for i in range(PREFILL, PREFILL + n):
        t = time.thread_time()
        conn.execute("BEGIN")
        write(conn, 1 + i * per)
        conn.execute("COMMIT")
        spent += time.thread_time() - t
    return spent / n / per * 1e6


def variants(rows: list[tuple[Any, ...]]) -> dict[str, tuple[str, Write]]:
    """Each variant's schema and its write of one poll."""
    bare = [(d, i, rows[0][2], 200.0 + i) for d in range(DEVICES) for i in range(REGISTERS)]

    def packed(conn: sqlite3.Connection, first: int) -> None:
        singles, packs = pack_rows(rows, first)
        assert not singles
        conn.executemany(INSERT_PACK, packs)

    def per_record(conn: sqlite3.Connection, first: int) -> None:
        conn.executemany(INSERT, rows)

    def bare_rows(conn: sqlite3.Connection, first: int) -> None:
        conn.executemany(BARE_INSERT, bare)

    return {
        "packed": (SCHEMA, packed),
        "per_record": (SCHEMA, per_record),
        "in_list": (LEGACY, per_record),
        "bare": (BARE, bare_rows),
    }


def round_trip(tmp: Path, pack: bool, seconds: int = 60) -> tuple[float, float]:
    """CPU microseconds a value of the whole :class:`agent.buffer.Buffer`: ``append`` of one
    second of 100 ms polls, then the uplink's ``pending_rows`` and ``mark_synced`` of them.
    ``pack=False`` is the baseline: the same buffer with no kind packed (a row a record)."""
    agent.buffer.PACKED_KINDS = ("reading", "derived") if pack else ()
    clock = ManualClock(datetime(2026, 12, 1, tzinfo=UTC))
    path = tmp / f"round-trip-{pack}.db"
    buf = agent.buffer.Buffer(path, max_bytes=1 << 28, clock=clock, synchronous="normal")
    appended = sent = 0.0
    after = values = 0
    try:
        for k in range(seconds):
            now = clock.now() + timedelta(seconds=k)
            records = [
                Record(seq=UNNUMBERED, kind="reading", time=now + timedelta(seconds=p / 10),
                       sensor=f"dev{d}", channel=f"reg{i}", value=200.0 + i, unit="u",
                       raw=str(2000 + i), status="ok", flag=1, reason="")
                for p in range(10)
                for d in range(DEVICES)
                for i in range(REGISTERS)
            ]  # fmt: skip
            t0 = time.thread_time()
            buf.append(records)
            t1 = time.thread_time()
            rows = buf.pending_rows("live", after_seq=after, limit=500)
            buf.mark_synced([r[0] for r in rows])
            t2 = time.thread_time()
            assert len(rows) == len(records)
            after = rows[-1][0]
            appended, sent, values = appended + t1 - t0, sent + t2 - t1, values + len(records)
    finally:
        buf.close()
        agent.buffer.PACKED_KINDS = ("reading", "derived")
        for f in tmp.glob("round-trip-*"):
            f.unlink()
    return appended / values * 1e6, sent / values * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=9, help="rounds (medians)")
    ap.add_argument("--transactions", type=int, default=100, help="timed transactions a round")
    args = ap.parse_args()
    rows = poll_rows()
    chosen = variants(rows)
    got: dict[str, list[float]] = {k: [] for k in chosen}
    trips: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "buffer.sqlite"
        for _ in range(args.rounds):
            for name, (schema, write) in chosen.items():
                conn = fresh(db, schema)
                got[name].append(per_value(conn, write, args.transactions, len(rows)))
                conn.close()
            for pack in (True, False):
                trips[pack].append(round_trip(Path(tmp), pack))
    med = {k: statistics.median(v) for k, v in got.items()}
    print(f"{'variant':10s} {'us a value':>10s}  (median of {args.rounds}; min-max)")
    for k, v in got.items():
        print(f"{k:10s} {med[k]:10.2f}  ({min(v):.2f}-{max(v):.2f})")
    trip = {pack: [statistics.median(t[i] for t in trips[pack]) for i in (0, 1)] for pack in trips}
    print("the whole buffer, us a value: append | pending_rows + mark_synced")
    for pack, name in ((True, "packed"), (False, "per_record")):
        print(f"{name:10s} {trip[pack][0]:10.2f} | {trip[pack][1]:.2f}")
    print(
        json.dumps(
            {
                "bench": "buffer_append",
                "metric": "cpu_us_per_value",
                "value": round(med["packed"], 2),
                "unit": "us/value",
                "baseline": round(med["per_record"], 2),
                "ratio": round(med["per_record"] / med["packed"], 2),
                "in_list_us_per_value": round(med["in_list"], 2),
                "bare_us_per_value": round(med["bare"], 2),
                "round_trip_packed_us_per_value": [round(x, 2) for x in trip[True]],
                "round_trip_per_record_us_per_value": [round(x, 2) for x in trip[False]],
                "values_per_transaction": len(rows),
                "rounds": args.rounds,
            }
        )
    )


if __name__ == "__main__":
    main()
