"""Device health: a circuit breaker per device and the health snapshot the scheduler reports.

The breaker keeps a silent or failing device from eating a shared bus: after ``threshold``
consecutive failed polls it opens for ``base_s``; when that time is up one trial poll is let
through (half-open); success closes it, failure re-opens it for twice as long, up to ``max_s``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from roadside.records import DriverStatus

# Statuses that show the device talked to us (the poll itself worked).
ANSWERED = frozenset({DriverStatus.OK, DriverStatus.COUNTER_RESET, DriverStatus.DEVICE_FAULT})


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class HealthState(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"


@dataclass
class Breaker:
    """Closed / open / half-open with exponential backoff; times are clock seconds."""

    threshold: int = 3
    base_s: float = 10.0
    max_s: float = 600.0
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0  # consecutive failed polls
    backoff_s: float = 0.0
    retry_at: float | None = None

    def allow(self, now: float) -> bool:
        """May the device be polled at ``now``? Moves an expired open breaker to half-open."""
        if self.state is BreakerState.OPEN:
            if self.retry_at is not None and now < self.retry_at:
                return False
            self.state = BreakerState.HALF_OPEN
        return True

    def success(self) -> None:
        self.state, self.failures, self.backoff_s, self.retry_at = BreakerState.CLOSED, 0, 0.0, None

    def failure(self, now: float) -> None:
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN:
            self.backoff_s = min(max(self.backoff_s, self.base_s) * 2, self.max_s)
        elif self.failures >= self.threshold:
            self.backoff_s = min(self.base_s, self.max_s)
        else:
            return
        self.state, self.retry_at = BreakerState.OPEN, now + self.backoff_s


@dataclass(frozen=True)
class DeviceHealth:
    """A snapshot of one device's health."""

    state: HealthState
    last_status: DriverStatus | None
    last_error: str
    last_ok: datetime | None  # last poll that gave a good value
    counts: dict[str, int]  # polls, answered, failed, skipped; readings by status value
    breaker: BreakerState
    consecutive_failures: int
    backoff_s: float


@dataclass
class HealthTracker:
    """Accumulates poll outcomes of one device into a :class:`DeviceHealth`."""

    breaker: Breaker
    counts: Counter[str] = field(default_factory=Counter)
    last_status: DriverStatus | None = None
    last_error: str = ""
    last_ok: datetime | None = None
    degraded: bool = False

    def record(self, statuses: list[tuple[DriverStatus, str]], when: datetime, now: float) -> None:
        """Account for one poll: the (status, detail) of each channel it produced."""
        self.counts["polls"] += 1
        ok = DriverStatus.OK
        by_status: dict[DriverStatus, int] = {}
        for status, _ in statuses:
            by_status[status] = by_status.get(status, 0) + 1
        for status, n in by_status.items():
            self.counts[status.value] += n
        if len(by_status) == 1 and ok in by_status:  # the usual poll: every channel fine
            problems: list[tuple[DriverStatus, str]] = []
            answered = True
        else:
            fine = (ok, DriverStatus.COUNTER_RESET)  # a reset is news, not an error
            problems = [(s, d) for s, d in statuses if s not in fine]
            answered = any(s in ANSWERED for s in by_status)
        if problems:
            self.last_status, detail = problems[0]
            self.last_error = (
                f"{self.last_status.value}: {detail}" if detail else self.last_status.value
            )
        else:
            self.last_status = DriverStatus.OK
        if answered:
            self.counts["answered"] += 1
            if ok in by_status:
                self.last_ok = when
            self.breaker.success()
            self.degraded = bool(problems)
            return
        self.counts["failed"] += 1
        self.degraded = True
        if self.last_status is not DriverStatus.PORT_UNAVAILABLE:
            self.breaker.failure(now)

    def ok_poll(self, readings: int, when: datetime) -> None:
        """:meth:`record` of a poll whose ``readings`` channels all read OK, without the tally."""
        counts = self.counts
        counts["polls"] += 1
        counts[DriverStatus.OK.value] += readings
        counts["answered"] += 1
        self.last_status, self.last_ok, self.degraded = DriverStatus.OK, when, False
        self.breaker.success()

    def skipped(self) -> None:
        """A due poll skipped because the breaker is open."""
        self.counts["skipped"] += 1

    def snapshot(self) -> DeviceHealth:
        b = self.breaker
        if b.state is not BreakerState.CLOSED or self.last_status is DriverStatus.PORT_UNAVAILABLE:
            state = HealthState.FAILED
        elif self.degraded or b.failures:
            state = HealthState.DEGRADED
        else:
            state = HealthState.OK
        return DeviceHealth(
            state=state,
            last_status=self.last_status,
            last_error=self.last_error,
            last_ok=self.last_ok,
            counts=dict(self.counts),
            breaker=b.state,
            consecutive_failures=b.failures,
            backoff_s=b.backoff_s,
        )
