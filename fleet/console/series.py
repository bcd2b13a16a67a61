"""A station's series cut to time buckets in the database: a week of one-minute data on eight
channels comes back as a few thousand rows, whatever the range.

Per channel and bucket: the first time, the mean, min and max, the count, and the worst QC flag
(wrong, missing, suspect, corrected, modified, in that order; correct and not-checked count as
none). The query runs on the fleet store's own connections (SQLite or PostgreSQL), over the
``records (station, channel, t)`` index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fleet.store import Store

FLAG_RANK = {2: 6, 8: 5, 1: 4, 3: 3, 4: 2}
"""QC flag digit -> how bad (higher is worse); other digits rank 0."""
RANK_FLAG = {rank: flag for flag, rank in FLAG_RANK.items()}

_RANK_SQL = " ".join(f"WHEN {flag} THEN {rank}" for flag, rank in FLAG_RANK.items())
_SQL = """
SELECT channel, {bucket} AS b, min(t), avg(value), min(value), max(value), count(*),
       max(CASE flag {ranks} ELSE 0 END), max(unit)
FROM records
WHERE station = ? AND channel IN ({channels}) AND kind IN ('reading', 'derived')
  AND t >= ? AND t < ? AND value IS NOT NULL
GROUP BY channel, b ORDER BY channel, b
"""


def bucketed(
    store: Store, station: str, channels: Sequence[str], start: float, end: float, buckets: int
) -> dict[str, dict[str, Any]]:
    """``{channel: {unit, raw, t, mean, lo, hi, flag}}`` over ``[start, end)`` in at most
    ``buckets`` equal buckets (only channels with data)."""
    if buckets < 1 or end <= start:
        raise ValueError("need at least one bucket over a non-empty range")
    width = (end - start) / buckets
    sql_store: Any = store  # a SqlStore: _query/_sql/placeholder shared within the fleet package
    position = "(t - ?) / ?"
    bucket = (
        f"CAST({position} AS INTEGER)"  # t >= start: truncation is the floor
        if sql_store.placeholder == "?"
        else f"CAST(FLOOR({position}) AS BIGINT)"  # PostgreSQL rounds a plain cast
    )
    text = _SQL.format(bucket=bucket, ranks=_RANK_SQL, channels=", ".join("?" for _ in channels))
    rows = sql_store._query(text, [start, width, station, *channels, start, end])
    out: dict[str, dict[str, Any]] = {}
    for channel, _b, t, mean, lo, hi, n, rank, unit in rows:
        ch = out.setdefault(
            channel,
            {"unit": unit, "raw": 0, "t": [], "mean": [], "lo": [], "hi": [], "flag": []},
        )
        ch["raw"] += int(n)
        ch["t"].append(float(t))
        ch["mean"].append(round(float(mean), 2))
        ch["lo"].append(round(float(lo), 2))
        ch["hi"].append(round(float(hi), 2))
        ch["flag"].append(RANK_FLAG.get(int(rank or 0), 0))
    return out
