"""Modbus RTU and TCP devices through pymodbus.

:class:`ModbusLink` owns one port (an RS-485 bus or a TCP endpoint) and its pymodbus client;
:class:`ModbusDriver` polls one slave on it in planned blocks. pymodbus's clients are used as they
are, with three refinements: the serial client reads a reply by its expected length (instead of
sleeping until the line has been quiet) and keeps the 3.5-character silence before each request;
the bytes that arrived are recorded so an unanswered request is diagnosed (CRC error, wrong
slave, truncated, garbage) rather than reported only as a timeout; and a register read over TCP
(FC03/FC04, every poll of a TCP device) is framed and parsed here on pymodbus's socket, which
costs a quarter of pymodbus's transaction machinery (writes, coils and RTU go through pymodbus).
"""

from __future__ import annotations

import logging
import math
import socket
import struct
import termios
import time
from collections.abc import Callable, Sequence

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.pdu import ModbusPDU

from drivers.diagnose import Diagnosis, diagnose_rtu, diagnose_tcp, rtu_frame_ok, rtu_reply_size
from drivers.errors import DeviceError, PortError, ProfileError
from drivers.ports import char_time, identity, is_tcp, open_serial, silence_time, tcp_address
from drivers.profile import Profile, RegisterField, SerialDefaults
from drivers.registers import DEFAULT_MAX_GAP, Block, decode_field, encode_value, plan_blocks
from drivers.samples import Sample, failed
from roadside.records import DriverStatus

# Our drivers report every failure as a reading status; pymodbus's own log lines would repeat them.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "slave device failure",
    5: "acknowledge",
    6: "slave device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}
ILLEGAL_DATA_ADDRESS = 2
_OK = DriverStatus.OK
_new = tuple.__new__  # a named tuple built without its Python-level __new__ (one per value)
_MBAP_READ = struct.Struct(">HHHBBHH")  # transaction, protocol 0, length 6, unit, fc, start, count
_MBAP_REPLY = struct.Struct(">HHHBBB")  # transaction, protocol 0, length, unit, fc, byte count


def reply_length(function_code: int, count: int) -> int:
    """Bytes of a normal RTU reply to a request (address, PDU, CRC)."""
    if function_code in (1, 2):
        return 5 + math.ceil(count / 8)
    if function_code in (3, 4):
        return 5 + 2 * count
    return 8


class _RtuClient(ModbusSerialClient):
    """pymodbus's serial client, reading replies by their expected length on a shared bus."""

    def __init__(self, port: str, settings: SerialDefaults, timeout_s: float) -> None:
        super().__init__(
            port,
            baudrate=settings.baudrate,
            bytesize=settings.bytesize,
            parity=settings.parity,
            stopbits=settings.stopbits,
            timeout=timeout_s,
            retries=0,
        )
        self.settings = settings
        self.timeout_s = timeout_s
        self.expect = 8
        self.rx = bytearray()
        self.open_error: PortError | None = None
        self.opened_rdev: int | None = None
        self._silence = silence_time(settings)
        self._char = char_time(settings)
        # once part of a reply is in, a quiet line this long means the device has finished
        self._settle = max(10 * char_time(settings), 0.02)
        self._deadline = 0.0
        self._last_rx = 0.0
        self.late: set[int] = set()  # slaves that timed out: their replies may still come
        self._base = 0  # bytes of rx that were late replies to earlier requests
        self._extended = False

    def connect(self) -> bool:
        if self.socket:
            return True
        try:
            self.socket = open_serial(self.comm_params.host or "", self.settings, self.timeout_s)
        except PortError as exc:
            self.open_error = exc
            return False
        self.opened_rdev = identity(self.comm_params.host or "")
        self.open_error = None
        return True

    def send(self, request: bytes, addr: tuple | None = None) -> int:
        """Talk only after 3.5 quiet characters; a late reply still arriving is let finish."""
        wait = self._last_rx + self._silence - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._let_line_settle()
        self.rx.clear()
        self._base, self._extended = 0, False
        self._deadline = time.monotonic() + self.timeout_s
        return super().send(request, addr)

    def recv(self, size: int | None) -> bytes:
        """Wait for a reply to start, then take it by its expected length.

        pyserial's POSIX read ignores inter-byte timeouts, so after the first byte the read is
        bounded by the wire time of the bytes still expected plus a settling margin; a reply cut
        short therefore costs a few milliseconds, not the whole timeout.
        """
        if size is not None or self.socket is None:
            return super().recv(size)
        port = self.socket
        try:
            data = b""
            if len(self.rx) == self._base:
                if (remaining := self._deadline - time.monotonic()) <= 0:
                    return b""
                port.timeout = remaining
                if not (data := port.read(1)):
                    return b""
                port.timeout = self._char + self._settle
                data += port.read(1)  # the function code tells an exception reply (5 bytes)
            expect = 5 if len(data) == 2 and data[1] & 0x80 else self.expect
            want = expect - (len(self.rx) - self._base) - len(data)
            wire = want * self._char if want > 0 else 0.0
            port.timeout = max(min(self._deadline - time.monotonic(), wire + self._settle), 0.0)
            data += port.read(max(want, port.in_waiting, 1))
            if port.in_waiting:
                data += port.read(port.in_waiting)
        except (OSError, termios.error):
            self.close()
            raise ConnectionException(f"{self.comm_params.host}: read failed") from None
        if data:
            self.rx += data
            self._last_rx = time.monotonic()
            self._skip_late()
        return data

    def _let_line_settle(self) -> None:
        """Swallow bytes on the line (a slave answering late) until it is quiet for a silence."""
        port = self.socket
        guard = time.monotonic() + 256 * self._char  # at most one longest frame
        try:
            while port is not None and port.in_waiting and time.monotonic() < guard:
                port.read(port.in_waiting)
                time.sleep(self._silence)
        except (OSError, termios.error):
            self.close()
            raise ConnectionException(f"{self.comm_params.host}: read failed") from None

    def _skip_late(self) -> None:
        """Set aside late replies from slaves that timed out; wait once more for our own."""
        while True:
            head = bytes(self.rx[self._base :])
            size = rtu_reply_size(head)
            if size is None or not head or head[0] not in self.late:
                return
            if not rtu_frame_ok(head[:size]):
                return
            self._base += size
            if not self._extended:
                self._deadline, self._extended = time.monotonic() + self.timeout_s, True


