"""Run files: a qualification run in TOML, validated into a :class:`RunSpec`.

Every key is checked; a mistake is one :class:`RunFileError` naming the file and the key, e.g.
``qualify.toml: checkpoints[1].by_min: expected a number, got a string``. Schema::

    [run]
    scenario = "faults-all"        # bundled name or scenario file (relative to the run file)
    speed = 120                    # scenario seconds per real second (default: the scenario's)
    duration_min = 90              # default: the scenario's duration
    pacing = true                  # wire-time pacing on serial buses (default true)
    lead_in_s = 10                 # real seconds before minute 0 for the DUT to start (the
                                   # devices answer with the truth at minute 0 meanwhile)

    [ports]
    bind = { "rs485-1" = "/dev/ttyUSB0" }   # serial bus -> device the simulator serves it on
    listen = "127.0.0.1"           # Modbus TCP address; any other address only via --listen

    [[faults]]                     # fault timeline, on top of the scenario's own faults
    device = "level"               # the scenario's [[faults]] keys: device, kind, start_min,
    kind = "spike"                 # duration_min, params = { ... }
    start_min = 40
    duration_min = 5

    [[checkpoints]]
    name = "waterlogging by minute 70"     # optional label
    kind = "warning"               # warning: the DUT raised `signal` at `level` or higher
    signal = "waterlogging"        #          by `by_min`
    level = "blue"                 #          (default: the lowest level)
    by_min = 70
    [[checkpoints]]
    kind = "resume"                # resume: after each `after` fault on `device` ends, a good
    device = "level"               #         reading comes within `within_s` scenario seconds
    after = "port_vanish"
    within_s = 10

    [dut]
    station = "bs-hil-01"          # the station id the device under test reports as
    source = "mqtt"                # mqtt | http | sqlite: where its results come from
    clock = "shared"               # shared: it runs on the simulator's clock (--clock-state);
                                   # wall: on its own real-time clock (a gateway on the bench)
    [dut.mqtt]                     # its uplink through a broker (the fleet's contract,
    host = "192.168.1.10"          # roadside.wire), read with a controller certificate
    port = 8883
    ca = "pki/ca.pem"
    cert = "pki/fleet-controller.pem"
    key = "pki/fleet-controller.key"
    ack = true                     # stand in for the fleet and acknowledge each batch
                                   # (false when a fleet controller shares the broker)
    [dut.http]                     # its status JSON (the agent's status document), polled
    url = "http://192.168.1.20/status.json"  # (file:// too; with [dut.agent]: its status file)
    interval_s = 1.0               # real seconds between polls
    [dut.sqlite]                   # its buffer database, copied back after the run
    path = "results/buffer.db"
    [dut.agent]                    # optional: run the project's own agent as the DUT here;
    ports = { "rs485-1" = "/dev/ttyUSB1" }  # where it finds each bound bus (its cable end)
    interval_s = 10                # poll interval of every sensor (scenario seconds)
                                   # (mqtt then needs no [dut.mqtt]: a broker is started)

    [scorecard]
    grace_min = 3                  # minutes after a fault ends that still count as its effect
    lead_target_min = { waterlogging = 0 }  # a warning's lead over the truth's crossing must
                                   # be at least this (negative: that many minutes late at most)
    rainstorm_preset = "shanghai"  # which rainstorm criteria the truth is held to
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from agent.warnings import LEVELS, RAINSTORM_PRESETS, WATERLOGGING_TIERS
from drivers.errors import ProfileError
from drivers.profile import load_profile
from sim.errors import ScenarioError
from sim.hil.errors import RunFileError
from sim.scenario import _fault, _one_of, _range, _Table, load_scenario
from sim.spec import FAULT_KINDS, FaultSpec, Scenario

SOURCES = ("mqtt", "http", "sqlite")
LEAD_IN_S = 10.0  # real seconds before scenario minute 0: the DUT starts and opens its ports
CHECKPOINT_KINDS = ("warning", "resume")
SIGNAL_LEVELS: dict[str, tuple[str, ...]] = {
    "rainstorm": LEVELS[1:],
    "gale": LEVELS[1:],
    "waterlogging": tuple(WATERLOGGING_TIERS),
}


@dataclass(frozen=True)
class Checkpoint:
    """One pass/fail statement about the run."""

    name: str
    kind: Literal["warning", "resume"]
    signal: str = ""
    level: str = ""
    by_min: float = 0.0
    device: str = ""
    after: str = ""
    within_s: float = 0.0


@dataclass(frozen=True)
class MqttSource:
    host: str
    port: int
    ca: Path
    cert: Path
    key: Path
    ack: bool = True  # acknowledge batches as the fleet would (false: a fleet is on the broker)


@dataclass(frozen=True)
class AgentDut:
    """Run the project's own agent as the device under test."""

    ports: dict[str, str] = field(default_factory=dict)
    interval_s: float = 10.0


