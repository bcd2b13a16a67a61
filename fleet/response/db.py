"""The response chain's tables, in the fleet store's own database (SQLite or PostgreSQL).

Uses the store's connection per thread and its transaction context, so a publication, its
identifier serial and its outbox rows commit together. Tables (all ``resp_``-prefixed):

- ``entities``: register entries (cells, hazard points, key units, the plan), a row per version.
- ``inspections``: lightning-protection inspections of key units.
- ``signals`` / ``proposals`` / ``decisions`` / ``actions``: a cell's active signals, the level
  the plan proposes, the flood-control office's decision (who, which level, when) and the tracked
  actions (assigned, acknowledged, done).
- ``messages``: every CAP message (draft, approved, published, rejected); a published row is
  never written again. ``serials``: the ``_n`` of GB/T 35965.1 identifiers per second.
- ``outbox``: one row per delivery (message, channel, target); ``acks``: a token per unit and
  message; ``linktests``; ``seen`` (station events already taken in).
- ``drills``, ``reports`` (field reports), ``dq`` (data-quality events), ``incidents``,
  ``partners`` (hashed tokens).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from fleet.store import Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS resp_entities (
    kind TEXT NOT NULL, id TEXT NOT NULL, version BIGINT NOT NULL, data TEXT,
    created DOUBLE PRECISION NOT NULL, author TEXT NOT NULL, PRIMARY KEY (kind, id, version));
CREATE TABLE IF NOT EXISTS resp_inspections (
    id TEXT PRIMARY KEY, unit TEXT NOT NULL, due DOUBLE PRECISION NOT NULL,
    done DOUBLE PRECISION, result TEXT NOT NULL, findings TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resp_signals (
    cell TEXT NOT NULL, signal TEXT NOT NULL, source TEXT NOT NULL, colour TEXT NOT NULL,
    certainty TEXT NOT NULL, t DOUBLE PRECISION NOT NULL, PRIMARY KEY (cell, signal, source));
CREATE TABLE IF NOT EXISTS resp_proposals (
    cell TEXT NOT NULL, t DOUBLE PRECISION NOT NULL, level TEXT, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS resp_proposals_cell ON resp_proposals (cell, t);
CREATE TABLE IF NOT EXISTS resp_decisions (
    id TEXT PRIMARY KEY, cell TEXT NOT NULL, level TEXT, proposed TEXT, by_name TEXT NOT NULL,
    t DOUBLE PRECISION NOT NULL, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resp_actions (
    id TEXT PRIMARY KEY, cell TEXT NOT NULL, decision TEXT NOT NULL, action TEXT NOT NULL,
    label TEXT NOT NULL, assignee TEXT NOT NULL, state TEXT NOT NULL,
    assigned DOUBLE PRECISION NOT NULL, acknowledged DOUBLE PRECISION, done DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS resp_messages (
    id TEXT PRIMARY KEY, chain TEXT NOT NULL, identifier TEXT UNIQUE, msg_type TEXT NOT NULL,
    status TEXT NOT NULL, state TEXT NOT NULL, severity TEXT NOT NULL, author TEXT NOT NULL,
    approver TEXT, drill TEXT, cells TEXT NOT NULL, refs TEXT NOT NULL, content TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL, approved DOUBLE PRECISION, published DOUBLE PRECISION,
    expires DOUBLE PRECISION, xml TEXT);
CREATE INDEX IF NOT EXISTS resp_messages_chain ON resp_messages (chain, created);
CREATE TABLE IF NOT EXISTS resp_serials (prefix TEXT PRIMARY KEY, n BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS resp_outbox (
    id TEXT PRIMARY KEY, message TEXT NOT NULL, channel TEXT NOT NULL, target TEXT NOT NULL,
    unit TEXT, address TEXT NOT NULL, step INTEGER NOT NULL, backup INTEGER NOT NULL,
    not_before DOUBLE PRECISION NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL,
    next_try DOUBLE PRECISION NOT NULL, last_error TEXT NOT NULL, sent_at DOUBLE PRECISION,
    UNIQUE (message, channel, target));
CREATE INDEX IF NOT EXISTS resp_outbox_due ON resp_outbox (state, next_try);
CREATE TABLE IF NOT EXISTS resp_acks (
    token TEXT PRIMARY KEY, message TEXT NOT NULL, unit TEXT NOT NULL,
    acked DOUBLE PRECISION, via TEXT, UNIQUE (message, unit));
CREATE TABLE IF NOT EXISTS resp_linktests (
    channel TEXT NOT NULL, t DOUBLE PRECISION NOT NULL, ok INTEGER NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resp_seen (station TEXT NOT NULL, seq BIGINT NOT NULL,
    PRIMARY KEY (station, seq));
CREATE TABLE IF NOT EXISTS resp_docs (
    kind TEXT NOT NULL, id TEXT NOT NULL, t DOUBLE PRECISION NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (kind, id))
"""
"""``resp_docs`` holds the small documents of the rest: drills, field reports, data-quality
events, incidents and partners (kind, id, time, JSON)."""


