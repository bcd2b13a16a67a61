"""What appending one poll costs the buffer, per row: the shipped schema against its older form.

The station commits every group of polls in one transaction (``agent.buffer.Buffer.append``).
Each variant below gets the same rows (``agent.buffer.record_row`` of a 100 ms poll of three
devices with ten registers each: 30 rows a transaction) into a WAL file already holding 90,000,
with the buffer's pragmas (``synchronous=NORMAL`` here: the fsync is the disk's, not SQLite's):

- ``shipped``: :data:`agent.buffer.SCHEMA`, CHECKs as OR-ed equalities;
- ``in_list`` (the baseline): the same table with the CHECKs written ``IN (...)``, as buffers made
  before 2026-12-01 had them. SQLite builds an ephemeral table for an ``IN`` list at every
  execution of the INSERT;
- ``bare``: a five-column table without constraints or indexes (what the peer benchmark's bare
  loop writes), for scale;
- ``packed``: the shipped table, one row a poll and device with the ten values in its payload
  (JSON): what one row a poll would cost, per value. The buffer does not do this (every reader
  of ``records`` would have to unpack); it bounds what that change could still win.

CPU time (``time.thread_time``) of the INSERTs and the COMMIT, per row (per value for
``packed``); medians over ``--rounds`` rounds, the variants interleaved in each round. Prints a
table, then one JSON line LAST: ``value`` = shipped, ``baseline`` = in_list, ``ratio`` =
baseline / value.

    .venv/bin/python bench/bench_buffer_append.py [--rounds 9] [--transactions 100]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.buffer import COLUMNS, INSERT_COLUMNS, SCHEMA, record_row  # noqa: E402
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


def packed_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """One row a device: the shared columns once, the values of its channels as JSON."""
    sensor, payload = INSERT_COLUMNS.index("sensor"), INSERT_COLUMNS.index("payload")
    out = []
    for d in range(DEVICES):
        group = rows[d * REGISTERS : (d + 1) * REGISTERS]
        row = list(group[0])
        row[sensor + 1 :] = [None] * (len(row) - sensor - 1)
        row[payload] = json.dumps([r[sensor + 1 : payload] for r in group], separators=(",", ":"))
        row[-1] = 0
        out.append(tuple(row))
    return out


def fresh(path: Path, schema: str) -> sqlite3.Connection:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA cache_size=-512")  # as the buffer
    conn.executescript(schema)
    return conn


def per_row(conn: sqlite3.Connection, sql: str, rows: list[Any], n: int, per: int) -> float:
    """CPU microseconds a row (``per`` rows or values a transaction) over ``n`` transactions."""
    conn.execute("BEGIN")
    for _ in range(PREFILL):
        conn.executemany(sql, rows)
    conn.execute("COMMIT")
    spent = 0.0
    for _ in range(n):
        t = time.thread_time()
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
        spent += time.thread_time() - t
    return spent / n / per * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=9, help="rounds (medians)")
    ap.add_argument("--transactions", type=int, default=100, help="timed transactions a round")
    args = ap.parse_args()
    rows = poll_rows()
    per_poll = len(rows)
    bare = [(d, i, rows[0][2], 200.0 + i) for d in range(DEVICES) for i in range(REGISTERS)]
    variants = {
        "shipped": (SCHEMA, INSERT, rows),
        "in_list": (LEGACY, INSERT, rows),
        "bare": (BARE, BARE_INSERT, bare),
        "packed": (SCHEMA, INSERT, packed_rows(rows)),
    }
    got: dict[str, list[float]] = {k: [] for k in variants}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "buffer.sqlite"
        for _ in range(args.rounds):
            for name, (schema, sql, batch) in variants.items():
                conn = fresh(db, schema)
                got[name].append(per_row(conn, sql, batch, args.transactions, per_poll))
                conn.close()
    med = {k: statistics.median(v) for k, v in got.items()}
    print(f"{'variant':10s} {'us a row':>9s}  (median of {args.rounds}; min-max)")
    for k, v in got.items():
        unit = "a value" if k == "packed" else ""
        print(f"{k:10s} {med[k]:9.2f}  ({min(v):.2f}-{max(v):.2f}) {unit}")
    print(
        json.dumps(
            {
                "bench": "buffer_append",
                "metric": "cpu_us_per_row",
                "value": round(med["shipped"], 2),
                "unit": "us/row",
                "baseline": round(med["in_list"], 2),
                "ratio": round(med["in_list"] / med["shipped"], 2),
                "bare_us_per_row": round(med["bare"], 2),
                "packed_us_per_value": round(med["packed"], 2),
                "rows_per_transaction": per_poll,
                "rounds": args.rounds,
            }
        )
    )


if __name__ == "__main__":
    main()