@dataclass(frozen=True)
class DutSpec:
    station: str
    source: Literal["mqtt", "http", "sqlite"]
    clock: Literal["shared", "wall"] = "shared"
    mqtt: MqttSource | None = None
    http_url: str = ""
    http_interval_s: float = 1.0
    sqlite_path: Path | None = None
    agent: AgentDut | None = None


@dataclass(frozen=True)
class ScorecardSpec:
    grace_min: float = 3.0
    lead_target_min: dict[str, float] = field(default_factory=dict)
    rainstorm_preset: str = "shanghai"


@dataclass(frozen=True)
class RunSpec:
    """A validated run file; ``scenario`` already carries the fault timeline."""

    source: str
    scenario: Scenario
    speed: float
    duration_s: float
    pacing: bool
    lead_in_s: float
    bind: dict[str, Path]
    listen: str
    timeline: tuple[FaultSpec, ...]
    checkpoints: tuple[Checkpoint, ...]
    dut: DutSpec
    scorecard: ScorecardSpec


def load_run_file(path: Path) -> RunSpec:
    """Read and validate a run file (paths inside are relative to its directory)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunFileError(f"{path}: run file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunFileError(f"{path}: cannot read run file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RunFileError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_run(doc, str(path), path.parent)
    except ScenarioError as exc:
        raise RunFileError(str(exc)) from None


def parse_run(doc: dict[str, Any], source: str, base: Path) -> RunSpec:
    """Validate a run document read from ``source``; relative paths resolve against ``base``."""
    top = _Table(source, "", doc)
    head = top.sub("run")
    name = head.get("scenario", str)
    candidate = base / name
    try:
        scenario = load_scenario(candidate if candidate.suffix and candidate.exists() else name)
    except ScenarioError as exc:
        head.fail("scenario", str(exc))
    speed = head.get("speed", float, scenario.speed, _range(0.0, 1e6, lo_open=True))
    end_min = scenario.duration_s / 60.0
    duration_min = head.get("duration_min", float, end_min, _range(0.0, end_min, lo_open=True))
    pacing = head.get("pacing", bool, True)
    lead_in_s = head.get("lead_in_s", float, LEAD_IN_S, _range(0.0, 3600.0))
    head.done()

    buses = {b.name: b for b in scenario.buses}
    ports = top.sub("ports", {})
    bind_t = ports.sub("bind", {})
    bind: dict[str, Path] = {}
    for bus in bind_t.data:
        dev = bind_t.get(bus, str)
        if bus not in buses or buses[bus].kind == "tcp":
            serial = ", ".join(n for n, b in buses.items() if b.kind != "tcp") or "none"
            bind_t.fail(bus, f"no serial bus {bus!r} in the scenario (serial buses: {serial})")
        bind[bus] = Path(dev)
    listen = ports.get("listen", str, "127.0.0.1", _loopback)
    ports.done()

    devices = {}
    for d in scenario.devices:
        try:
            devices[d.name] = (d, load_profile(d.profile))
        except ProfileError as exc:
            head.fail("scenario", str(exc))
    timeline = tuple(_fault(t, devices, buses, duration_min) for t in top.array("faults"))
    checkpoints = tuple(
        _checkpoint(t, i, set(devices)) for i, t in enumerate(top.array("checkpoints"))
    )
    dut = _dut(top.sub("dut"), base, set(buses))
    card = _scorecard(top.sub("scorecard", {}))
    top.done()
    scenario = replace(scenario, faults=scenario.faults + timeline, speed=speed)
    return RunSpec(
        source=source,
        scenario=scenario,
        speed=speed,
        duration_s=duration_min * 60.0,
        pacing=pacing,
        lead_in_s=lead_in_s,
        bind=bind,
        listen=listen,
        timeline=timeline,
        checkpoints=checkpoints,
        dut=dut,
        scorecard=card,
    )


def _loopback(value: str) -> str | None:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return f"{value!r} is not an IP address"
    if not address.is_loopback:
        return f"{value} is not loopback: another address is given on the command line (--listen)"
    return None


def _checkpoint(t: _Table, i: int, devices: set[str]) -> Checkpoint:
    kind = t.get("kind", str, check=_one_of(*CHECKPOINT_KINDS))
    if kind == "warning":
        signal = t.get("signal", str, check=_one_of(*SIGNAL_LEVELS))
        level = t.get("level", str, SIGNAL_LEVELS[signal][0], _one_of(*SIGNAL_LEVELS[signal]))
        by_min = t.get("by_min", float, check=_range(0.0))
        name = t.get("name", str, f"{signal} {level} raised by minute {by_min:g}")
        t.done()
        return Checkpoint(name, "warning", signal=signal, level=level, by_min=by_min)
    device = t.get("device", str)
    if device not in devices:
        t.fail("device", f"unknown device {device!r} (devices: {', '.join(sorted(devices))})")
    after = t.get("after", str, check=_one_of(*FAULT_KINDS))
    within_s = t.get("within_s", float, check=_range(0.0, lo_open=True))
    name = t.get("name", str, f"{device} reads again within {within_s:g} s after {after}")
    t.done()
    return Checkpoint(name, "resume", device=device, after=after, within_s=within_s)


def _dut(t: _Table, base: Path, buses: set[str]) -> DutSpec:
    station = t.get("station", str)
    source = t.get("source", str, check=_one_of(*SOURCES))
    clock = t.get("clock", str, "shared", _one_of("shared", "wall"))
    agent = None
    if "agent" in t.data:
        a = t.sub("agent")
        ports_t = a.sub("ports", {})
        ports = {}
        for bus in ports_t.data:
            if bus not in buses:
                ports_t.fail(bus, f"no bus {bus!r} in the scenario")
            ports[bus] = ports_t.get(bus, str)
        ports_t.done()
        agent = AgentDut(ports, a.get("interval_s", float, 10.0, _range(0.0, lo_open=True)))
        a.done()
    mqtt = None
    if (source == "mqtt" and agent is None) or "mqtt" in t.data:
        m = t.sub("mqtt")
        host, port = m.get("host", str), m.get("port", int, 8883, _range(1, 65535))
        ca, cert, key = (base / m.get(k, str) for k in ("ca", "cert", "key"))
        mqtt = MqttSource(host, port, ca, cert, key, m.get("ack", bool, True))
        m.done()
    url, every = "", 1.0
    if (source == "http" and agent is None) or "http" in t.data:
        h = t.sub("http")
        url = h.get("url", str, check=_url)
        every = h.get("interval_s", float, 1.0, _range(0.0, lo_open=True))
        h.done()
    sqlite_path = None
    if (source == "sqlite" and agent is None) or "sqlite" in t.data:
        s = t.sub("sqlite")
        sqlite_path = base / s.get("path", str)
        s.done()
    t.done()
    return DutSpec(station, source, clock, mqtt, url, every, sqlite_path, agent)


def _url(value: str) -> str | None:
    ok = value.startswith(("http://", "https://", "file://"))
    return None if ok else f"{value!r} is not an http://, https:// or file:// URL"


def _scorecard(t: _Table) -> ScorecardSpec:
    grace = t.get("grace_min", float, 3.0, _range(0.0))
    leads_t = t.sub("lead_target_min", {})
    leads = {}
    for signal in leads_t.data:
        if signal not in SIGNAL_LEVELS:
            leads_t.fail(signal, f"unknown signal (signals: {', '.join(SIGNAL_LEVELS)})")
        leads[signal] = leads_t.get(signal, float)
    preset = t.get("rainstorm_preset", str, "shanghai", _one_of(*RAINSTORM_PRESETS))
    t.done()
    return ScorecardSpec(grace, leads, preset)
