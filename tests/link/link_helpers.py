"""Shared helpers of the link tests: filling a station buffer with realistic rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.buffer import Buffer
from roadside.clock import Clock, SystemClock
from roadside.contract import UNNUMBERED, Record

T0 = datetime(2026, 7, 21, 0, 0, tzinfo=UTC)
CHANNELS = (
    ("rain", "rain_total", "mm"),
    ("wind", "wind_speed", "m/s"),
    ("level", "water_depth", "mm"),
)


def readings(n: int, start: datetime = T0) -> list[Record]:
    """``n`` readings round-robin over three channels, one minute apart per channel."""
    out = []
    for i in range(n):
        sensor, channel, unit = CHANNELS[i % len(CHANNELS)]
        t = start + timedelta(minutes=i // len(CHANNELS))
        out.append(
            Record(
                seq=UNNUMBERED,
                kind="reading",
                time=t,
                sensor=sensor,
                channel=channel,
                value=round(i * 0.1, 3),
                unit=unit,
                raw=str(i),
                status="ok",
                flag=0,
            )
        )
    return out


def event(t: datetime, level: str = "blue") -> Record:
    return Record(
        seq=UNNUMBERED,
        kind="event",
        time=t,
        payload={"kind": "raise", "signal": "rainstorm", "level": level},
    )


def new_buffer(path: Path, clock: Clock | None = None) -> Buffer:
    return Buffer(path, max_bytes=1 << 30, clock=clock or SystemClock(), synchronous="normal")
