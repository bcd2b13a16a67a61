"""Modbus register values: block planning, decoding and encoding (pure, no I/O).

A profile's channels become as few read requests as possible (:func:`plan_blocks`): fields of the
same table whose registers are adjacent, or separated by a small gap, share one request. The
registers a request returns are cut back into fields and decoded with pymodbus's
``convert_from_registers`` (:func:`decode_field`); :func:`encode_value` is the inverse, for writes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pymodbus.client import ModbusSerialClient

from drivers.profile import BIT_TABLES, WORDS, RegisterField

MAX_READ = 125  # registers in one FC03/FC04 request (Modbus spec)
MAX_READ_BITS = 2000  # coils or discrete inputs in one FC01/FC02 request
DEFAULT_MAX_GAP = 8  # unused registers worth reading rather than paying for another request
FUNCTION_CODE = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}

_DT = ModbusSerialClient.DATATYPE
_DATATYPE = {
    "uint16": _DT.UINT16,
    "int16": _DT.INT16,
    "uint32": _DT.UINT32,
    "int32": _DT.INT32,
    "float32": _DT.FLOAT32,
}


@dataclass(frozen=True)
class Block:
    """One read request: ``count`` registers of ``table`` from ``start``, carrying ``fields``."""

    table: str
    start: int
    count: int
    fields: tuple[RegisterField, ...]

    @property
    def function_code(self) -> int:
        return FUNCTION_CODE[self.table]

    @property
    def has_gaps(self) -> bool:
        """True when the block reads registers that no field asked for."""
        return sum(f.words for f in self.fields) < self.count

    def registers_of(self, field: RegisterField, registers: Sequence[int]) -> Sequence[int]:
        """The slice of a block's answer that holds ``field``."""
        first = field.address - self.start
        return registers[first : first + WORDS[field.type]]


def plan_blocks(
    fields: Sequence[RegisterField], *, max_gap: int = DEFAULT_MAX_GAP, max_count: int = MAX_READ
) -> list[Block]:
    """Group fields into the fewest read requests.

    Fields of one table are sorted by address and merged while the hole between them is at most
    ``max_gap`` registers and the request stays within ``max_count`` registers (coils and
    discrete inputs: ``max_gap`` x 16 bits, at most 2000). Overlapping fields share registers.
    """
    blocks: list[Block] = []
    for table in sorted({f.table for f in fields}):
        bits = table in BIT_TABLES
        gap, limit = (max_gap * 16, MAX_READ_BITS) if bits else (max_gap, max_count)
        current: list[RegisterField] = []
        start = end = 0
        for f in sorted((f for f in fields if f.table == table), key=lambda f: f.address):
            f_end = f.address + f.words
            if current and f.address - end <= gap and max(end, f_end) - start <= limit:
                current.append(f)
                end = max(end, f_end)
                continue
            if current:
                blocks.append(Block(table, start, end - start, tuple(current)))
            current, start, end = [f], f.address, f_end
        if current:
            blocks.append(Block(table, start, end - start, tuple(current)))
    return blocks


def decode_field(field: RegisterField, registers: Sequence[int]) -> int | float:
    """Decode the raw (unscaled) value of ``field`` from its registers.

    Raises ValueError when the registers do not fit the field (wrong count, out of range),
    or when a float is not finite. A ``bool`` field (coil, discrete input) decodes to 0 or 1.
    """
    kind = field.type
    if kind == "bool":
        if len(registers) != 1:
            raise ValueError(f"{field.name}: {len(registers)} bits for one coil")
        return 1 if registers[0] else 0
    one_word = kind == "uint16" or kind == "int16"
    if one_word and len(registers) == 1 and 0 <= registers[0] <= 0xFFFF:
        word = registers[0]  # no library call for the most common channel, every poll
        return word - 0x10000 if kind == "int16" and word & 0x8000 else word
    if len(registers) != field.words or any(not 0 <= r <= 0xFFFF for r in registers):
        raise ValueError(
            f"{field.name}: {len(registers)} register(s) {list(registers)} for a {field.type}"
        )
    value = ModbusSerialClient.convert_from_registers(
        list(registers), _DATATYPE[field.type], word_order=field.word_order
    )
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{field.name}: {value} is not a finite number")
    assert isinstance(value, int | float)
    return value


def scale(field: RegisterField, raw: int | float) -> float:
    """Engineering value of a raw register value: raw x scale + offset."""
    return raw * field.scale + field.offset


def encode_value(field: RegisterField, value: float) -> list[int]:
    """Registers that make ``field`` read back as ``value`` (engineering units).

    Raises ValueError when the value does not fit the field's type.
    """
    if field.type == "bool":
        return [1 if value else 0]
    raw: int | float = (value - field.offset) / field.scale
    if field.type != "float32":
        rounded = round(raw)
        bits = 16 * field.words
        lo, hi = (
            (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
            if field.type.startswith("int")
            else (0, (1 << bits) - 1)
        )
        if not lo <= rounded <= hi:
            raise ValueError(f"{field.name}: {value} does not fit a {field.type} (raw {rounded})")
        raw = rounded
    return ModbusSerialClient.convert_to_registers(
        raw, _DATATYPE[field.type], word_order=field.word_order
    )
