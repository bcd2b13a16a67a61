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
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.actions import LocalActions
from agent.buffer import EVENT_KINDS, Buffer, BufferStats
from agent.config import SensorConfig, StationConfig
from agent.derived import DerivedValue
from agent.errors import BufferStoreError, ConfigError
from agent.flags import FlaggedReading
from agent.metrics import AgentMetrics
from agent.nowcast import StationNowcast
from agent.pipeline import (
    Pipeline,
    flagged_from_stored,
    plain,
    warning_state_from_json,
    warning_state_to_json,
)
from agent.reporter import Reporter, read_status
from agent.service import Notifier, watchdog_interval_s
from agent.timekeeping import Timekeeper, TimeState
from agent.warnings import WarningRules, WarningState
from drivers.bus import BusScheduler, DeviceConfig, open_buses
from drivers.profile import load_profile
from roadside import registry
from roadside.clock import Clock
from roadside.contract import Record
from roadside.records import Reading

if TYPE_CHECKING:
    from agent.remote_config import RemoteConfig
    from agent.uplink import Uplink

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 1.0  # real seconds between metrics refreshes, watchdog pings, status-file checks
MAX_DRAIN = 256  # poll batches written in one transaction at most
LINGER_S = 1.0  # clock seconds to gather more batches into one transaction (group commit) ...
LINGER_REAL_S = (0.2, 1.0)  # ... within these real seconds (an accelerated clock lingers 0.2 s)
COUNTERS_KEY = "counters"
WARNINGS_KEY = "warnings"
REPLAY_CHUNK = 2000
MAX_UNWRITTEN = 100_000  # records held in memory while the buffer refuses writes
# what a storage failure may surface as: mapped in agent/buffer.py, or a side file's OSError and
# an unmapped SQLite error on a path the buffer does not wrap; the loop survives all of them
STORAGE_ERRORS = (BufferStoreError, OSError, sqlite3.Error)


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


