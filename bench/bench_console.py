"""Console render time: first render of the district view with 1,000 stations and of a station
page with a week of one-minute data, in Debian's headless chromium, against a real controller.

A SQLite fleet store is filled through the store's own ingest: 1,000 stations over the shipped
district's cells (a few with warnings, offline or with a failing device) and one station with
seven days of one-minute derived values on five channels (50,400 rows) with forecasts and events.
The controller's API and console are served by uvicorn on a loopback port; one chromium signs in
and then loads each page ``--runs`` times (a full navigation each time).

- **ours**: ``performance.now()`` when the view has drawn (map, markers, list / all charts);
- **baseline**: the same navigation's ``loadEventEnd``: the page's static HTML with its scripts,
  styles and vendored libraries loaded, before any data is fetched or drawn.

p50 and p99 of each are printed; the last line is the JSON summary (``value`` = district p99 ms).

    .venv/bin/python bench/bench_console.py [--runs 15] [--stations 1000] [--days 7]
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fleet.api import create_app  # noqa: E402
from fleet.auth import Auth  # noqa: E402
from fleet.console.register import sample_register  # noqa: E402
from fleet.store import IngestBatch, StationUpdate, Store, open_store  # noqa: E402
from roadside.contract import Record  # noqa: E402
from tests.console.browser import Server, chromium, free_port, ready, sign_in  # noqa: E402

LEVELS = ("none", "blue", "yellow", "orange", "red")
PASSWORD = "bench-password-1"


def _event(seq: int, t: float, level: str) -> Record:
    payload = {"kind": "raise", "signal": "rainstorm", "level": level, "rule": "rain_1h"}
    return Record(
        seq=seq,
        kind="event",
        time=datetime.fromtimestamp(t, UTC),
        channel="rainstorm",
        value=float(LEVELS.index(level)),
        reason="raise",
        payload=payload,
    )


def seed_stations(store: Store, n: int, now: float) -> None:
    """``n`` stations spread over the district's cells; every 20th has a warning."""
    cells = list(sample_register().cells)
    for i in range(n):
        sid = f"st-{i:04d}"
        store.update_station(
            StationUpdate(
                station=sid,
                seen=now - (i % 7) * 40,
                online=i % 97 != 0,
                software="0.1.0",
                config_version=f"fleet:{1 + i % 3}",
                model_version="nowcast-3",
                grid_cell=cells[i % len(cells)],
                devices={"rain": {"state": "ok" if i % 53 else "no_answer"}},
                backlog=i % 5,
                clock_offset_s=((i % 11) - 5) * 0.3,
            )
        )
        if i % 20 == 0:
            level = LEVELS[1 + (i // 20) % 4]
            record = _event(1, now - 600, level)
            store.ingest([IngestBatch(sid, "event", 1, 1, (record,), now)])


def seed_week(store: Store, station: str, now: float, days: float, cell: str) -> int:
    """``days`` of one-minute derived values on five channels with a storm near the end; rows."""
    store.update_station(
        StationUpdate(station=station, seen=now, online=True, grid_cell=cell, backlog=0)
    )
    minutes = int(days * 1440)
    start = now - minutes * 60
    seq, rows, batch = 0, 0, []
    units = {"rain_intensity": "mm/h", "rain_1h": "mm", "wind_speed_10min": "m/s"}
    units |= {"wind_gust_3s": "m/s", "water_depth": "mm"}
    for m in range(minutes):
        t = datetime.fromtimestamp(start + m * 60, UTC)
        storm = math.exp(-(((m - minutes * 0.9) / 90) ** 2))
        values = {
            "rain_intensity": 70 * storm,
            "rain_1h": 60 * storm,
            "wind_speed_10min": 4 + 9 * storm + 1.5 * math.sin(m / 30),
            "wind_gust_3s": 7 + 16 * storm + 2 * math.sin(m / 7),
            "water_depth": 260 * math.exp(-(((m - minutes * 0.9 - 40) / 120) ** 2)),
        }
        for channel, v in values.items():
            seq += 1
            flag = 1 if m % 997 == 0 else 0
            batch.append(
                Record(
                    seq=seq,
                    kind="derived",
                    time=t,
                    channel=channel,
                    value=v,
                    unit=units[channel],
                    flag=flag,
                )
            )
        if m % 10 == 0 and storm > 0.05:
            seq += 1
            d = values["water_depth"]
            payload = {"depth_15_mm": d * 1.05, "depth_30_mm": d * 1.1, "depth_60_mm": d * 1.2}
            batch.append(
                Record(
                    seq=seq,
                    kind="forecast",
                    time=t,
                    channel="water_depth_30min",
                    value=d * 1.1,
                    unit="mm",
                    payload=payload,
                )
            )
        if len(batch) >= 5000 or m == minutes - 1:
            store.ingest(
                [IngestBatch(station, "live", batch[0].seq, batch[-1].seq, tuple(batch), now)]
            )
            rows += len(batch)
            batch = []
    return rows


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def measure(
    driver: Any, url: str, view: str, runs: int, check: str
) -> tuple[list[float], list[float]]:
    """Full navigations to ``url``: (time to first render, loadEventEnd), ms each."""
    ours, base = [], []
    for _ in range(runs):
        driver.get("about:blank")
        driver.get(url)
        ready(driver, view, timeout=120)
        if not driver.execute_script(check):
            raise RuntimeError(f"{url}: page drawn without its data ({check})")
        ours.append(float(driver.execute_script("return window.__readyAt")))
        base.append(
            float(
                driver.execute_script(
                    "return performance.getEntriesByType('navigation')[0].loadEventEnd"
                )
            )
        )
    return ours, base


@click.command()
@click.option("--runs", default=15, show_default=True, help="navigations per page")
@click.option("--stations", default=1000, show_default=True)
@click.option("--days", default=7.0, show_default=True, help="days of one-minute data")
def main(runs: int, stations: int, days: float) -> None:
    import time

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/fleet.db")
        now = time.time()
        seed_stations(store, stations, now)
        cell = next(iter(sample_register().cells))
        rows = seed_week(store, "st-week", now, days, cell)
        auth = Auth(store)
        auth.add_user("bench", PASSWORD, ["viewer"])
        server = Server(lambda: create_app(store, auth=auth), free_port())
        server.start()
        url = f"http://127.0.0.1:{server.port}"
        driver = chromium()
        try:
            sign_in(driver, url, "bench", password=PASSWORD)
            d_ours, d_base = measure(
                driver,
                f"{url}/console/?lang=zh-CN#/district",
                "district",
                runs,
                f"return document.body.dataset.district === '{stations + 1}'"
                " && document.querySelectorAll('#stations tbody tr').length > 0",
            )
            s_ours, s_base = measure(
                driver,
                f"{url}/console/?lang=zh-CN#/station/st-week/7d",
                "station",
                runs,
                "return document.querySelectorAll('.uplot').length === 3",
            )
        finally:
            driver.quit()
            server.stop()
            store.close()
    for name, ours, base in (("district", d_ours, d_base), ("station page", s_ours, s_base)):
        p50, p99 = statistics.median(ours), _pct(ours, 0.99)
        b50, b99 = statistics.median(base), _pct(base, 0.99)
        print(f"{name}: first render p50 {p50:.0f} ms, p99 {p99:.0f} ms;", end=" ")
        print(f"static page load p50 {b50:.0f} ms, p99 {b99:.0f} ms")
    d99, b99 = _pct(d_ours, 0.99), _pct(d_base, 0.99)
    summary = {
        "bench": "console",
        "metric": "district_first_render_p99_ms",
        "value": round(d99, 1),
        "unit": "ms",
        "baseline": round(b99, 1),
        "ratio": round(d99 / b99, 2) if b99 else None,
        "district_p50_ms": round(statistics.median(d_ours), 1),
        "station_page_p99_ms": round(_pct(s_ours, 0.99), 1),
        "station_page_p50_ms": round(statistics.median(s_ours), 1),
        "station_page_baseline_p99_ms": round(_pct(s_base, 0.99), 1),
        "stations": stations,
        "week_rows": rows,
        "runs": runs,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
