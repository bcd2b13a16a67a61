"""A simulated station: the scenario's buses and devices served on real ptys and TCP sockets.

``SimStation(scenario, clock, link_dir)`` builds one :class:`~sim.devices.device.SimDevice` per
scenario device, puts them on their buses (RTU and ASCII buses on pseudo-terminals published as
symlinks in ``link_dir``, or on real serial devices named by ``bind``; Modbus TCP on loopback
ports, or on the ``listen`` address) and answers with the truth at scenario time
``clock.now() - scenario.start``. Faults come from the scenario or from :meth:`SimStation.inject`;
a monitor thread fires counter resets and makes ports vanish and return on schedule.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from drivers.errors import ProfileError
from drivers.profile import load_profile
from roadside.clock import Clock, ScaledClock
from sim.devices.ascii import AsciiBus
from sim.devices.capture import CaptureWriter
from sim.devices.device import SimDevice
from sim.devices.errors import FaultRequestError, PortOpenError, StationConfigError
from sim.devices.faults import FaultBoard, check_kind, check_params
from sim.devices.rtu import RtuBus
from sim.devices.tcp import LOOPBACK, TcpBus
from sim.spec import Scenario

BUS_KINDS = {"modbus": ("rtu", "tcp"), "windsonic": ("ascii",), "wxt": ("ascii",)}
MONITOR_S = 0.02  # how often scheduled faults are checked (real seconds)
STALL_S = 0.25  # the monitor waking this much late means the host starved the simulator

Bus = RtuBus | AsciiBus | TcpBus


@dataclass(frozen=True)
class Endpoint:
    """Where a driver finds a device: ``port`` is a pty symlink path, the bound serial device (the
    simulator's end of the cable) or ``tcp://HOST:PORT``."""

    device: str
    profile: str
    port: str
    slave: int | None
    bus: str = ""
    protocol: str = ""


class SimStation:
    """The scenario's devices, live on their ports."""

    def __init__(
        self,
        scenario: Scenario,
        clock: Clock,
        link_dir: Path,
        *,
        pacing: bool | None = None,
        bind: Mapping[str, Path] | None = None,
        listen: str = LOOPBACK,
        capture: Mapping[str, Path] | None = None,
    ) -> None:
        self.scenario = scenario
        self.bind = {name: Path(dev) for name, dev in (bind or {}).items()}
        self.listen = listen
        self.capture = {name: Path(p) for name, p in (capture or {}).items()}
        self._captures: list[CaptureWriter] = []
        self.clock = clock
        self.link_dir = Path(link_dir)
        self.devices: dict[str, SimDevice] = {}
        self.buses: dict[str, Bus] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.control_path: Path | None = None
        self._control: Any = None
        self._stop = threading.Event()
        self._monitor = threading.Thread(target=self._watch, name="sim-faults", daemon=True)
        self._lock = threading.Lock()
        self.stalls: list[float] = []  # scenario seconds at which the monitor ran late
        self._build(pacing)

    # -- construction --------------------------------------------------------------------------
    def _build(self, pacing: bool | None) -> None:
        sc = self.scenario
        specs = {b.name: b for b in sc.buses}
        where = sc.source or sc.name
        for d in sc.devices:
            if d.name in self.devices:
                raise StationConfigError(f"{where}: device {d.name!r} declared twice")
            if d.bus not in specs:
                known = ", ".join(sorted(specs)) or "none"
                raise StationConfigError(
                    f"{where}: device {d.name!r}: bus {d.bus!r} is not declared (buses: {known})"
                )
            try:
                profile = load_profile(d.profile)
            except ProfileError as exc:
                raise StationConfigError(f"device {d.name!r}: {exc}") from None
            allowed = BUS_KINDS[profile.device.protocol]
            if specs[d.bus].kind not in allowed:
                proto, kind = profile.device.protocol, specs[d.bus].kind
                raise StationConfigError(
                    f"{where}: device {d.name!r}: a {proto} device cannot sit on {kind} bus "
                    f"{d.bus!r} (needs {' or '.join(allowed)})"
                )
            faults = tuple(f for f in sc.faults if f.device == d.name)
            self.devices[d.name] = SimDevice(
                d, profile, sc.truth, sc.site, sc.seed, FaultBoard(faults)
            )
        for f in sc.faults:
            if f.device not in self.devices:
                raise StationConfigError(f"{where}: fault on unknown device {f.device!r}")
        for option, names in (("--bind", self.bind), ("--capture", self.capture)):
            for name in names:
                if name not in specs:
                    known = ", ".join(sorted(specs)) or "none"
                    raise StationConfigError(f"{option} {name}: no such bus (buses: {known})")
                if specs[name].kind == "tcp":
                    raise StationConfigError(
                        f"{option} {name}: a Modbus TCP bus has no serial line "
                        "(use --listen for its address)"
                    )
        for spec in sc.buses:
            members = [dev for dev in self.devices.values() if dev.spec.bus == spec.name]
            addressed = [dev for dev in members if dev.profile.device.protocol != "windsonic"]
            slaves = [dev.slave for dev in addressed]
            dup = sorted({s for s in slaves if slaves.count(s) > 1})
            if dup:
                raise StationConfigError(
                    f"{where}: bus {spec.name!r}: address {dup[0]} used by two devices"
                )
            paced = spec.pacing if pacing is None else pacing
            link = self.link_dir / (spec.link or spec.name)
            bus: Bus
            device = self.bind.get(spec.name)
            if spec.kind == "rtu":
                bus = RtuBus(spec, members, link, self.scenario_time, paced, device)
            elif spec.kind == "ascii":
                bus = AsciiBus(spec, members, link, self.scenario_time, paced, self.clock, device)
            else:
                bus = TcpBus(spec, members, self.scenario_time, self.listen)
            self.buses[spec.name] = bus

    # -- time ----------------------------------------------------------------------------------
    def scenario_time(self) -> float:
        """Scenario seconds since the scenario's start."""
        return (self.clock.now() - self.scenario.start).total_seconds()

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> SimStation:
        """Open every port and start serving; fills :attr:`endpoints`."""
        self.link_dir.mkdir(parents=True, exist_ok=True)
        for name, path in self.capture.items():
            line = self.buses[name]
            assert not isinstance(line, TcpBus)  # refused in _build
            line.capture = CaptureWriter(path, line.spec, self.scenario_time)
            self._captures.append(line.capture)
        started: list[Bus] = []
        for name, bus in self.buses.items():
            try:
                bus.start()
            except OSError as exc:
                for other in started:
                    other.stop()
                for cap in self._captures:
                    cap.close()
                where = getattr(bus, "path", name)
                raise PortOpenError(
                    f"bus {name!r}: cannot open {where}: {exc.strerror or exc}"
                ) from None
            started.append(bus)
        for dev in self.devices.values():
            bus = self.buses[dev.spec.bus]
            windsonic = dev.profile.device.protocol == "windsonic"
            self.endpoints[dev.name] = Endpoint(
                dev.name,
                dev.spec.profile,
                bus.path,
                None if windsonic else dev.slave,
                dev.spec.bus,
                dev.profile.device.protocol,
            )
        self._sync()
        self._monitor.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every port and remove the links (idempotent)."""
        self._stop.set()
        if self._monitor.is_alive():
            self._monitor.join(timeout=5)
        if self._control is not None:
            self._control.close()
            self._control = None
        for bus in self.buses.values():
            bus.stop()
        for cap in self._captures:
            cap.close()

    def __enter__(self) -> SimStation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults --------------------------------------------------------------------------------
    def _device(self, name: str) -> SimDevice:
        if name not in self.devices:
            known = ", ".join(sorted(self.devices))
            raise FaultRequestError(f"no device {name!r} in this station (devices: {known})")
        return self.devices[name]

    def inject(
        self, device: str, kind: str, duration_s: float | None = None, **params: Any
    ) -> None:
        """Start a fault on ``device`` now for ``duration_s`` scenario seconds (None: no end)."""
        dev = self._device(device)
        try:
            check_kind(kind)
        except ValueError as exc:
            raise FaultRequestError(str(exc)) from None
        try:
            checked = check_params(
                params,
                [c.name for c in dev.profile.channels],
                dev.profile.device.protocol == "modbus",
            )
        except ValueError as exc:
            raise FaultRequestError(f"{device}: {kind}: {exc}") from None
        if duration_s is not None and duration_s <= 0:
            raise FaultRequestError(
                f"{device}: {kind}: duration must be positive, got {duration_s}"
            )
        t = self.scenario_time()
        dev.faults.add(kind, t, duration_s, checked)
        dev.tick(t)
        self._sync()

    def clear(self, device: str, kind: str | None = None) -> int:
        """End faults on ``device`` (all, or one kind); returns how many were removed."""
        dev = self._device(device)
        if kind is not None:
            try:
                check_kind(kind)
            except ValueError as exc:
                raise FaultRequestError(str(exc)) from None
        n = dev.faults.clear(kind)
        self._sync()
        return n

    def _sync(self) -> None:
        """Fire due counter resets; make ports vanish or return as port_vanish faults say."""
        with self._lock:
            t = self.scenario_time()
            for dev in self.devices.values():
                dev.tick(t)
            for name, bus in self.buses.items():
                members = [d for d in self.devices.values() if d.spec.bus == name]
                want = not any(d.faults.find("port_vanish", t) for d in members)
                if bus.present != want:
                    bus.set_present(want)

    def _watch(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(MONITOR_S):
            if time.monotonic() - last > MONITOR_S + STALL_S:  # the host did not run us
                self.stalls.append(self.scenario_time())
            self._sync()
            last = time.monotonic()

    # -- state ---------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Scenario time, endpoints and active faults, as plain data."""
        t = self.scenario_time()
        return {
            "scenario": self.scenario.name,
            "scenario_time_s": t,
            "devices": {
                name: {**asdict(self.endpoints[name]), "faults": dev.faults.describe(t)}
                if name in self.endpoints
                else {"faults": dev.faults.describe(t)}
                for name, dev in self.devices.items()
            },
        }

    def late_answers(self) -> dict[str, list[float]]:
        """Per device: scenario seconds at which its serial bus answered late or the whole
        simulator stalled (its host starved it of CPU): what a DUT saw then is not its fault."""
        out: dict[str, list[float]] = {}
        for dev in self.devices.values():
            bus = self.buses[dev.spec.bus]
            own = [] if isinstance(bus, TcpBus) else [t for t, _ in bus.late]
            out[dev.name] = sorted(own + self.stalls)
        return out

    def clock_state(self) -> dict[str, Any]:
        """The clock as ScaledClock(start, speed, anchor) arguments another process can rebuild."""
        if isinstance(self.clock, ScaledClock):
            start, anchor = self.clock.start, self.clock.anchor
        else:
            start, anchor = self.clock.now(), time.time()
        return {"start": start.isoformat(), "speed": self.clock.speed, "anchor": anchor}

    def write_state(self, path: Path) -> None:
        """Write endpoints, clock and control socket to ``path`` as JSON (atomically)."""
        doc = {
            "scenario": self.scenario.name,
            "source": self.scenario.source,
            "scenario_start": self.scenario.start.isoformat(),
            "duration_s": self.scenario.duration_s,
            "clock": self.clock_state(),
            "control": str(self.control_path) if self.control_path else None,
            "endpoints": {name: asdict(ep) for name, ep in self.endpoints.items()},
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)

    def serve_control(self, path: Path) -> Path:
        """Answer ``roadside-sim fault/clear`` on a UNIX socket at ``path``."""
        from sim.devices.control import ControlServer

        self._control = ControlServer(self, Path(path))
        self.control_path = self._control.path
        return self.control_path
