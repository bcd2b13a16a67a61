"""The SQL both back ends share: schema, ingest, registry, documents, reports, rollouts.

A back end supplies connections (one per thread), a transaction context and two dialect words
(placeholder style, the name of the two-argument maximum); everything else is one SQL text that
SQLite and PostgreSQL both accept.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import MISSING, fields
from datetime import UTC, datetime
from typing import Any, get_args, get_origin, get_type_hints

from msgspec.structs import astuple

from fleet.store import (
    REPORTED_FIELDS,
    ConfigReport,
    Conflict,
    Document,
    DocumentMaker,
    IngestBatch,
    IngestResult,
    Rollout,
    StationInfo,
    StationUpdate,
    StoredRecord,
)
from roadside.contract import RECORD_FIELDS, TEXT_FIELDS, from_mapping, record_sql_types

_COLUMN = {"time": "t"}  # record field -> column name where they differ
_TYPE = {"INTEGER": "INTEGER", "REAL": "DOUBLE PRECISION", "TEXT": "TEXT"}
_SQL = {**record_sql_types("DOUBLE PRECISION"), "seq": "BIGINT"}  # time: epoch seconds
_NOT_NULL = {"seq", "kind", "time"}
_RECORD_DDL = ", ".join(
    f"{_COLUMN.get(f, f)} {_TYPE.get(_SQL[f], _SQL[f])}" + (" NOT NULL" if f in _NOT_NULL else "")
    for f in RECORD_FIELDS
)


def _station_columns() -> dict[str, tuple[str, type]]:
    """Registry column -> (SQL declaration, Python type), from :class:`fleet.store.StationInfo`'s
    fields (``groups`` live in ``station_groups``; objects as JSON text)."""
    sql = {bool: "INTEGER", int: "BIGINT", float: "DOUBLE PRECISION", str: "TEXT", dict: "TEXT"}
    hints = get_type_hints(StationInfo)
    out: dict[str, tuple[str, type]] = {}
    for f in sorted(fields(StationInfo), key=lambda f: f.name != "station"):  # the key first
        if f.name == "groups":
            continue
        hint = hints[f.name]
        members = [a for a in get_args(hint) if a is not type(None)] or [hint]
        py = get_origin(members[0]) or members[0]
        decl = sql[py]
        if f.name == "station":
            decl += " PRIMARY KEY"
        elif type(None) not in get_args(hint):
            decl += " NOT NULL"
        if f.default not in (MISSING, None):
            decl += f" DEFAULT {f.default!r}"
        out[f.name] = (decl, py)
    return out


_STATION = _station_columns()
_STATION_DDL = ", ".join(f"{name} {decl}" for name, (decl, _) in _STATION.items())
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS records (
    station TEXT NOT NULL, lane TEXT NOT NULL, {_RECORD_DDL},
    received DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (station, seq));
CREATE INDEX IF NOT EXISTS records_channel_t ON records (station, channel, t);
CREATE INDEX IF NOT EXISTS records_kind_t ON records (kind, t);
CREATE TABLE IF NOT EXISTS stations ({_STATION_DDL});
CREATE TABLE IF NOT EXISTS station_groups (
    name TEXT NOT NULL, station TEXT NOT NULL, PRIMARY KEY (name, station));
CREATE TABLE IF NOT EXISTS documents (
    scope TEXT NOT NULL, version BIGINT NOT NULL, hash TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL, signed TEXT NOT NULL, PRIMARY KEY (scope, version));
CREATE INDEX IF NOT EXISTS documents_hash ON documents (hash);
CREATE TABLE IF NOT EXISTS reports (
    station TEXT NOT NULL, scope TEXT NOT NULL, version BIGINT NOT NULL, hash TEXT NOT NULL,
    result TEXT NOT NULL, reason TEXT NOT NULL, t DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (station, scope));
CREATE TABLE IF NOT EXISTS report_log (
    station TEXT NOT NULL, scope TEXT NOT NULL, version BIGINT NOT NULL, hash TEXT NOT NULL,
    result TEXT NOT NULL, reason TEXT NOT NULL, t DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS report_log_station_t ON report_log (station, t);
CREATE TABLE IF NOT EXISTS record_conflicts (
    station TEXT NOT NULL, seq BIGINT NOT NULL, received DOUBLE PRECISION NOT NULL,
    stored TEXT NOT NULL, offered TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS record_conflicts_station ON record_conflicts (station, seq);
CREATE TABLE IF NOT EXISTS rollouts (
    id TEXT PRIMARY KEY, scope TEXT NOT NULL, version BIGINT NOT NULL,
    canary_group TEXT NOT NULL, canaries TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL, updated DOUBLE PRECISION NOT NULL, extra TEXT NOT NULL)
"""

