"""The agent's main loop: drivers -> QC -> derived -> nowcast -> warnings -> actions -> buffer.

Bus schedulers (one thread per port, timed by the injected clock, so an accelerated scenario runs
the real agent) hand each poll's readings to :meth:`Agent._sink`, which only queues them together
with the rain-counter state of that moment. The main loop (:meth:`Agent.step`) drains the queue and
runs the pure stages in one thread: QC flags every reading, derived products are updated from the
usable ones, the nowcast (:mod:`agent.nowcast`) takes them and forecasts when due, warning rules see
the latest derived values and forecast, local actions (:mod:`agent.actions`) switch warning lights
on the bus to match, and everything (readings with flags, derived values, forecasts, warning and
action events, the counter state) is written in one buffer transaction. So a
kill at any moment loses only what was not yet committed, and accumulated rain neither goes back
nor counts twice after a restart.

Around that, the loop keeps the service honest: adaptive sampling (poll faster while it rains or
the water rises, back to routine after ``hold_s`` of dry), time marks on records stamped before the
wall clock was good or across a jump, a status file for ``roadside-agent status``, Prometheus
metrics, and the sd_notify messages (READY after the first complete poll cycle, WATCHDOG only while
the loop is healthy, STATUS with a one-line summary).

Housekeeping cadence (status file, watchdog) is real time (``time.monotonic``): systemd's watchdog
and a person reading the status live in real time whatever the scenario clock does.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, is_dataclass
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.actions import LocalActions
from agent.buffer import Buffer, BufferRecord, BufferStats, StoredRecord
from agent.config import SensorConfig, StationConfig
from agent.derived import DerivedEngine, DerivedParams, DerivedValue
from agent.errors import BufferStoreError, ConfigError
from agent.flags import Flag, FlaggedReading
from agent.metrics import AgentMetrics
from agent.nowcast import StationNowcast
from agent.qc import QCEngine, QCParams
from agent.service import Notifier, watchdog_interval_s
from agent.timekeeping import Timekeeper, TimeState
from agent.warnings import (
    LEVELS,
    SignalState,
    WarningEvent,
    WarningRules,
    WarningState,
    evaluate,
)
from drivers.bus import BusScheduler, DeviceConfig, open_buses
from drivers.profile import load_profile
from roadside.clock import Clock
from roadside.records import DriverStatus, Reading

if TYPE_CHECKING:
    from agent.remote_config import RemoteConfig
    from agent.uplink import Uplink

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 1.0  # real seconds between status-file writes, metrics refresh and watchdog pings
MAX_DRAIN = 256  # poll batches written in one transaction at most
LINGER_S = 0.2  # real seconds to gather more batches into one transaction (group commit)
COUNTERS_KEY = "counters"
WARNINGS_KEY = "warnings"
# Readings replayed into the derived windows at start, by channel (seconds back).
REPLAY_S = {
    "rain_total": 24 * 3600.0,
    "wind_speed": 900.0,
    "wind_dir": 900.0,
    "wind_gust": 900.0,
    "water_depth": 900.0,
}
REPLAY_CHUNK = 2000
MAX_UNWRITTEN = 100_000  # records held in memory while the buffer refuses writes


@dataclass
class _Batch:
    readings: list[Reading]
    counters: dict[str, Any] | None


@dataclass
class LoopHealth:
    """What the main loop knows about itself."""

    lag_s: float = 0.0
    write_error: str = ""
    batches: int = 0
    records: int = 0


def release_startup_memory() -> None:
    """Collect start-up garbage (imports, validation) and hand freed heap pages back to the OS,
    so the long-running process starts from its working set (glibc ``malloc_trim``)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL(None).malloc_trim(0)


def device_configs(config: StationConfig) -> list[DeviceConfig]:
    """The drivers' view of the configured sensors (routine intervals)."""
    return [
        DeviceConfig(
            name=s.name,
            profile=load_profile(s.profile),
            port=s.port,
            slave=s.slave,
            channels=s.channels,
            interval_s=s.interval_s,
        )
        for s in config.sensors
    ]


