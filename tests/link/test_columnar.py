"""The columnar codec: exact round trips of odd rows, small live batches, clear refusals."""

from __future__ import annotations

import math
import random

import pytest

from roadside import columnar, wire

FIELDS = list(wire.RECORD_FIELDS)
T = 1_784_000_000_000


def _doc(rows: list[list[object]], lane: str = "live") -> dict[str, object]:
    return {
        "c": wire.CONTRACT_VERSION,
        "st": "st-001",
        "lane": lane,
        "first": rows[0][0],
        "last": rows[-1][0],
        "fields": FIELDS,
        "rows": rows,
        "sent": T + 1500,
    }


def test_odd_rows_round_trip_exactly() -> None:
    rows = [
        [1, "reading", T, "wind", "wind_speed", 0.30000000000000004, "m/s", "3", "ok", 0, "", None],
        [2, "reading", T, "wind", "wind_dir", 0.3, "deg", 3, "ok", 0, "", None],
        [
            3,
            "reading",
            T + 7,
            "wind",
            "wind_gust",
            None,
            "m/s",
            None,
            "timeout",
            8,
            "timeout",
            None,
        ],
        [
            5,
            "reading",
            T + 7,
            "rain",
            "rain_total",
            math.pi,
            "mm",
            "3.14159",
            "ok",
            1,
            "step",
            None,
        ],
        [6, "reading", T - 5, "rain", "rain_total", 1e300, "mm", "x", "ok", 2, "range", None],
        [7, "reading", T, "lvl", "water_depth", -12.5, "mm", -125, "ok", 0, "", {"clock": "jump"}],
        [8, "derived", T, "", "rain_1h", 4.25, "mm", None, "", 0, "", {"window_s": 3600.0}],
        [9, "event", T, "", "rain", 2.0, "", None, "", None, "raise", {"level": "yellow"}],
        [10, "reading", T, "lvl", "water_depth", 1980.0, "mm", "1980.0", "ok", 0, "", None],
        [11, "reading", T, "lvl", "water_depth", 5.0, "mm", 2.5, "ok", 0, "", None],
        [2**40, "gap", T, "", "", None, "", None, "", None, "", None],
    ]
    doc = _doc(rows, "event")
    back = columnar.decode(columnar.encode(doc))
    assert back == doc
    assert [type(r[7]) for r in back["rows"]] == [type(r[7]) for r in rows]


def test_a_series_whose_decimals_grow_mid_batch_round_trips() -> None:
    """Rows seen exact at one decimal before a later row needs three are scaled again."""
    values = [7.0, 0.5, 0.5, 1.5, 0.125, 0.5, 2.25, 0.5]
    rows: list[list[object]] = [
        [i + 1, "reading", T + 100 * i, "s", "reg0", v, "u", None, "ok", 0, "", None]
        for i, v in enumerate(values)
    ]
    doc = _doc(rows)
    assert columnar.decode(columnar.encode(doc)) == doc


@pytest.mark.parametrize("seed", range(4))
def test_deltas_at_the_one_byte_edges_round_trip(seed: int) -> None:
    """Seq, time and value deltas around +-64 (one varint byte or more), up and down."""
    rng = random.Random(seed)
    edges = (-65, -64, -63, -1, 0, 1, 63, 64, 65, 1000, -1000)
    rows: list[list[object]] = []
    seq, ms, raw = 1000, T, 5000
    for _ in range(300):
        seq += rng.choice((1, 1, 63, 64, 65, 2**20))
        ms += rng.choice(edges)
        raw += rng.choice(edges)
        rows.append([seq, "reading", ms, "s", "reg0", raw / 10, "u", str(raw), "ok", 0, "", None])
    doc = _doc(rows)
    assert columnar.decode(columnar.encode(doc)) == doc


def test_a_live_batch_of_ten_polls_costs_about_two_bytes_a_value() -> None:
    rng = random.Random(3)
    rows, seq, t = [], 1, T
    level = {(d, i): rng.randint(500, 3000) for d in range(3) for i in range(10)}
    for _ in range(10):
        t += 1000 + rng.randint(-2, 2)
        for d in range(3):
            for i in range(10):
                level[(d, i)] += rng.randint(-10, 10)
                c = level[(d, i)]
                row = [seq, "reading", t, f"dev{d}", f"reg{i}", c * 0.1, "u", str(c), "ok", 0, ""]
                rows.append([*row, None])
                seq += 1
    data = columnar.encode(_doc(rows))
    assert columnar.decode(data)["rows"] == rows
    assert len(data) / len(rows) < 2.2
    assert len(data) < len(wire._pack(_doc(rows), "json+zstd")) / 3


def test_bad_bytes_and_unknown_dictionaries_are_refused_in_one_line() -> None:
    rows = [[1, "reading", T, "s", "c", 1.5, "u", None, "ok", 0, "", None]]
    data = columnar.encode(_doc(rows))
    with pytest.raises(wire.WireError, match="dictionary v9 unknown"):
        wire.decode_batch(data[:2] + b"\x09" + data[3:])
    for bad in (data[:-3], data[:3] + bytes(len(data) - 3), data[:2]):
        with pytest.raises(wire.WireError, match="undecodable"):
            wire.decode_batch(bad)


def test_many_threads_encode_and_decode_at_once() -> None:
    """Several stations' uplinks (or ingest workers) in one process: zstd objects are per thread
    (one shared compressor crashed the interpreter)."""
    import threading

    rows = [[i + 1, "reading", 1_784_635_200_000 + 1000 * i, "rain", "rain_total", i * 0.2,
             "mm", i * 2, "ok", 0, "", None] for i in range(300)]  # fmt: skip
    docs = [_doc(rows[k:] or rows[-1:]) for k in range(0, 300, 10)]
    failures: list[str] = []

    def work() -> None:
        for doc in docs * 4:
            if columnar.decode(columnar.encode(doc))["rows"] != doc["rows"]:
                failures.append("round trip changed the rows")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
