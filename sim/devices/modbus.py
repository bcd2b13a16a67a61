"""The Modbus application layer of a simulated slave, and RTU/TCP framing of its answers.

:func:`respond` turns a request PDU into the response PDU (or a Modbus exception) for FC 01, 03,
04, 05, 06, 15 and 16 against a :class:`~sim.devices.device.SimDevice`'s register image. The RTU
CRC comes from pymodbus; a byte-level slave is kept here because faults and wire pacing need
control of every byte.
"""

from __future__ import annotations

import struct

from pymodbus.framer import FramerRTU

from sim.devices import registers
from sim.devices.device import SimDevice
from sim.devices.registers import ILLEGAL_ADDRESS, ILLEGAL_FUNCTION, ILLEGAL_VALUE, ModbusError

TABLE_BY_FC = {3: "holding", 4: "input"}
WRITES = (5, 6, 15, 16)


def crc(data: bytes) -> bytes:
    """Modbus RTU CRC-16 of ``data`` as it goes on the wire (low byte first)."""
    return FramerRTU.compute_CRC(data).to_bytes(2, "big")


def rtu_frame(address: int, pdu: bytes) -> bytes:
    """An RTU frame: address, PDU, CRC."""
    body = bytes([address]) + pdu
    return body + crc(body)


def crc_ok(frame: bytes) -> bool:
    return len(frame) >= 4 and crc(frame[:-2]) == frame[-2:]


def request_length(buf: bytes) -> int | None:
    """Length of the RTU request starting ``buf`` if its function code tells it, else None."""
    if len(buf) < 2:
        return None
    fc = buf[1]
    if fc in (1, 2, 3, 4, 5, 6):
        return 8
    if fc in (15, 16):
        return 9 + buf[6] if len(buf) >= 7 else None
    return None


def _bits(values: list[bool]) -> bytes:
    out = bytearray((len(values) + 7) // 8)
    for i, v in enumerate(values):
        if v:
            out[i // 8] |= 1 << (i % 8)
    return bytes(out)


def _unbits(data: bytes, count: int) -> list[bool]:
    return [bool(data[i // 8] >> (i % 8) & 1) for i in range(count)]


def respond(device: SimDevice, pdu: bytes, t_s: float, baudrate: int) -> bytes:
    """The response PDU to request ``pdu`` at scenario second ``t_s``; exceptions included."""
    fc = pdu[0] if pdu else 0
    try:
        return _dispatch(device, fc, pdu, t_s, baudrate)
    except ModbusError as exc:
        return bytes([fc | 0x80, exc.code])
    except (struct.error, IndexError):
        return bytes([fc | 0x80, ILLEGAL_VALUE])


def _dispatch(device: SimDevice, fc: int, pdu: bytes, t_s: float, baudrate: int) -> bytes:
    if fc in TABLE_BY_FC:
        address, count = struct.unpack(">HH", pdu[1:5])
        if not 1 <= count <= 125:
            raise ModbusError(ILLEGAL_VALUE)
        words = registers.image(
            device.profile, device.values(t_s), device.settings, device.slave, baudrate
        )
        regs = registers.read(device.profile, words, TABLE_BY_FC[fc], address, count)
        return bytes([fc, 2 * count]) + struct.pack(f">{count}H", *regs)
    if fc in (1, 5, 15) and not device.coils:
        raise ModbusError(ILLEGAL_FUNCTION)
    if fc == 1:
        address, count = struct.unpack(">HH", pdu[1:5])
        if not 1 <= count <= 2000:
            raise ModbusError(ILLEGAL_VALUE)
        if address + count > len(device.coils):
            raise ModbusError(ILLEGAL_ADDRESS)
        data = _bits(device.coils[address : address + count])
        return bytes([fc, len(data)]) + data
    if fc == 5:
        address, value = struct.unpack(">HH", pdu[1:5])
        if value not in (0x0000, 0xFF00):
            raise ModbusError(ILLEGAL_VALUE)
        if address >= len(device.coils):
            raise ModbusError(ILLEGAL_ADDRESS)
        device.coils[address] = value == 0xFF00
        return pdu[:5]
    if fc == 15:
        address, count, nbytes = struct.unpack(">HHB", pdu[1:6])
        if not 1 <= count <= 1968 or nbytes != (count + 7) // 8 or len(pdu) < 6 + nbytes:
            raise ModbusError(ILLEGAL_VALUE)
        if address + count > len(device.coils):
            raise ModbusError(ILLEGAL_ADDRESS)
        device.coils[address : address + count] = _unbits(pdu[6 : 6 + nbytes], count)
        return pdu[:5]
    if fc == 6:
        address, value = struct.unpack(">HH", pdu[1:5])
        _write(device, address, [value])
        return pdu[:5]
    if fc == 16:
        address, count, nbytes = struct.unpack(">HHB", pdu[1:6])
        if not 1 <= count <= 123 or nbytes != 2 * count or len(pdu) < 6 + nbytes:
            raise ModbusError(ILLEGAL_VALUE)
        _write(device, address, list(struct.unpack(f">{count}H", pdu[6 : 6 + nbytes])))
        return pdu[:5]
    raise ModbusError(ILLEGAL_FUNCTION)


def _write(device: SimDevice, address: int, words: list[int]) -> None:
    """Write holding registers; every one must be a writable single-word setting."""
    fields = registers.writable_fields(device.profile)
    targets = [fields.get(address + i) for i in range(len(words))]
    if any(f is None for f in targets):
        raise ModbusError(ILLEGAL_ADDRESS)
    for f, w in zip(targets, words, strict=True):
        assert f is not None
        device.settings[f.name] = w - 0x10000 if f.type == "int16" and w & 0x8000 else w
