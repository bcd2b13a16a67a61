"""The bus scheduler: the one owner of a port and the only code that polls its devices.

A :class:`BusScheduler` serialises every poll of every device on its port (the link enforces the
RS-485 inter-frame silence), keeps each device's interval on clock boundaries (a 10 s device is
polled at :00, :10, ...), and guards the bus with one circuit breaker per device so a silent
device backs off instead of stalling the rest. One poll of one device is one batch of readings
handed to the sink; a failed poll is a batch of readings with no value and a status, never an
exception. :func:`open_buses` builds one scheduler per port from a list of devices.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from drivers.counter import RainCounter
from drivers.errors import PortError, ProfileError
from drivers.health import Breaker, DeviceHealth, HealthTracker
from drivers.line import SerialLine
from drivers.modbus import ModbusDriver, ModbusLink
from drivers.ports import is_tcp
from drivers.profile import AsciiField, Profile, RegisterField, SerialDefaults
from drivers.registers import DEFAULT_MAX_GAP
from drivers.samples import Driver, Field, failed, make_counter, to_readings
from drivers.windsonic import WindSonicDriver
from drivers.wxt import WxtDriver
from roadside.clock import Clock, Doorbell, align_up
from roadside.records import DriverStatus, Reading
from roadside.threads import name_os_thread

log = logging.getLogger(__name__)

Sink = Callable[[list[Reading]], None]
BREAKER_THRESHOLD = 3  # consecutive failed polls that open a device's breaker
BACKOFF_INTERVALS = 2  # first backoff, in the device's own intervals
BACKOFF_MAX_S = 600.0  # longest backoff (clock seconds)


@dataclass(frozen=True)
class DeviceConfig:
    """One device: its profile, where it is (a serial path or ``tcp://host:port``) and how often."""

    name: str
    profile: Profile
    port: str
    slave: int | None = None
    channels: tuple[str, ...] | None = None
    interval_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise ValueError(
                f"device {self.name!r}: interval must be positive, got {self.interval_s}"
            )

    @property
    def address(self) -> int:
        """The slave (Modbus) or device (WXT) address: explicit, else the profile's default."""
        return self.profile.serial.default_slave if self.slave is None else self.slave

    def fields(self) -> list[Field]:
        """The profile channels this device polls (all unless ``channels`` names some)."""
        if self.channels is None:
            return list(self.profile.channels)
        known = {c.name: c for c in self.profile.channels}
        missing = [c for c in self.channels if c not in known]
        if missing:
            raise ProfileError(f"{self.profile.path}: device {self.name!r}: no channel {missing}")
        return [known[c] for c in self.channels]


@dataclass
class _Device:
    config: DeviceConfig
    driver: Driver
    fields: dict[str, Field]
    counters: dict[str, RainCounter]
    health: HealthTracker
    interval: float
    channels: tuple[str, ...]
    next_due: float = 0.0  # clock epoch seconds of the next poll


class BusScheduler:
    """The one owner of ``port``: polls ``devices`` in turn and hands each batch to ``sink``.

    ``settings`` overrides the serial settings the profiles give (they must agree otherwise);
    ``timeout_s`` overrides the profiles' answer timeout (real seconds, it is wire time).
    """

    def __init__(
        self,
        port: str,
        devices: Sequence[DeviceConfig],
        *,
        station: str,
        clock: Clock,
        sink: Sink,
        settings: SerialDefaults | None = None,
        timeout_s: float | None = None,
        max_gap: int = DEFAULT_MAX_GAP,
        breaker_threshold: int = BREAKER_THRESHOLD,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        if not devices:
            raise PortError(f"{port}: no devices to poll", reason="config")
        self.port = port
        self.station = station
        self.clock = clock
        self.sink = sink
        timeout = timeout_s or max(d.profile.serial.timeout_s for d in devices)
        self._devices: dict[str, _Device] = {}
        self._lock = threading.RLock()  # the bus: one transaction at a time
        self._wake = Doorbell()  # cheaper timed sleeps than threading.Event
        self._stopping = False
        self._thread: threading.Thread | None = None
        protocol = _check_devices(port, devices)
        self.settings = settings or _agreed_settings(port, devices)
        self._link: ModbusLink | SerialLine
        if protocol == "modbus":
            self._link = ModbusLink(port, self.settings, timeout)
        else:
            self._link = SerialLine(port, self.settings, timeout)
        for d in devices:
            fields = d.fields()
            driver = self._driver(d, fields, max_gap)
            counters = {f.name: c for f in fields if (c := make_counter(f)) is not None}
            breaker = Breaker(
                threshold=breaker_threshold,
                base_s=BACKOFF_INTERVALS * d.interval_s,
                max_s=max(backoff_max_s, d.interval_s),
            )
            self._devices[d.name] = _Device(
                d,
                driver,
                {f.name: f for f in fields},
                counters,
                HealthTracker(breaker),
                d.interval_s,
                tuple(f.name for f in fields),
            )
        self._counting = any(dev.counters for dev in self._devices.values())

    def _driver(self, d: DeviceConfig, fields: list[Field], max_gap: int) -> Driver:
        link = self._link
        if isinstance(link, ModbusLink):
            regs = [f for f in fields if isinstance(f, RegisterField)]
            return ModbusDriver(link, d.profile, d.address, regs, max_gap=max_gap)
        asc = [f for f in fields if isinstance(f, AsciiField)]
        if d.profile.device.protocol == "windsonic":
            return WindSonicDriver(link, asc)
        return WxtDriver(link, d.address, asc)

    # -- public API ---------------------------------------------------------------------------

    @property
    def devices(self) -> list[str]:
        return list(self._devices)

    def start(self) -> None:
        """Start polling in a background thread (one per port)."""
        if self._thread is not None:
            return
        self._stopping = False
        now = self._now()
        for dev in self._devices.values():
            dev.next_due = align_up(now, dev.interval)
        self._thread = threading.Thread(target=self._run, name=f"bus {self.port}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop polling (finishing the poll in progress) and release the port."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        with self._lock:
            self._link.close()

    def __enter__(self) -> BusScheduler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_interval(self, device: str, seconds: float) -> None:
        """Change a device's polling interval (adaptive sampling); takes effect at once."""
        if seconds <= 0:
            raise ValueError(f"interval must be positive, got {seconds}")
        dev = self._devices[device]
        dev.interval = seconds
        dev.health.breaker.base_s = BACKOFF_INTERVALS * seconds
        if self._thread is not None:
            dev.next_due = min(dev.next_due, align_up(self._now(), seconds))
        self._wake.set()

    def interval(self, device: str) -> float:
        return self._devices[device].interval

    def poll_once(self, device: str) -> list[Reading]:
        """Poll ``device`` now and return its readings (not handed to the sink)."""
        return self._poll(self._devices[device])

    def health(self) -> dict[str, DeviceHealth]:
        return {name: dev.health.snapshot() for name, dev in self._devices.items()}

    def counter_state(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Counter state of every accumulating channel, to persist across restarts."""
        if not self._counting:
            return {}  # asked after every poll: no lock when no device counts
        with self._lock:
            return {
                name: {ch: c.state() for ch, c in dev.counters.items()}
                for name, dev in self._devices.items()
                if dev.counters
            }

    def restore_counters(self, state: dict[str, dict[str, dict[str, Any]]]) -> None:
        """Continue counters from :meth:`counter_state` output; unknown entries are ignored."""
        with self._lock:
            for name, channels in state.items():
                dev = self._devices.get(name)
                for ch, saved in (channels or {}).items():
                    if dev is not None and ch in dev.counters:
                        dev.counters[ch].restore(saved)

    def write_register(self, device: str, setting_name: str, value: float) -> None:
        """Write a profile setting (holding register or coil) of ``device``, in engineering units.

        Raises :class:`ProfileError` for a setting the profile does not make writable and
        :class:`DeviceError` (with its status) when the device does not take the write.
        """
        dev = self._devices[device]
        with self._lock:
            dev.driver.write(setting_name, value)

    # -- polling ------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.clock.now().timestamp()

    def _run(self) -> None:
        name_os_thread(f"bus {self.port.rsplit('/', 1)[-1]}")
        while not self._stopping:
            self._wake.clear()
            now = self._now()
            dev = min(self._devices.values(), key=lambda d: d.next_due)
            if dev.next_due - now > dev.interval:  # the wall clock jumped back
                dev.next_due = align_up(now, dev.interval)
            delay = dev.next_due - now
            if delay > 0:
                self.clock.wait(self._wake, delay)
                continue
            try:
                readings = self._poll(dev)
            except Exception:  # never a dead poller: log and try again at the next interval
                log.exception("poll of %s failed", dev.config.name)
                readings = []
            dev.next_due = align_up(self._now(), dev.interval)
            try:
                if readings:
                    self.sink(readings)
            except Exception:
                log.exception("sink failed on a batch from %s; polling goes on", dev.config.name)

    def _poll(self, dev: _Device) -> list[Reading]:
        with self._lock:
            when = self.clock.now()
            breaker = dev.health.breaker
            if not breaker.allow(when.timestamp()):
                dev.health.skipped()
                retry = datetime.fromtimestamp(breaker.retry_at or 0.0, UTC)
                detail = f"backing off until {retry:%H:%M:%S}Z after: {dev.health.last_error}"
                skipped = failed(dev.channels, DriverStatus.BREAKER_OPEN, detail)
                return to_readings(
                    skipped, dev.fields, {}, station=self.station, sensor=dev.config.name, time=when
                )
            station, sensor = self.station, dev.config.name
            try:
                samples = [s for s in dev.driver.poll() if s.channel in dev.fields]
                readings = to_readings(
                    samples, dev.fields, dev.counters, station=station, sensor=sensor, time=when
                )
            except Exception as exc:  # a driver bug must not kill the bus
                log.exception("driver of %s failed", dev.config.name)
                bug = failed(dev.channels, DriverStatus.BAD_FRAME, f"driver error: {exc!r}")
                readings = to_readings(
                    bug, dev.fields, {}, station=station, sensor=sensor, time=when
                )
            ok = DriverStatus.OK
            if readings and all(r.status is ok for r in readings):
                dev.health.ok_poll(len(readings), when)  # the usual poll, counted cheaply
            else:
                dev.health.record([(r.status, r.detail) for r in readings], when, when.timestamp())
            for status, n in dev.driver.skipped().items():
                dev.health.counts[f"skipped_{status}"] += n
            return readings


def _check_devices(port: str, devices: Sequence[DeviceConfig]) -> str:
    names = [d.name for d in devices]
    if len(set(names)) != len(names):
        raise PortError(f"{port}: device names repeated: {names}", reason="config")
    wrong = [d.name for d in devices if d.port != port]
    if wrong:
        raise PortError(f"{port}: devices {wrong} are on another port", reason="config")
    protocols = {d.profile.device.protocol for d in devices}
    if len(protocols) > 1:
        raise PortError(
            f"{port}: one port cannot mix protocols {sorted(protocols)}", reason="config"
        )
    protocol = protocols.pop()
    if protocol == "windsonic" and len(devices) > 1:
        raise PortError(f"{port}: a WindSonic talks unsolicited and needs its own port", "config")
    addresses = [d.address for d in devices]
    if len(set(addresses)) != len(addresses):
        raise PortError(f"{port}: two devices share an address: {addresses}", reason="config")
    return protocol


def _agreed_settings(port: str, devices: Sequence[DeviceConfig]) -> SerialDefaults:
    """The serial settings all profiles on a port agree on (a bus has one baud rate)."""
    first = devices[0].profile.serial
    key = ("baudrate", "bytesize", "parity", "stopbits")
    for d in devices[1:]:
        s = d.profile.serial
        if not is_tcp(port) and any(getattr(s, k) != getattr(first, k) for k in key):
            raise PortError(
                f"{port}: {devices[0].name} and {d.name} disagree on serial settings", "config"
            )
    return first


def open_buses(
    devices: Iterable[DeviceConfig], *, station: str, clock: Clock, sink: Sink, **options: Any
) -> list[BusScheduler]:
    """One :class:`BusScheduler` per port, in the order ports first appear (not started)."""
    by_port: dict[str, list[DeviceConfig]] = {}
    for d in devices:
        by_port.setdefault(d.port, []).append(d)
    return [
        BusScheduler(port, devs, station=station, clock=clock, sink=sink, **options)
        for port, devs in by_port.items()
    ]