_RECORD_NAMES = ("station", "lane", *RECORD_FIELDS, "received")
"""The stored record's fields, in column order: the contract's record plus station, lane and
the controller's receive time (:class:`fleet.store.StoredRecord` has exactly these)."""
_TEXT_AT = tuple(i for i, n in enumerate(RECORD_FIELDS) if n in TEXT_FIELDS)
_TIME_AT, _RAW_AT, _PAYLOAD_AT = (RECORD_FIELDS.index(n) for n in ("time", "raw", "payload"))
RECORD_COLUMNS = ", ".join(_COLUMN.get(n, n) for n in _RECORD_NAMES)
INSERT_RECORD = (
    f"INSERT INTO records ({RECORD_COLUMNS}) VALUES ({', '.join('?' * len(_RECORD_NAMES))}) "
    "ON CONFLICT (station, seq) DO NOTHING"
)
STATION_COLUMNS = ", ".join(_STATION)
"""The registry's columns: :class:`fleet.store.StationInfo`'s fields by name."""
_CONTENT = tuple(n for n in RECORD_FIELDS if n != "seq")
"""What a (station, seq) holds: a repeat with other content is a conflict, not a duplicate."""
CONTENT_COLUMNS = ", ".join(_COLUMN.get(n, n) for n in _CONTENT)
REPORT_COLUMNS = "station, scope, version, hash, result, reason, t"
ROLLOUT_COLUMNS = (
    "id, scope, version, canary_group, canaries, state, reason, created, updated, extra"
)


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)


def record_rows(batch: IngestBatch) -> list[tuple[Any, ...]]:
    """A batch's records as rows in :data:`RECORD_COLUMNS` order, taken by field name: the one
    edge where a record's time becomes epoch seconds, absent text NULL, raw text and the
    payload JSON."""
    out = []
    head, tail = (batch.station, batch.lane), (batch.received,)
    for r in batch.records:
        values = list(astuple(r))
        for i in _TEXT_AT:
            values[i] = values[i] or None
        values[_TIME_AT] = r.time.timestamp()
        raw = values[_RAW_AT]
        values[_RAW_AT] = None if raw is None else str(raw)
        values[_PAYLOAD_AT] = _dump(values[_PAYLOAD_AT])
        out.append((*head, *values, *tail))
    return out


def stored_record(row: Sequence[Any]) -> StoredRecord:
    """A row selected as :data:`RECORD_COLUMNS` back as a stored record, by field name (epoch
    seconds back to UTC datetimes, NULL text back to "")."""
    d = dict(zip(_RECORD_NAMES, row, strict=True))
    d["payload"] = _load(d["payload"])
    d["time"] = datetime.fromtimestamp(float(d["time"]), UTC)
    d["received"] = datetime.fromtimestamp(float(d["received"]), UTC)
    return from_mapping(d, StoredRecord)


def _same_content(stored: tuple[Any, ...], offered: tuple[Any, ...]) -> bool:
    """The same record, column by column (numbers compared as floats, text as text)."""
    for a, b in zip(stored, offered, strict=True):
        if a == b:
            continue
        if isinstance(a, int | float) and isinstance(b, int | float) and float(a) == float(b):
            continue
        return False
    return True


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _to_column(name: str, value: Any) -> Any:
    """A registry value as its column holds it (objects as JSON, flags as 0/1)."""
    if value is None:
        return None
    py = _STATION[name][1]
    return _dump(value) if py is dict else int(value) if py is bool else value


