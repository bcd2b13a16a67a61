"""What went wrong with a Modbus reply: classify the raw bytes of an unanswered request (pure).

pymodbus drops frames with a bad CRC or from another slave and reports only that no answer came.
The driver records the bytes that did arrive and asks :func:`diagnose_rtu` / :func:`diagnose_tcp`
which :class:`DriverStatus` they amount to. When the right answer is found after stray bytes
(garbage on the line), its PDU is handed back so the value is not lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymodbus.framer import FramerRTU

from roadside.records import DriverStatus

_READS = (1, 2, 3, 4)  # function codes whose reply carries a byte count
_ECHOES = (5, 6, 15, 16)  # function codes whose reply is 6 bytes + CRC


@dataclass(frozen=True)
class Diagnosis:
    """The verdict on received bytes; ``pdu`` (function code + data) when the answer was found."""

    status: DriverStatus
    detail: str
    pdu: bytes | None = None


def crc16(data: bytes) -> int:
    """Modbus CRC-16 as the two bytes appear on the wire (high byte = first byte sent)."""
    return FramerRTU.compute_CRC(data)


def rtu_frame(slave: int, pdu: bytes) -> bytes:
    """A complete RTU frame: address, PDU, CRC."""
    head = bytes([slave]) + pdu
    return head + crc16(head).to_bytes(2, "big")


def rtu_reply_size(buf: bytes) -> int | None:
    """Length of the RTU reply starting at ``buf[0]``, or None when unknown from these bytes."""
    if len(buf) < 2:
        return None
    fc = buf[1]
    if fc & 0x80:
        return 5
    if fc in _ECHOES:
        return 8
    if fc in _READS:
        return 5 + buf[2] if len(buf) >= 3 else None
    return None


def _crc_ok(frame: bytes) -> bool:
    return crc16(frame[:-2]) == int.from_bytes(frame[-2:], "big")


def rtu_frame_ok(frame: bytes) -> bool:
    """True when ``frame`` is one complete reply with a good CRC."""
    return len(frame) >= 4 and rtu_reply_size(frame) == len(frame) and _crc_ok(frame)


def diagnose_rtu(
    rx: bytes,
    slave: int,
    function_code: int,
    timeout_s: float = 0.0,
    late: frozenset[int] = frozenset(),
) -> Diagnosis:
    """Classify the bytes received after a request to ``slave`` with ``function_code``.

    Good frames from the slaves in ``late`` (which timed out before) are late replies to earlier
    requests, not a wrong device answering.
    """
    if not rx:
        return Diagnosis(
            DriverStatus.TIMEOUT, f"no answer from slave {slave} within {timeout_s:g} s"
        )
    wanted = (function_code, function_code | 0x80)
    bad_crc: int | None = None
    other: int | None = None
    stale: int | None = None
    truncated: tuple[int, int] | None = None
    for i in range(len(rx) - 1):
        size = rtu_reply_size(rx[i:])
        if size is None:
            continue
        addr, fc = rx[i], rx[i + 1]
        ours = addr == slave and fc in wanted
        if i + size > len(rx):
            if ours and truncated is None:
                truncated = (len(rx) - i, size)
            continue
        frame = rx[i : i + size]
        if _crc_ok(frame):
            if ours:
                note = f"{i} stray byte(s) skipped" if i else ""
                return Diagnosis(DriverStatus.OK, note, frame[1:-2])
            if addr in late:
                stale = addr
            elif other is None and fc in wanted:
                other = addr
        elif ours and bad_crc is None:
            bad_crc = i
    if bad_crc is not None:
        return Diagnosis(DriverStatus.CRC_ERROR, f"reply from slave {slave} failed its CRC check")
    if other is not None:
        return Diagnosis(
            DriverStatus.WRONG_DEVICE, f"slave {other} answered a request to slave {slave}"
        )
    if stale is not None and truncated is None:
        late_only = (
            f"no answer from slave {slave} within {timeout_s:g} s (late reply of {stale} seen)"
        )
        return Diagnosis(DriverStatus.TIMEOUT, late_only)
    if truncated is not None:
        got, want = truncated
        return Diagnosis(DriverStatus.BAD_FRAME, f"truncated reply: {got} of {want} bytes")
    return Diagnosis(DriverStatus.BAD_FRAME, f"garbage on the line: {len(rx)} byte(s), no frame")


def diagnose_tcp(
    rx: bytes, unit: int, function_code: int, tid: int | None = None, timeout_s: float = 0.0
) -> Diagnosis:
    """Classify the bytes received after a Modbus TCP request (MBAP header + PDU).

    Replies to earlier transactions (another ``tid``) are stale and skipped.
    """
    if not rx:
        return Diagnosis(DriverStatus.TIMEOUT, f"no answer from unit {unit} within {timeout_s:g} s")
    found: Diagnosis | None = None
    pos = 0
    while pos < len(rx):
        head = rx[pos : pos + 8]
        if len(head) < 8:
            found = found or Diagnosis(
                DriverStatus.BAD_FRAME, f"truncated reply: {len(head)} byte(s)"
            )
            break
        length = int.from_bytes(head[4:6], "big")
        if int.from_bytes(head[2:4], "big") != 0 or not 2 <= length <= 254:
            bad = f"garbage on the line: {len(rx) - pos} byte(s), no frame"
            found = found or Diagnosis(DriverStatus.BAD_FRAME, bad)
            break
        end = pos + 6 + length
        if end > len(rx):
            cut = f"truncated reply: {len(rx) - pos} of {6 + length} bytes"
            found = found or Diagnosis(DriverStatus.BAD_FRAME, cut)
            break
        pos, this_tid, this_unit, fc = end, int.from_bytes(head[0:2], "big"), head[6], head[7]
        if tid is not None and this_tid != tid:
            continue
        if this_unit != unit:
            wrong = f"unit {this_unit} answered a request to unit {unit}"
            found = found or Diagnosis(DriverStatus.WRONG_DEVICE, wrong)
        elif fc not in (function_code, function_code | 0x80):
            odd = f"reply has function code {fc}, request had {function_code}"
            found = found or Diagnosis(DriverStatus.BAD_FRAME, odd)
        else:
            return Diagnosis(DriverStatus.OK, "", rx[end - length + 1 : end])
    return found or Diagnosis(DriverStatus.TIMEOUT, f"only stale replies from unit {unit}")
