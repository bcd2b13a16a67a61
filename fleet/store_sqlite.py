"""SQLite back end: one file, WAL, one connection per thread, ``BEGIN IMMEDIATE`` for writes.

Several controller processes may share one file (writers queue on SQLite's lock, up to
``BUSY_TIMEOUT_MS``); ``synchronous=FULL`` so a batch acknowledged to a station survives a power
cut, not only a crash.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from fleet.errors import StoreError
from fleet.store_sql import SqlStore

BUSY_TIMEOUT_MS = 30_000


def sqlite_path(url: str) -> str:
    """The file a ``sqlite:///path`` URL names (``:memory:`` is refused: one per thread)."""
    if not url.startswith("sqlite:///"):
        raise StoreError(f"--db {url!r}: a SQLite URL is sqlite:///relative/path or sqlite:////abs")
    path = url[len("sqlite:///") :]
    if not path or path == ":memory:":
        raise StoreError(f"--db {url!r}: give a file path (the store is shared between threads)")
    return path


class SQLiteStore(SqlStore):
    """The store in a SQLite file."""

    greatest = "max"
    placeholder = "?"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.path = sqlite_path(url)
        parent = Path(self.path).parent
        if not parent.is_dir():
            raise StoreError(f"--db {url!r}: directory {parent} does not exist")

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            raise StoreError(f"--db {self.url!r}: cannot open SQLite database: {exc}") from exc
        return conn

    def _transaction(self, conn: Any) -> AbstractContextManager[Any]:
        return _immediate(conn)

    def _integrity_errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.IntegrityError,)


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Cursor]:
    cur = conn.cursor()
    cur.execute("BEGIN IMMEDIATE")
    try:
        yield cur
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    else:
        cur.execute("COMMIT")
    finally:
        cur.close()
