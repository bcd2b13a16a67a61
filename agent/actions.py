"""Local actions: warning lights and signs on the bus, switched by the warning levels.

Each ``[[actions]]`` entry (:class:`agent.config.ActionConfig`) wants its device setting at ``on``
while its signal is at ``min_level`` or above and at ``off`` otherwise. :meth:`LocalActions.run`
compares that with what it last wrote and writes the difference through the bus
(``BusScheduler.write_register``), so the light follows raises, upgrades, downgrades and
cancellations whether or not the uplink works. The first run after a start writes every action
once (the light shows the restored warning state after a restart); a write the device refuses is
retried every ``retry_s`` scenario seconds. Every write, done or failed, becomes an event record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from agent.config import ActionConfig
from agent.warnings import LEVELS, WarningEvent, WarningState
from drivers.errors import DriverError
from roadside.contract import UNNUMBERED, Record

log = logging.getLogger(__name__)

RETRY_S = 60.0
Write = Callable[[str, str, float], None]  # (device, setting, value), raises DriverError


class LocalActions:
    """The configured actions and what each last wrote to its device."""

    def __init__(
        self, actions: Sequence[ActionConfig], write: Write, *, retry_s: float = RETRY_S
    ) -> None:
        self.actions = tuple(actions)
        self.write = write
        self.retry_s = retry_s
        self.applied: list[bool | None] = [None] * len(self.actions)  # None: not written yet
        self._retry_at = [float("-inf")] * len(self.actions)

    def run(
        self,
        state: WarningState,
        events: Sequence[WarningEvent],
        now: datetime,
        mono: float,
    ) -> list[Record]:
        """Write what the warning ``state`` asks for and was not yet written; one event record
        per write. ``events``: this step's warning events (named as the trigger); ``mono``: the
        clock's monotonic seconds (for retries)."""
        records = []
        for i, a in enumerate(self.actions):
            want = state.signals[a.signal].level >= LEVELS.index(a.min_level)
            if self.applied[i] == want or mono < self._retry_at[i]:
                continue
            trigger = next((e for e in events if e.signal == a.signal), None)
            value = a.on if want else a.off
            error = ""
            try:
                self.write(a.sensor, a.setting, value)
            except (DriverError, KeyError) as exc:
                error = str(exc) or type(exc).__name__
                self._retry_at[i] = mono + self.retry_s
                log.error("action %s %s=%s failed: %s", a.sensor, a.setting, value, error)
            else:
                self.applied[i] = want
                log.warning(
                    "action: %s %s=%s (%s %s)",
                    a.sensor,
                    a.setting,
                    value,
                    a.signal,
                    state.level(a.signal),
                    extra={"SIGNAL": a.signal, "DEVICE": a.sensor},
                )
            records.append(
                Record(
                    seq=UNNUMBERED,
                    kind="event",
                    time=now,
                    sensor=a.sensor,
                    channel=a.setting,
                    value=value,
                    reason="action" if not error else "action_failed",
                    payload={
                        "kind": "action",
                        "signal": a.signal,
                        "level": state.level(a.signal),
                        "min_level": a.min_level,
                        "device": a.sensor,
                        "setting": a.setting,
                        "value": value,
                        "state": "on" if want else "off",
                        "trigger": trigger.kind if trigger else "sync",
                        "ok": not error,
                        "error": error,
                    },
                )
            )
        return records
