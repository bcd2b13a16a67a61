"""Is the wall clock good, and did it jump?

A Raspberry Pi has no real-time clock: it boots at the last saved time (or 1970) and jumps when NTP
answers. The agent stamps readings with wall time but orders them by the buffer's sequence, so a
jump never reorders anything; what it must do is say which stamps to distrust:

- ``unsynced``: taken before the wall clock was known good: before the configured sanity floor, or
  (on the real system clock) before systemd-timesyncd wrote ``/run/systemd/timesync/synchronized``
  or the kernel reported its clock synchronised (``adjtimex`` state other than TIME_ERROR).
  Such records carry the monotonic time too, so the fleet can re-time them later.
- ``jump``: the offset between wall and monotonic time moved by more than the tolerance since the
  last check (NTP stepping the clock, someone running ``date -s``).

Simulated clocks (scaled or manual) are their own authority: only the floor and jumps apply.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from roadside.clock import Clock, SystemClock

log = logging.getLogger(__name__)

TIMESYNC_MARKER = Path("/run/systemd/timesync/synchronized")
TIME_ERROR = 5  # adjtimex() return value: clock not synchronised
RECHECK_S = 60.0  # how often an unsynced system clock is looked at again (monotonic seconds)


def kernel_clock_synced() -> bool | None:
    """The kernel's view (``adjtimex`` read-only); None when it cannot be asked."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        timex = ctypes.create_string_buffer(512)  # struct timex with modes = 0: read only
        state = libc.adjtimex(timex)
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return bool(state != TIME_ERROR)


@dataclass(frozen=True, slots=True)
class TimeState:
    """The verdict of one :meth:`Timekeeper.check`."""

    quality: Literal["ok", "unsynced", "jump"]
    monotonic: float
    jump_s: float = 0.0

    def mark(self) -> dict[str, Any] | None:
        """What to add to the payload of records stamped now (None when the time is good)."""
        if self.quality == "ok":
            return None
        if self.quality == "jump":
            return {"clock": "jump", "jump_s": round(self.jump_s, 3)}
        return {"clock": "unsynced", "mono": round(self.monotonic, 3)}


class Timekeeper:
    """Tracks whether ``clock``'s wall time is good and detects jumps against its monotonic time."""

    def __init__(
        self,
        clock: Clock,
        *,
        floor: datetime,
        tolerance_s: float = 2.0,
        sync_check: Literal["auto", "none"] = "auto",
        marker: Path = TIMESYNC_MARKER,
    ) -> None:
        self.clock = clock
        self.floor = floor
        self.tolerance_s = tolerance_s
        self.marker = marker
        self._check_sync = sync_check == "auto" and isinstance(clock, SystemClock)
        self._synced = not self._check_sync
        self._next_sync_check = float("-inf")
        self._offset: float | None = None
        self.jumps = 0

    def synced(self) -> bool:
        """Has an outside source vouched for the wall clock? (Latches once true.)"""
        if self._synced:
            return True
        mono = self.clock.monotonic()
        if mono >= self._next_sync_check:
            self._next_sync_check = mono + RECHECK_S
            if self.marker.exists() or kernel_clock_synced():
                self._synced = True
                log.info("wall clock is synchronised; readings are stamped as good from now")
        return self._synced

    def check(self) -> TimeState:
        """Look at the clock now: flags a jump since the last check, or an unsynced clock."""
        wall = self.clock.now()
        mono = self.clock.monotonic()
        offset = wall.timestamp() - mono
        jump = 0.0
        if self._offset is not None:
            jump = offset - self._offset
        self._offset = offset
        if abs(jump) > self.tolerance_s:
            self.jumps += 1
            log.warning(
                "wall clock jumped by %+.1f s", jump, extra={"CLOCK_JUMP_S": round(jump, 3)}
            )
            return TimeState("jump", mono, jump)
        if wall < self.floor or not self.synced():
            return TimeState("unsynced", mono)
        return TimeState("ok", mono)
