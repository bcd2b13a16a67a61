"""Scenario files: TOML in, a validated :class:`sim.spec.Scenario` out.

Schema (every table and key is checked; an unknown key, a wrong type or a dangling reference is a
:class:`ScenarioError` naming the file and the key, e.g.
``storm.toml: devices[1].bus: unknown bus 'rs485-9'``; array indices count from 0)::

    [scenario]
    name = "storm-5y-2h"             # default: the file name without .toml
    seed = 7                         # integer; same seed, same weather (default 0)
    start = 2026-07-21T12:00:00Z     # TOML date-time (or ISO string) with a UTC offset; required
    duration_min = 180               # required, > 0
    speed = 60                       # scenario seconds per real second (default 1)

    [storm]                          # optional (default: dry); times in minutes from the start
    kind = "chicago"                 # chicago | two_peak | drizzle | dry
    return_period_y = 5              # chicago, two_peak: 0.5 .. 100
    duration_min = 120               # chicago, two_peak: 60 .. 360 whole minutes; drizzle: > 0
    start_min = 20                   # default 0; the storm must end within the scenario
    peak_ratio = 0.367               # chicago, two_peak: 0 < r < 1
    jitter = 0.1                     # chicago, two_peak: lognormal sigma per minute, mass kept
    split = 0.5                      # two_peak: first burst's share of the duration
    first_share = 0.4                # two_peak: first burst's share of the depth
    intensity_mmh = 0.6              # drizzle: mean intensity
    variability = 0.5                # drizzle: sigma of log-intensity
    cell_min = 10                    # drizzle: correlation time
    [storm.coeffs]                   # optional: q = A (1 + C lg P) / (t + b)^n; default Shanghai
    A = 1600.0
    C = 0.846
    b = 7.0
    n = 0.656

    [wind]                           # optional (default: calm); see sim.weather.wind for kinds
    kind = "gusty"                   # calm | gusty | squall | typhoon
    mean_ms = 6.0                    # ... plus that kind's parameters (numbers)

    [site]                           # optional; the fields of sim.spec.SiteSpec
    drain_capacity_mmh = 36.0
    catchment_m2 = 2000.0
    pond_area_m2 = 400.0
    runoff_coeff = 0.9
    installation_height_cm = 300.0

    [[buses]]                        # the fields of sim.spec.BusSpec
    name = "rs485-1"                 # required, unique
    kind = "rtu"                     # rtu | ascii | tcp
    baudrate = 9600                  # serial buses: bytesize 7|8, parity N|E|O, stopbits 1|2
    link = "ttyRS485-1"              # serial buses: symlink name in the link directory (unique)
    pacing = true                    # wire-time pacing; turnaround_ms = 5.0
    # port = 0                       # tcp buses only: TCP port (0 = any free port)

    [[devices]]                      # the fields of sim.spec.DeviceSpec
    name = "rain"                    # required, unique
    profile = "dfrobot-sen0575"      # a shipped profile name or a profile file path
    bus = "rs485-1"                  # a bus above; Modbus profiles on rtu|tcp, ASCII ones on ascii
    slave = 192                      # 0 .. 247, unique on its bus (default: the profile's)

    [[faults]]                       # sim.spec.FaultSpec, with times in minutes
    device = "rain"                  # a device above
    kind = "stuck"                   # one of sim.spec.FAULT_KINDS
    start_min = 30                   # >= 0 and before the scenario ends
    duration_min = 5                 # optional (default: until the end or cleared)
    params = { channel = "rain_total" }  # optional; by kind (see sim.devices.faults):
                                     # stuck: channel; spike: channel, magnitude, probability;
                                     # drift: channel, rate_per_h; slow_answer: delay_s;
                                     # wrong_slave: address; garbage: length;
                                     # counter_reset: start_mm; ASCII devices also status, invalid

``counter_reset`` needs a device with a counter channel; ``channel`` must be one of the profile's.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from drivers.errors import ProfileError
from drivers.profile import Profile, load_profile
from sim.errors import ScenarioError
from sim.spec import FAULT_KINDS, BusSpec, DeviceSpec, FaultSpec, Scenario, SiteSpec
from sim.weather.truth import STORM_PARAMS, build_truth
from sim.weather.wind import WIND_PARAMS

__all__ = ["ScenarioError", "bundled_scenarios", "load_scenario", "parse_scenario"]

_REQUIRED = object()


def bundled_scenarios() -> dict[str, Path]:
    """Scenarios shipped with Roadside, by name (file stem)."""
    root = resources.files("sim") / "scenarios"
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".toml")}


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a scenario by bundled name (``storm-5y-2h``) or by file path, fully validated."""
    path = Path(name_or_path)
    source = str(name_or_path)
    if not path.suffix and not path.exists():
        shipped = bundled_scenarios()
        if source not in shipped:
            known = ", ".join(sorted(shipped))
            raise ScenarioError(f"unknown scenario {source!r} (shipped: {known})")
        path, source = shipped[source], shipped[source].name
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{source}: scenario file not found") from None
    except IsADirectoryError:
        raise ScenarioError(f"{source}: is a directory, not a scenario file") from None
    except PermissionError:
        raise ScenarioError(f"{source}: permission denied") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{source}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
    return parse_scenario(doc, source, default_name=path.stem, origin=str(path))


