"""Fixtures for the agent tests: a manual clock and a buffer in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
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
