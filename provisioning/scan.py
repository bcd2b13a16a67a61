"""Find the devices on a bus: sweep line settings and addresses, name each by its profile.

A sweep (:class:`ScanPlan`) visits line settings (baud rate x parity) in order. At each it first
asks the profiles' default addresses (the quick probe); only where something answered are all
addresses swept, so a setting nobody talks at costs a handful of timeouts ("a quiet bus stops
early"); ``thorough`` sweeps every address everywhere. An ASCII listen window catches unsolicited
talkers; a completely silent first window means nobody talks unsolicited at any setting, so later
settings skip it. Polled ASCII devices get their profile's poll.

A Modbus device is named by :func:`identify_modbus`, a pure function over the answers to the
profile's checks (identification registers with expected values, or an answer pattern), both data
in the profiles (``[identify]``). Every request is recorded (:class:`ScanStats`) so the benchmark
can set the sweep's time against its wire-time minimum (:func:`wire_minimum_s`).
"""

from __future__ import annotations

import os
import re
import select
import socket
import struct
import termios
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import serial

from drivers.diagnose import rtu_frame, rtu_frame_ok, rtu_reply_size
from drivers.errors import PortError
from drivers.ports import char_time, open_serial, silence_time
from drivers.profile import Profile, SerialDefaults, bundled_profiles, load_profile
from drivers.registers import decode_field

BAUDRATES = (9600, 19200, 4800, 38400, 115200)
Parity = Literal["N", "E", "O"]
PARITIES: tuple[Parity, ...] = ("N", "E", "O")
FUNCTION = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
PROBE_PDU = bytes([3, 0, 0, 0, 1])  # read holding register 0: data or an exception, both answers
TCP_NO_UNIT = 0x0B  # gateway target failed to respond: no such unit behind the gateway
SETTLE_S = 0.02  # after changing line settings, before the first request

Answer = list[int] | Literal["exception"] | None  # data, a Modbus exception, or no answer


class ScanError(Exception):
    """The port cannot be scanned (missing, not permitted, not a port)."""

    def __init__(self, message: str, reason: str = "unusable") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class LineSettings:
    baudrate: int
    parity: Literal["N", "E", "O"] = "N"
    bytesize: Literal[7, 8] = 8
    stopbits: Literal[1, 2] = 1

    @property
    def serial(self) -> SerialDefaults:
        return SerialDefaults(
            baudrate=self.baudrate,
            parity=self.parity,
            bytesize=self.bytesize,
            stopbits=self.stopbits,
        )

    def __str__(self) -> str:
        return f"{self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"


@dataclass(frozen=True)
class ScanPlan:
    """What a sweep tries, and how long it waits."""

    baudrates: tuple[int, ...] = BAUDRATES
    parities: tuple[Literal["N", "E", "O"], ...] = PARITIES
    ids: tuple[int, ...] = tuple(range(1, 248))
    timeout_s: float = 0.1
    listen_s: float = 1.2
    thorough: bool = False
    modbus: bool = True
    ascii: bool = True

    def settings(self) -> list[LineSettings]:
        return [LineSettings(b, p) for b in self.baudrates for p in self.parities]


@dataclass(frozen=True)
class Found:
    """One device found: where, at which settings, and which profile it matches."""

    protocol: Literal["modbus", "ascii"]
    profile: str | None  # None: answers, but no profile's checks all hold
    slave: int | None
    baudrate: int | None
    parity: str | None
    candidates: tuple[str, ...] = ()  # other profiles that matched as well
    detail: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "protocol": self.protocol,
            "profile": self.profile,
            "slave": self.slave,
            "baudrate": self.baudrate,
            "parity": self.parity,
            "candidates": list(self.candidates),
            "detail": self.detail,
        }


@dataclass
class ScanStats:
    """Every request made and every listen window, for the wire-time minimum."""

    requests: list[tuple[LineSettings | None, int, int]] = field(default_factory=list)
    listened_s: float = 0.0
    unsupported: list[LineSettings] = field(default_factory=list)  # the port refused them


def wire_minimum_s(stats: ScanStats, turnaround_s: float = 0.0) -> float:
    """The least time the sweep's requests need on the wire.

    Per request: the request, the 3.5-character silence ending it, the device's turnaround, the
    reply it could have got (a master cannot conclude "no answer" before a reply would have been
    through) and the silence before the next request. TCP requests count as zero.
    """
    total = 0.0
    for settings, request_len, reply_len in stats.requests:
        if settings is None:
            continue
        line = settings.serial
        ct, gap = char_time(line), silence_time(line)
        total += (request_len + reply_len) * ct + 2 * gap + turnaround_s
    return total