class Agent:
    """One station's agent. ``start()`` then call ``step()`` in a loop (or ``run(stop_event)``)."""

    def __init__(
        self,
        config: StationConfig,
        clock: Clock,
        *,
        buffer_path: str | Path | None = None,
        status_path: str | Path | None = None,
        notifier: Notifier | None = None,
        metrics: AgentMetrics | None = None,
        serve_metrics: bool = True,
    ) -> None:
        self.config = config
        self.clock = clock
        self.buffer_path = Path(buffer_path or config.buffer.path)
        self.status_path = Path(status_path or config.status_path)
        self.notifier = notifier or Notifier()
        self.metrics = metrics or AgentMetrics()
        self.serve_metrics = serve_metrics
        self.buffer: Buffer | None = None
        self.buses: list[BusScheduler] = []
        self.uplink: Uplink | None = None
        self.remote: RemoteConfig | None = None
        self._pipeline = threading.RLock()  # one batch or one configuration change at a time
        self.health = LoopHealth()
        self.on_commit: Callable[[list[int]], None] | None = None  # called with committed seqs
        self._queue: queue.Queue[_Batch] = queue.Queue()
        self._bus_of: dict[str, BusScheduler] = {}
        self._polled: set[str] = set()
        self._wet_until = float("-inf")  # clock monotonic until which sampling stays fast
        self._wet = False
        self._last_rain: dict[str, float] = {}
        self._saved_counters: dict[str, Any] = {}
        self._unwritten: list[BufferRecord] = []
        self._stats: BufferStats | None = None  # refreshed by housekeeping
        self._devices: dict[str, dict[str, Any]] = {}  # likewise
        self._latest: dict[str, DerivedValue] = {}
        self._last_housekeeping = time.monotonic()
        # ping the watchdog at least as often as systemd asks (half of WatchdogSec)
        self._housekeeping_s = min(HOUSEKEEPING_S, watchdog_interval_s() or HOUSEKEEPING_S)
        self._time_state: TimeState | None = None
        self._started_at: datetime | None = None
        self._running = False
        self._stopped = False
        self.qc = QCEngine(QCParams.from_dict(config.qc))
        self.derived = DerivedEngine(DerivedParams.from_dict(config.derived))
        self.nowcast: StationNowcast | None = None  # built at start
        self.rules = WarningRules.from_dict(config.warnings)
        self.actions = LocalActions(config.actions, self._write_setting)
        self.warning_state = WarningState()
        self._warnings_dirty = False  # state changed but not yet written
        self.timekeeper = Timekeeper(
            clock,
            floor=config.time.floor,
            tolerance_s=config.time.jump_tolerance_s,
            sync_check=config.time.sync_check,
        )

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Open the buffer, restore counter state, start polling and the metrics endpoint."""
        self.buffer = Buffer(
            self.buffer_path,
            max_bytes=self.config.max_bytes,
            clock=self.clock,
            synchronous=self.config.buffer.synchronous,
        )
        if self.buffer.recovered_from:
            log.error("buffer was corrupt; moved aside to %s", self.buffer.recovered_from)
        self._started_at = self.clock.now()
        self.metrics.config.info(
            {"version": self.config.version, "content_hash": self.config.content_hash}
        )
        if self.serve_metrics:
            self.metrics.serve(self.config.metrics.port, self.config.metrics.host)
        self.buses = open_buses(
            device_configs(self.config),
            station=self.config.station_id,
            clock=self.clock,
            sink=self._sink,
        )
        self._replay()
        self._start_nowcast()
        saved_warnings = self.buffer.get_state(WARNINGS_KEY)
        if saved_warnings:
            self.warning_state = warning_state_from_json(saved_warnings)
        saved = self.buffer.get_state(COUNTERS_KEY) or {}
        self._saved_counters = dict(saved)
        for bus in self.buses:
            for name in bus.health():
                self._bus_of[name] = bus
            if saved:
                bus.restore_counters(saved)
        self._adapt([], list(self._latest.values()))  # raining before the restart: still wet
        self._running = True
        release_startup_memory()
        for bus in self.buses:
            bus.start()
        self.uplink = self._make_uplink()
        if self.uplink is not None:
            self.uplink.start()
        log.info(
            "agent started: station %s, configuration %s (%s), %d devices on %d buses",
            self.config.station_id,
            self.config.version,
            self.config.content_hash[:12],
            len(self.config.sensors),
            len(self.buses),
            extra={
                "STATION": self.config.station_id,
                "CONFIG_VERSION": self.config.version,
                "CONFIG_HASH": self.config.content_hash,
            },
        )

    def _replay(self) -> None:
        """Refill the derived products' windows from the buffer after a restart, so a restart in
        a storm neither empties the rain accumulations nor lowers a warning."""
        assert self.buffer is not None
        now = self.clock.now()
        since = {ch: now - timedelta(seconds=s) for ch, s in REPLAY_S.items()}
        seq = self.buffer.seq_since(min(since.values()))
        channels = ",".join(f"'{c}'" for c in REPLAY_S)
        replayed = 0
        while True:
            rows = self.buffer.where(
                f"seq >= ? AND kind = 'reading' AND channel IN ({channels})", [seq], REPLAY_CHUNK
            )
            if not rows:
                break
            seq = rows[-1].seq + 1
            flagged = [_flagged(r) for r in rows if r.time >= since[r.channel or ""]]
            if flagged:
                replayed += len(flagged)
                for dv in self.derived.update(flagged, flagged[-1].reading.time):
                    self._latest[dv.name] = dv
        if replayed:
            log.info("derived windows refilled from %d buffered readings", replayed)

    def _start_nowcast(self, history: Any = None) -> None:
        """Build the nowcast for the current configuration (refilled from the buffer unless it
        takes over ``history``) and the warning rules with its thresholds."""
        self.nowcast = StationNowcast.build(self.config, history)
        if self.nowcast is not None and history is None and self.buffer is not None:
            n = self.nowcast.refill(self.buffer, self.clock.now())
            if n:
                log.info("nowcast history refilled from %d buffered values", n)
        self.rules = self._rules(self.config)

    def _rules(self, config: StationConfig) -> WarningRules:
        rules = WarningRules.from_dict(config.warnings)
        return self.nowcast.rules(rules) if self.nowcast is not None else rules

    def stop(self) -> None:
        """Stop polling, write everything queued, close the buffer (SIGTERM path). Also undoes
        a start that failed half-way."""
        if self.buffer is None or self._stopped:
            return
        self._stopped = True
        self._running = False
        for bus in self.buses:
            bus.stop()
        self._drain(block_s=0.0, limit=None)
        if self.uplink is not None:
            self.uplink.stop()
        self._refresh()
        self._write_status()
        self.buffer.close()
        self.metrics.close()
        log.info("agent stopped; buffer flushed")

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set (then stop cleanly)."""
        try:
            self.start()
            while not stop.is_set():
                self.step(timeout_s=0.2)
        finally:
            self.stop()

    # -- the loop --------------------------------------------------------------------------

    def _sink(self, readings: list[Reading]) -> None:
        """Called by a bus thread with one poll's readings; never blocks, never raises."""
        bus = self._bus_of.get(readings[0].sensor) if readings else None
        counters = bus.counter_state() if bus is not None else None
        self._queue.put(_Batch(list(readings), counters))

    def step(self, timeout_s: float = 0.2) -> int:
        """Process queued batches (waiting up to ``timeout_s`` real seconds for the first one),
        then do housekeeping when due. Returns how many records were committed."""
        written = self._drain(block_s=timeout_s, limit=MAX_DRAIN)
        now = time.monotonic()
        due = self._last_housekeeping + self._housekeeping_s
        if now >= due:
            self.health.lag_s = now - due
            self._last_housekeeping = now
            self._housekeeping()
        return written

    def _drain(self, block_s: float, limit: int | None) -> int:
        """Take queued batches: wait up to ``block_s`` for one, then linger ``LINGER_S`` for
        more, so that one transaction (one fsync) carries every poll of that moment."""
        batches: list[_Batch] = []
        try:
            if block_s > 0:
                batches.append(self._queue.get(timeout=block_s))
                until = time.monotonic() + LINGER_S
                while (limit is None or len(batches) < limit) and (
                    left := until - time.monotonic()
                ) > 0:
                    batches.append(self._queue.get(timeout=left))
            while limit is None or len(batches) < limit:
                batches.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        if not batches:
            return 0
        return self.process(batches)

    def process(self, batches: Sequence[_Batch]) -> int:
        """QC, derive, evaluate and store ``batches`` in one transaction."""
        with self._pipeline:
            return self._process(batches)

    def _process(self, batches: Sequence[_Batch]) -> int:
        assert self.buffer is not None, "start() first"
        self._time_state = tstate = self.timekeeper.check()
        mark = tstate.mark()
        readings = [r for b in batches for r in b.readings]
        now = self.clock.now()
        try:
            flagged = self.qc.process(readings)
        except Exception:  # a QC bug must not lose the readings: store them unchecked
            log.exception("QC failed on %d readings; stored as not checked", len(readings))
            flagged = [FlaggedReading(r, Flag.NOT_CHECKED, "qc_error") for r in readings]
        try:
            derived = self.derived.update(flagged, now)
        except Exception:
            log.exception("derived products failed; skipped for this batch")
            derived = []
        for dv in derived:
            self._latest[dv.name] = dv
        records = self._unwritten + [_reading_record(f, mark) for f in flagged]
        records += [_derived_record(d, mark) for d in derived]
        if self.nowcast is not None:
            forecast = self.nowcast.step(derived, now)
            if forecast is not None:
                records.append(forecast)
        events, warnings_changed = self._warn(derived, now)
        records += [_event_record(e) for e in events]
        records += self.actions.run(self.warning_state, events, now, self.clock.monotonic())
        self._warnings_dirty |= warnings_changed
        state: dict[str, Any] = {}
        if any(b.counters for b in batches):
            state[COUNTERS_KEY] = self._merged_counters(batches)
        if self._warnings_dirty:
            state[WARNINGS_KEY] = warning_state_to_json(self.warning_state)
        try:
            seqs = self.buffer.append(records, state=state or None)
        except BufferStoreError as exc:
            # keep the records for the next attempt; the watchdog stops while writes fail
            self._unwritten = records[-MAX_UNWRITTEN:]
            self.health.write_error = str(exc)
            log.error("buffer write failed (%d records held): %s", len(self._unwritten), exc)
            return 0
        self._unwritten = []
        self._warnings_dirty = False
        self.health.write_error = ""
        self.health.batches += len(batches)
        self.health.records += len(seqs)
        self._count(batches, flagged)
        for e in events:
            self.metrics.events.labels(e.signal).inc()
        self._adapt(flagged, derived)
        if self.uplink is not None:
            self.uplink.notify()
        if self.on_commit is not None:
            self.on_commit(seqs)
        return len(seqs)

    def _warn(self, derived: list[DerivedValue], now: datetime) -> tuple[list[WarningEvent], bool]:
        """Evaluate the warning rules on the newest derived values (the warnings hook)."""
        if not derived:
            return [], False
        try:
            forecast = self.nowcast.current(now, self.rules.stale_s) if self.nowcast else None
            new, events = evaluate(self.warning_state, self._latest, forecast, now, self.rules)
        except Exception:  # a rule bug must not stop the station from recording
            log.exception("warning evaluation failed")
            return [], False
        changed = new != self.warning_state
        self.warning_state = new
        for e in events:
            log.warning(
                "warning %s: %s %s (was %s)",
                e.kind,
                e.signal,
                e.level,
                e.previous,
                extra={"SIGNAL": e.signal, "LEVEL": e.level, "EVENT": e.kind, "RULE": e.rule},
            )
        return events, changed

    def _write_setting(self, device: str, setting: str, value: float) -> None:
        """Write a device setting through its bus (local actions); raises DriverError."""
        bus = self._bus_of.get(device)
        if bus is None:
            raise KeyError(f"{device}: not polled on any bus")
        bus.write_register(device, setting, value)

    def _merged_counters(self, batches: Sequence[_Batch]) -> dict[str, Any]:
        """Counter state of every bus as of its newest batch here (others as last saved)."""
        merged: dict[str, Any] = dict(self._saved_counters)
        for b in batches:
            if b.counters:
                merged.update(b.counters)
        self._saved_counters = merged
        return merged

    def _count(self, batches: Sequence[_Batch], flagged: list[FlaggedReading]) -> None:
        m = self.metrics
        errors: Counter[tuple[str, str]] = Counter()
        for b in batches:
            if not b.readings:
                continue
            device = b.readings[0].sensor
            self._polled.add(device)
            m.polls.labels(device).inc()
            m.readings.labels(device).inc(len(b.readings))
            bad = [r for r in b.readings if not r.ok]
            m.device_up.labels(device).set(0 if len(bad) == len(b.readings) else 1)
            errors.update((device, r.status.value) for r in bad)
        for (device, status), n in errors.items():
            m.errors.labels(device, status).inc(n)
        flags = Counter((f.reading.channel, f.flag) for f in flagged)
        for (channel, flag), n in flags.items():
            m.flags.labels(channel, flag.name.lower()).inc(n)

    # -- uplink ------------------------------------------------------------------------------

    def _make_uplink(self) -> Uplink | None:
        """The MQTT uplink when ``[uplink]`` names a host (paths relative to the config file)."""
        up = self.config.uplink
        if not up.get("host"):
            return None
        from agent.uplink import Uplink, UplinkSettings  # paho and the codecs only when used
        from roadside import wire

        assert self.buffer is not None
        base = Path(self.config.source).parent if self.config.source else Path.cwd()

        def path(key: str) -> Path:
            if not up.get(key):
                raise ConfigError(
                    f"{self.config.source}: key uplink.{key}: missing (expected a file path)"
                )
            p = Path(str(up[key]))
            return p if p.is_absolute() else base / p

        broker = wire.BrokerSettings(
            str(up["host"]), int(up.get("port", 8883)), path("ca"), path("cert"), path("key")
        )
        known = {f.name for f in fields(UplinkSettings)} - {"codec"}
        tuning = {k: v for k, v in up.items() if k in known}
        uplink = Uplink(
            self.config.station_id,
            self.buffer,
            broker,
            self.clock,
            settings=UplinkSettings(**tuning),
            grid_cell=self.config.station.grid_cell,
            status_fn=self._fleet_status,
            on_config=self._on_config,
        )
        if up.get("fleet_key") and Path(self.config.source).is_file():
            self.remote = self._make_remote(path("fleet_key"), uplink)
        return uplink

    def _make_remote(self, key_path: Path, uplink: Uplink) -> RemoteConfig:
        """Signed configuration from the fleet; persisted documents apply at once."""
        import tomllib

        from agent.remote_config import RemoteConfig
        from roadside.signing import load_public_key

        source = Path(self.config.source)
        remote = RemoteConfig(
            self.config.station_id,
            tomllib.loads(source.read_text(encoding="utf-8")),
            load_public_key(key_path),
            self.buffer_path.with_name("remote-config.json"),
            self.clock,
            grid_cell=self.config.station.grid_cell,
            apply=self.apply_config,
            publish_ack=uplink.publish_config_ack,
            source=str(source),
            base_dir=source.parent,
        )
        if remote.running:
            self.apply_config(remote.config)
        return remote

    def _on_config(self, topic: str, payload: bytes | bytearray) -> None:
        if self.remote is not None:
            self.remote.handle(topic, payload)

    def apply_config(self, config: StationConfig) -> None:
        """Switch to a new configuration of the same station at run time (remote documents
        change qc, derived, warnings and sampling); rebuilt parts restart from the buffer."""
        with self._pipeline:
            old = self.config
            if config.qc != old.qc:
                self.qc = QCEngine(QCParams.from_dict(config.qc))
            self.config = config
            if (config.site, config.nowcast) != (old.site, old.nowcast):
                self._start_nowcast(self.nowcast.runner.history if self.nowcast else None)
            self.rules = self._rules(config)
            if config.actions != old.actions:
                self.actions = LocalActions(config.actions, self._write_setting)
            if config.derived != old.derived and self.buffer is not None:
                self.derived = DerivedEngine(DerivedParams.from_dict(config.derived))
                self._latest = {}
                self._replay()
            if config.sampling != old.sampling or config.sensors != old.sensors:
                self._apply_intervals()
        self.metrics.config.info({"version": config.version, "content_hash": config.content_hash})
        log.info(
            "configuration %s (%s) applied",
            config.version,
            config.content_hash[:12],
            extra={"CONFIG_VERSION": config.version, "CONFIG_HASH": config.content_hash},
        )

    def _fleet_status(self) -> dict[str, Any]:
        """What the uplink's retained status message says about the station."""
        return {
            **({"remote_config": self.remote.versions()} if self.remote else {}),
            "config_version": self.config.version,
            "config_hash": self.config.content_hash,
            "model_version": self.nowcast.model.version if self.nowcast else "",
            "health": {
                "summary": self.summary(),
                "healthy": self.healthy(),
                "devices": {n: h.get("state") for n, h in self._devices.items()},
                "sampling": "wet" if self._wet else "dry",
                "clock": self._time_state.quality if self._time_state else None,
            },
        }

    # -- adaptive sampling -----------------------------------------------------------------

    def _adapt(self, flagged: list[FlaggedReading], derived: list[DerivedValue]) -> None:
        sampling = self.config.sampling
        if not sampling.adaptive:
            return
        mono = self.clock.monotonic()
        if self._wet_signs(flagged, derived):
            self._wet_until = mono + sampling.hold_s
        wet = mono < self._wet_until
        if wet != self._wet:
            self._wet = wet
            self._apply_intervals()

    def _wet_signs(self, flagged: list[FlaggedReading], derived: list[DerivedValue]) -> bool:
        s = self.config.sampling
        for dv in derived:
            if dv.value is None:
                continue
            if dv.name == "rain_intensity" and dv.value >= s.wet_rain_mmh and dv.value > 0:
                return True
            if dv.name == "water_rise_rate" and dv.value >= s.wet_rise_mm_per_min:
                return True
        for f in flagged:  # a rain counter that moved is rain, whatever the products say
            r = f.reading
            if r.channel == "rain_total" and f.usable and r.value is not None:
                before = self._last_rain.get(r.sensor)
                self._last_rain[r.sensor] = r.value
                if before is not None and r.value > before:
                    return True
        return False

    def _apply_intervals(self) -> None:
        for s in self.config.sensors:
            interval = self._interval(s)
            bus = self._bus_of.get(s.name)
            if bus is not None and s.wet_interval_s is not None:
                bus.set_interval(s.name, interval)
        log.info(
            "sampling: %s",
            "wet (fast)" if self._wet else "dry (routine)",
            extra={"SAMPLING": "wet" if self._wet else "dry"},
        )

    def _interval(self, sensor: SensorConfig) -> float:
        if self._wet and sensor.wet_interval_s is not None:
            return sensor.wet_interval_s
        return sensor.interval_s

    # -- health, status, notify ------------------------------------------------------------

    def healthy(self) -> bool:
        """The loop runs and the buffer takes writes (a dead sensor alone is not unhealthy:
        restarting the agent would not mend it; it shows in the status instead)."""
        return self._running and not self.health.write_error

    def _housekeeping(self) -> None:
        assert self.buffer is not None
        self.metrics.loop_lag.set(self.health.lag_s)
        self._refresh()
        if self._stats is not None:
            self.metrics.buffer(self._stats)
        summary = self.summary()
        if not self.notifier.ready_sent and self._polled >= {s.name for s in self.config.sensors}:
            self.notifier.ready(summary)
            log.info("first complete poll cycle: ready")
        else:
            self.notifier.status(summary)
        if self.healthy():
            self.notifier.watchdog()
        self._write_status()

    def _refresh(self) -> None:
        """Take the buffer's stats and the devices' health once for this round of reports."""
        if self.buffer is not None:
            self._stats = self.buffer.stats()
        self._devices = self.device_health()

    def device_health(self) -> dict[str, dict[str, Any]]:
        """The drivers' health of each device, as plain data."""
        out: dict[str, dict[str, Any]] = {}
        for bus in self.buses:
            for name, h in bus.health().items():
                out[name] = _plain(h)
        return out

    def summary(self) -> str:
        """One line: devices ok, backlog, sampling mode, clock."""
        health = self._devices
        ok = sum(1 for h in health.values() if h.get("state") == "ok")
        bad = [f"{n} {h.get('state')}" for n, h in health.items() if h.get("state") != "ok"]
        stats = self._stats
        parts = [f"{ok}/{len(health)} devices ok"]
        if bad:
            parts.append(", ".join(bad))
        if stats is not None:
            parts.append(f"backlog {stats.unsynced}")
        parts.append("sampling wet" if self._wet else "sampling dry")
        if self._time_state is not None and self._time_state.quality != "ok":
            parts.append(f"clock {self._time_state.quality}")
        if self.health.write_error:
            parts.append("BUFFER WRITE FAILING")
        return "; ".join(parts)

    def status(self) -> dict[str, Any]:
        """Everything ``roadside-agent status`` shows, as plain data."""
        stats = self._stats
        return {
            "station": self.config.station_id,
            "config_version": self.config.version,
            "config_hash": self.config.content_hash,
            "pid": os.getpid(),
            "running": self._running,
            "healthy": self.healthy(),
            "ready": self.notifier.ready_sent,
            "summary": self.summary(),
            "started": self._started_at.isoformat() if self._started_at else None,
            "updated": self.clock.now().isoformat(),
            "updated_epoch": time.time(),  # real time, for staleness checks by `status`
            "clock": self._time_state.quality if self._time_state else None,
            "clock_jumps": self.timekeeper.jumps,
            "sampling": "wet" if self._wet else "dry",
            "intervals": {s.name: self._interval(s) for s in self.config.sensors},
            "devices": self._devices,
            "buffer": asdict(stats) if stats else None,
            "buffer_recovered_from": str(self.buffer.recovered_from)
            if self.buffer and self.buffer.recovered_from
            else None,
            "loop": {"lag_s": round(self.health.lag_s, 3), "batches": self.health.batches},
            "nowcast": self.nowcast.status() if self.nowcast else None,
            "forecast": self.nowcast.status()["forecast"] if self.nowcast else None,
            "warnings": {n: self.warning_state.level(n) for n in self.warning_state.signals},
            "derived": {
                k: {
                    "value": v.value,
                    "unit": v.unit,
                    "flag": int(v.flag),
                    "time": v.time.isoformat(),
                }
                for k, v in sorted(self._latest.items())
            },
        }

    def _write_status(self) -> None:
        try:
            self.status_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.status_path.with_name(self.status_path.name + ".tmp")
            tmp.write_text(json.dumps(self.status(), default=str, indent=1))
            os.replace(tmp, self.status_path)
        except OSError as exc:
            log.warning("cannot write status file %s: %s", self.status_path, exc)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _reading_record(f: FlaggedReading, mark: dict[str, Any] | None) -> BufferRecord:
    r = f.reading
    return BufferRecord(
        kind="reading",
        time=r.time,
        sensor=r.sensor,
        channel=r.channel,
        value=r.value,
        unit=r.unit,
        raw=None if r.raw is None else str(r.raw),
        status=r.status.value,
        flag=int(f.flag),
        reason=f.reason,
        payload={**(mark or {}), **({"detail": r.detail} if r.detail else {})} or None,
    )


