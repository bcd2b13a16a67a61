"""The runner's pure path without buses: QC, derived, time marks and warnings into the buffer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.buffer import Buffer
from agent.config import load_config
from agent.runner import Agent, _Batch
from roadside.clock import ManualClock
from roadside.records import DriverStatus, Reading


class Ep:
    def __init__(self, device: str, profile: str, slave: int | None) -> None:
        self.device, self.profile, self.port, self.slave = device, profile, "/dev/null", slave


def agent_on(tmp_path: Path, clock: ManualClock, station_toml: Callable[..., str]) -> Agent:
    endpoints = {"rain": Ep("rain", "dfrobot-sen0575", 192)}
    path = tmp_path / "station.toml"
    path.write_text(station_toml(endpoints, tmp_path / "b.db").replace('"none"', '"auto"'))
    agent = Agent(load_config(path), clock, serve_metrics=False)
    agent.buffer = Buffer(tmp_path / "b.db", max_bytes=1 << 24, clock=clock)
    return agent


def rain(clock: ManualClock, total: float | None, status: DriverStatus = DriverStatus.OK) -> _Batch:
    reading = Reading("bs-test", "rain", "rain_total", clock.now(), total, "mm", None, status)
    return _Batch([reading], {"rain": {"rain_total": {"total": total}}})


def test_readings_before_the_floor_are_marked_unsynced(
    tmp_path: Path, station_toml: Callable[..., str]
) -> None:
    clock = ManualClock(datetime(1970, 1, 1, tzinfo=UTC))  # a Pi booting without RTC
    agent = agent_on(tmp_path, clock, station_toml)
    clock.advance(30)
    agent.process([rain(clock, 1.0)])
    assert agent.buffer is not None
    (stored,) = agent.buffer.where("kind = 'reading'")
    assert stored.payload["clock"] == "unsynced" and stored.payload["mono"] == 30.0
    clock.set_wall(datetime(2026, 7, 21, 12, tzinfo=UTC))  # NTP answers: a jump
    clock.advance(10)
    agent.process([rain(clock, 1.2)])
    last = agent.buffer.where("kind = 'reading'")[-1]
    assert last.payload["clock"] == "jump" and last.payload["jump_s"] > 1e9
    clock.advance(10)
    agent.process([rain(clock, 1.4)])
    assert agent.buffer.where("kind = 'reading'")[-1].payload is None  # no clock mark, no detail
    agent.buffer.close()


def test_failed_polls_are_stored_missing_and_counters_persist(
    tmp_path: Path, station_toml: Callable[..., str]
) -> None:
    clock = ManualClock(datetime(2026, 7, 21, 12, tzinfo=UTC))
    agent = agent_on(tmp_path, clock, station_toml)
    for i in range(5):
        clock.advance(10)
        agent.process([rain(clock, 0.2 * i)])
    clock.advance(10)
    agent.process([rain(clock, None, DriverStatus.TIMEOUT)])
    assert agent.buffer is not None
    readings = agent.buffer.where("kind = 'reading'")
    assert len(readings) == 6
    assert readings[-1].value is None and readings[-1].status == "timeout"
    assert readings[-1].flag == 8  # missing, with the driver status as its reason
    assert readings[-1].reason == "timeout"
    derived = {r.channel for r in agent.buffer.where("kind = 'derived'")}
    assert {"rain_1min", "rain_1h", "rain_intensity"} <= derived
    assert agent.buffer.get_state("counters") == {"rain": {"rain_total": {"total": None}}}
    assert agent.metrics.errors.labels("rain", "timeout")._value.get() == 1
    agent.buffer.close()


def test_all_derived_times_follow_the_clock(
    tmp_path: Path, station_toml: Callable[..., str]
) -> None:
    clock = ManualClock(datetime(2026, 7, 21, 12, tzinfo=UTC))
    agent = agent_on(tmp_path, clock, station_toml)
    clock.advance(60)
    agent.process([rain(clock, 5.0)])
    clock.advance(60)
    agent.process([rain(clock, 6.0)])
    assert agent.buffer is not None
    times = {r.time for r in agent.buffer.where("kind = 'derived'")}
    assert max(times) == datetime(2026, 7, 21, 12, tzinfo=UTC) + timedelta(seconds=120)
    agent.buffer.close()


def test_a_restart_refills_the_rain_windows_from_the_buffer(
    tmp_path: Path, station_toml: Callable[..., str]
) -> None:
    clock = ManualClock(datetime(2026, 7, 21, 12, tzinfo=UTC))
    first = agent_on(tmp_path, clock, station_toml)
    for i in range(90):  # 30 min of a steady 12 mm/h
        clock.advance(20)
        first.process([rain(clock, round(0.0667 * i, 4))])
    before = first._latest["rain_1h"].value
    assert first.buffer is not None
    first.buffer.close()
    assert before is not None and before > 5
    again = agent_on(tmp_path, clock, station_toml)
    assert "rain_1h" not in again._latest
    again._replay()
    assert again._latest["rain_1h"].value == before
    clock.advance(20)
    again.process([rain(clock, round(0.0667 * 90, 4))])
    assert again._latest["rain_1h"].value > before  # the window goes on, not from zero
    assert again.buffer is not None
    again.buffer.close()


def test_apply_config_swaps_rules_at_run_time(
    tmp_path: Path, station_toml: Callable[..., str]
) -> None:
    clock = ManualClock(datetime(2026, 7, 21, 12, tzinfo=UTC))
    agent = agent_on(tmp_path, clock, station_toml)
    for i in range(4):
        clock.advance(60)
        agent.process([rain(clock, 1.0 * i)])
    assert agent.buffer is not None
    assert agent.buffer.where("kind = 'event'") == []  # 1 mm/min is no storm by default
    low = "[warnings.rainstorm]\nlevels = { blue = { rain_10min = 0.5 } }\n"
    path = tmp_path / "new.toml"
    endpoints = {"rain": Ep("rain", "dfrobot-sen0575", 192)}
    path.write_text(station_toml(endpoints, tmp_path / "b.db", extra=low).replace("test-1", "2"))
    new = load_config(path)
    agent.apply_config(new)
    assert agent.config.version == "2"
    clock.advance(60)
    agent.process([rain(clock, 4.0)])
    (event,) = agent.buffer.where("kind = 'event'")
    assert event.payload["signal"] == "rainstorm" and event.payload["level"] == "blue"
    agent.buffer.close()
