"""Commissioning: the station configuration from a scan, and the on-site checklist.

:func:`render_config` turns what ``scan`` found plus the site details into station TOML;
:func:`write_config` validates it with the agent's own loader (:func:`agent.config.load_config`)
before it replaces anything, so ``init`` never leaves a file the agent would refuse.
:func:`checklist` is a pure function from live, QC-flagged readings and the technician's
observations to checklist items; :func:`live_readings` is the I/O that feeds it.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from agent.config import StationConfig, load_config
from agent.errors import ConfigError
from agent.flags import Flag, FlaggedReading
from agent.qc.engine import QCEngine
from agent.qc.params import QCParams
from drivers.bus import DeviceConfig, open_buses
from drivers.profile import load_profile
from roadside.clock import Clock

KIND_NAMES = {
    "rain_gauge": "rain",
    "water_level": "level",
    "anemometer": "wind",
    "weather_transmitter": "weather",
    "actuator": "beacon",
}
FAST_INTERVAL = {"windsonic": 1.0}  # a talker's every frame is needed (3-s gust)
DATUM_TOLERANCE_MM = 20.0  # |depth| on a dry road that counts as "datum at the road surface"
FAIL = (Flag.WRONG, Flag.MISSING)  # QC flags that fail a sensor's "answers" check
POUR_TOLERANCE = 0.1  # share of the poured amount the gauge may miss


@dataclass(frozen=True)
class Site:
    """What the technician knows about the site."""

    id: str
    lat: float
    lon: float
    grid_cell: str
    name: str = ""
    installation_height_cm: float | None = None
    north_offset_deg: float | None = None


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def sensors_from_scan(scans: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``[[sensors]]`` entries for every named device in ``scan --json`` outputs."""
    out: list[dict[str, Any]] = []
    used: dict[str, int] = {}
    for scan in scans:
        port = str(scan["port"])
        for d in scan.get("devices", []):
            if not d.get("profile"):
                continue
            profile = load_profile(d["profile"])
            base = KIND_NAMES[profile.device.kind]
            used[base] = used.get(base, 0) + 1
            name = base if used[base] == 1 else f"{base}{used[base]}"
            entry: dict[str, Any] = {"name": name, "profile": d["profile"], "port": port}
            if d.get("slave") is not None:
                entry["slave"] = d["slave"]
            entry["interval_s"] = FAST_INTERVAL.get(profile.device.protocol, 10.0)
            out.append(entry)
    return out


def render_config(
    site: Site, sensors: Sequence[Mapping[str, Any]], *, version: str, buffer_path: str
) -> str:
    """The station TOML for ``site`` and ``sensors`` (validated by :func:`write_config`)."""
    lines = [
        "# Station configuration written by roadside-provision init.",
        f"version = {_toml(version)}",
        "",
        "[station]",
        f"id = {_toml(site.id)}",
        f"name = {_toml(site.name)}",
        f"lat = {_toml(site.lat)}",
        f"lon = {_toml(site.lon)}",
        f"grid_cell = {_toml(site.grid_cell)}",
    ]
    for s in sensors:
        lines += ["", "[[sensors]]"] + [f"{k} = {_toml(v)}" for k, v in s.items()]
    lines += ["", "[buffer]", f"path = {_toml(buffer_path)}", ""]
    return "\n".join(lines)


