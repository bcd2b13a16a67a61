"""Circuit breaker and health states."""

from __future__ import annotations

from datetime import UTC, datetime

from drivers.health import Breaker, BreakerState, HealthState, HealthTracker
from roadside.records import DriverStatus

NOW = datetime(2026, 7, 21, 12, tzinfo=UTC)
OK = [(DriverStatus.OK, "")]
TIMEOUT = [(DriverStatus.TIMEOUT, "no answer")]


def test_breaker_opens_after_threshold_and_backs_off_exponentially():
    b = Breaker(threshold=3, base_s=10, max_s=35)
    for t in (0, 1):
        b.failure(t)
        assert b.state is BreakerState.CLOSED and b.allow(t)
    b.failure(2)
    assert b.state is BreakerState.OPEN and b.retry_at == 12
    assert not b.allow(11.9)
    assert b.allow(12) and b.state is BreakerState.HALF_OPEN
    b.failure(12)
    assert b.state is BreakerState.OPEN and b.backoff_s == 20 and b.retry_at == 32
    assert b.allow(32)
    b.failure(32)
    assert b.backoff_s == 35  # capped
    assert b.allow(67)
    b.success()
    assert b.state is BreakerState.CLOSED and b.failures == 0 and b.allow(67)


def test_health_goes_ok_degraded_failed_and_back():
    h = HealthTracker(Breaker(threshold=2, base_s=5))
    h.record(OK, NOW, 0)
    assert h.snapshot().state is HealthState.OK
    h.record(TIMEOUT, NOW, 1)
    snap = h.snapshot()
    assert snap.state is HealthState.DEGRADED and snap.last_error == "timeout: no answer"
    h.record(TIMEOUT, NOW, 2)
    snap = h.snapshot()
    assert snap.state is HealthState.FAILED and snap.breaker is BreakerState.OPEN
    assert snap.counts["polls"] == 3 and snap.counts["failed"] == 2 and snap.counts["timeout"] == 2
    h.breaker.allow(7)
    h.record(OK, NOW, 7)
    snap = h.snapshot()
    assert snap.state is HealthState.OK and snap.last_error == "timeout: no answer"
    assert snap.last_ok == NOW


def test_a_device_reporting_its_own_fault_is_degraded_not_failed():
    h = HealthTracker(Breaker(threshold=1))
    h.record([(DriverStatus.DEVICE_FAULT, "status 01: axis 1 failed")], NOW, 0)
    snap = h.snapshot()
    assert snap.state is HealthState.DEGRADED and snap.breaker is BreakerState.CLOSED
    assert snap.last_ok is None  # it answered, but gave no good value


def test_counter_reset_alone_keeps_a_device_ok():
    h = HealthTracker(Breaker())
    h.record([(DriverStatus.COUNTER_RESET, "reset"), (DriverStatus.OK, "")], NOW, 0)
    snap = h.snapshot()
    assert snap.state is HealthState.OK and snap.last_error == ""
    assert snap.counts["counter_reset"] == 1


def test_a_missing_port_fails_the_device_but_does_not_trip_its_breaker():
    h = HealthTracker(Breaker(threshold=1))
    h.record([(DriverStatus.PORT_UNAVAILABLE, "gone")], NOW, 0)
    snap = h.snapshot()
    assert snap.state is HealthState.FAILED and snap.breaker is BreakerState.CLOSED


def test_the_cheap_ok_poll_leaves_the_same_health_as_recording_it():
    """``ok_poll`` (every channel OK) against ``record`` of the same poll, from each state a
    device can be in: fresh, degraded, failing with an open breaker."""
    histories: list[list[list[tuple[DriverStatus, str]]]] = [
        [],
        [[(DriverStatus.DEVICE_FAULT, "status 01")]],
        [TIMEOUT, TIMEOUT, TIMEOUT, TIMEOUT],
    ]
    for history in histories:
        trackers = []
        for _ in range(2):
            h = HealthTracker(Breaker(threshold=3, base_s=10, max_s=100))
            for i, statuses in enumerate(history):
                h.record(statuses, NOW, float(i))
            trackers.append(h)
        slow, fast = trackers
        slow.record([(DriverStatus.OK, "")] * 10, NOW, 50.0)
        fast.ok_poll(10, NOW)
        assert fast.snapshot() == slow.snapshot()
        assert fast.snapshot().state is HealthState.OK
