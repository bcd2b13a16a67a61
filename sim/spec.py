"""The simulator's scenario records: what a scenario file declares, as plain frozen dataclasses.

``sim.scenario`` loads and validates TOML into these; ``sim.weather`` turns the storm and site
into a :class:`Truth`; ``sim.devices`` serves the truth on buses; ``sim.station`` wires them up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

FaultKind = Literal[
    "stuck",  # value frozen at what it was when the fault began
    "spike",  # occasional large outliers (params: magnitude, probability)
    "drift",  # value drifts linearly (params: rate_per_h in channel units)
    "no_answer",  # device stays silent
    "slow_answer",  # device answers late (params: delay_s)
    "crc_error",  # frames with a wrong CRC / checksum
    "truncated",  # frames cut short
    "garbage",  # random bytes on the line
    "counter_reset",  # accumulating counter restarts from 0 (power cycle)
    "wrong_slave",  # another slave address answers
    "port_vanish",  # the port disappears for the duration, then comes back
]
FAULT_KINDS: tuple[str, ...] = FaultKind.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class BusSpec:
    """A serial bus (pty pair) or a Modbus TCP endpoint."""

    name: str
    kind: Literal["rtu", "ascii", "tcp"]
    baudrate: int = 9600
    bytesize: int = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1
    pacing: bool = True  # wire-time pacing at the baud rate
    turnaround_ms: float = 5.0  # device turnaround before answering
    link: str | None = None  # symlink name created in the link directory
    port: int = 0  # TCP port (0 = any free port)


@dataclass(frozen=True)
class DeviceSpec:
    """One simulated device on a bus, modelled by a profile."""

    name: str
    profile: str
    bus: str
    slave: int | None = None  # None = the profile's default slave


@dataclass(frozen=True)
class FaultSpec:
    """A fault on one device from ``start_s`` for ``duration_s`` (None = until cleared)."""

    device: str
    kind: FaultKind
    start_s: float = 0.0
    duration_s: float | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SiteSpec:
    """The street point the station watches (domain brief section 4)."""

    drain_capacity_mmh: float = 36.0  # equivalent rain intensity the drain takes away
    catchment_m2: float = 2000.0
    pond_area_m2: float = 400.0
    runoff_coeff: float = 0.9
    installation_height_cm: float = 300.0  # radar face above the road


@dataclass(frozen=True)
class TruthSample:
    """What the weather truly is at one instant, in canonical units."""

    rain_total_mm: float
    rain_intensity_mmh: float
    wind_speed_ms: float
    wind_dir_deg: float
    wind_gust_ms: float
    water_depth_mm: float


class Truth(Protocol):
    """The scenario's weather, queried by scenario seconds since start."""

    duration_s: float

    def sample(self, t_s: float) -> TruthSample: ...


@dataclass(frozen=True)
class Scenario:
    """A loaded scenario: weather truth, site, buses, devices and faults."""

    name: str
    seed: int
    start: datetime
    duration_s: float
    speed: float
    site: SiteSpec
    truth: Truth
    buses: tuple[BusSpec, ...]
    devices: tuple[DeviceSpec, ...]
    faults: tuple[FaultSpec, ...] = ()
    source: str = ""