class _Table:
    """A TOML table being read: typed getters that name the key path, then a check for leftovers."""

    def __init__(self, source: str, where: str, value: Any) -> None:
        self.source, self.where = source, where
        if not isinstance(value, dict):
            self.fail("", f"expected a table, got {_kind(value)}")
        self.data: dict[str, Any] = value
        self.used: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where and key else (self.where or key)

    def fail(self, key: str, message: str) -> NoReturn:
        raise ScenarioError(f"{self.source}: {self.path(key) or '(top level)'}: {message}")

    def get(
        self,
        key: str,
        kind: type | tuple[type, ...],
        default: Any = _REQUIRED,
        check: Callable[[Any], str | None] | None = None,
    ) -> Any:
        """The value at ``key``, of ``kind`` (int accepted for float), checked by ``check``."""
        self.used.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                self.fail(key, "required key is missing")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            want = " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
            self.fail(key, f"expected {want}, got {_kind(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(key, "must be a finite number")
        if check is not None:
            problem = check(value)
            if problem:
                self.fail(key, problem)
        return value

    def sub(self, key: str, default: Any = _REQUIRED) -> _Table:
        self.used.add(key)
        if key not in self.data and default is not _REQUIRED:
            return _Table(self.source, self.path(key), default)
        if key not in self.data:
            self.fail(key, "required table is missing")
        return _Table(self.source, self.path(key), self.data[key])

    def array(self, key: str) -> list[_Table]:
        self.used.add(key)
        items = self.data.get(key, [])
        if not isinstance(items, list):
            self.fail(key, f"expected an array of tables ([[{key}]]), got {_kind(items)}")
        return [_Table(self.source, f"{self.path(key)}[{i}]", v) for i, v in enumerate(items)]

    def done(self, allowed: set[str] | None = None) -> None:
        """Refuse keys nobody read (or outside ``allowed``)."""
        known = self.used if allowed is None else allowed
        for key in self.data:
            if key not in known:
                hint = ", ".join(sorted(known)) or "none"
                self.fail(key, f"unknown key (known here: {hint})")


_KIND_NAMES = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    dict: "a table",
    datetime: "a date-time",
}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"{type(value).__name__} {value!r}"


def _range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False) -> Any:
    def check(v: float) -> str | None:
        if lo is not None and (v <= lo if lo_open else v < lo):
            return f"must be {'>' if lo_open else '>='} {lo:g}, got {v:g}"
        if hi is not None and v > hi:
            return f"must be <= {hi:g}, got {v:g}"
        return None

    return check


def _one_of(*choices: Any) -> Any:
    def check(v: Any) -> str | None:
        return (
            None if v in choices else f"must be one of {', '.join(map(repr, choices))}, got {v!r}"
        )

    return check


def _whole_minutes(v: float) -> str | None:
    return None if float(v).is_integer() else f"must be a whole number of minutes, got {v:g}"


