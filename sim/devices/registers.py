"""A profile's register image: channel values in, 16-bit words out (and settings written back).

Encoding follows the profile exactly (type, word order, scale, offset), so a driver decoding with
the same profile gets the value back. Counters wrap at their width (a 32-bit tip counter rolls over
to 0); other values saturate at the type's range. Addresses inside a block of defined registers
read as 0 when undefined; addresses outside every block are an illegal data address.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from drivers.profile import Profile, RegisterField

ILLEGAL_FUNCTION = 0x01
ILLEGAL_ADDRESS = 0x02
ILLEGAL_VALUE = 0x03
BLOCK_GAP = 8  # undefined registers up to this many between defined ones still read as 0

RANGES = {
    "uint16": (0, 0xFFFF),
    "int16": (-0x8000, 0x7FFF),
    "uint32": (0, 0xFFFFFFFF),
    "int32": (-0x80000000, 0x7FFFFFFF),
}
# Simulated identification values (VID 0x3343 from the DFRobot datasheet; PID is the sim's own).
IDENT_CONSTANTS = {"vid": 0x3343, "pid": 0x0575}


class ModbusError(Exception):
    """A request the device refuses with a Modbus exception code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"modbus exception {code}")
        self.code = code


def encode(field: RegisterField, value: float) -> list[int]:
    """A channel value as the words the device holds, most significant first unless little."""
    if field.type == "float32":
        (whole,) = struct.unpack(">I", struct.pack(">f", (value - field.offset) / field.scale))
    else:
        raw = round((value - field.offset) / field.scale)
        lo, hi = RANGES[field.type]
        if field.counter is not None:
            raw %= min(field.counter.rollover, hi + 1)
        raw = min(max(raw, lo), hi)
        whole = raw & (0xFFFF if field.words == 1 else 0xFFFFFFFF)
    if field.words == 1:
        return [whole & 0xFFFF]
    words = [(whole >> 16) & 0xFFFF, whole & 0xFFFF]
    return words[::-1] if field.word_order == "little" else words


@dataclass(frozen=True)
class Block:
    """A run of addresses a device answers for in one table."""

    table: str
    first: int
    last: int

    def covers(self, table: str, address: int, count: int) -> bool:
        return table == self.table and self.first <= address and address + count - 1 <= self.last


def blocks(profile: Profile) -> list[Block]:
    """The address blocks a profile's registers form, per table."""
    fields = [*profile.identification, *profile.modbus_channels, *profile.settings]
    out: list[Block] = []
    for table in ("input", "holding"):
        spans = sorted((f.address, f.address + f.words - 1) for f in fields if f.table == table)
        for first, last in spans:
            if out and out[-1].table == table and first - out[-1].last <= BLOCK_GAP + 1:
                out[-1] = Block(table, out[-1].first, max(out[-1].last, last))
            else:
                out.append(Block(table, first, last))
    return out


def identification_value(name: str, slave: int, baudrate: int) -> int:
    if name == "address":
        return slave
    if name == "baud":
        return baudrate
    if name == "baud_div100":
        return baudrate // 100
    return IDENT_CONSTANTS.get(name, 0)


def image(
    profile: Profile,
    values: dict[str, float],
    settings: dict[str, int],
    slave: int,
    baudrate: int,
) -> dict[tuple[str, int], int]:
    """Every defined register of the device: ``(table, address) -> word``."""
    words: dict[tuple[str, int], int] = {}

    def put(f: RegisterField, ws: list[int]) -> None:
        for i, w in enumerate(ws):
            words[(f.table, f.address + i)] = w

    for f in profile.identification:
        put(f, encode(f, identification_value(f.name, slave, baudrate) * f.scale + f.offset))
    for f in profile.modbus_channels:
        if f.name in values:
            put(f, encode(f, values[f.name]))
        elif f.name in settings:
            put(f, encode(f, settings[f.name] * f.scale + f.offset))
    for f in profile.settings:
        if f.table == "holding":  # coil settings live in the device's coils, not in registers
            put(f, encode(f, settings.get(f.name, 0) * f.scale + f.offset))
    return words


def read(
    profile: Profile, words: dict[tuple[str, int], int], table: str, address: int, count: int
) -> list[int]:
    """Read ``count`` registers or raise :class:`ModbusError` (illegal data address)."""
    if not any(b.covers(table, address, count) for b in blocks(profile)):
        raise ModbusError(ILLEGAL_ADDRESS)
    return [words.get((table, a), 0) for a in range(address, address + count)]


def writable_fields(profile: Profile) -> dict[int, RegisterField]:
    """Holding registers a master may write, by address (single-word settings and channels)."""
    fields = [*profile.settings, *profile.modbus_channels]
    return {f.address: f for f in fields if f.writable and f.table == "holding" and f.words == 1}
