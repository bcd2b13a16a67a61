"""PostgreSQL back end (psycopg 3): one autocommit connection per thread, explicit transactions.

The URL is a libpq URL; a schema other than ``public`` is chosen the libpq way, e.g.
``postgresql://postgres@127.0.0.1/test?options=-csearch_path%3Dfleet`` (tests use a fresh schema).
Batch inserts go through ``executemany``, which psycopg pipelines.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg

from fleet.errors import StoreError
from fleet.store import IngestBatch
from fleet.store_sql import RECORD_COLUMNS, SqlStore, record_rows

CONNECT_TIMEOUT_S = 10
SCHEMA_LOCK = 0x526F6164  # any constant shared by every controller process


class PostgresStore(SqlStore):
    """The store in a PostgreSQL database."""

    greatest = "GREATEST"
    placeholder = "%s"

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"--db {self.url!r}: cannot connect to PostgreSQL: {first}") from exc

    def init(self) -> None:
        """Create the tables; an advisory lock keeps two controllers starting at once apart."""
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            for statement in self._schema_statements():
                cur.execute(statement)

    def _insert_records(self, cur: Any, batch: IngestBatch) -> int:
        """COPY the batch into a per-connection staging table, then one INSERT ... ON CONFLICT
        DO NOTHING from it (row-by-row INSERTs cost PostgreSQL a round trip each)."""
        if not batch.records:
            return 0
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS records_in "
            "(LIKE records INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        cur.execute("DELETE FROM records_in")  # rows of an earlier batch in this transaction
        with cur.copy(f"COPY records_in ({RECORD_COLUMNS}) FROM STDIN") as copy:
            for row in record_rows(batch):
                copy.write_row(row)
        cur.execute(
            f"INSERT INTO records ({RECORD_COLUMNS}) SELECT {RECORD_COLUMNS} FROM records_in "
            "ON CONFLICT (station, seq) DO NOTHING"
        )
        return max(0, int(cur.rowcount))

    def _transaction(self, conn: Any) -> AbstractContextManager[Any]:
        return _pg_transaction(conn)

    def _integrity_errors(self) -> tuple[type[BaseException], ...]:
        return (psycopg.errors.UniqueViolation,)


@contextmanager
def _pg_transaction(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Cursor[Any]]:
    with conn.transaction(), conn.cursor() as cur:
        yield cur