def _start_time(table: _Table) -> datetime:
    value = table.get("start", (datetime, str))
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            table.fail("start", f"not an ISO date-time: {value!r}")
    if not isinstance(value, datetime) or value.tzinfo is None:
        table.fail("start", "needs a date-time with a UTC offset (e.g. 2026-07-21T12:00:00Z)")
    return value.astimezone(UTC)


def _storm(table: _Table, scenario_min: float) -> dict[str, Any]:
    kind = table.get("kind", str, "dry", _one_of(*STORM_PARAMS))
    storm: dict[str, Any] = {"kind": kind}
    params = STORM_PARAMS[kind]
    design = kind in ("chicago", "two_peak")
    checks: dict[str, Any] = {
        "return_period_y": _range(0.5, 100.0),
        "duration_min": _range(60.0, 360.0) if design else _range(0.0, lo_open=True),
        "start_min": _range(0.0),
        "peak_ratio": _range(0.0, 0.999, lo_open=True),
        "jitter": _range(0.0, 1.0),
        "split": _range(0.05, 0.95),
        "first_share": _range(0.05, 0.95),
        "intensity_mmh": _range(0.0, 50.0),
        "variability": _range(0.0, 3.0),
        "cell_min": _range(0.0, lo_open=True),
    }
    for key, default in params.items():
        if key == "coeffs":
            if "coeffs" in table.data:
                coeffs = table.sub("coeffs")
                storm["coeffs"] = {
                    "A": coeffs.get("A", float, check=_range(0.0, lo_open=True)),
                    "C": coeffs.get("C", float, check=_range(0.0)),
                    "b": coeffs.get("b", float, check=_range(0.0)),
                    "n": coeffs.get("n", float, check=_range(0.0, 1.0, lo_open=True)),
                }
                coeffs.done()
            continue
        value = table.get(key, float, _REQUIRED if default is None else default, checks[key])
        if key == "duration_min":
            problem = _whole_minutes(value)
            if problem:
                table.fail(key, problem)
        storm[key] = value
    table.done()
    end = storm.get("start_min", 0.0) + storm.get("duration_min", 0.0)
    if end > scenario_min:
        table.fail(
            "duration_min" if "duration_min" in table.data else "start_min",
            f"the storm ends at {end:g} min, after the scenario's {scenario_min:g} min",
        )
    return storm


def _wind(table: _Table) -> dict[str, Any]:
    kind = table.get("kind", str, "calm", _one_of(*WIND_PARAMS))
    wind: dict[str, Any] = {"kind": kind}
    angles = {"direction_deg", "veer_deg", "inflow_deg"}
    positive = {"time_scale_s", "wander_time_s", "rmax_km", "holland_b", "decay_min"}
    for key in WIND_PARAMS[kind]:
        if key not in table.data:
            continue
        if key in angles:
            check = _range(-360.0, 360.0)
        elif key in positive:
            check = _range(0.0, lo_open=True)
        elif key == "gust_factor":
            check = _range(1.0, 3.0)
        elif key == "gust_window_s":
            check = _range(1.0, 3600.0)
        else:
            check = _range(0.0)
        wind[key] = table.get(key, float, check=check)
    table.done(set(WIND_PARAMS[kind]) | {"kind"})
    return wind


def _site(table: _Table) -> SiteSpec:
    positive = _range(0.0, lo_open=True)
    site = SiteSpec(
        drain_capacity_mmh=table.get("drain_capacity_mmh", float, 36.0, _range(0.0)),
        catchment_m2=table.get("catchment_m2", float, 2000.0, positive),
        pond_area_m2=table.get("pond_area_m2", float, 400.0, positive),
        runoff_coeff=table.get("runoff_coeff", float, 0.9, _range(0.0, 1.0, lo_open=True)),
        installation_height_cm=table.get("installation_height_cm", float, 300.0, positive),
    )
    table.done()
    return site


