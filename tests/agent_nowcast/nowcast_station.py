"""Helpers for the nowcast-in-the-agent tests: a station configuration for the storm station."""

from __future__ import annotations

from pathlib import Path
from typing import Any

STATION = "bs-nowcast"
SITE_50Y = (
    "[site]\ndrain_capacity_mmh = 36.0\ncatchment_m2 = 2000.0\npond_area_m2 = 250.0\n"
    "runoff_coeff = 0.9\n"
)
BEACON_ACTION = (
    '[[actions]]\nsignal = "waterlogging"\nmin_level = "blue"\nsensor = "beacon"\n'
    'setting = "light"\non = 1\noff = 0\n'
)


def station_toml(
    endpoints: dict[str, Any],
    buffer_path: Path,
    *,
    devices: tuple[str, ...] = ("rain", "level", "beacon"),
    interval_s: float = 30.0,
    extra: str = "",
) -> str:
    """A station configuration polling ``devices`` of a running SimStation (metrics off)."""
    lines = [
        'version = "nowcast-test-1"',
        "[station]",
        f'id = "{STATION}"',
        "lat = 31.4",
        "lon = 121.4",
        'grid_cell = "310113-G042"',
    ]
    for name in devices:
        ep = endpoints[name]
        lines += [
            "[[sensors]]",
            f'name = "{ep.device}"',
            f'profile = "{ep.profile}"',
            f'port = "{ep.port}"',
            f"interval_s = {interval_s}",
        ]
        if ep.slave is not None:
            lines.append(f"slave = {ep.slave}")
    lines += [
        "[sampling]",
        "adaptive = false",
        "[buffer]",
        f'path = "{buffer_path}"',
        "max_mb = 64",
        'synchronous = "normal"',
        "[metrics]",
        "port = 0",
        "[time]",
        'sync_check = "none"',
    ]
    return "\n".join(lines) + "\n" + SITE_50Y + extra
