"""Accumulating counters (rain totals, tip counts): undo rollover and resets (pure).

A gauge's counter wraps to 0 at ``rollover`` and restarts from 0 when the gauge loses power. The
driver turns the raw counts into a total that never goes backwards and never counts rain twice:

- a step forward adds the difference;
- a step backwards that a wrap explains (the wrapped step is no more than the fastest plausible
  rain since the last read) adds ``rollover - last + raw``;
- any other step backwards is a reset: the total stays, the reading says ``COUNTER_RESET``, and
  counting continues from the new raw value as the baseline.

State is a small dict (:meth:`RainCounter.state` / :meth:`RainCounter.from_state`) so the agent
persists it across restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from roadside.records import DriverStatus

MAX_RAIN_MM_PER_S = 50.0 / 60.0  # domain brief section 1: above 40-50 mm/min is wrong


@dataclass
class Step:
    """The outcome of one counter read: the unwrapped total (raw units) and how it was reached."""

    total: float
    status: DriverStatus
    detail: str = ""


@dataclass
class RainCounter:
    """One accumulating counter.

    ``max_rate`` is the largest plausible increase in raw units per second; without it a step
    backwards counts as a wrap when the wrapped step is under half the rollover.
    """

    rollover: float
    max_rate: float | None = None
    last_raw: float | None = None
    total: float = 0.0
    when: float | None = None  # epoch seconds of the last read

    def update(self, raw: float, when: float) -> Step:
        """Account for a new raw count read at ``when`` (epoch seconds)."""
        if not 0 <= raw < self.rollover:
            return Step(
                self.total, DriverStatus.BAD_FRAME, f"count {raw} outside 0..{self.rollover}"
            )
        last, last_when = self.last_raw, self.when
        self.last_raw, self.when = raw, when
        if last is None:
            self.total = float(raw)
            return Step(self.total, DriverStatus.OK)
        if raw >= last:
            self.total += raw - last
            return Step(self.total, DriverStatus.OK)
        wrapped = self.rollover - last + raw
        if wrapped <= self._max_step(when - last_when if last_when is not None else None):
            self.total += wrapped
            return Step(self.total, DriverStatus.OK, f"counter rolled over at {self.rollover:g}")
        return Step(
            self.total,
            DriverStatus.COUNTER_RESET,
            f"counter went from {last:g} to {raw:g}: reset, counting on from {raw:g}",
        )

    def _max_step(self, elapsed_s: float | None) -> float:
        if self.max_rate is None or elapsed_s is None:
            return self.rollover / 2
        return self.max_rate * max(elapsed_s, 1.0)

    def state(self) -> dict[str, Any]:
        """What must survive a restart."""
        return {"last_raw": self.last_raw, "total": self.total, "when": self.when}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a saved :meth:`state`."""
        last = state.get("last_raw")
        self.last_raw = None if last is None else float(last)
        self.total = float(state.get("total", 0.0))
        when = state.get("when")
        self.when = None if when is None else float(when)
