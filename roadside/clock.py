"""One clock abstraction for the whole project.

Everything that reads the time or waits takes a :class:`Clock`, so a three-hour storm can run in
three minutes (:class:`ScaledClock`) or step by step in a test (:class:`ManualClock`).

``now()`` is UTC wall time (scenario time when scaled); ``monotonic()`` never goes backwards and is
what intervals and sequence order are computed from; ``sleep``/``wait`` take scenario seconds.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Waitable(Protocol):
    """What :meth:`Clock.wait` waits on: a :class:`threading.Event` or a :class:`Doorbell`."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class Clock(Protocol):
    """What every component needs from time."""

    def now(self) -> datetime:
        """Current UTC wall time (timezone-aware)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds`` of this clock's time."""
        ...

    def wait(self, event: Waitable, seconds: float) -> bool:
        """Block up to ``seconds`` or until ``event`` is set; True when the event was set."""
        ...

    @property
    def speed(self) -> float:
        """Clock seconds per real second (1 for real time)."""
        ...


class SystemClock:
    """Real time."""

    speed = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, event: Waitable, seconds: float) -> bool:
        return event.wait(max(0.0, seconds))


@dataclass
class ScaledClock:
    """Accelerated time: ``speed`` scenario seconds pass per real second from ``start``.

    ``anchor`` is the real epoch (``time.time()``) at which scenario time equals ``start``; two
    processes given the same start, speed and anchor agree on the time.
    """

    start: datetime
    speed: float = 1.0
    anchor: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError(f"clock speed must be positive, got {self.speed}")
        if self.start.tzinfo is None:
            self.start = self.start.replace(tzinfo=UTC)
        self._mono0 = time.monotonic() - (time.time() - self.anchor)

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed())

    def elapsed(self) -> float:
        """Scenario seconds since ``start``."""
        return (time.monotonic() - self._mono0) * self.speed

    def monotonic(self) -> float:
        return self.elapsed()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)

    def wait(self, event: Waitable, seconds: float) -> bool:
        return event.wait(max(0.0, seconds / self.speed))


class ManualClock:
    """A clock that only moves when told to; ``sleep`` advances it instantly. For tests."""

    speed = 1.0

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 7, 1, tzinfo=UTC)
        self._mono = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        if seconds < 0:
            raise ValueError("a manual clock does not go backwards; use set_wall for clock jumps")
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._mono += seconds

    def set_wall(self, when: datetime) -> None:
        """Jump the wall clock (as NTP would) without moving the monotonic clock."""
        with self._lock:
            self._now = when

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)

    def wait(self, event: Waitable, seconds: float) -> bool:
        if event.is_set():
            return True
        self.sleep(seconds)
        return event.is_set()


class Doorbell:
    """A :class:`threading.Event` for a thread that sleeps on it often: the wait is ``poll(2)``
    on a pipe, not a timed lock. A timed wake-up from ``Event.wait`` cost 88 us of CPU on the
    project's virtual machine, from ``Doorbell.wait`` 70 (a bus polled every 100 ms sleeps ten
    times a second). Any thread may :meth:`set` it; the pipe closes with the object."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        weakref.finalize(self, _close_pipe, self._read, self._write)
        self._poll = select.poll()
        self._poll.register(self._read, select.POLLIN)
        self._set = False

    def set(self) -> None:
        if not self._set:
            self._set = True
            with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending anyway
                os.write(self._write, b"\0")

    def clear(self) -> None:
        """Unset; the pipe is drained only when it was set (a bus clears before every poll)."""
        if self._set:
            self._set = False
            self._drain()

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`set` or ``timeout`` seconds; True when set."""
        if self._set:
            return True
        if self._poll.poll(None if timeout is None else timeout * 1000.0) and not self._set:
            self._drain()  # the byte of a set() that a clear() overtook
        return self._set


def _close_pipe(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


def align_up(t: float, interval: float) -> float:
    """The next multiple of ``interval`` strictly after ``t`` (polls align to clock boundaries)."""
    return (int(t // interval) + 1) * interval
