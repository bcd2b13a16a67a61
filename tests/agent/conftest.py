"""Fixtures for the agent tests: a manual clock and a buffer in a temporary directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.buffer import Buffer
from roadside.clock import ManualClock

T0 = datetime(2026, 7, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def buffer(tmp_path: Path, clock: ManualClock) -> Iterator[Buffer]:
    buf = Buffer(tmp_path / "buffer.db", max_bytes=64 * 1024 * 1024, clock=clock)
    yield buf
    buf.close()


@pytest.fixture
def station_toml() -> Callable[..., str]:
    """Build a station configuration for a running SimStation's endpoints."""
    return make_station_toml


def make_station_toml(
    endpoints: dict[str, object],
    buffer_path: Path,
    *,
    interval_s: float = 1.0,
    wet_interval_s: float | None = None,
    metrics_port: int = 0,
    extra: str = "",
) -> str:
    """A station configuration for a running SimStation's endpoints (metrics off)."""
    lines = [
        'version = "test-1"',
        "[station]",
        'id = "bs-test"',
        "lat = 31.4",
        "lon = 121.4",
        'grid_cell = "310113-G042"',
    ]
    for ep in endpoints.values():
        lines += [
            "[[sensors]]",
            f'name = "{ep.device}"',  # type: ignore[attr-defined]
            f'profile = "{ep.profile}"',  # type: ignore[attr-defined]
            f'port = "{ep.port}"',  # type: ignore[attr-defined]
            f"interval_s = {interval_s}",
        ]
        if ep.slave is not None:  # type: ignore[attr-defined]
            lines.append(f"slave = {ep.slave}")  # type: ignore[attr-defined]
        if wet_interval_s is not None:
            lines.append(f"wet_interval_s = {wet_interval_s}")
    lines += [
        "[buffer]",
        f'path = "{buffer_path}"',
        "max_mb = 64",
        "[metrics]",
        f"port = {metrics_port}",
        "[time]",
        'sync_check = "none"',
    ]
    return "\n".join(lines) + "\n" + extra
