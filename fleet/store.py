"""The controller's storage interface and the plain records that cross it.

One interface, two back ends: :mod:`fleet.store_sqlite` (default, embedded, zero set-up) and
:mod:`fleet.store_postgres` (for scale; several controller processes share one database). Both
keep the same tables (see :mod:`fleet.store_sql`):

- ``records``: every row a station synced, unique on ``(station, seq)`` so a resent batch is
  stored once; readings, derived values, events, gaps and forecasts alike (``kind``).
- ``stations``: the registry (last seen, versions, health, backlog, clock offset, devices).
- ``groups``: named sets of stations (``canary`` for staged rollouts).
- ``documents``: versioned signed configuration documents per scope (fleet, grid cell, station).
- ``reports`` / ``report_log``: the newest ack or nack per (station, scope) and their history.
- ``rollouts``: staged rollouts and their state.
- ``record_conflicts``: rows a station sent under a (station, seq) already stored with other
  content (a reused sequence number): kept, not dropped as duplicates.

Records are the contract's :class:`roadside.contract.Record`: a batch ingests them as decoded off
the wire, and they come back as :class:`StoredRecord` (the same record plus station, lane and
receive time), with UTC ``datetime`` times like everywhere else. The SQL keeps record times as
epoch seconds (an indexed ``t`` column); :mod:`fleet.store_sql` converts at that one edge. The
registry, documents, reports and rollouts, and the query bounds of :meth:`Store.records`, are
in controller epoch seconds (floats).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from fleet.errors import StoreError
from roadside.contract import Record

DEFAULT_URL = "sqlite:///fleet.db"


@dataclass(frozen=True, slots=True)
class IngestBatch:
    """One uplink batch: committed in one transaction, then acknowledged."""

    station: str
    lane: str
    first_seq: int
    last_seq: int
    records: tuple[Record, ...]  # the contract's records, as decoded off the wire
    received: float  # epoch seconds, controller clock
    sent: float | None = None  # epoch seconds, station clock at sending (clock offset)
    backlog: int | None = None  # rows still unsynced on the station after this batch


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What committing one batch did: rows inserted and rows already there (a resend)."""

    station: str
    lane: str
    first_seq: int
    last_seq: int
    inserted: int
    duplicates: int  # rows already stored (a resend), conflicts included
    conflicts: int = 0  # of those, rows whose stored content differs (kept in record_conflicts)


@dataclass(frozen=True, slots=True)
class Conflict:
    """A row offered under a (station, seq) already stored with other content."""

    station: str
    seq: int
    received: float
    stored: dict[str, Any]
    offered: dict[str, Any]


class StoredRecord(Record, frozen=True, kw_only=True):
    """A record as read back from the store: the contract's
    :class:`~roadside.contract.Record` plus the station that sent it, the lane it came on and
    the controller's receive time (UTC, like ``time``)."""

    station: str
    lane: str
    received: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Reported:
    """What stations tell the registry, merged from their statuses and batches; ``None``: not
    known (in an update: leave as it is).

    The registry's own fields, not the status message: :func:`fleet.ingest.status_to_update`
    maps a :class:`roadside.contract.Status` onto them by name (``online`` from its ``state``,
    a grid cell from its scope keys when it names none, the nowcast skill inside ``health``,
    the clock offset from its time); a batch brings ``backlog`` and the clock offset. The
    ``stations`` table's columns and the API's station model are derived from these classes.
    """

    online: bool | None = None
    contract: str | None = None
    software: str | None = None
    config_version: str | None = None
    model_version: str | None = None
    grid_cell: str | None = None
    health: dict[str, Any] | None = None
    devices: dict[str, Any] | None = None
    backlog: int | None = None
    clock_offset_s: float | None = None


@dataclass(frozen=True, slots=True)
class StationUpdate(Reported):
    """Fields of the registry to change for one station, seen at ``seen`` (epoch seconds,
    controller clock)."""

    station: str
    seen: float


@dataclass(frozen=True, slots=True)
class StationInfo(Reported):
    """One station as the registry knows it (times in epoch seconds, controller clock)."""

    station: str
    first_seen: float
    last_seen: float
    last_seq: int | None = None
    records: int = 0
    groups: tuple[str, ...] = ()


REPORTED_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Reported))
"""The registry fields a status or batch updates (merged: ``None`` keeps the stored value)."""


@dataclass(frozen=True, slots=True)
class Document:
    """A versioned, signed configuration document for one scope."""

    scope: str  # fleet | grid:<cell> | station:<id>
    version: int
    hash: str
    created: float
    signed: dict[str, Any]  # the envelope published: {"doc": {...}, "sig": ..., "key": ...}

    @property
    def body(self) -> dict[str, Any]:
        """The configuration content (thresholds, QC parameters, ...)."""
        doc = self.signed.get("doc", {})
        body = doc.get("body", {}) if isinstance(doc, dict) else {}
        return body if isinstance(body, dict) else {}


