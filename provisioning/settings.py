"""Device settings: read and write what a profile declares writable, and nothing else.

:func:`write_setting` reads the setting, writes the new value, reads it back and compares, so the
technician sees "300 cm -> 250 cm (read back 250 cm)" or a clear refusal. A setting the profile
does not declare writable, or a value outside its declared range, is refused before anything goes
on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.errors import DeviceError, ProfileError
from drivers.modbus import ModbusLink
from drivers.profile import Profile, RegisterField
from drivers.registers import Block, decode_field, encode_value, scale
from provisioning.read import EXIT_NO_READING, ReadError, check_port, resolve_profile

EXIT_REFUSED = 2  # not a writable setting, or a value it cannot take


@dataclass(frozen=True)
class WriteResult:
    setting: str
    unit: str
    before: float
    wanted: float
    after: float


def _field(profile: Profile, setting: str, value: float | None = None) -> RegisterField:
    if profile.device.protocol != "modbus":
        raise ReadError(
            f"{profile.path}: a {profile.device.protocol} device has no writable settings",
            EXIT_REFUSED,
        )
    try:
        field = profile.setting(setting)
        if value is not None:
            encode_value(field, value)
    except ProfileError as exc:
        raise ReadError(str(exc), EXIT_REFUSED) from None
    except ValueError as exc:
        raise ReadError(f"{profile.path}: {exc}", EXIT_REFUSED) from None
    if value is not None:
        lo, hi = field.minimum, field.maximum
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ReadError(
                f"{profile.path}: {setting} {value:g} {field.unit} is outside "
                f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}",
                EXIT_REFUSED,
            )
    return field


def _read(link: ModbusLink, slave: int, field: RegisterField) -> float:
    regs = link.read(slave, Block(field.table, field.address, field.words, (field,)))
    return scale(field, decode_field(field, regs))


def read_setting(
    port: str, profile_name: str, slave: int | None, setting: str, timeout_s: float | None = None
) -> tuple[float, str]:
    """The current value of a writable setting, with its unit."""
    profile = resolve_profile(profile_name)
    field = _field(profile, setting)
    check_port(port, profile)
    link = ModbusLink(port, profile.serial, timeout_s)
    try:
        return _read(link, profile.serial.default_slave if slave is None else slave, field), (
            field.unit
        )
    except DeviceError as exc:
        raise ReadError(f"{port}: reading {setting}: {exc}", EXIT_NO_READING) from None
    finally:
        link.close()


def write_setting(
    port: str,
    profile_name: str,
    slave: int | None,
    setting: str,
    value: float,
    timeout_s: float | None = None,
) -> WriteResult:
    """Write ``setting`` = ``value`` (engineering units) and read it back.

    Raises :class:`ReadError`: exit 2 for a refused setting or value, 1 when the device does not
    answer or reads back another value, 3-7 for profile and port problems.
    """
    profile = resolve_profile(profile_name)
    field = _field(profile, setting, value)
    check_port(port, profile)
    address = profile.serial.default_slave if slave is None else slave
    link = ModbusLink(port, profile.serial, timeout_s)
    try:
        before = _read(link, address, field)
        link.write(address, field, encode_value(field, value))
        after = _read(link, address, field)
    except DeviceError as exc:
        raise ReadError(f"{port}: slave {address}: {setting}: {exc}", EXIT_NO_READING) from None
    finally:
        link.close()
    if abs(after - value) > abs(field.scale) / 2 + 1e-9:
        raise ReadError(
            f"{port}: slave {address}: wrote {setting} {value:g}, read back {after:g}",
            EXIT_NO_READING,
        )
    return WriteResult(setting, field.unit, before, value, after)