def _bus(table: _Table) -> BusSpec:
    kind = table.get("kind", str, check=_one_of("rtu", "ascii", "tcp"))
    serial = kind != "tcp"

    def name_check(v: str) -> str | None:
        return None if v.strip() and "/" not in v else f"must be a plain non-empty name, got {v!r}"

    name = table.get("name", str, check=name_check)
    if serial and "port" in table.data:
        table.fail("port", f"only tcp buses have a port; {kind} buses have a link")
    if not serial:
        for key in ("link", "baudrate", "bytesize", "parity", "stopbits"):
            if key in table.data:
                table.fail(key, "tcp buses have no serial settings (use port)")
    bus = BusSpec(
        name=name,
        kind=kind,
        baudrate=table.get("baudrate", int, 9600, _range(1.0)),
        bytesize=table.get("bytesize", int, 8, _one_of(7, 8)),
        parity=table.get("parity", str, "N", _one_of("N", "E", "O")),
        stopbits=table.get("stopbits", int, 1, _one_of(1, 2)),
        pacing=table.get("pacing", bool, True),
        turnaround_ms=table.get("turnaround_ms", float, 5.0, _range(0.0, 1000.0)),
        link=table.get("link", str, None, name_check),
        port=table.get("port", int, 0, _range(0.0, 65535.0)),
    )
    table.done()
    return bus


def _profile(table: _Table, name: str) -> Profile:
    try:
        return load_profile(name)
    except ProfileError as exc:
        table.fail("profile", str(exc))


def _device(table: _Table, buses: dict[str, BusSpec]) -> tuple[DeviceSpec, Profile]:
    name = table.get("name", str, check=lambda v: None if v.strip() else "must not be empty")
    profile = _profile(table, table.get("profile", str))
    bus_name = table.get("bus", str)
    if bus_name not in buses:
        known = ", ".join(repr(b) for b in buses) or "none declared"
        table.fail("bus", f"unknown bus {bus_name!r} (buses: {known})")
    bus = buses[bus_name]
    modbus = profile.device.protocol == "modbus"
    if (modbus and bus.kind == "ascii") or (not modbus and bus.kind != "ascii"):
        need = "an rtu or tcp" if modbus else "an ascii"
        table.fail(
            "bus",
            f"profile {profile.device.model!r} speaks {profile.device.protocol} and needs "
            f"{need} bus; {bus_name!r} is {bus.kind}",
        )
    slave = table.get("slave", int, None, _range(0.0, 247.0))
    table.done()
    return DeviceSpec(name=name, profile=table.data["profile"], bus=bus_name, slave=slave), profile


def _fault(
    table: _Table,
    devices: dict[str, tuple[DeviceSpec, Profile]],
    buses: dict[str, BusSpec],
    scenario_min: float,
) -> FaultSpec:
    device = table.get("device", str)
    if device not in devices:
        known = ", ".join(repr(d) for d in devices) or "none declared"
        table.fail("device", f"unknown device {device!r} (devices: {known})")
    kind = table.get("kind", str, check=_one_of(*FAULT_KINDS))
    spec, profile = devices[device]
    if kind == "counter_reset" and not any(c.counter for c in profile.channels):
        table.fail(
            "kind", f"counter_reset needs a counter channel; {profile.device.model!r} has none"
        )
    start = table.get("start_min", float, 0.0, _range(0.0))
    if start >= scenario_min:
        table.fail(
            "start_min", f"starts at {start:g} min, after the scenario's {scenario_min:g} min"
        )
    duration = table.get("duration_min", float, None, _range(0.0, lo_open=True))
    params = _fault_params(table.sub("params", {}), kind, profile, buses[spec.bus])
    table.done()
    return FaultSpec(
        device=device,
        kind=kind,
        start_s=start * 60.0,
        duration_s=None if duration is None else duration * 60.0,
        params=params,
    )


# Fault parameters the simulated devices understand (sim.devices.faults), by kind.
_VALUE_PARAMS = {"channel": str}
FAULT_PARAMS: dict[str, dict[str, Any]] = {
    "stuck": _VALUE_PARAMS,
    "spike": {**_VALUE_PARAMS, "magnitude": float, "probability": float},
    "drift": {**_VALUE_PARAMS, "rate_per_h": float},
    "slow_answer": {"delay_s": float},
    "wrong_slave": {"address": (int, str)},
    "garbage": {"length": int},
    "counter_reset": {"start_mm": float},
}
_ASCII_PARAMS = {"status": str, "invalid": bool}  # any kind, ASCII devices: self-reported fault
_PARAM_CHECKS: dict[str, Any] = {
    "probability": _range(0.0, 1.0),
    "delay_s": _range(0.0, 60.0),
    "length": _range(1.0, 4096.0),
    "start_mm": _range(0.0),
}


