"""Wall-clock trust: the sanity floor, outside sync sources, and jumps against monotonic time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.timekeeping import Timekeeper, kernel_clock_synced
from roadside.clock import ManualClock, ScaledClock, SystemClock

FLOOR = datetime(2026, 1, 1, tzinfo=UTC)


def test_before_the_floor_is_unsynced_and_carries_monotonic_time() -> None:
    clock = ManualClock(datetime(1970, 1, 1, tzinfo=UTC))
    keeper = Timekeeper(clock, floor=FLOOR)
    clock.advance(12.5)
    state = keeper.check()
    assert state.quality == "unsynced"
    assert state.mark() == {"clock": "unsynced", "mono": 12.5}


def test_a_step_to_real_time_is_a_jump_then_good() -> None:
    clock = ManualClock(datetime(1970, 1, 1, tzinfo=UTC))
    keeper = Timekeeper(clock, floor=FLOOR, tolerance_s=2.0)
    keeper.check()
    clock.advance(5)
    clock.set_wall(datetime(2026, 7, 21, 12, 0, tzinfo=UTC))  # NTP answers
    state = keeper.check()
    assert state.quality == "jump" and state.jump_s > 1e9
    assert state.mark() is not None and state.mark()["clock"] == "jump"  # type: ignore[index]
    clock.advance(10)
    assert keeper.check().quality == "ok"
    assert keeper.jumps == 1


def test_drift_within_tolerance_is_not_a_jump() -> None:
    clock = ManualClock(datetime(2026, 7, 21, tzinfo=UTC))
    keeper = Timekeeper(clock, floor=FLOOR, tolerance_s=2.0)
    keeper.check()
    clock.advance(60)
    clock.set_wall(clock.now() + timedelta(seconds=1.5))
    assert keeper.check().quality == "ok"
    clock.set_wall(clock.now() - timedelta(seconds=3))
    state = keeper.check()
    assert state.quality == "jump" and state.jump_s == -3.0


def test_scaled_clock_does_not_look_like_jumps() -> None:
    clock = ScaledClock(datetime(2026, 7, 21, 12, tzinfo=UTC), speed=1000)
    keeper = Timekeeper(clock, floor=FLOOR, tolerance_s=2.0)
    states = [keeper.check().quality for _ in range(50)]
    assert set(states) == {"ok"}


def test_system_clock_waits_for_the_timesync_marker(tmp_path: Path) -> None:
    marker = tmp_path / "synchronized"
    keeper = Timekeeper(SystemClock(), floor=FLOOR, marker=marker)
    kernel = kernel_clock_synced()
    if kernel:  # this host's kernel vouches already: the marker cannot change the verdict
        assert keeper.check().quality == "ok"
        return
    assert keeper.check().quality == "unsynced"
    marker.touch()
    keeper._next_sync_check = float("-inf")  # do not wait the recheck minute in a test
    assert keeper.check().quality == "ok"


def test_sync_check_none_trusts_the_floor_only() -> None:
    keeper = Timekeeper(SystemClock(), floor=FLOOR, sync_check="none")
    assert keeper.check().quality == "ok"