@dataclass(frozen=True, slots=True)
class ConfigReport:
    """A station's answer to a configuration document: ack or nack with a reason."""

    station: str
    scope: str
    version: int
    hash: str
    result: str  # ack | nack
    reason: str
    time: float  # epoch seconds, controller clock at receipt


@dataclass(frozen=True, slots=True)
class Rollout:
    """A staged rollout: the canaries get the document first, everyone else after they ack."""

    id: str
    scope: str
    version: int
    canary_group: str
    canaries: tuple[str, ...]
    state: str  # canary | rolling | done | halted
    reason: str
    created: float
    updated: float
    extra: dict[str, Any] = field(default_factory=dict)


class Store(Protocol):
    """What the controller needs from a database; implemented for SQLite and PostgreSQL."""

    url: str

    def init(self) -> None:
        """Create the tables if they are missing (idempotent)."""
        ...

    def close(self) -> None:
        """Close every connection this store opened."""
        ...

    # ingest and queries
    def ingest(self, batches: Sequence[IngestBatch]) -> list[IngestResult]:
        """Commit batches in one transaction; rows already stored are skipped, not doubled."""
        ...

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
        """Records by station, channel, kind and time range ``[start, end)``, in time order."""
        ...

    def seqs(self, station: str) -> list[int]:
        """Every stored sequence number of a station, ascending (gap and duplicate checks)."""
        ...

    def count(self, station: str | None = None) -> int:
        """Number of stored records (of one station or of all)."""
        ...

    def conflicts(self, station: str | None = None, limit: int = 1000) -> list[Conflict]:
        """Rows offered under a stored (station, seq) with other content, oldest first."""
        ...

    # registry
    def update_station(self, update: StationUpdate) -> None:
        """Merge a status or batch observation into the registry."""
        ...

    def stations(self) -> list[StationInfo]:
        """Every known station, by id."""
        ...

    def station(self, station: str) -> StationInfo | None:
        """One station, or None when never seen."""
        ...

    def set_group(self, group: str, stations: Iterable[str]) -> None:
        """Replace the members of a group."""
        ...

    def groups(self) -> dict[str, list[str]]:
        """Every group and its members."""
        ...

    # configuration documents
    def add_document(
        self,
        scope: str,
        make: DocumentMaker,
        created: float,
        *,
        staged: Callable[[Document], Rollout] | None = None,
    ) -> Document:
        """Store the next version of a scope's document; ``make(version)`` builds and signs it.

        ``staged(doc)`` gives the rollout that holds the new version back; it is stored in the
        same transaction, so the version is never seen as released to everyone.
        """
        ...

    def documents(self, scope: str | None = None) -> list[Document]:
        """Documents (of one scope or all), newest version first within a scope."""
        ...

    def document(self, scope: str, version: int | None = None) -> Document | None:
        """One version of a scope's document, the newest when ``version`` is None."""
        ...

    def document_by_hash(self, digest: str) -> Document | None:
        """The document whose signed content has this hash (what stations report back)."""
        ...

    def add_report(self, report: ConfigReport, *, latest: bool = True) -> None:
        """Record an ack or nack in the history and, when ``latest``, as the newest answer."""
        ...

    def add_reports(self, reports: Sequence[ConfigReport], *, latest: bool = True) -> None:
        """:meth:`add_report` for many, in one transaction."""
        ...

    def reports(self, station: str | None = None) -> list[ConfigReport]:
        """The newest report per (station, scope)."""
        ...

    def report_log(self, station: str | None = None, limit: int = 1000) -> list[ConfigReport]:
        """Every report received, oldest first."""
        ...

    # rollouts
    def save_rollout(self, rollout: Rollout) -> None:
        """Insert or replace a rollout."""
        ...

    def rollouts(self, state: str | None = None) -> list[Rollout]:
        """Rollouts (optionally in one state), newest first."""
        ...

    def rollout(self, rollout_id: str) -> Rollout | None:
        """One rollout by id."""
        ...


class DocumentMaker(Protocol):
    """Builds the signed document of a given version: ``(signed dict, hash)``."""

    def __call__(self, version: int) -> tuple[dict[str, Any], str]: ...


def open_store(url: str = DEFAULT_URL, *, create: bool = True) -> Store:
    """Open (and initialise) the store a URL names: ``sqlite:///path`` or ``postgresql://...``.

    ``create=False`` (read-only commands): a SQLite file that does not exist is an error, never
    created.
    """
    if url.startswith("sqlite:"):
        from fleet.store_sqlite import SQLiteStore, sqlite_path

        if not create and not Path(sqlite_path(url)).is_file():
            raise StoreError(f"--db {url!r}: no fleet database there (has a controller run?)")

        store: Store = SQLiteStore(url)
    elif url.startswith(("postgresql:", "postgres:")):
        from fleet.store_postgres import PostgresStore

        store = PostgresStore(url)
    else:
        raise StoreError(f"--db {url!r}: expected sqlite:///path or postgresql://user@host/db")
    store.init()
    return store
