"""Modbus TCP slaves on a port (MBAP framing), with the same faults as on a serial bus.

Devices listen on loopback unless the operator names another address (``run --listen 0.0.0.0``
for a gateway on the lab LAN).

One :class:`TcpBus` is one listening endpoint; the unit identifier picks the device, like a
gateway in front of an RS-485 line (an unknown unit gets exception 0x0B, gateway target failed to
respond). ``port_vanish`` closes the listener and drops every connection; it comes back on the
same port. TCP has no CRC: ``crc_error`` sends a corrupted MBAP protocol identifier instead.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable

from sim.devices import modbus
from sim.devices.device import SimDevice
from sim.devices.faults import answering_address, mangle, reply_delay_s, silenced
from sim.spec import BusSpec

GATEWAY_NO_RESPONSE = 0x0B
LOOPBACK = "127.0.0.1"  # where devices listen unless ``run --listen`` names another address


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    bus: TcpBus


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        bus = self.server.bus
        sock: socket.socket = self.request
        bus.track(sock, True)
        try:
            while True:
                head = _recv_exact(sock, 7)
                if head is None:
                    return
                tid, _pid, length, unit = struct.unpack(">HHHB", head)
                pdu = _recv_exact(sock, max(0, length - 1))
                if pdu is None:
                    return
                reply = bus.answer(tid, unit, pdu)
                if reply:
                    sock.sendall(reply)
        except OSError:
            return
        finally:
            bus.track(sock, False)


class TcpBus:
    """Modbus TCP devices behind one loopback listener."""

    def __init__(
        self,
        spec: BusSpec,
        devices: list[SimDevice],
        now_s: Callable[[], float],
        host: str = LOOPBACK,
    ) -> None:
        self.spec = spec
        self.slaves = {d.slave: d for d in devices}
        self.now_s = now_s
        self.host = host
        self.tcp_port = spec.port
        self._server: _Server | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def path(self) -> str:
        return f"tcp://{self.host}:{self.tcp_port}"

    @property
    def present(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        self._listen()

    def stop(self) -> None:
        self.set_present(False)

    def set_present(self, present: bool, wait_s: float = 2.0) -> None:
        """Close the listener and every connection (False) or listen again on the same port."""
        if present and self._server is None:
            self._listen()
        elif not present and self._server is not None:
            server, self._server = self._server, None
            server.shutdown()
            server.server_close()
            with self._lock:
                conns = list(self._conns)
            for sock in conns:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _listen(self) -> None:
        server = _Server((self.host, self.tcp_port), _Handler)
        server.bus = self
        self.tcp_port = server.server_address[1]
        threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"sim-tcp-{self.spec.name}",
        ).start()
        self._server = server

    def track(self, sock: socket.socket, alive: bool) -> None:
        with self._lock:
            (self._conns.add if alive else self._conns.discard)(sock)

    def _device(self, unit: int) -> SimDevice | None:
        if unit in self.slaves:
            return self.slaves[unit]
        if unit in (0, 0xFF) and len(self.slaves) == 1:
            return next(iter(self.slaves.values()))
        return None

    def answer(self, tid: int, unit: int, pdu: bytes) -> bytes | None:
        """The MBAP reply to one request, faults applied (None = stay silent)."""
        dev = self._device(unit)
        if dev is None:
            fc = pdu[0] if pdu else 0
            return struct.pack(">HHHB", tid, 0, 3, unit) + bytes([fc | 0x80, GATEWAY_NO_RESPONSE])
        t_s = self.now_s()
        faults = dev.frame_faults(t_s)
        if silenced(faults):
            return None
        body = modbus.respond(dev, pdu, t_s, self.spec.baudrate)
        proto = 0x0001 if any(f.kind == "crc_error" for f in faults) else 0
        out_unit = answering_address(unit, faults)
        reply = struct.pack(">HHHB", tid, proto, len(body) + 1, out_unit) + body
        reply = mangle(reply, faults, dev.rng)
        delay = reply_delay_s(faults)
        if delay:
            time.sleep(delay)
        return reply