def _flagged(r: StoredRecord) -> FlaggedReading:
    """A stored reading back as the flagged reading it was."""
    status = DriverStatus(r.status) if r.status else DriverStatus.OK
    reading = Reading(
        "", r.sensor or "", r.channel or "", r.time, r.value, r.unit or "", r.raw, status
    )
    flag = Flag(r.flag) if r.flag is not None else Flag.NOT_CHECKED
    return FlaggedReading(reading, flag, r.reason or "")


def _event_record(e: WarningEvent) -> BufferRecord:
    return BufferRecord(
        kind="event",
        time=e.time,
        channel=e.signal,
        value=float(LEVELS.index(e.level)),
        reason=e.kind,
        payload={
            "kind": e.kind,
            "signal": e.signal,
            "level": e.level,
            "previous": e.previous,
            "rule": e.rule,
            "certainty": e.certainty,
            "evidence": e.evidence,
        },
    )


def warning_state_to_json(state: WarningState) -> dict[str, Any]:
    """Warning state as plain data (persisted so a restart neither re-raises nor forgets)."""
    return {name: _plain(s) for name, s in state.signals.items()}


def warning_state_from_json(doc: dict[str, Any]) -> WarningState:
    """Inverse of :func:`warning_state_to_json`."""

    def when(v: str | None) -> datetime | None:
        return datetime.fromisoformat(v) if v else None

    signals = dict(WarningState().signals)
    for name, s in doc.items():
        if name in signals:
            signals[name] = SignalState(
                level=int(s["level"]),
                since=when(s.get("since")),
                below_since=when(s.get("below_since")),
                pending=int(s.get("pending", 0)),
                certainty=str(s.get("certainty", "Observed")),
            )
    return WarningState(signals)