# -- identification (pure) -----------------------------------------------------------------------
def _expected(value: int | str, slave: int, baudrate: int | None) -> int | None:
    if value == "slave":
        return slave
    if value == "baudrate/100":
        return None if baudrate is None else baudrate // 100
    return int(value)


def profile_matches(
    profile: Profile,
    ask: Callable[[str, int, int], Answer],
    slave: int,
    baudrate: int | None,
) -> bool:
    """Whether every identification check of a Modbus ``profile`` holds for the device ``ask``
    talks to (``ask(table, address, count)``). A profile without checks never matches."""
    ident = profile.identify
    if profile.device.protocol != "modbus" or (not ident.expect and not ident.probes):
        return False
    for name, want in ident.expect.items():
        f = next(f for f in profile.identification if f.name == name)
        expected = _expected(want, slave, baudrate)
        got = ask(f.table, f.address, f.words)
        if not isinstance(got, list):
            return False
        if expected is not None and decode_field(f, got) != expected:
            return False
    for probe in ident.probes:
        got = ask(probe.table, probe.address, probe.count)
        if got is None or (probe.answer == "data") != isinstance(got, list):
            return False
    return True


def identify_modbus(
    profiles: Sequence[Profile],
    ask: Callable[[str, int, int], Answer],
    slave: int,
    baudrate: int | None,
) -> tuple[str | None, tuple[str, ...]]:
    """The best-matching profile (most checks held) and the other profiles that matched too."""
    hits = [p for p in profiles if profile_matches(p, ask, slave, baudrate)]
    hits.sort(key=lambda p: (-p.identify.checks, p.device.model))
    if not hits:
        return None, ()
    return hits[0].device.model, tuple(p.device.model for p in hits[1:])


def identify_ascii(profiles: Sequence[Profile], text: str) -> str | None:
    """The profile whose ``listen`` pattern an unsolicited stream of text matches."""
    for p in profiles:
        if p.identify.listen and re.search(p.identify.listen, text):
            return p.device.model
    return None


def ascii_poll(profile: Profile) -> str:
    return profile.identify.poll.replace("{address}", str(profile.serial.default_slave))


# -- transports ----------------------------------------------------------------------------------
class RtuPort:
    """A serial port used raw: one request, one reply read by its expected length."""

    def __init__(self, path: str, stats: ScanStats) -> None:
        self.path = path
        self.stats = stats
        self.settings = LineSettings(9600)
        self._quiet_from = 0.0  # when the last byte came in
        try:
            self.ser: serial.SerialBase = open_serial(path, self.settings.serial, 0.1)
        except PortError as exc:
            raise ScanError(str(exc), exc.reason) from None

    def configure(self, settings: LineSettings) -> bool:
        """Switch the line to ``settings``; False when the port cannot do them (a pty: parity)."""
        before = self.ser.get_settings()
        try:
            self.ser.apply_settings(
                {
                    "baudrate": settings.baudrate,
                    "parity": settings.parity,
                    "bytesize": settings.bytesize,
                    "stopbits": settings.stopbits,
                }
            )
        except (termios.error, ValueError, serial.SerialException):
            self.ser.apply_settings(before)
            return False
        self.settings = settings
        time.sleep(SETTLE_S)
        self.ser.reset_input_buffer()
        return True

    def close(self) -> None:
        self.ser.close()

    def _read(self, n: int, deadline: float) -> bytes:
        """Up to ``n`` bytes, waiting until ``deadline`` (monotonic) for the first.

        Reads the descriptor directly: changing pyserial's timeout would re-apply the line
        settings on every read, which a pty refuses once parity is set.
        """
        fd = self.ser.fileno()
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return b""
        try:
            data = os.read(fd, n)
        except OSError as exc:
            raise ScanError(f"{self.path}: port lost during the scan ({exc})", "missing") from None
        self._quiet_from = time.monotonic()
        return data

    def _write(self, data: bytes) -> None:
        """Send after the line has been quiet for a frame silence (3.5 characters)."""
        wait = self._quiet_from + silence_time(self.settings.serial) - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            termios.tcflush(self.ser.fileno(), termios.TCIFLUSH)
            os.write(self.ser.fileno(), data)
            termios.tcdrain(self.ser.fileno())
        except (OSError, termios.error) as exc:
            raise ScanError(f"{self.path}: port lost during the scan ({exc})", "missing") from None

    def transact(self, slave: int, pdu: bytes, expect: int, timeout_s: float) -> bytes | None:
        """The reply PDU from ``slave`` (normal or exception), or None when nothing valid came."""
        frame = rtu_frame(slave, pdu)
        self.stats.requests.append((self.settings, len(frame), expect))
        ct = char_time(self.settings.serial)
        self._write(frame)
        deadline = time.monotonic() + timeout_s + len(frame) * ct
        buf = b""
        while True:
            size = rtu_reply_size(buf)
            chunk = self._read(max(1, (size or expect) - len(buf)), deadline)
            if not chunk:
                return None
            buf += chunk
            size = rtu_reply_size(buf)
            if size is not None and len(buf) >= size:
                reply = buf[:size]
                if reply[0] == slave and rtu_frame_ok(reply):
                    return reply[1:-2]
                return None

    def listen(self, seconds: float) -> bytes:
        """Everything that arrives unasked within ``seconds``."""
        self.stats.listened_s += seconds
        out = b""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            out += self._read(4096, deadline)
        return out

    def ask_line(self, command: str, timeout_s: float) -> bytes:
        """Send an ASCII command line and return the answer line (or what came).

        A line end goes first, so noise already on the line does not prefix the command."""
        data = b"\r\n" + command.encode("ascii") + b"\r\n"
        self.stats.requests.append((self.settings, len(data), 0))
        self._write(data)
        deadline = time.monotonic() + timeout_s
        out = b""
        while not out.endswith(b"\n") and (chunk := self._read(4096, deadline)):
            out += chunk
        return out


