"""The console's server-side views: bucketed series in SQL (SQLite and PostgreSQL) against a plain
computation, station rows and warning levels."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from fleet.console import views
from fleet.console.series import FLAG_RANK, bucketed
from fleet.store import IngestBatch, StationUpdate, Store, open_store
from roadside.contract import Record

PG_URL = os.environ.get("ROADSIDE_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store per back end; PostgreSQL must be there (fails loudly, no skip)."""
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'fleet.db'}")
        yield s
        s.close()
        return
    admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=5)
    schema = f"console_{uuid.uuid4().hex[:12]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        s = open_store(f"{PG_URL}?options=-csearch_path%3D{schema}")
        yield s
        s.close()
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def test_buckets_match_a_plain_computation(store: Store) -> None:
    rng = random.Random(7)
    start = 1_800_000_000.0
    points = []
    for i in range(3000):  # 50 hours of one-minute data, a few flagged and a few gaps
        if rng.random() < 0.02:
            continue
        flag = rng.choice([0] * 20 + [1, 2, 3, 8, 9])
        points.append((start + 60 * i, rng.uniform(0, 80), flag))
    records = tuple(
        Record(
            seq=n + 1,
            kind="derived",
            time=datetime.fromtimestamp(t, UTC),
            channel="water_depth",
            value=v,
            unit="mm",
            flag=f,
        )
        for n, (t, v, f) in enumerate(points)
    )
    at_start = datetime.fromtimestamp(start, UTC)
    records += (Record(seq=len(records) + 1, kind="event", time=at_start, channel="water_depth"),)
    store.update_station(StationUpdate(station="st-1", seen=start))
    store.ingest([IngestBatch("st-1", "live", 1, len(records), records, start)])
    end = start + 3000 * 60
    got = bucketed(store, "st-1", ["water_depth", "rain_1h"], start, end, 100)
    assert list(got) == ["water_depth"]  # no rain rows: no rain channel
    ch = got["water_depth"]
    width = (end - start) / 100
    expected: dict[int, list[tuple[float, float, int]]] = {}
    for t, v, f in points:
        expected.setdefault(int((t - start) // width), []).append((t, v, f))
    assert len(ch["t"]) == len(expected) and ch["raw"] == len(points)
    for i, (_b, pts) in enumerate(sorted(expected.items())):
        values = [v for _, v, _ in pts]
        assert ch["t"][i] == pts[0][0]
        assert ch["mean"][i] == pytest.approx(sum(values) / len(values), abs=0.01)
        assert (ch["lo"][i], ch["hi"][i]) == (round(min(values), 2), round(max(values), 2))
        worst = max((f for _, _, f in pts), key=lambda f: FLAG_RANK.get(f, 0))
        assert ch["flag"][i] == (worst if FLAG_RANK.get(worst, 0) else 0)
    assert ch["unit"] == "mm"


def test_station_rows_carry_health_and_the_newest_warning() -> None:
    from fleet.store import StationInfo, StoredRecord

    def event(station: str, t: float, level: str) -> StoredRecord:
        payload = {"signal": "rainstorm", "level": level}
        when = datetime.fromtimestamp(t, UTC)
        return StoredRecord(
            seq=1,
            kind="event",
            time=when,
            channel="rainstorm",
            value=float(views.LEVELS.index(level)),
            payload=payload,
            station=station,
            lane="event",
            received=when,
        )

    levels = views.warning_levels([event("a", 1, "orange"), event("a", 2, "blue")])
    assert levels == {"a": {"rainstorm": "blue"}}
    info = StationInfo(
        "a",
        0,
        100,
        last_seq=7,
        records=10,
        online=True,
        grid_cell="BS-G01",
        devices={"rain": {"state": "no_answer"}},
        backlog=3,
        clock_offset_s=0.5,
    )
    row = views.station_row(info, levels["a"], now=150)
    assert (row["health"], row["level"], row["devices_bad"]) == ("degraded", "blue", ["rain"])
    assert views.station_row(info, {}, now=100 + views.STALE_AFTER_S + 1)["health"] == "stale"
    assert views.cell_levels([row, {**row, "level": "red"}]) == {"BS-G01": "red"}