def _derived_record(d: DerivedValue, mark: dict[str, Any] | None) -> BufferRecord:
    return BufferRecord(
        kind="derived",
        time=d.time,
        sensor=d.sensor,
        channel=d.name,
        value=d.value,
        unit=d.unit,
        flag=int(d.flag),
        payload={"completeness": d.completeness, "window_s": d.window_s, **(mark or {})},
    )


def read_status(config: StationConfig, *, max_readings: int = 50) -> dict[str, Any]:
    """What ``roadside-agent status`` shows, from the status file and the buffer (read-only)."""
    out: dict[str, Any] = {"station": config.station_id, "config_version": config.version}
    try:
        out["agent"] = json.loads(config.status_path.read_text())
    except FileNotFoundError:
        out["agent"] = None
    except (OSError, ValueError) as exc:
        out["agent"] = {"error": f"{config.status_path}: {exc}"}
    out["buffer"] = _buffer_snapshot(Path(config.buffer.path), max_readings)
    return out


def _buffer_snapshot(path: Path, max_readings: int) -> dict[str, Any] | None:
    """Backlog, gaps and the newest reading and derived value of each channel (read-only)."""
    import sqlite_utils  # the status command only: the running agent does without it

    if not path.exists():
        return None
    db = sqlite_utils.Database(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5))
    try:
        records = db.table("records")
        pending = {
            lane: records.count_where("synced = 0 AND lane = ?", [lane])
            for lane in ("event", "live")
        }
        latest = [
            StoredRecord.from_row(row)
            for row in db.query(
                "SELECT * FROM records WHERE seq IN (SELECT max(seq) FROM records "
                "WHERE kind IN ('reading', 'derived') GROUP BY kind, sensor, channel) "
                "ORDER BY kind DESC, sensor, channel LIMIT ?",
                [max_readings],
            )
        ]
        last = next(db.query("SELECT seq FROM sqlite_sequence WHERE name = 'records'"), None)
        oldest = next(
            db.query("SELECT time FROM records WHERE synced = 0 ORDER BY seq LIMIT 1"), None
        )
        gaps = records.count_where("kind = 'gap'")
    finally:
        db.close()
    return {
        "pending": pending,
        "last_seq": last["seq"] if last else 0,
        "gaps": gaps,
        "oldest_unsynced": oldest["time"] if oldest else None,
        "latest": [
            {
                "kind": r.kind,
                "sensor": r.sensor,
                "channel": r.channel,
                "value": r.value,
                "unit": r.unit,
                "time": r.time.isoformat(),
                "status": r.status,
                "flag": Flag(r.flag).name.lower() if r.flag is not None else None,
                "reason": r.reason,
            }
            for r in latest
        ],
    }
