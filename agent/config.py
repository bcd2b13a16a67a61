"""Station configuration: one TOML file per station, validated on load.

The file declares the station (id, name, coordinates, grid cell), its sensors (port or
``tcp://host:port``, profile, slave, channels, poll intervals) and the sections the other parts of
the agent read: ``[qc]``, ``[derived]``, ``[warnings]``, ``[uplink]``, ``[buffer]``, ``[metrics]``,
``[sampling]`` (adaptive polling), ``[time]`` (when the wall clock counts as good), ``[site]`` (the
street point, for the nowcast), ``[nowcast]`` and ``[[actions]]`` (warning lights or signs on the
bus switched by warning levels).

Every configuration carries a ``version`` (written by whoever edits it) and a ``content_hash``
(SHA-256 of its canonical JSON form, so comments and key order do not change it): the agent logs,
reports and acknowledges both, so it always knows which configuration it runs.

``${NAME}`` and ``${NAME:-default}`` in ports and paths are replaced from the environment (the
simulator's link directory differs per run); relative paths are taken from the file's directory.
Any problem raises :class:`ConfigError` naming the file, the key and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from agent.errors import ConfigError
from drivers.errors import ProfileError
from drivers.profile import load_profile
from roadside.structs import StructError, convert

_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")

DEFAULT_BUFFER_PATH = "/var/lib/roadside/buffer.db"
DEFAULT_METRICS_PORT = 9108

Name = Annotated[str, Meta(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
NonEmpty = Annotated[str, Meta(min_length=1)]
Interval = Annotated[float, Meta(ge=0.1, le=600.0)]
Positive = Annotated[float, Meta(gt=0)]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class StationInfo(_Section, frozen=True):
    """Who and where the station is."""

    id: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    lat: Annotated[float, Meta(ge=-90, le=90)]
    lon: Annotated[float, Meta(ge=-180, le=180)]
    grid_cell: Name
    name: str = ""


class SensorConfig(_Section, frozen=True):
    """One sensor on a bus. ``interval_s`` is the routine (dry) interval; ``wet_interval_s``, when
    given, is used while it rains or the water rises (adaptive sampling)."""

    name: Name
    profile: str
    port: NonEmpty
    slave: Annotated[int, Meta(ge=0, le=247)] | None = None
    channels: tuple[str, ...] | None = None
    interval_s: Interval = 10.0
    wet_interval_s: Interval | None = None


class SamplingConfig(_Section, frozen=True):
    """Adaptive sampling: poll faster while wet, back to routine after ``hold_s`` of dry."""

    adaptive: bool = True
    wet_rain_mmh: Annotated[float, Meta(ge=0)] = 0.5  # rain intensity that counts as raining
    wet_rise_mm_per_min: Positive = 2.0  # water rise rate that counts as rising
    hold_s: Annotated[float, Meta(ge=0)] = 900.0  # stay fast this long after the last wet sign


class BufferConfig(_Section, frozen=True):
    """The durable SQLite buffer."""

    path: str = DEFAULT_BUFFER_PATH
    max_mb: Annotated[float, Meta(gt=0, le=1_000_000)] = 256.0  # also refuses inf and nan
    synchronous: Literal["full", "normal"] = "full"
    status_path: str | None = None  # defaults to <path>.status.json


class MetricsConfig(_Section, frozen=True):
    """Prometheus endpoint (port 0 disables it)."""

    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = DEFAULT_METRICS_PORT


class TimeConfig(_Section, frozen=True):
    """When the wall clock counts as known good, and how large a jump gets flagged."""

    floor: datetime = datetime(2026, 1, 1, tzinfo=UTC)  # wall time before this is surely wrong
    sync_check: Literal["auto", "none"] = "auto"  # auto: timesyncd marker or kernel sync state
    jump_tolerance_s: Positive = 2.0


class SiteConfig(_Section, frozen=True):
    """The street point the station watches, as the nowcast needs it
    (:class:`edge_models.features.SiteParams`; defaults are the simulator's)."""

    drain_capacity_mmh: Positive = 36.0  # rain over the catchment the drain takes
    catchment_m2: Positive = 2000.0  # area draining to the low spot
    pond_area_m2: Positive = 400.0  # area the water stands on
    runoff_coeff: Annotated[float, Meta(gt=0, le=1)] = 0.9  # share of the rain that runs off


class NowcastConfig(_Section, frozen=True):
    """The waterlogging nowcast: model file, backend and cadence."""

    enabled: bool = True
    model: str | None = None  # .tflite file; default: the model shipped in edge_models
    backend: Literal["auto", "litert", "tflite-runtime", "numpy"] = "auto"
    interval_s: Annotated[float, Meta(ge=5, le=3600)] = 60.0  # between forecasts when calm
    storm_interval_s: Annotated[float, Meta(ge=5, le=3600)] = 20.0  # while it rains or water stands


class ActionConfig(_Section, frozen=True):
    """A local action: while ``signal`` is at ``min_level`` or above, write ``on`` to the
    writable ``setting`` (coil or holding register) of the bus device ``sensor``; else ``off``."""

    signal: Literal["rainstorm", "gale", "waterlogging"]
    sensor: NonEmpty
    setting: NonEmpty
    min_level: Literal["blue", "yellow", "orange", "red"] = "blue"
    on: float = 1.0
    off: float = 0.0


class StationConfig(_Section, frozen=True):
    """A validated station configuration (see the module docstring for the file layout)."""

    version: NonEmpty
    station: StationInfo
    sensors: Annotated[tuple[SensorConfig, ...], Meta(min_length=1)]
    sampling: SamplingConfig = SamplingConfig()
    qc: dict[str, Any] = {}
    derived: dict[str, Any] = {}
    warnings: dict[str, Any] = {}
    uplink: dict[str, Any] = {}
    buffer: BufferConfig = BufferConfig()
    metrics: MetricsConfig = MetricsConfig()
    time: TimeConfig = TimeConfig()
    site: SiteConfig = SiteConfig()
    nowcast: NowcastConfig = NowcastConfig()
    actions: tuple[ActionConfig, ...] = ()
    content_hash: str = ""
    source: str = ""

    @property
    def station_id(self) -> str:
        return self.station.id

    @property
    def max_bytes(self) -> int:
        return int(self.buffer.max_mb * 1024 * 1024)

    @property
    def status_path(self) -> Path:
        if self.buffer.status_path:
            return Path(self.buffer.status_path)
        return Path(self.buffer.path + ".status.json")


def content_hash(doc: dict[str, Any]) -> str:
    """SHA-256 (hex) of a configuration document's canonical JSON form."""
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_config(path: str | Path) -> StationConfig:
    """Read and validate the station configuration at ``path``."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return config_from_dict(doc, str(path), base_dir=path.parent)


def config_from_dict(
    doc: dict[str, Any], source: str, *, base_dir: Path | None = None
) -> StationConfig:
    """Validate an already parsed configuration document; ``source`` names it in errors."""
    digest = content_hash(doc)
    expanded = _expand(doc, source, base_dir or Path.cwd())
    version = expanded.get("version")
    if isinstance(version, int | float) and not isinstance(version, bool):
        expanded["version"] = str(version)  # version = 7 is written as a number
    try:
        cfg = convert({**expanded, "content_hash": digest, "source": source}, StationConfig)
    except StructError as exc:
        raise ConfigError(f"{source}: key {exc.where}: {exc.message}") from None
    _check_sensors(cfg, source)
    _check_sections(cfg, source)
    _check_actions(cfg, source)
    _check_uplink(cfg, source)
    return cfg


def _expand(doc: dict[str, Any], source: str, base_dir: Path) -> dict[str, Any]:
    """Expand ``${VAR}`` in sensor ports, buffer and model paths; anchor relative paths at
    ``base_dir``."""
    out = dict(doc)
    sensors = doc.get("sensors")
    if isinstance(sensors, list):
        out["sensors"] = [_expand_sensor(s, i, source, base_dir) for i, s in enumerate(sensors)]
    buffer = doc.get("buffer")
    if isinstance(buffer, dict):
        out["buffer"] = {
            k: _path(v, f"buffer.{k}", source, base_dir)
            if k in ("path", "status_path") and isinstance(v, str)
            else v
            for k, v in buffer.items()
        }
    nowcast = doc.get("nowcast")
    if isinstance(nowcast, dict) and isinstance(nowcast.get("model"), str):
        out["nowcast"] = {
            **nowcast,
            "model": _path(nowcast["model"], "nowcast.model", source, base_dir),
        }
    return out


def _expand_sensor(s: Any, i: int, source: str, base_dir: Path) -> Any:
    """A sensor's port, and its profile when given as a file (``*.toml``), from ``base_dir``."""
    if not isinstance(s, dict):
        return s
    out = dict(s)
    if isinstance(s.get("port"), str):
        out["port"] = _path(s["port"], f"sensors[{i}].port", source, base_dir)
    profile = s.get("profile")
    if isinstance(profile, str) and Path(profile).suffix:  # a file, not a bundled name
        out["profile"] = _path(profile, f"sensors[{i}].profile", source, base_dir)
    return out


def _path(value: str, key: str, source: str, base_dir: Path) -> str:
    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is None:
            raise ConfigError(
                f"{source}: key {key}: environment variable {name} is not set "
                f"(expected it set, or write ${{{name}:-default}})"
            )
        return default

    expanded = _VAR.sub(sub, value)
    if expanded.startswith("tcp://") or Path(expanded).is_absolute():
        return expanded
    return str(base_dir / expanded)


def _check_sensors(cfg: StationConfig, source: str) -> None:
    seen: set[str] = set()
    for i, s in enumerate(cfg.sensors):
        if s.name in seen:
            raise ConfigError(f"{source}: key sensors[{i}].name: {s.name!r} is used twice")
        seen.add(s.name)
        if s.port.startswith("tcp://"):
            host, _, port = s.port[6:].rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(
                    f"{source}: key sensors[{i}].port: expected tcp://host:port with a port "
                    f"1-65535 (got {s.port!r})"
                )
        try:
            profile = load_profile(s.profile)
        except ProfileError as exc:
            raise ConfigError(f"{source}: key sensors[{i}].profile: {exc}") from None
        known = [c.name for c in profile.channels]
        for ch in s.channels or ():
            if ch not in known:
                raise ConfigError(
                    f"{source}: key sensors[{i}].channels: {ch!r} is not a channel of "
                    f"{s.profile} (expected one of {', '.join(known)})"
                )


def _check_sections(cfg: StationConfig, source: str) -> None:
    """Let the QC, derived and warning parts validate their own tables."""
    from agent.derived import DerivedParams
    from agent.qc import QCParams
    from agent.warnings import WarningRules

    try:
        QCParams.from_dict(cfg.qc, "qc")
        DerivedParams.from_dict(cfg.derived, "derived")
        WarningRules.from_dict(cfg.warnings, "warnings")
    except ConfigError as exc:  # their messages start with the key (qc.step_max...)
        raise ConfigError(f"{source}: key {exc}") from None


def _check_actions(cfg: StationConfig, source: str) -> None:
    """Each action names a configured device and a writable setting of its profile."""
    sensors = {s.name: s for s in cfg.sensors}
    for i, a in enumerate(cfg.actions):
        sensor = sensors.get(a.sensor)
        if sensor is None:
            raise ConfigError(
                f"{source}: key actions[{i}].sensor: {a.sensor!r} is not a configured sensor "
                f"(expected one of {', '.join(sensors)})"
            )
        profile = load_profile(sensor.profile)
        writable = [f.name for f in profile.settings if f.writable]
        if a.setting not in writable:
            raise ConfigError(
                f"{source}: key actions[{i}].setting: {a.setting!r} is not a writable setting of "
                f"{sensor.profile} (expected one of {', '.join(writable) or 'none'})"
            )


UPLINK_FILES = ("ca", "cert", "key", "fleet_key")


def _check_uplink(cfg: StationConfig, source: str) -> None:
    """``[uplink]`` in full: known keys only, types of the link's tuning
    (:class:`agent.uplink.UplinkSettings`), and the files it names exist (relative to the file)."""
    up = cfg.uplink
    if not up:
        return
    import dataclasses

    from agent.uplink import UplinkSettings  # only for a station with an uplink

    tuning = {f.name for f in dataclasses.fields(UplinkSettings)} - {"codec", "software"}
    known = {"host", "port", *UPLINK_FILES, *tuning}
    for key in up:
        if key not in known:
            raise ConfigError(
                f"{source}: key uplink.{key}: unknown key (expected one of "
                f"{', '.join(sorted(known))})"
            )
    if "host" in up and (not isinstance(up["host"], str) or not up["host"]):
        raise ConfigError(f"{source}: key uplink.host: expected a host name")
    port = up.get("port", 8883)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"{source}: key uplink.port: expected a port 1-65535 (got {port!r})")
    try:
        convert({k: v for k, v in up.items() if k in tuning}, UplinkSettings, "uplink")
    except StructError as exc:
        raise ConfigError(f"{source}: key {exc.where}: {exc.message}") from None
    named = [k for k in UPLINK_FILES if k in up or (up.get("host") and k != "fleet_key")]
    for key in named:  # without a host the uplink is off: only the files it names are checked
        if not isinstance(up.get(key), str) or not up[key]:
            raise ConfigError(f"{source}: key uplink.{key}: missing (expected a file path)")
    base = Path(source).parent
    for key in named:
        path = Path(up[key]) if Path(up[key]).is_absolute() else base / up[key]
        if not path.is_file():
            raise ConfigError(f"{source}: key uplink.{key}: {path} is not a file")