class _TcpClient(ModbusTcpClient):
    """pymodbus's TCP client, keeping the bytes of the current transaction for diagnosis."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        super().__init__(host, port=port, timeout=timeout_s, retries=0)
        self.rx = bytearray()
        self.expect = 0
        self.open_error: PortError | None = None

    def connect(self) -> bool:
        ok = bool(super().connect())
        where = f"tcp://{self.comm_params.host}:{self.comm_params.port}"
        self.open_error = None if ok else PortError(f"{where}: connection refused or unreachable")
        return ok

    def send(self, request: bytes, addr: tuple | None = None) -> int:
        self.rx.clear()
        return super().send(request, addr)

    def recv(self, size: int | None) -> bytes:
        data = super().recv(size)
        self.rx += data
        return data


def _exception(slave: int, code: int) -> DeviceError:
    """The error for a Modbus exception reply, named (``illegal data address``)."""
    name = EXCEPTION_NAMES.get(code, "unknown")
    detail = f"slave {slave} answered exception {code} ({name})"
    return DeviceError(DriverStatus.EXCEPTION, detail, code=code)


def _frames_end(rx: bytearray, tid: int) -> bool:
    """True when ``rx`` holds whole MBAP frames and one of them is transaction ``tid`` (or a
    header that cannot be Modbus): nothing more to wait for."""
    pos = 0
    while pos + 6 <= len(rx):
        length = int.from_bytes(rx[pos + 4 : pos + 6], "big")
        if rx[pos + 2 : pos + 4] != b"\x00\x00" or not 2 <= length <= 254:
            return True
        end = pos + 6 + length
        if end > len(rx):
            return False
        if int.from_bytes(rx[pos : pos + 2], "big") == tid:
            return True
        pos = end
    return False


class ModbusLink:
    """One Modbus port shared by all slaves on it: an RTU bus or a TCP endpoint."""

    def __init__(self, port: str, settings: SerialDefaults, timeout_s: float | None = None) -> None:
        self.port = port
        self.timeout_s = timeout_s or settings.timeout_s
        self._tid = 0  # the fast path's transaction ids (pymodbus keeps its own for writes)
        self._tuned: tuple[socket.socket, float] | None = None  # the socket, its kernel timeout
        self.client: _RtuClient | _TcpClient
        if is_tcp(port):
            host, number = tcp_address(port)
            self.client = _TcpClient(host, number, self.timeout_s)
        else:
            self.client = _RtuClient(port, settings, self.timeout_s)

    def close(self) -> None:
        self.client.close()

    def read(self, slave: int, block: Block) -> list[int]:
        """Registers (or bits) of one block; raises :class:`DeviceError` with the status."""
        c = self.client
        fc = block.function_code
        if fc in (3, 4) and isinstance(c, _TcpClient):
            return self._read_tcp(slave, block)
        call: dict[int, Callable[..., ModbusPDU]] = {
            1: c.read_coils,
            2: c.read_discrete_inputs,
            3: c.read_holding_registers,
            4: c.read_input_registers,
        }
        pdu = self._execute(
            slave,
            fc,
            reply_length(fc, block.count),
            lambda: call[fc](block.start, count=block.count, device_id=slave),
        )
        values = list(pdu.bits[: block.count]) if fc in (1, 2) else list(pdu.registers)
        if len(values) != block.count:
            raise DeviceError(
                DriverStatus.BAD_FRAME, f"asked {block.count} values, got {len(values)}"
            )
        return [int(v) for v in values]

    def _blocking(self, sock: socket.socket, timeout_s: float) -> None:
        """Make ``sock`` blocking with a kernel receive/send timeout of ``timeout_s``: a
        request is then one ``send`` and a reply one ``recv`` (Python's own socket timeout adds
        an ``ioctl`` and a ``poll`` before each). pymodbus's writes set it non-blocking again."""
        if sock.gettimeout() is not None:
            sock.settimeout(None)
        if self._tuned is None or self._tuned[0] is not sock or self._tuned[1] != timeout_s:
            whole = int(timeout_s)
            tv = struct.pack("ll", whole, int((timeout_s - whole) * 1e6))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
            self._tuned = (sock, timeout_s)

    def _read_tcp(self, slave: int, block: Block) -> list[int]:
        """One FC03/FC04 transaction on the TCP client's socket: the request framed here, the
        reply taken whole by its MBAP length and checked (transaction, unit, function, byte
        count); anything else is classified by :func:`diagnose_tcp` as pymodbus's path does."""
        c = self.client
        if c.socket is None and not c.connect():
            reason = str(c.open_error) if c.open_error else f"{self.port}: cannot open"
            raise DeviceError(DriverStatus.PORT_UNAVAILABLE, reason)
        sock = c.socket
        assert isinstance(sock, socket.socket)
        self._tid = tid = self._tid % 0xFFFF + 1
        fc, count = block.function_code, block.count
        want = 9 + 2 * count
        head = _MBAP_REPLY.pack(tid, 0, 3 + 2 * count, slave, fc, 2 * count)
        rx = c.rx
        rx.clear()
        deadline = time.monotonic() + self.timeout_s
        try:
            self._blocking(sock, self.timeout_s)
            sock.sendall(_MBAP_READ.pack(tid, 0, 6, slave, fc, block.start, count))
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionResetError
                rx += chunk
                if len(rx) == want and rx[:9] == head:  # the reply, whole and as asked
                    return list(struct.unpack_from(f">{count}H", rx, 9))
                if _frames_end(rx, tid):
                    break
                if (remaining := deadline - time.monotonic()) <= 0:
                    break
                self._blocking(sock, remaining)
        except (BlockingIOError, TimeoutError):  # the kernel's receive timeout ran out
            pass
        except OSError:
            c.close()
            raise DeviceError(
                DriverStatus.PORT_UNAVAILABLE, f"{self.port}: connection lost"
            ) from None
        diag = diagnose_tcp(bytes(rx), slave, fc, tid, self.timeout_s)
        if diag.pdu is None:
            raise DeviceError(diag.status, diag.detail)
        pdu = diag.pdu
        if pdu[0] & 0x80:
            raise _exception(slave, pdu[1] if len(pdu) > 1 else 0)
        if len(pdu) != 2 + 2 * count or pdu[1] != 2 * count:
            raise DeviceError(
                DriverStatus.BAD_FRAME,
                f"asked {count} values, got {max(len(pdu) - 2, 0) // 2}",
            )
        return list(struct.unpack_from(f">{count}H", pdu, 2))

    def write(self, slave: int, field: RegisterField, values: Sequence[int]) -> None:
        """Write a holding register (FC06/FC16) or a coil (FC05)."""
        c = self.client
        if field.table == "coil":
            self._execute(
                slave, 5, 8, lambda: c.write_coil(field.address, bool(values[0]), device_id=slave)
            )
        elif len(values) == 1:
            self._execute(
                slave, 6, 8, lambda: c.write_register(field.address, values[0], device_id=slave)
            )
        else:
            self._execute(
                slave,
                16,
                8,
                lambda: c.write_registers(field.address, list(values), device_id=slave),
            )

    def _execute(
        self, slave: int, fc: int, expect: int, call: Callable[[], ModbusPDU]
    ) -> ModbusPDU:
        c = self.client
        if not c.connect():
            reason = str(c.open_error) if c.open_error else f"{self.port}: cannot open"
            raise DeviceError(DriverStatus.PORT_UNAVAILABLE, reason)
        c.expect = expect
        try:
            pdu = call()
        except ConnectionException:
            c.close()
            raise DeviceError(
                DriverStatus.PORT_UNAVAILABLE, f"{self.port}: connection lost"
            ) from None
        except ModbusException:
            pdu = self._recover(slave, fc)
        except Exception as exc:  # pymodbus may raise struct/index errors on malformed replies
            raise DeviceError(DriverStatus.BAD_FRAME, f"undecodable reply: {exc}") from None
        if isinstance(c, _RtuClient):
            c.late.discard(slave)
        if pdu.isError():
            raise _exception(slave, getattr(pdu, "exception_code", 0))
        return pdu

    def _recover(self, slave: int, fc: int) -> ModbusPDU:
        """Find out what went wrong with an unanswered request; recover the reply if it came."""
        c = self.client
        diag: Diagnosis
        if isinstance(c, _TcpClient):
            tid = c.transaction.request_transaction_id
            diag = diagnose_tcp(bytes(c.rx), slave, fc, tid, self.timeout_s)
        else:
            diag = diagnose_rtu(bytes(c.rx), slave, fc, self.timeout_s, frozenset(c.late))
            if diag.status is DriverStatus.TIMEOUT:
                c.late.add(slave)
            if diag.pdu is None:
                self._check_port_still_there()
        if diag.pdu is None:
            raise DeviceError(diag.status, diag.detail)
        try:
            pdu = c.framer.decoder.decode(diag.pdu)
        except Exception as exc:
            raise DeviceError(DriverStatus.BAD_FRAME, f"undecodable reply: {exc}") from None
        if pdu is None:
            raise DeviceError(DriverStatus.BAD_FRAME, "undecodable reply")
        return pdu

    def _check_port_still_there(self) -> None:
        """A serial path that vanished or now leads elsewhere means the port is gone: reopen."""
        c = self.client
        if not isinstance(c, _RtuClient) or not c.connected:
            return
        now = identity(self.port)
        if now != c.opened_rdev:
            c.close()
            what = "vanished" if now is None else "was replaced"
            raise DeviceError(DriverStatus.PORT_UNAVAILABLE, f"{self.port}: port {what}")