def write_config(path: Path, text: str) -> StationConfig:
    """Validate ``text`` exactly as the agent loads it, then put it at ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        config = load_config(tmp)
    except ConfigError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(str(exc).replace(str(tmp), str(path))) from None
    tmp.replace(path)
    return config


# -- the checklist ----------------------------------------------------------------------------
Status = Literal["pass", "fail", "todo"]


@dataclass(frozen=True)
class Item:
    """One checklist line."""

    check: str
    sensor: str
    status: Status
    value: str = ""
    detail: str = ""


@dataclass
class Observations:
    """What the technician did or measured on site (None: not done yet)."""

    poured_mm: float | None = None  # water poured into the gauge
    rain_before_mm: dict[str, float] = field(default_factory=dict)
    north_offset_deg: float | None = None
    installation_height_cm: float | None = None


def _latest(rows: Sequence[FlaggedReading], channel: str) -> FlaggedReading | None:
    hits = [r for r in rows if r.reading.channel == channel]
    return hits[-1] if hits else None


def checklist(
    config: StationConfig,
    readings: Mapping[str, Sequence[FlaggedReading]],
    seen: Observations,
    settings: Mapping[str, float] | None = None,
) -> list[Item]:
    """The commissioning checklist for ``config`` given each sensor's flagged readings.

    ``settings`` holds device settings read live (``level.installation_height``).
    """
    items: list[Item] = []
    settings = settings or {}
    for s in config.sensors:
        rows = readings.get(s.name, [])
        profile = load_profile(s.profile)
        good = [r for r in rows if r.reading.ok]
        # each channel's newest good reading (or its newest failure when it never answered)
        latest = {r.reading.channel: r for r in rows}
        latest |= {r.reading.channel: r for r in good}
        missed = [r for r in rows if not r.reading.ok]
        shown = ", ".join(
            f"{ch}={r.reading.value:g}{r.reading.unit} [{r.flag.name.lower()}]"
            if r.reading.value is not None
            else f"{ch}: {r.reading.status.value}"
            for ch, r in latest.items()
        )
        bad = [
            f"{ch}: {r.flag.name.lower()} {r.reason}" for ch, r in latest.items() if r.flag in FAIL
        ]
        if not good:
            detail = next((r.reading.detail for r in rows if r.reading.detail), "no answer")
            items.append(Item("answers", s.name, "fail", shown, detail))
            continue
        never = [ch for ch, r in latest.items() if not r.reading.ok]
        if missed:
            what = sorted({r.reading.status.value for r in missed})
            bad.append(f"{len(missed)} of {len(rows)} readings failed ({', '.join(what)})")
        failing = bool(never) or any(r.flag in FAIL for r in latest.values())
        items.append(Item("answers", s.name, "fail" if failing else "pass", shown, "; ".join(bad)))
        kind = profile.device.kind
        if kind == "water_level":
            items += _datum(s.name, latest, seen, settings.get(f"{s.name}.installation_height"))
        if kind == "rain_gauge" or (kind == "weather_transmitter" and "rain_total" in latest):
            items.append(_pour(s.name, latest, seen))
        if kind in ("anemometer", "weather_transmitter") and "wind_dir" in latest:
            if seen.north_offset_deg is None:
                items.append(Item("north offset", s.name, "todo", "", "give --north-offset DEG"))
            else:
                items.append(Item("north offset", s.name, "pass", f"{seen.north_offset_deg:g} deg"))
    return items


def _datum(
    sensor: str,
    latest: Mapping[str, FlaggedReading],
    seen: Observations,
    device_height: float | None,
) -> list[Item]:
    out: list[Item] = []
    depth, gap = latest.get("water_depth"), latest.get("water_distance")
    if depth is None or depth.reading.value is None:
        return [Item("datum at road surface", sensor, "fail", "", "no water_depth reading")]
    v = depth.reading.value
    hint = ""
    if gap is not None and gap.reading.value is not None:
        hint = (
            f"on a dry road set installation_height to {gap.reading.value / 10:.0f} cm: "
            f"roadside-provision write PORT installation_height "
            f"{gap.reading.value / 10:.0f} --profile ... --slave ..."
        )
    ok = abs(v) <= DATUM_TOLERANCE_MM
    out.append(
        Item(
            "datum at road surface",
            sensor,
            "pass" if ok else "fail",
            f"{v:g} mm",
            "" if ok else hint,
        )
    )
    want = seen.installation_height_cm
    if want is not None and device_height is not None:
        same = abs(device_height - want) < 0.5
        out.append(
            Item(
                "installation height",
                sensor,
                "pass" if same else "fail",
                f"device {device_height:g} cm",
                "" if same else f"site survey says {want:g} cm",
            )
        )
    return out


def _pour(sensor: str, latest: Mapping[str, FlaggedReading], seen: Observations) -> Item:
    total = latest.get("rain_total")
    before = seen.rain_before_mm.get(sensor)
    if seen.poured_mm is None or total is None or total.reading.value is None or before is None:
        return Item("tips when water is poured", sensor, "todo", "", "give --pour-mm MM")
    counted = total.reading.value - before
    ok = math.isclose(counted, seen.poured_mm, rel_tol=POUR_TOLERANCE, abs_tol=0.05)
    return Item(
        "tips when water is poured",
        sensor,
        "pass" if ok else "fail",
        f"counted {counted:.1f} mm of {seen.poured_mm:g} mm",
        "" if ok else "check the bucket, the funnel and the tip size",
    )


def live_readings(
    config: StationConfig, clock: Clock, polls: int = 2, interval_s: float = 1.0
) -> dict[str, list[FlaggedReading]]:
    """Poll every configured sensor ``polls`` times and flag the readings with the station's QC."""
    devices = [
        DeviceConfig(s.name, load_profile(s.profile), s.port, slave=s.slave, channels=s.channels)
        for s in config.sensors
    ]
    engine = QCEngine(QCParams.from_dict(config.qc))
    out: dict[str, list[FlaggedReading]] = {s.name: [] for s in config.sensors}
    buses = open_buses(devices, station=config.station_id, clock=clock, sink=lambda r: None)
    try:
        for n in range(polls):
            if n:
                time.sleep(interval_s)
            for bus in buses:
                for name in bus.devices:
                    out[name] += engine.process(bus.poll_once(name))
    finally:
        for bus in buses:
            bus.stop()
    return out


def items_json(items: Sequence[Item]) -> list[dict[str, Any]]:
    return [asdict(i) for i in items]
