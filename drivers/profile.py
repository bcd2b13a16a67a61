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
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drivers.errors import ProfileError

DataType = Literal["uint16", "int16", "uint32", "int32", "float32", "bool"]
Table = Literal["input", "holding", "coil", "discrete"]  # FC04, FC03, FC01, FC02
BIT_TABLES = ("coil", "discrete")
WORDS = {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2, "bool": 1}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DeviceInfo(_Strict):
    model: str
    manufacturer: str = ""
    kind: Literal["rain_gauge", "anemometer", "water_level", "weather_transmitter", "actuator"]
    protocol: Literal["modbus", "windsonic", "wxt"]
    description: str = ""


class SerialDefaults(_Strict):
    baudrate: int = Field(default=9600, gt=0)
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    default_slave: int = Field(default=1, ge=0, le=247)
    timeout_s: float = Field(default=0.5, gt=0)


class Counter(_Strict):
    """Marks a channel as an accumulating counter: the driver undoes rollover and resets."""

    rollover: int = Field(gt=0)  # raw value at which the counter wraps to 0
    resets_on_power_cycle: bool = True


class RegisterField(_Strict):
    """A value held in Modbus registers."""

    name: str
    table: Table = "holding"
    address: int = Field(alias="register", ge=0, le=0xFFFF)
    type: DataType = "uint16"
    word_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    counter: Counter | None = None
    writable: bool = False
    minimum: float | None = Field(default=None, alias="min")  # a writable setting's range
    maximum: float | None = Field(default=None, alias="max")

    @model_validator(mode="before")
    @classmethod
    def _bits_default_to_bool(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("table") in BIT_TABLES and "type" not in data:
            return {**data, "type": "bool"}
        return data

    @model_validator(mode="after")
    def _check_table(self) -> RegisterField:
        if (self.table in BIT_TABLES) != (self.type == "bool"):
            raise ValueError(f"{self.name!r}: type 'bool' goes with table 'coil' or 'discrete'")
        if self.writable and self.table not in ("holding", "coil"):
            raise ValueError(f"{self.name!r}: only holding registers and coils are writable")
        return self

    @property
    def words(self) -> int:
        """Registers (or bits, for coils and discrete inputs) the value occupies."""
        return WORDS[self.type]


class AsciiField(_Strict):
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


class Probe(_Strict):
    """One request of a Modbus answer pattern: read ``count`` from ``register``; ``answer`` says
    whether the model returns data or refuses with an exception (its register map's edges)."""

    table: Table = "holding"
    address: int = Field(alias="register", ge=0, le=0xFFFF)
    count: int = Field(default=1, ge=1, le=125)
    answer: Literal["data", "exception"] = "data"


Expected = int | Literal["slave", "baudrate/100"]


class Identify(_Strict):
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

    @model_validator(mode="after")
    def _check(self) -> Identify:
        for pattern in (self.listen, self.answer):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
        if bool(self.poll) != bool(self.answer):
            raise ValueError("'poll' and 'answer' go together")
        return self

    @property
    def checks(self) -> int:
        """How many checks identify the model (0: a scan cannot name it)."""
        return len(self.expect) + len(self.probes) + bool(self.listen) + bool(self.poll)


class Profile(_Strict):
    """One device model."""

    device: DeviceInfo
    serial: SerialDefaults = SerialDefaults()
    identification: list[RegisterField] = []
    channels: Annotated[list[RegisterField] | list[AsciiField], Field(min_length=1)]
    settings: list[RegisterField] = []
    identify: Identify = Identify()
    sample: dict[str, str] = {}
    path: str = ""

    @model_validator(mode="after")
    def _check(self) -> Profile:
        names = [c.name for c in self.channels]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"channel names repeated: {sorted(dup)}")
        ascii_kind = self.device.protocol != "modbus"
        for c in self.channels:
            if ascii_kind != isinstance(c, AsciiField):
                want = "'field'" if ascii_kind else "'register'"
                raise ValueError(
                    f"channel {c.name!r}: a {self.device.protocol} channel needs {want}"
                )
            known = ASCII_FIELDS.get(self.device.protocol)
            if isinstance(c, AsciiField) and known is not None and c.field not in known:
                raise ValueError(
                    f"channel {c.name!r}: field {c.field!r} is not one the "
                    f"{self.device.protocol} driver decodes (one of {', '.join(known)})"
                )
        idents = {f.name for f in self.identification}
        unknown = sorted(set(self.identify.expect) - idents)
        if unknown:
            raise ValueError(f"identify.expect names no identification register: {unknown}")
        return self

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


def _where(loc: tuple[int | str, ...], doc: dict) -> str:
    """Turn a pydantic location into a readable field path (channels[2].register)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part:  # a union member tag such as list[RegisterField], not a key
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def parse_profile(doc: dict, source: str) -> Profile:
    """Validate a profile document already read from ``source`` (used in error messages)."""
    try:
        return Profile.model_validate({**doc, "path": source})
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ProfileError(f"{source}: field {_where(err['loc'], doc)}: {err['msg']}") from None


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