def linger_s(speed: float) -> float:
    """Real seconds to gather batches for one commit at clock ``speed`` (clock s per real s)."""
    low, high = LINGER_REAL_S
    return min(high, max(low, LINGER_S / max(speed, 1e-9)))


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
        self._unwritten: list[Record] = []
        self.stats: BufferStats | None = None  # refreshed by housekeeping
        self.devices: dict[str, dict[str, Any]] = {}  # likewise
        self._last_housekeeping = time.monotonic()
        # ping the watchdog at least as often as systemd asks (half of WatchdogSec)
        self._housekeeping_s = min(HOUSEKEEPING_S, watchdog_interval_s() or HOUSEKEEPING_S)
        self.time_state: TimeState | None = None
        self.started_at: datetime | None = None
        self.running = False
        self._stopped = False
        self.pipeline = Pipeline(config)  # the nowcast joins it at start
        self.actions = LocalActions(config.actions, self._write_setting)
        self.reporter = Reporter(self)
        self._warnings_dirty = False  # state changed but not yet written
        self.timekeeper = Timekeeper(
            clock,
            floor=config.time.floor,
            tolerance_s=config.time.jump_tolerance_s,
            sync_check=config.time.sync_check,
        )

    # the pipeline's state, as the agent's (status, tests, the nowcast's hooks)
    @property
    def nowcast(self) -> StationNowcast | None:
        return self.pipeline.nowcast

    @property
    def rules(self) -> WarningRules:
        return self.pipeline.rules

    @property
    def warning_state(self) -> WarningState:
        return self.pipeline.warning_state

    @property
    def _latest(self) -> dict[str, DerivedValue]:
        return self.pipeline.latest

    @property
    def wet(self) -> bool:
        return self._wet

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
        self.started_at = self.clock.now()
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
            self.pipeline.warning_state = warning_state_from_json(saved_warnings)
        saved = self.buffer.get_state(COUNTERS_KEY) or {}
        self._saved_counters = dict(saved)
        for bus in self.buses:
            for name in bus.health():
                self._bus_of[name] = bus
            if saved:
                bus.restore_counters(saved)
        self._adapt([], list(self._latest.values()))  # raining before the restart: still wet
        self.running = True
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
        windows = registry.replay_windows()
        since = {ch: now - timedelta(seconds=s) for ch, s in windows.items()}
        seq = self.buffer.seq_since(min(since.values()))
        replayed = 0
        while True:
            rows = self.buffer.records_since(seq, "reading", list(windows), REPLAY_CHUNK)
            if not rows:
                break
            seq = rows[-1].seq + 1
            flagged = [flagged_from_stored(r) for r in rows if r.time >= since[r.channel or ""]]
            replayed += len(flagged)
            self.pipeline.refill(flagged)
        if replayed:
            log.info("derived windows refilled from %d buffered readings", replayed)

    def _start_nowcast(self, history: Any = None) -> None:
        """Build the nowcast for the current configuration (refilled from the buffer unless it
        takes over ``history``) and the warning rules with its thresholds."""
        nowcast = StationNowcast.build(self.config, history)
        if nowcast is not None and history is None and self.buffer is not None:
            n = nowcast.refill(self.buffer, self.clock.now())
            if n:
                log.info("nowcast history refilled from %d buffered values", n)
        self.pipeline.nowcast = nowcast
        self.pipeline.rules = self.pipeline.rules_for(self.config)

    def stop(self) -> None:
        """Stop polling, write everything queued, close the buffer (SIGTERM path). Also undoes
        a start that failed half-way."""
        if self.buffer is None or self._stopped:
            return
        self._stopped = True
        self.running = False
        for bus in self.buses:
            bus.stop()
        self._drain(block_s=0.0, limit=None)
        if self.uplink is not None:
            self.uplink.stop()
        self._refresh()
        self.reporter.write_status(self.status_path)
        self.buffer.close()
        self.metrics.close()
        log.info("agent stopped; buffer flushed")

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set (then stop cleanly). The service's own process: what
        start-up left alive is frozen out of the garbage collector's scans (``gc.freeze``),
        which otherwise rescans every imported module's objects as readings churn."""
        try:
            self.start()
            gc.freeze()
            while not stop.is_set():  # idle: one wake-up a housekeeping round, not five
                due = self._last_housekeeping + self._housekeeping_s
                self.step(timeout_s=min(1.0, max(0.01, due - time.monotonic())))
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
        """Take queued batches: wait up to ``block_s`` for one, then linger for more (one clock
        second, within :data:`LINGER_REAL_S`), so that one transaction (one fsync) and one pass
        of the pipeline carry every poll of that second (ten at 100 ms polls). The linger is one
        sleep, not a wake-up per poll."""
        batches: list[_Batch] = []
        try:
            if block_s > 0:
                batches.append(self._queue.get(timeout=block_s))
                if limit is None or self._queue.qsize() + 1 < limit:
                    time.sleep(linger_s(self.clock.speed))
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
        self.time_state = tstate = self.timekeeper.check()
        readings = [r for b in batches for r in b.readings]
        now = self.clock.now()
        out = self.pipeline.run(readings, now, tstate.mark())
        records = self._unwritten + out.records
        records += self.actions.run(self.warning_state, out.events, now, self.clock.monotonic())
        self._warnings_dirty |= out.warnings_changed
        state: dict[str, Any] = {}
        if any(b.counters for b in batches):
            state[COUNTERS_KEY] = self._merged_counters(batches)
        if self._warnings_dirty:
            state[WARNINGS_KEY] = warning_state_to_json(self.warning_state)
        try:
            seqs = self.buffer.append(records, state=state or None)
        except STORAGE_ERRORS as exc:
            # degraded: keep the records for the next attempt; the status (STATUS=, the status
            # file) and the metrics say so, the loop and the watchdog go on
            self._unwritten = records[-MAX_UNWRITTEN:]
            if not self.health.write_error:
                self.metrics.degraded.set(1)
            self.health.write_error = str(exc)
            self.metrics.write_errors.inc()
            log.error("buffer write failed (%d records held): %s", len(self._unwritten), exc)
            return 0
        self._unwritten = []
        self._warnings_dirty = False
        if self.health.write_error:
            log.info("buffer writes work again: no longer degraded")
            self.metrics.degraded.set(0)
        self.health.write_error = ""
        self.health.batches += len(batches)
        self.health.records += len(seqs)
        self._polled.update(b.readings[0].sensor for b in batches if b.readings)
        self.reporter.count([b.readings for b in batches], out.flagged)
        for e in out.events:
            self.metrics.events.labels(e.signal).inc()
        self._adapt(out.flagged, out.derived)
        if self.uplink is not None:  # warning events and gap rows go at once, routine rows batched
            self.uplink.notify(urgent=any(r.kind in EVENT_KINDS for r in records))
        if self.on_commit is not None:
            self.on_commit(seqs)
        return len(seqs)

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
            self.config = config
            if (config.site, config.nowcast) != (old.site, old.nowcast):
                self._start_nowcast(self.nowcast.runner.history if self.nowcast else None)
            if self.pipeline.reconfigure(old, config) and self.buffer is not None:
                self._replay()
            if config.actions != old.actions:
                self.actions = LocalActions(config.actions, self._write_setting)
            if config.sampling != old.sampling or config.sensors != old.sensors:
                self._apply_intervals()
        self.metrics.config.info({"version": config.version, "content_hash": config.content_hash})
        log.info(
            "configuration %s (%s) applied",
            config.version,
            config.content_hash[:12],
            extra={"CONFIG_VERSION": config.version, "CONFIG_HASH": config.content_hash},
        )

    def _nowcast_skill(self) -> dict[str, Any] | None:
        """The nowcast's shadow skill for the status message, once a forecast has been scored."""
        skill = self.nowcast.shadow_skill() if self.nowcast else None
        return skill if skill and skill.get("n") and skill.get("rmse_cm") is not None else None

    def _fleet_status(self) -> dict[str, Any]:
        """What the uplink's retained status message says about the station (fields of
        :class:`roadside.contract.Status`; the uplink adds station, time and backlog)."""
        return {
            **({"remote_config": self.remote.versions()} if self.remote else {}),
            "grid_cell": self.config.station.grid_cell,
            "config_version": self.config.version,
            "config_hash": self.config.content_hash,
            "model_version": self.nowcast.model.version if self.nowcast else "",
            "nowcast_skill": self._nowcast_skill(),
            "devices": {n: str(h.get("state") or "unknown") for n, h in self.devices.items()},
            "health": {
                "summary": self.summary(),
                "healthy": self.healthy(),
                "sampling": "wet" if self._wet else "dry",
                "clock": self.time_state.quality if self.time_state else None,
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
            interval = self.interval(s)
            bus = self._bus_of.get(s.name)
            if bus is not None and s.wet_interval_s is not None:
                bus.set_interval(s.name, interval)
        log.info(
            "sampling: %s",
            "wet (fast)" if self._wet else "dry (routine)",
            extra={"SAMPLING": "wet" if self._wet else "dry"},
        )

    def interval(self, sensor: SensorConfig) -> float:
        if self._wet and sensor.wet_interval_s is not None:
            return sensor.wet_interval_s
        return sensor.interval_s

    # -- health, status, notify ------------------------------------------------------------

    def healthy(self) -> bool:
        """The loop runs and the buffer takes writes (a dead sensor alone is not unhealthy:
        restarting the agent would not mend it; it shows in the status instead)."""
        return self.running and not self.health.write_error

    def _housekeeping(self) -> None:
        assert self.buffer is not None
        self.metrics.loop_lag.set(self.health.lag_s)
        self._refresh()
        if self.stats is not None:
            self.metrics.buffer(self.stats)
        summary = self.summary()
        if not self.notifier.ready_sent and self._polled >= {s.name for s in self.config.sensors}:
            self.notifier.ready(summary)
            log.info("first complete poll cycle: ready")
        else:
            self.notifier.status(summary)
        if self.running:  # degraded storage still pets it: a restart would drop the held records
            self.notifier.watchdog()
        self.reporter.refresh_status(self.status_path)

    def _refresh(self) -> None:
        """Take the buffer's stats and the devices' health once for this round of reports."""
        if self.buffer is not None:
            try:
                self.stats = self.buffer.stats()
            except STORAGE_ERRORS as exc:  # reported as degraded, never fatal to the loop
                self.health.write_error = self.health.write_error or str(exc)
        self.devices = self.device_health()

    def device_health(self) -> dict[str, dict[str, Any]]:
        """The drivers' health of each device, as plain data."""
        out: dict[str, dict[str, Any]] = {}
        for bus in self.buses:
            for name, h in bus.health().items():  # field by field: asdict deep-copies
                out[name] = {f.name: plain(getattr(h, f.name)) for f in fields(h)}
        return out

    def summary(self) -> str:
        """One line: devices ok, backlog, sampling mode, clock (see :class:`Reporter`)."""
        return self.reporter.summary()

    def status(self) -> dict[str, Any]:
        """Everything ``roadside-agent status`` shows, as plain data."""
        return self.reporter.status()


__all__ = ["Agent", "LoopHealth", "device_configs", "read_status", "release_startup_memory"]