class ModbusDriver:
    """One Modbus slave: polls its profile's channels in as few requests as possible."""

    def __init__(
        self,
        link: ModbusLink,
        profile: Profile,
        slave: int,
        channels: Sequence[RegisterField],
        *,
        max_gap: int = DEFAULT_MAX_GAP,
    ) -> None:
        self.link = link
        self.profile = profile
        self.slave = slave
        self.fields = list(channels)
        self.channels = tuple(f.name for f in self.fields)
        self._plan(max_gap)

    def poll(self) -> list[Sample]:
        out: list[Sample] = []
        for i, block in enumerate(self.blocks):
            try:
                registers = self.link.read(self.slave, block)
            except DeviceError as exc:
                if block.has_gaps and exc.code == ILLEGAL_DATA_ADDRESS:
                    # the device refuses reads across its unmapped registers: stop merging over gaps
                    self._plan(max_gap=0)
                    return self.poll()
                out += failed((f.name for f in block.fields), exc.status, exc.detail)
                if exc.status in (DriverStatus.TIMEOUT, DriverStatus.PORT_UNAVAILABLE):
                    rest = [f.name for b in self.blocks[i + 1 :] for f in b.fields]
                    out += failed(rest, exc.status, f"not asked after: {exc.detail}")
                    break
                continue
            out += [
                _new(Sample, (f.name, w, float(w), _OK, ""))  # Sample(...) costs three times more
                if kind == "uint16" and 0 <= (w := registers[first]) <= 0xFFFF
                else self._sample(block, f, registers)
                for f, first, kind in self._layout[i]
            ]
        return out

    def _plan(self, max_gap: int) -> None:
        """Blocks for the fields, and each field's first register and type within its block."""
        self.blocks = plan_blocks(self.fields, max_gap=max_gap)
        self._layout = [
            [(f, f.address - b.start, f.type if f.words == 1 else "") for f in b.fields]
            for b in self.blocks
        ]

    @staticmethod
    def _sample(block: Block, f: RegisterField, registers: list[int]) -> Sample:
        regs = block.registers_of(f, registers)
        try:
            raw = decode_field(f, regs)
        except ValueError as exc:
            return Sample(f.name, None, None, DriverStatus.BAD_FRAME, str(exc))
        return Sample(f.name, raw, float(raw))

    def write(self, setting: str, value: float) -> None:
        field = next((s for s in self.profile.settings if s.name == setting), None)
        if field is None or not field.writable:
            known = ", ".join(s.name for s in self.profile.settings if s.writable) or "none"
            raise ProfileError(
                f"{self.profile.path}: no writable setting {setting!r} (writable: {known})"
            )
        try:
            values = encode_value(field, value)
        except ValueError as exc:
            raise ProfileError(f"{self.profile.path}: {exc}") from None
        self.link.write(self.slave, field, values)

    def skipped(self) -> dict[str, int]:
        return {}
