"""Screenshots of every console page in both languages, for the README (``docs/console/``).

    .venv/bin/python -m tests.console.screenshots [--out docs/console]

A real controller with the response chain (as the browser tests run it) gets a small storm over
the sample district through stations speaking the real wire protocol, a published and partly
acknowledged warning, an incident with its downwind sector, a field report, a canary rollout and
a drill; headless chromium at 1366x768 then saves ``<page>-zh.png`` and ``<page>-en.png``.
"""

from __future__ import annotations

import math
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from fleet.response.onsite import Wind
from roadside import wire
from sim.broker import MosquittoBroker
from sim.pki import TestPKI
from tests.console.browser import (
    Console,
    chromium,
    fake_location,
    ready,
    running_console,
    sign_in,
    wait,
)
from tests.console.browser import click as click_on

LEVELS = ("none", "blue", "yellow", "orange", "red")
STORM = {
    "st-g06-1": ("BS-G06", "orange"),
    "st-g02-1": ("BS-G02", "yellow"),
    "st-g09-1": ("BS-G09", "blue"),
    "st-g11-1": ("BS-G11", "none"),
}


def _storm(c: Console) -> None:
    """Six hours of one-minute derived values for a few stations, then their warning events."""
    now = datetime.now(UTC)
    for name, (cell, level) in STORM.items():
        station = c.station(name, cell)
        rows, seq = [], 0
        for m in range(360):
            t = now - timedelta(minutes=360 - m)
            storm = math.exp(-(((m - 280) / 40) ** 2)) * (1 + LEVELS.index(level)) / 4
            for channel, value, unit in (
                ("rain_intensity", 90 * storm, "mm/h"),
                ("rain_1h", 70 * storm, "mm"),
                ("wind_speed_10min", 3 + 8 * storm + math.sin(m / 20), "m/s"),
                ("wind_gust_3s", 6 + 14 * storm + 2 * math.sin(m / 6), "m/s"),
                ("water_depth", 320 * math.exp(-(((m - 300) / 50) ** 2)) * storm, "mm"),
            ):
                seq += 1
                flag = 1 if m % 97 == 0 and channel == "water_depth" else 0
                rows.append(wire.WireRecord(seq, "derived", t, "", channel, value, unit, flag=flag))
            if m % 10 == 0 and m > 200:
                seq += 1
                d = 320 * math.exp(-(((m - 300) / 50) ** 2)) * storm
                payload = {"depth_15_mm": d * 1.1, "depth_30_mm": d * 1.2, "depth_60_mm": d * 1.3}
                rows.append(
                    wire.WireRecord(
                        seq, "forecast", t, "", "water_depth_30min", d * 1.2, "mm", payload=payload
                    )
                )
        for i in range(0, len(rows), 400):
            station.send(rows[i : i + 400])
        for lv in LEVELS[1 : LEVELS.index(level) + 1]:
            seq += 1
            payload = {
                "kind": "raise",
                "signal": "rainstorm",
                "level": lv,
                "rule": "rain_1h",
                "certainty": "Observed",
                "previous": "none",
            }
            station.send(
                [
                    wire.WireRecord(
                        seq,
                        "event",
                        now,
                        "",
                        "rainstorm",
                        LEVELS.index(lv),
                        "",
                        reason="raise",
                        payload=payload,
                    )
                ],
                lane="event",
            )
        station.drain(30)


def _response(c: Console) -> dict[str, Any]:
    r = c.response
    m = r.alerts.draft(
        cells=["BS-G06"],
        signal="rainstorm",
        level="II",
        author="duty",
        now=r.now(),
        description=("友谊路网格暴雨橙色预警", "Rainstorm orange"),
    )
    r.alerts.approve(m["id"], "chief", r.now())
    published = r.publish(m["id"], "chief")["message"]
    r.grid.decide("BS-G06", "II", "chief", r.now(), "防汛办确认Ⅱ级响应")
    incident = r.field.open_incident(
        "化工品泄漏（演示）", 121.452, 31.352, "duty", r.now(), Wind(120.0, 2.5, 25.0)
    )
    r.field.report(
        by="duty",
        lon=121.475,
        lat=31.372,
        depth_class="15-30cm",
        note="路口积水约20厘米",
        photo_b64=None,
        now=r.now(),
    )
    if c.service.config is not None:
        c.store.set_group("canary", ["st-g06-1"])
        c.service.config.start_rollout(
            "fleet", {"warnings": {"rainstorm": {"levels": {"blue": {"rain_1h": 35}}}}}, "canary"
        )
    return {"message": published["id"], "incident": incident["id"]}