SCHEMA_LOCK = 0x52657370  # PostgreSQL advisory lock: controllers creating the tables at once


def dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


class ResponseDB:
    """Thin SQL access over the fleet store's connections (``?`` placeholders, both dialects)."""

    def __init__(self, store: Store) -> None:
        self.store: Any = store  # a SqlStore: _tx/_query/_sql are shared within the fleet package
        self.init()

    def init(self) -> None:
        with self.tx() as cur:
            if getattr(self.store, "placeholder", "?") == "%s":  # PostgreSQL: one at a time
                cur.run("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    cur.run(statement)

    @contextmanager
    def tx(self) -> Iterator[Cursor]:
        """One transaction; commits on success."""
        with self.store._tx() as cur:
            yield Cursor(cur, self.store._sql)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.store._query(sql, params))

    # -- register ----------------------------------------------------------------------------------
    def put_entities(
        self, kind: str, items: Iterable[tuple[str, dict[str, Any] | None]], author: str, t: float
    ) -> dict[str, int]:
        """Store a new version of each changed entity (``None`` retires it); id -> version."""
        out: dict[str, int] = {}
        with self.tx() as cur:
            for ident, data in items:
                row = cur.one(
                    "SELECT version, data FROM resp_entities WHERE kind = ? AND id = ? "
                    "ORDER BY version DESC LIMIT 1",
                    (kind, ident),
                )
                text = None if data is None else dump(data)
                if row is not None and row[1] == text:
                    out[ident] = int(row[0])
                    continue
                version = 1 if row is None else int(row[0]) + 1
                cur.run(
                    "INSERT INTO resp_entities (kind, id, version, data, created, author) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (kind, ident, version, text, t, author),
                )
                out[ident] = version
        return out

    def entities(self, kind: str) -> dict[str, dict[str, Any]]:
        """The newest version of each live entity of a kind (with ``_version``)."""
        rows = self.query(
            "SELECT e.id, e.version, e.data FROM resp_entities e WHERE e.kind = ? AND e.version = "
            "(SELECT MAX(version) FROM resp_entities x WHERE x.kind = e.kind AND x.id = e.id)",
            (kind,),
        )
        return {r[0]: {**json.loads(r[2]), "_version": int(r[1])} for r in rows if r[2] is not None}

    def history(self, kind: str, ident: str) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT version, data, created, author FROM resp_entities WHERE kind = ? AND id = ? "
            "ORDER BY version",
            (kind, ident),
        )
        return [
            {"version": int(v), "data": None if d is None else json.loads(d), "time": t, "by": a}
            for v, d, t, a in rows
        ]

    # -- small documents ---------------------------------------------------------------------------
    def put_doc(self, kind: str, ident: str, t: float, data: dict[str, Any]) -> None:
        with self.tx() as cur:
            cur.run("DELETE FROM resp_docs WHERE kind = ? AND id = ?", (kind, ident))
            cur.run(
                "INSERT INTO resp_docs (kind, id, t, data) VALUES (?, ?, ?, ?)",
                (kind, ident, t, dump(data)),
            )

    def docs(self, kind: str, since: float | None = None) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT data FROM resp_docs WHERE kind = ? AND t >= ? ORDER BY t, id",
            (kind, -1e18 if since is None else since),
        )
        return [json.loads(r[0]) for r in rows]

    def doc(self, kind: str, ident: str) -> dict[str, Any] | None:
        rows = self.query("SELECT data FROM resp_docs WHERE kind = ? AND id = ?", (kind, ident))
        return json.loads(rows[0][0]) if rows else None

    # -- identifiers -------------------------------------------------------------------------------
    @staticmethod
    def next_serial(cur: Cursor, prefix: str) -> int:
        """The next ``_n`` for an identifier prefix, inside the caller's transaction."""
        row = cur.one(
            "INSERT INTO resp_serials (prefix, n) VALUES (?, 1) ON CONFLICT (prefix) "
            "DO UPDATE SET n = resp_serials.n + 1 RETURNING n",
            (prefix,),
        )
        assert row is not None
        return int(row[0])


class Cursor:
    """A cursor that speaks ``?`` placeholders on either back end."""

    def __init__(self, cur: Any, sql: Any) -> None:
        self.cur = cur
        self._sql = sql

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.cur.execute(self._sql(sql), tuple(params))
        return int(self.cur.rowcount)

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self.cur.execute(self._sql(sql), tuple(params))
        row = self.cur.fetchone()
        return None if row is None else tuple(row)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.cur.execute(self._sql(sql), tuple(params))
        return [tuple(r) for r in self.cur.fetchall()]
