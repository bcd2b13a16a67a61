"""What the running agent tells people and machines: the status file, the summary line, metrics.

:class:`Reporter` reads the agent's state (it changes nothing) and writes the status file for
``roadside-agent status`` atomically; :func:`read_status` is that command's side (status file plus
a read-only look into the buffer through :func:`agent.buffer.snapshot`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.buffer import snapshot
from agent.config import StationConfig
from agent.flags import FlaggedReading
from roadside.records import Reading

if TYPE_CHECKING:
    from agent.runner import Agent

log = logging.getLogger(__name__)

STATUS_EVERY_S = 5.0
"""Real seconds between status-file rewrites while nothing a reader acts on has changed (each
rewrite is a new file renamed over the old: about 250 us of CPU on ext4, and wear on an SD card).
A change of health, readiness, a device's state, sampling mode, clock quality or a warning level
is written at the next housekeeping round (a second)."""


class Reporter:
    """The agent's status, summary and metrics (see the module docstring)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.every_s = STATUS_EVERY_S / max(1.0, agent.clock.speed)
        """Real seconds between rewrites for counters (clock seconds under a scenario clock)."""
        self._written_key: tuple[Any, ...] | None = None
        self._written_at = 0.0  # time.monotonic() of the last status-file write

    def status_key(self) -> tuple[Any, ...]:
        """What readers of the status file act on (``roadside-agent status``, the update gate,
        operators): everything but counters, latest values and timestamps."""
        a = self.agent
        p = a.pipeline
        return (
            a.running,
            a.healthy(),
            a.health.write_error,
            a.notifier.ready_sent,
            a.wet,
            a.time_state.quality if a.time_state else None,
            tuple((n, h.get("state")) for n, h in a.devices.items()),
            tuple(p.warning_state.level(n) for n in p.warning_state.signals),
            a.config.content_hash,
        )

    def refresh_status(self, path: Path) -> bool:
        """Rewrite the status file when what it says has changed, or every :attr:`every_s`
        for the counters and freshness. True when written."""
        key = self.status_key()
        if key == self._written_key and time.monotonic() - self._written_at < self.every_s:
            return False
        self.write_status(path)
        self._written_key = key
        return True

    def summary(self) -> str:
        """One line: devices ok, backlog, sampling mode, clock, degraded storage."""
        a = self.agent
        health = a.devices
        ok = sum(1 for h in health.values() if h.get("state") == "ok")
        bad = [f"{n} {h.get('state')}" for n, h in health.items() if h.get("state") != "ok"]
        parts = [f"{ok}/{len(health)} devices ok"]
        if bad:
            parts.append(", ".join(bad))
        if a.stats is not None:
            parts.append(f"backlog {a.stats.unsynced}")
        parts.append("sampling wet" if a.wet else "sampling dry")
        if a.time_state is not None and a.time_state.quality != "ok":
            parts.append(f"clock {a.time_state.quality}")
        if a.health.write_error:
            parts.append(f"DEGRADED: BUFFER WRITE FAILING ({a.health.write_error})")
        return "; ".join(parts)

    def status(self) -> dict[str, Any]:
        """Everything ``roadside-agent status`` shows, as plain data."""
        a = self.agent
        stats = a.stats
        p = a.pipeline
        return {
            "station": a.config.station_id,
            "config_version": a.config.version,
            "config_hash": a.config.content_hash,
            "pid": os.getpid(),
            "running": a.running,
            "healthy": a.healthy(),
            "degraded": bool(a.health.write_error),
            "ready": a.notifier.ready_sent,
            "summary": self.summary(),
            "started": a.started_at.isoformat() if a.started_at else None,
            "updated": a.clock.now().isoformat(),
            "updated_epoch": time.time(),  # real time, for staleness checks by `status`
            "clock": a.time_state.quality if a.time_state else None,
            "clock_jumps": a.timekeeper.jumps,
            "sampling": "wet" if a.wet else "dry",
            "intervals": {s.name: a.interval(s) for s in a.config.sensors},
            "devices": a.devices,
            "buffer": asdict(stats) if stats else None,
            "buffer_recovered_from": str(a.buffer.recovered_from)
            if a.buffer and a.buffer.recovered_from
            else None,
            "loop": {
                "lag_s": round(a.health.lag_s, 3),
                "batches": a.health.batches,
                "write_error": a.health.write_error or None,
            },
            "nowcast": p.nowcast.status() if p.nowcast else None,
            "forecast": p.nowcast.status()["forecast"] if p.nowcast else None,
            "warnings": {n: p.warning_state.level(n) for n in p.warning_state.signals},
            "derived": {
                k: {
                    "value": v.value,
                    "unit": v.unit,
                    "flag": int(v.flag),
                    "time": v.time.isoformat(),
                    "sensor": v.sensor,
                }
                for k, v in sorted(p.latest.items())
            },
        }

    def write_status(self, path: Path) -> None:
        """Replace the status file atomically (a failure is logged, never raised)."""
        self._written_at = time.monotonic()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(status_json(self.status()))
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot write status file %s: %s", path, exc)

    def count(self, batches: Sequence[Sequence[Reading]], flagged: list[FlaggedReading]) -> None:
        """Per-device poll, reading and error counters and per-channel flag counters (summed
        per device and per channel first: one ``inc`` a series per batch of polls)."""
        m = self.agent.metrics
        errors: Counter[tuple[str, str]] = Counter()
        polls: Counter[str] = Counter()
        values: Counter[str] = Counter()
        up: dict[str, int] = {}
        for readings in batches:
            if not readings:
                continue
            device = readings[0].sensor
            polls[device] += 1
            values[device] += len(readings)
            bad = [r for r in readings if not r.ok]
            up[device] = 0 if len(bad) == len(readings) else 1
            if bad:
                errors.update((device, r.status.value) for r in bad)
        for device, n in polls.items():
            m.polls.labels(device).inc(n)
            m.readings.labels(device).inc(values[device])
            m.device_up.labels(device).set(up[device])
        for (device, status), n in errors.items():
            m.errors.labels(device, status).inc(n)
        flags = Counter((f.reading.channel, f.flag) for f in flagged)
        for (channel, flag), n in flags.items():
            m.flags.labels(channel, flag.name.lower()).inc(n)


def status_json(status: dict[str, Any]) -> bytes:
    """The status as indented JSON (msgspec's encoder: the stdlib's indenting one is pure Python
    and was most of an idle agent's CPU); anything else as its ``str``."""
    import msgspec

    return msgspec.json.format(msgspec.json.encode(status, enc_hook=str), indent=1)


def read_status(config: StationConfig, *, max_readings: int = 50) -> dict[str, Any]:
    """What ``roadside-agent status`` shows, from the status file and the buffer (read-only)."""
    out: dict[str, Any] = {"station": config.station_id, "config_version": config.version}
    try:
        out["agent"] = json.loads(config.status_path.read_text())
    except FileNotFoundError:
        out["agent"] = None
    except (OSError, ValueError) as exc:
        out["agent"] = {"error": f"{config.status_path}: {exc}"}
    out["buffer"] = snapshot(Path(config.buffer.path), max_readings)
    return out