def _from_column(name: str, value: Any) -> Any:
    """A registry column's value back as the field's Python type."""
    if value is None:
        return None
    py = _STATION[name][1]
    return _load(value) if py is dict else py(value)


class SqlStore:
    """Store implementation over a DB-API connection; subclasses give the dialect."""

    url: str
    greatest = "max"  # the two-argument maximum
    placeholder = "?"

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._sql_cache: dict[str, str] = {}

    # -- dialect hooks ---------------------------------------------------------------------------
    def _connect(self) -> Any:
        raise NotImplementedError

    def _transaction(self, conn: Any) -> AbstractContextManager[Any]:
        """A context yielding a cursor; commits on success, rolls back on error."""
        raise NotImplementedError

    def _integrity_errors(self) -> tuple[type[BaseException], ...]:
        raise NotImplementedError

    def _schema_statements(self) -> list[str]:
        return [s for s in SCHEMA.split(";") if s.strip()]

    # -- plumbing --------------------------------------------------------------------------------
    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _sql(self, text: str) -> str:
        if self.placeholder == "?":
            return text
        cached = self._sql_cache.get(text)
        if cached is None:
            cached = text.replace("?", self.placeholder)
            self._sql_cache[text] = cached
        return cached

    def _tx(self) -> AbstractContextManager[Any]:
        return self._transaction(self._conn())

    def _query(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read outside any explicit transaction (connections are in autocommit)."""
        cur = self._conn().cursor()
        try:
            cur.execute(self._sql(text), tuple(params))
            return list(cur.fetchall())
        finally:
            cur.close()

    def init(self) -> None:
        with self._tx() as cur:
            for statement in self._schema_statements():
                cur.execute(statement)

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):  # closing is best effort at shutdown
                conn.close()
        self._local = threading.local()

    # -- ingest ----------------------------------------------------------------------------------
    def ingest(self, batches: Sequence[IngestBatch]) -> list[IngestResult]:
        if not batches:
            return []
        # one lock order for every transaction (by station, then seq): two controllers
        # committing overlapping groups wait for each other instead of deadlocking
        order = sorted(
            range(len(batches)), key=lambda i: (batches[i].station, batches[i].first_seq)
        )
        inserted: dict[int, int] = {}
        conflicts: dict[int, int] = {}
        with self._tx() as cur:
            for i in order:
                inserted[i] = self._insert_records(cur, batches[i])
                if inserted[i] < len(batches[i].records):
                    conflicts[i] = self._record_conflicts(cur, batches[i])
            by_station: dict[str, list[int]] = {}
            for i in order:
                by_station.setdefault(batches[i].station, []).append(i)
            for idx in by_station.values():
                self._touch_station(cur, [batches[i] for i in idx], sum(inserted[i] for i in idx))
        return [
            IngestResult(
                b.station,
                b.lane,
                b.first_seq,
                b.last_seq,
                inserted[i],
                len(b.records) - inserted[i],
                conflicts.get(i, 0),
            )
            for i, b in enumerate(batches)
        ]

    def _record_conflicts(self, cur: Any, batch: IngestBatch) -> int:
        """Compare a batch's rows with those stored under the same seqs (after its insert, in
        its transaction); keep each differing row in ``record_conflicts``. Returns how many."""
        cur.execute(
            self._sql(
                f"SELECT seq, {CONTENT_COLUMNS} FROM records "
                "WHERE station = ? AND seq >= ? AND seq <= ?"
            ),
            (batch.station, batch.first_seq, batch.last_seq),
        )
        stored = {int(r[0]): tuple(r[1:]) for r in cur.fetchall()}
        found = []
        for row in record_rows(batch):
            named = dict(zip(_RECORD_NAMES, row, strict=True))
            offered = tuple(named[n] for n in _CONTENT)
            have = stored.get(int(named["seq"]))
            if have is not None and not _same_content(have, offered):
                found.append(
                    (
                        batch.station,
                        named["seq"],
                        batch.received,
                        _dump(dict(zip(_CONTENT, have, strict=True))),
                        _dump(dict(zip(_CONTENT, offered, strict=True))),
                    )
                )
        if found:
            cur.executemany(
                self._sql(
                    "INSERT INTO record_conflicts (station, seq, received, stored, offered) "
                    "VALUES (?, ?, ?, ?, ?)"
                ),
                found,
            )
        return len(found)

    def _insert_records(self, cur: Any, batch: IngestBatch) -> int:
        """Insert a batch's rows, skipping (station, seq) already stored; returns rows added."""
        rows = record_rows(batch)
        if not rows:
            return 0
        cur.executemany(self._sql(INSERT_RECORD), rows)
        return max(0, int(cur.rowcount))

    def _touch_station(self, cur: Any, batches: list[IngestBatch], inserted: int) -> None:
        """One registry update for a station's batches in this transaction."""
        latest = max(batches, key=lambda b: (b.last_seq, b.received))
        sent = [b for b in batches if b.sent is not None]
        newest = max(sent, key=lambda b: b.received) if sent else None
        offset = None if newest is None or newest.sent is None else newest.sent - newest.received
        received = max(b.received for b in batches)
        g = self.greatest
        cur.execute(
            self._sql(
                "INSERT INTO stations "
                "(station, first_seen, last_seen, backlog, clock_offset_s, last_seq, records) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (station) DO UPDATE SET "
                f"last_seen = {g}(stations.last_seen, excluded.last_seen), "
                "backlog = COALESCE(excluded.backlog, stations.backlog), "
                "clock_offset_s = COALESCE(excluded.clock_offset_s, stations.clock_offset_s), "
                f"last_seq = {g}(COALESCE(stations.last_seq, excluded.last_seq), "
                "excluded.last_seq), "
                "records = stations.records + excluded.records"
            ),
            (
                latest.station,
                received,
                received,
                latest.backlog,
                offset,
                latest.last_seq,
                inserted,
            ),
        )

    # -- queries ---------------------------------------------------------------------------------
    def records(
        self,
        *,
        station: str | None = None,
        channel: str | None = None,
        kinds: Iterable[str] = ("reading",),
        start: float | None = None,
        end: float | None = None,
        limit: int = 1000,
    ) -> list[StoredRecord]:
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("station", station), ("channel", channel)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        kind_list = list(kinds)
        if kind_list:
            where.append(f"kind IN ({', '.join('?' for _ in kind_list)})")
            params.extend(kind_list)
        if start is not None:
            where.append("t >= ?")
            params.append(start)
        if end is not None:
            where.append("t < ?")
            params.append(end)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._query(
            f"SELECT {RECORD_COLUMNS} FROM records {clause} ORDER BY t, station, seq LIMIT ?",
            [*params, int(limit)],
        )
        return [stored_record(r) for r in rows]

    def seqs(self, station: str) -> list[int]:
        rows = self._query("SELECT seq FROM records WHERE station = ? ORDER BY seq", [station])
        return [int(r[0]) for r in rows]

    def count(self, station: str | None = None) -> int:
        if station is None:
            rows = self._query("SELECT COUNT(*) FROM records")
        else:
            rows = self._query("SELECT COUNT(*) FROM records WHERE station = ?", [station])
        return int(rows[0][0])

    def conflicts(self, station: str | None = None, limit: int = 1000) -> list[Conflict]:
        clause = "" if station is None else "WHERE station = ?"
        params: list[Any] = [] if station is None else [station]
        rows = self._query(
            f"SELECT station, seq, received, stored, offered FROM record_conflicts {clause} "
            "ORDER BY received, station, seq LIMIT ?",
            [*params, int(limit)],
        )
        return [
            Conflict(r[0], int(r[1]), float(r[2]), json.loads(r[3]), json.loads(r[4])) for r in rows
        ]

    # -- registry --------------------------------------------------------------------------------
    def update_station(self, update: StationUpdate) -> None:
        values = [_to_column(n, getattr(update, n)) for n in REPORTED_FIELDS]
        columns = ", ".join(REPORTED_FIELDS)
        sets = ", ".join(f"{c} = COALESCE(excluded.{c}, stations.{c})" for c in REPORTED_FIELDS)
        marks = ", ".join("?" * len(REPORTED_FIELDS))
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    f"INSERT INTO stations (station, first_seen, last_seen, {columns}) "
                    f"VALUES (?, ?, ?, {marks}) ON CONFLICT (station) DO UPDATE SET "
                    f"last_seen = {self.greatest}(stations.last_seen, excluded.last_seen), {sets}"
                ),
                (update.station, update.seen, update.seen, *values),
            )

    def _station_rows(self, station: str | None) -> list[StationInfo]:
        clause = "" if station is None else "WHERE station = ?"
        rows = self._query(
            f"SELECT {STATION_COLUMNS} FROM stations {clause} ORDER BY station",
            [] if station is None else [station],
        )
        memberships: dict[str, list[str]] = {}
        for name, members in self.groups().items():
            for member in members:
                memberships.setdefault(member, []).append(name)
        out = []
        for r in rows:
            d = {n: _from_column(n, v) for n, v in zip(_STATION, r, strict=True)}
            out.append(StationInfo(**d, groups=tuple(sorted(memberships.get(d["station"], [])))))
        return out

    def stations(self) -> list[StationInfo]:
        return self._station_rows(None)

    def station(self, station: str) -> StationInfo | None:
        rows = self._station_rows(station)
        return rows[0] if rows else None

    def set_group(self, group: str, stations: Iterable[str]) -> None:
        members = sorted(set(stations))
        with self._tx() as cur:
            cur.execute(self._sql("DELETE FROM station_groups WHERE name = ?"), (group,))
            if members:
                cur.executemany(
                    self._sql("INSERT INTO station_groups (name, station) VALUES (?, ?)"),
                    [(group, m) for m in members],
                )

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, station in self._query(
            "SELECT name, station FROM station_groups ORDER BY name, station"
        ):
            out.setdefault(name, []).append(station)
        return out

    # -- documents -------------------------------------------------------------------------------
    def add_document(
        self,
        scope: str,
        make: DocumentMaker,
        created: float,
        *,
        staged: Callable[[Document], Rollout] | None = None,
    ) -> Document:
        errors = self._integrity_errors()
        for _ in range(20):  # another controller may take the same version; try the next one
            try:
                with self._tx() as cur:
                    cur.execute(
                        self._sql(
                            "SELECT COALESCE(MAX(version), 0) FROM documents WHERE scope = ?"
                        ),
                        (scope,),
                    )
                    version = int(cur.fetchone()[0]) + 1
                    signed, digest = make(version)
                    cur.execute(
                        self._sql(
                            "INSERT INTO documents (scope, version, hash, created, signed) "
                            "VALUES (?, ?, ?, ?, ?)"
                        ),
                        (scope, version, digest, created, _dump(signed)),
                    )
                    doc = Document(scope, version, digest, created, signed)
                    if staged is not None:  # same transaction: never visible as released
                        self._save_rollout(cur, staged(doc))
                return doc
            except errors:
                continue
        raise RuntimeError(f"could not allocate a version for {scope} after 20 attempts")

    def documents(self, scope: str | None = None) -> list[Document]:
        clause = "" if scope is None else "WHERE scope = ?"
        rows = self._query(
            f"SELECT scope, version, hash, created, signed FROM documents {clause} "
            "ORDER BY scope, version DESC",
            [] if scope is None else [scope],
        )
        return [Document(r[0], int(r[1]), r[2], float(r[3]), json.loads(r[4])) for r in rows]

    def document(self, scope: str, version: int | None = None) -> Document | None:
        if version is None:
            rows = self._query(
                "SELECT scope, version, hash, created, signed FROM documents WHERE scope = ? "
                "ORDER BY version DESC LIMIT 1",
                [scope],
            )
        else:
            rows = self._query(
                "SELECT scope, version, hash, created, signed FROM documents "
                "WHERE scope = ? AND version = ?",
                [scope, version],
            )
        if not rows:
            return None
        r = rows[0]
        return Document(r[0], int(r[1]), r[2], float(r[3]), json.loads(r[4]))

    # -- reports ---------------------------------------------------------------------------------
    def document_by_hash(self, digest: str) -> Document | None:
        rows = self._query(
            "SELECT scope, version, hash, created, signed FROM documents WHERE hash = ? LIMIT 1",
            [digest],
        )
        if not rows:
            return None
        r = rows[0]
        return Document(r[0], int(r[1]), r[2], float(r[3]), json.loads(r[4]))

    def add_report(self, report: ConfigReport, *, latest: bool = True) -> None:
        self.add_reports([report], latest=latest)

    def add_reports(self, reports: Sequence[ConfigReport], *, latest: bool = True) -> None:
        rows = [
            (r.station, r.scope, r.version, r.hash, r.result, r.reason, r.time) for r in reports
        ]
        if not rows:
            return
        with self._tx() as cur:
            cur.executemany(
                self._sql(
                    f"INSERT INTO report_log ({REPORT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
                ),
                rows,
            )
            if not latest:
                return
            for row in rows:  # one by one: a later row may supersede an earlier one
                cur.execute(
                    self._sql(
                        f"INSERT INTO reports ({REPORT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (station, scope) DO UPDATE SET version = excluded.version, "
                        "hash = excluded.hash, result = excluded.result, reason = excluded.reason, "
                        "t = excluded.t WHERE excluded.version >= reports.version"
                    ),
                    row,
                )

    @staticmethod
    def _reports(rows: list[tuple[Any, ...]]) -> list[ConfigReport]:
        return [ConfigReport(r[0], r[1], int(r[2]), r[3], r[4], r[5], float(r[6])) for r in rows]

    def reports(self, station: str | None = None) -> list[ConfigReport]:
        clause = "" if station is None else "WHERE station = ?"
        return self._reports(
            self._query(
                f"SELECT {REPORT_COLUMNS} FROM reports {clause} ORDER BY station, scope",
                [] if station is None else [station],
            )
        )

    def report_log(self, station: str | None = None, limit: int = 1000) -> list[ConfigReport]:
        clause = "" if station is None else "WHERE station = ?"
        params: list[Any] = [] if station is None else [station]
        return self._reports(
            self._query(
                f"SELECT {REPORT_COLUMNS} FROM report_log {clause} "
                "ORDER BY t, station, scope, version LIMIT ?",
                [*params, int(limit)],
            )
        )

    # -- rollouts --------------------------------------------------------------------------------
    def save_rollout(self, rollout: Rollout) -> None:
        with self._tx() as cur:
            self._save_rollout(cur, rollout)

    def _save_rollout(self, cur: Any, rollout: Rollout) -> None:
        row = (
            rollout.id,
            rollout.scope,
            rollout.version,
            rollout.canary_group,
            _dump(list(rollout.canaries)),
            rollout.state,
            rollout.reason,
            rollout.created,
            rollout.updated,
            _dump(rollout.extra),
        )
        cur.execute(
            self._sql(
                f"INSERT INTO rollouts ({ROLLOUT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET state = excluded.state, "
                "reason = excluded.reason, updated = excluded.updated, extra = excluded.extra"
            ),
            row,
        )

    def _rollouts(self, clause: str, params: list[Any]) -> list[Rollout]:
        rows = self._query(
            f"SELECT {ROLLOUT_COLUMNS} FROM rollouts {clause} ORDER BY created DESC, id", params
        )
        return [
            Rollout(
                id=r[0],
                scope=r[1],
                version=int(r[2]),
                canary_group=r[3],
                canaries=tuple(json.loads(r[4])),
                state=r[5],
                reason=r[6],
                created=float(r[7]),
                updated=float(r[8]),
                extra=json.loads(r[9]),
            )
            for r in rows
        ]

    def rollouts(self, state: str | None = None) -> list[Rollout]:
        if state is None:
            return self._rollouts("", [])
        return self._rollouts("WHERE state = ?", [state])

    def rollout(self, rollout_id: str) -> Rollout | None:
        found = self._rollouts("WHERE id = ?", [rollout_id])
        return found[0] if found else None