def _fault_params(table: _Table, kind: str, profile: Profile, bus: BusSpec) -> dict[str, Any]:
    allowed = dict(FAULT_PARAMS.get(kind, {}))
    if bus.kind == "ascii":
        allowed.update(_ASCII_PARAMS)
    params: dict[str, Any] = {}
    for key in table.data:
        if key not in allowed:
            continue
        params[key] = table.get(key, allowed[key], check=_PARAM_CHECKS.get(key))
    if "channel" in params:
        channels = [c.name for c in profile.channels]
        if params["channel"] not in channels:
            table.fail(
                "channel",
                f"{profile.device.model!r} has no channel {params['channel']!r} "
                f"(channels: {', '.join(channels)})",
            )
    if kind == "wrong_slave" and bus.kind != "ascii" and "address" in params:
        address = params["address"]
        if not isinstance(address, int) or not 0 <= address <= 247:
            table.fail("address", f"a Modbus address is an integer 0..247, got {address!r}")
    table.done(set(allowed))
    return params


def parse_scenario(
    doc: dict[str, Any], source: str, *, default_name: str = "", origin: str = ""
) -> Scenario:
    """Validate a scenario document read from ``source`` (named in every error).

    ``origin`` (default ``source``) is kept as the scenario's ``source``: the file it came from.
    """
    top = _Table(source, "", doc)
    head = top.sub("scenario")
    name = head.get("name", str, default_name or "scenario")
    seed = head.get("seed", int, 0)
    start = _start_time(head)
    duration_min = head.get("duration_min", float, check=_range(0.0, 7 * 24 * 60.0, lo_open=True))
    speed = head.get("speed", float, 1.0, _range(0.0, 1e6, lo_open=True))
    head.done()

    storm = _storm(top.sub("storm", {}), duration_min)
    wind = _wind(top.sub("wind", {}))
    site = _site(top.sub("site", {}))

    buses: dict[str, BusSpec] = {}
    links: dict[str, str] = {}
    ports: dict[int, str] = {}
    for table in top.array("buses"):
        bus = _bus(table)
        if bus.name in buses:
            table.fail("name", f"bus {bus.name!r} is declared twice")
        if bus.link is not None:
            if bus.link in links:
                table.fail("link", f"link {bus.link!r} is already used by bus {links[bus.link]!r}")
            links[bus.link] = bus.name
        if bus.port:
            if bus.port in ports:
                table.fail("port", f"port {bus.port} is already used by bus {ports[bus.port]!r}")
            ports[bus.port] = bus.name
        buses[bus.name] = bus

    devices: dict[str, tuple[DeviceSpec, Profile]] = {}
    addresses: dict[tuple[str, int], str] = {}
    for table in top.array("devices"):
        spec, profile = _device(table, buses)
        if spec.name in devices:
            table.fail("name", f"device {spec.name!r} is declared twice")
        address = spec.slave if spec.slave is not None else profile.serial.default_slave
        if (spec.bus, address) in addresses:
            table.fail(
                "slave",
                f"address {address} on bus {spec.bus!r} is already taken by "
                f"{addresses[(spec.bus, address)]!r}",
            )
        addresses[(spec.bus, address)] = spec.name
        devices[spec.name] = (spec, profile)

    faults = tuple(_fault(t, devices, buses, duration_min) for t in top.array("faults"))
    top.done()

    duration_s = duration_min * 60.0
    try:
        truth = build_truth(storm, wind, site, seed, duration_s)
    except ValueError as exc:
        raise ScenarioError(f"{source}: storm/wind: {exc}") from None
    return Scenario(
        name=name,
        seed=seed,
        start=start,
        duration_s=duration_s,
        speed=speed,
        site=site,
        truth=truth,
        buses=tuple(buses.values()),
        devices=tuple(d for d, _ in devices.values()),
        faults=faults,
        source=origin or source,
    )
