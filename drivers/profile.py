"""Device profiles: a sensor model is a TOML file, not code.

A profile names the protocol (``modbus``, ``windsonic``, ``wxt``), the serial defaults, the
identification registers and the channels with their register or field, data type, word order,
scale and unit. Both the drivers and the simulator read the same file, so a device model has one
home. :func:`load_profile` refuses a malformed file with a :class:`ProfileError` naming the file
and the field.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from drivers.errors import ProfileError
from roadside.structs import StructError, convert

DataType = Literal["uint16", "int16", "uint32", "int32", "float32", "bool"]
Table = Literal["input", "holding", "coil", "discrete"]  # FC04, FC03, FC01, FC02
BIT_TABLES = ("coil", "discrete")
WORDS = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2, "bool": 1}
Address = Annotated[int, Meta(ge=0, le=0xFFFF)]


class _Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class DeviceInfo(_Strict, frozen=True):
    model: str
    kind: Literal["rain_gauge", "anemometer", "water_level", "weather_transmitter", "actuator"]
    protocol: Literal["modbus", "windsonic", "wxt"]
    manufacturer: str = ""
    description: str = ""


class SerialDefaults(_Strict, frozen=True):
    baudrate: Annotated[int, Meta(gt=0)] = 9600
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    default_slave: Annotated[int, Meta(ge=0, le=247)] = 1
    timeout_s: Annotated[float, Meta(gt=0)] = 0.5


class Counter(_Strict, frozen=True):
    """Marks a channel as an accumulating counter: the driver undoes rollover and resets."""

    rollover: Annotated[int, Meta(gt=0)]  # raw value at which the counter wraps to 0
    resets_on_power_cycle: bool = True


class RegisterField(_Strict, frozen=True):
    """A value held in Modbus registers (``register``, ``min`` and ``max`` in the file)."""

    name: str
    address: Address = msgspec.field(name="register")
    table: Table = "holding"
    type: DataType = "uint16"  # a file's coils and discrete inputs default to bool
    word_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    counter: Counter | None = None
    writable: bool = False
    minimum: float | None = msgspec.field(default=None, name="min")  # a writable setting's range
    maximum: float | None = msgspec.field(default=None, name="max")

    def __post_init__(self) -> None:
        if (self.table in BIT_TABLES) != (self.type == "bool"):
            raise ValueError(f"{self.name!r}: type 'bool' goes with table 'coil' or 'discrete'")
        if self.writable and self.table not in ("holding", "coil"):
            raise ValueError(f"{self.name!r}: only holding registers and coils are writable")

    @property
    def words(self) -> int:
        """Registers (or bits, for coils and discrete inputs) the value occupies."""
        return WORDS[self.type]


class AsciiField(_Strict, frozen=True):
    """A value carried in an ASCII message, named by its field key or position."""

    name: str
    field: str
    scale: float = 1.0
    unit: str = ""
    message: str = ""  # for polled protocols: the poll command whose answer carries it (0R1...)
    counter: Counter | None = None


ASCII_FIELDS: dict[str, tuple[str, ...]] = {
    # Gill WindSonic frame Q,ddd,sss.ss,M,nn: direction and speed
    "windsonic": ("direction", "speed"),
    # Vaisala WXT5xx composite/wind/PTU/precipitation/supervisor answers (user guide field keys)
    "wxt": (
        "Dn", "Dm", "Dx", "Sn", "Sm", "Sx", "Ta", "Tp", "Ua", "Pa", "Rc", "Rd", "Ri", "Rp",
        "Hc", "Hd", "Hi", "Hp", "Th", "Vh", "Vs", "Vr",
    ),
}  # fmt: skip
"""The fields each ASCII driver can decode: a profile naming another is refused when it loads."""


class Probe(_Strict, frozen=True):
    """One request of a Modbus answer pattern: read ``count`` from ``register``; ``answer`` says
    whether the model returns data or refuses with an exception (its register map's edges)."""

    address: Address = msgspec.field(name="register")
    table: Table = "holding"
    count: Annotated[int, Meta(ge=1, le=125)] = 1
    answer: Literal["data", "exception"] = "data"


Expected = int | Literal["slave", "baudrate/100"]


class Identify(_Strict, frozen=True):
    """How a bus scan recognises the model (all given checks must hold).

    Modbus: ``expect`` maps identification register names to their value (or ``slave``, the
    device's own address; ``baudrate/100``), ``probes`` is an answer pattern. ASCII: ``listen`` is
    a regular expression an unsolicited line matches; ``poll`` a command (``{address}`` replaced
    by the default address) whose answer matches ``answer``.
    """

    expect: dict[str, Expected] = {}
    probes: list[Probe] = []
    listen: str = ""
    poll: str = ""
    answer: str = ""

    def __post_init__(self) -> None:
        for pattern in (self.listen, self.answer):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
        if bool(self.poll) != bool(self.answer):
            raise ValueError("'poll' and 'answer' go together")

    @property
    def checks(self) -> int:
        """How many checks identify the model (0: a scan cannot name it)."""
        return len(self.expect) + len(self.probes) + bool(self.listen) + bool(self.poll)


class _ProfileDoc(_Strict, frozen=True):
    """A profile file as written: the channels are checked against the protocol afterwards."""

    device: DeviceInfo
    channels: Annotated[list[dict[str, Any]], Meta(min_length=1)]
    serial: SerialDefaults = SerialDefaults()
    identification: list[RegisterField] = []
    settings: list[RegisterField] = []
    identify: Identify = Identify()
    sample: dict[str, str] = {}
    path: str = ""


class Profile(msgspec.Struct, frozen=True):
    """One device model (:func:`parse_profile` builds it from a checked document)."""

    device: DeviceInfo
    channels: list[RegisterField] | list[AsciiField]
    serial: SerialDefaults = SerialDefaults()
    identification: list[RegisterField] = []
    settings: list[RegisterField] = []
    identify: Identify = Identify()
    sample: dict[str, str] = {}
    path: str = ""

    def setting(self, name: str) -> RegisterField:
        """A writable setting by name; :class:`ProfileError` names the ones there are."""
        for s in self.settings:
            if s.name == name and s.writable:
                return s
        known = ", ".join(s.name for s in self.settings if s.writable) or "none"
        raise ProfileError(f"{self.path}: no writable setting {name!r} (writable: {known})")

    @property
    def modbus_channels(self) -> list[RegisterField]:
        return [c for c in self.channels if isinstance(c, RegisterField)]

    @property
    def ascii_channels(self) -> list[AsciiField]:
        return [c for c in self.channels if isinstance(c, AsciiField)]

    def channel(self, name: str) -> RegisterField | AsciiField:
        for c in self.channels:
            if c.name == name:
                return c
        raise KeyError(name)


_REGISTER_LISTS = ("channels", "identification", "settings")


def _channels(doc: _ProfileDoc) -> list[RegisterField] | list[AsciiField]:
    """The channels as the protocol's field type, then the checks across them."""
    protocol = doc.device.protocol
    ascii_kind = protocol != "modbus"
    want = "field" if ascii_kind else "register"
    for raw in doc.channels:
        if want not in raw and ("register" if ascii_kind else "field") in raw:
            raise StructError("channels", f"channel {raw.get('name')!r}: a {protocol} channel "
                              f"needs {want!r}")  # fmt: skip
    channels: list[RegisterField] | list[AsciiField]
    if ascii_kind:
        ascii_channels = convert(doc.channels, list[AsciiField], "channels")
        known = ASCII_FIELDS.get(protocol)
        for a in ascii_channels:
            if known is not None and a.field not in known:
                raise StructError(
                    "(top level)",
                    f"channel {a.name!r}: field {a.field!r} is not one the "
                    f"{protocol} driver decodes (one of {', '.join(known)})",
                )
        channels = ascii_channels
    else:
        channels = convert(doc.channels, list[RegisterField], "channels")
    names = [c.name for c in channels]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise StructError("(top level)", f"channel names repeated: {sorted(dup)}")
    idents = {f.name for f in doc.identification}
    unknown = sorted(set(doc.identify.expect) - idents)
    if unknown:
        raise StructError(
            "(top level)", f"identify.expect names no identification register: {unknown}"
        )
    return channels


def _bits_default_to_bool(fields: Any) -> Any:
    """Register fields of a file: coils and discrete inputs without a ``type`` are ``bool``."""
    if not isinstance(fields, list):
        return fields
    return [
        {**f, "type": "bool"}
        if isinstance(f, dict) and f.get("table") in BIT_TABLES and "type" not in f
        else f
        for f in fields
    ]


def parse_profile(doc: dict, source: str) -> Profile:
    """Validate a profile document already read from ``source`` (used in error messages)."""
    doc = {k: _bits_default_to_bool(v) if k in _REGISTER_LISTS else v for k, v in doc.items()}
    try:
        raw = convert({**doc, "path": source}, _ProfileDoc)
        channels = _channels(raw)
    except StructError as exc:
        raise ProfileError(f"{source}: field {exc.where}: {exc.message}") from None
    fields = msgspec.structs.asdict(raw)
    return Profile(**{**fields, "channels": channels})


def bundled_profiles() -> dict[str, Path]:
    """Profiles shipped with Roadside, by name (file stem)."""
    root = resources.files("drivers") / "profiles"
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".toml")}


@cache
def load_profile(name_or_path: str) -> Profile:
    """Load a profile by bundled name (``dfrobot-sen0575``) or by file path."""
    path = Path(name_or_path)
    if not path.suffix:
        shipped = bundled_profiles()
        if name_or_path not in shipped:
            known = ", ".join(sorted(shipped))
            raise ProfileError(f"unknown profile {name_or_path!r} (shipped: {known})")
        path = shipped[name_or_path]
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{path}: profile file not found") from None
    except IsADirectoryError:
        raise ProfileError(f"{path}: is a directory, not a profile file") from None
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from None
    return parse_profile(doc, str(path))