@click.command()
@click.option("--out", type=click.Path(file_okay=False), default="docs/console", show_default=True)
def main(out: str) -> None:
    """Write docs/console/<page>-zh.png and -en.png."""
    dest = Path(out)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker = MosquittoBroker(work / "broker", TestPKI(work / "pki"))
        broker.start()
        try:
            with running_console(work, broker) as c:
                _storm(c)
                ids = _response(c)
                time.sleep(2)  # the engine's poll and the outbox's first deliveries
                _shoot(c, ids, dest)
        finally:
            broker.stop()


def _save(driver: Any, path: Path, width: int = 1366) -> None:
    """The whole page (window stretched to its height, at most 2400 px), from the top."""
    driver.execute_script("window.scrollTo(0, 0)")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, max(768, min(2400, int(height) + 90)))
    time.sleep(0.4)
    driver.save_screenshot(str(path))
    driver.set_window_size(1366, 768)


def _shoot(c: Console, ids: dict[str, str], dest: Path) -> None:
    driver = chromium(1366, 768)
    try:
        for lang, tag in (("zh-CN", "zh"), ("en", "en")):
            driver.delete_all_cookies()
            driver.get(f"{c.url}/console/?lang={lang}")
            ready(driver, "signin")
            driver.save_screenshot(str(dest / f"signin-{tag}.png"))
            sign_in(driver, c.url, "chief", lang)
            pages = {
                "district": "district",
                "station": "station/st-g06-1/6h",
                "warnings": "warnings",
                "onsite": "onsite",
                "report": "report/BS-G06/24",
                "config": "config",
            }
            for name, route in pages.items():
                driver.get(f"{c.url}/console/?lang={lang}#/{route}")
                ready(driver, name)
                if name == "warnings":
                    click_on(driver, f'a[data-select="{ids["message"]}"]')
                    wait(driver, lambda d: "<alert" in d.find_element("id", "preview").text, "CAP")
                if name == "onsite":
                    click_on(driver, f'a[data-show="{ids["incident"]}"]')
                    wait(driver, lambda d: d.find_elements("css selector", ".sector"), "sector")
                time.sleep(0.8)
                _save(driver, dest / f"{name}-{tag}.png")
            fake_location(driver, c.url)
            driver.get(f"{c.url}/console/field?lang={lang}")
            wait(driver, lambda d: d.execute_script("return document.body.dataset.ready"), "field")
            _save(driver, dest / f"field-{tag}.png", width=412)
        # audit (admin) and a running drill, last: the drill banner shows on every page
        for lang, tag in (("zh-CN", "zh"), ("en", "en")):
            driver.delete_all_cookies()
            sign_in(driver, c.url, "admin", lang, route="audit")
            _save(driver, dest / f"audit-{tag}.png")
        drill = c.response.drills.start(
            "汛期联合演练 / joint flood drill", "admin", c.response.now()
        )
        c.response.alerts.draft(
            cells=["BS-G01"],
            signal="waterlogging",
            level="III",
            author="duty",
            now=c.response.now(),
            drill=drill["id"],
        )
        for lang, tag in (("zh-CN", "zh"), ("en", "en")):
            driver.get(f"{c.url}/console/?lang={lang}#/drills")
            ready(driver, "drills")
            wait(driver, lambda d: d.find_element("id", "drill-banner").is_displayed(), "banner")
            _save(driver, dest / f"drills-{tag}.png")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