class TcpPort:
    """A Modbus TCP endpoint (a gateway or a TCP device) asked unit by unit."""

    def __init__(self, host: str, port: int, stats: ScanStats, timeout_s: float) -> None:
        self.where = f"tcp://{host}:{port}"
        self.stats = stats
        self.tid = 0
        try:
            self.sock = socket.create_connection((host, port), timeout=max(timeout_s, 1.0))
        except OSError as exc:
            raise ScanError(f"{self.where}: cannot connect: {exc.strerror or exc}") from None

    def close(self) -> None:
        self.sock.close()

    def transact(self, slave: int, pdu: bytes, expect: int, timeout_s: float) -> bytes | None:
        self.tid = (self.tid + 1) & 0xFFFF
        self.stats.requests.append((None, 7 + len(pdu), expect))
        self.sock.settimeout(timeout_s)
        try:
            self.sock.sendall(struct.pack(">HHHB", self.tid, 0, len(pdu) + 1, slave) + pdu)
            head = self._exact(7)
            tid, _pid, length, unit = struct.unpack(">HHHB", head)
            body = self._exact(length - 1)
        except (OSError, struct.error):
            raise ScanError(f"{self.where}: connection lost during the scan") from None
        if tid != self.tid or unit != slave or not body:
            return None
        if body[0] & 0x80 and len(body) > 1 and body[1] == TCP_NO_UNIT:
            return None
        return body

    def _exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise OSError("closed")
            buf += chunk
        return buf


Transport = RtuPort | TcpPort


def _reply_len(fc: int, count: int) -> int:
    return 5 + (count + 7) // 8 if fc in (1, 2) else 5 + 2 * count


def _asker(port: Transport, slave: int, timeout_s: float) -> Callable[[str, int, int], Answer]:
    """``ask(table, address, count)`` for one slave, each distinct request made once."""
    cache: dict[tuple[str, int, int], Answer] = {}

    def ask(table: str, address: int, count: int) -> Answer:
        key = (table, address, count)
        if key not in cache:
            fc = FUNCTION[table]
            pdu = struct.pack(">BHH", fc, address, count)
            reply = port.transact(slave, pdu, _reply_len(fc, count), timeout_s)
            if reply is None:
                cache[key] = None
            elif reply[0] & 0x80:
                cache[key] = "exception"
            elif fc in (1, 2):
                bits = reply[2:]
                cache[key] = [bits[i // 8] >> (i % 8) & 1 for i in range(count)]
            else:
                words = reply[2 : 2 + 2 * count]
                cache[key] = list(struct.unpack(f">{len(words) // 2}H", words))
        return cache[key]

    return ask


# -- the sweep -----------------------------------------------------------------------------------
@dataclass
class Progress:
    """Callbacks for a progress display: ``grow(n)`` more steps planned, ``step(text)`` one done."""

    grow: Callable[[int], None] = lambda n: None
    step: Callable[[str], None] = lambda text: None


def shipped_profiles() -> list[Profile]:
    return [load_profile(name) for name in sorted(bundled_profiles())]


def default_ids(profiles: Iterable[Profile]) -> tuple[int, ...]:
    """The quick probe's addresses: every Modbus profile's default slave."""
    ids = {p.serial.default_slave for p in profiles if p.device.protocol == "modbus"}
    return tuple(sorted(i for i in ids if 1 <= i <= 247))


def _probe_modbus(
    port: Transport,
    ids: Sequence[int],
    plan: ScanPlan,
    profiles: Sequence[Profile],
    settings: LineSettings | None,
    progress: Progress,
    known: set[int],
) -> list[Found]:
    found: list[Found] = []
    for slave in ids:
        progress.step(f"{settings or 'tcp'} id {slave}")
        if slave in known:
            continue
        reply = port.transact(slave, PROBE_PDU, 7, plan.timeout_s)
        if reply is None:
            continue
        known.add(slave)
        baud = settings.baudrate if settings else None
        ask = _asker(port, slave, plan.timeout_s)
        name, others = identify_modbus(profiles, ask, slave, baud)
        found.append(
            Found(
                "modbus",
                name,
                slave,
                baud,
                settings.parity if settings else None,
                others,
                "" if name else "answers Modbus; no profile's identification matches",
            )
        )
    return found


def scan_serial(
    path: str,
    plan: ScanPlan = ScanPlan(),
    *,
    profiles: Sequence[Profile] | None = None,
    progress: Progress | None = None,
    stats: ScanStats | None = None,
) -> list[Found]:
    """Sweep a serial port; the devices found, in the order found."""
    profiles = list(profiles if profiles is not None else shipped_profiles())
    progress = progress or Progress()
    stats = stats if stats is not None else ScanStats()
    quick = default_ids(profiles)
    modbus_profiles = [p for p in profiles if p.device.protocol == "modbus"]
    talkers = [p for p in profiles if p.identify.listen]
    polled = [p for p in profiles if p.identify.poll]
    port = RtuPort(path, stats)
    found: list[Found] = []
    listen = plan.ascii and bool(talkers)
    known_ascii: set[str] = set()  # polled models found (one per line)
    skipped = stats.unsupported
    try:
        settings_list = plan.settings()
        per = (len(quick) if plan.modbus else 0) + (len(polled) + 1 if plan.ascii else 0)
        progress.grow(per * len(settings_list))
        for n, settings in enumerate(settings_list):
            if not port.configure(settings):
                progress.grow(-per)
                skipped.append(settings)
                continue
            known: set[int] = set()
            if plan.modbus:
                ids = plan.ids if plan.thorough else [i for i in quick if i in plan.ids]
                if plan.thorough:
                    progress.grow(len(ids) - len(quick))
                hits = _probe_modbus(port, ids, plan, modbus_profiles, settings, progress, known)
                if hits and not plan.thorough:
                    rest = [i for i in plan.ids if i not in known and i not in ids]
                    progress.grow(len(rest))
                    hits += _probe_modbus(
                        port, rest, plan, modbus_profiles, settings, progress, known
                    )
                found += hits
            if not plan.ascii:
                continue
            for p in polled:
                progress.step(f"{settings} poll {p.device.model}")
                if p.device.model in known_ascii:
                    continue
                wait = min(p.serial.timeout_s, max(3 * plan.timeout_s, 0.3))
                answer = port.ask_line(ascii_poll(p), wait)
                text = answer.decode("ascii", "replace")
                if re.search(p.identify.answer, text):
                    known_ascii.add(p.device.model)
                    found.append(
                        Found(
                            "ascii",
                            p.device.model,
                            p.serial.default_slave,
                            settings.baudrate,
                            settings.parity,
                        )
                    )
            progress.step(f"{settings} listen")
            if not listen:
                continue
            heard = port.listen(plan.listen_s)
            if not heard and n == 0:
                listen = False  # a silent line: nobody talks unsolicited at any setting
                continue
            name = identify_ascii(talkers, heard.decode("ascii", "replace"))
            if name:
                listen = False  # one talker per line
                found.append(Found("ascii", name, None, settings.baudrate, settings.parity))
    finally:
        port.close()
    return found


def scan_tcp(
    host: str,
    port_number: int = 502,
    plan: ScanPlan = ScanPlan(),
    *,
    profiles: Sequence[Profile] | None = None,
    progress: Progress | None = None,
    stats: ScanStats | None = None,
) -> list[Found]:
    """Ask every unit id of a Modbus TCP endpoint."""
    profiles = [p for p in (profiles or shipped_profiles()) if p.device.protocol == "modbus"]
    progress = progress or Progress()
    stats = stats if stats is not None else ScanStats()
    port = TcpPort(host, port_number, stats, plan.timeout_s)
    try:
        progress.grow(len(plan.ids))
        return _probe_modbus(port, plan.ids, plan, profiles, None, progress, set())
    finally:
        port.close()
