"""The TCP register read framed by the driver (not pymodbus): a scripted server on a real loopback
socket answers each request with bytes chosen by the test, including what a misbehaving gateway
sends (replies split across segments, a late reply to an earlier request first, another unit's
reply, an exception, a short byte count, a dropped connection)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from drivers.errors import DeviceError
from drivers.modbus import ModbusLink
from drivers.profile import SerialDefaults
from drivers.registers import Block
from roadside.records import DriverStatus

Reply = Callable[[bytes], list[bytes]]  # request frame -> segments to send back


def mbap(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def registers_pdu(fc: int, values: list[int]) -> bytes:
    return bytes([fc, 2 * len(values)]) + struct.pack(f">{len(values)}H", *values)


class ScriptedServer:
    """Answers request ``n`` with ``script[n](request)``; closes the connection on ``None``, else
    keeps it open (silent) after the script until the client closes it."""

    def __init__(self, script: list[Reply | None]) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            for step in self.script:
                request = conn.recv(260)
                if not request:
                    return
                self.requests.append(request)
                if step is None:
                    return
                for segment in step(request):
                    conn.sendall(segment)
            while conn.recv(260):
                pass


@pytest.fixture
def serve() -> Iterator[Callable[[list[Reply | None]], ModbusLink]]:
    links: list[ModbusLink] = []

    def start(script: list[Reply | None]) -> ModbusLink:
        server = ScriptedServer(script)
        link = ModbusLink(f"tcp://127.0.0.1:{server.port}", SerialDefaults(), timeout_s=0.3)
        links.append(link)
        return link

    yield start
    for link in links:
        link.close()


BLOCK = Block("holding", 100, 3, ())


def tid_of(request: bytes) -> int:
    return int.from_bytes(request[:2], "big")


def test_a_reply_in_three_segments_is_taken_whole(serve) -> None:
    def split(req: bytes) -> list[bytes]:
        frame = mbap(tid_of(req), 1, registers_pdu(3, [1, 0xFFFF, 300]))
        return [frame[:4], frame[4:10], frame[10:]]

    link = serve([split])
    assert link.read(1, BLOCK) == [1, 0xFFFF, 300]


def test_the_request_is_a_well_formed_read(serve) -> None:
    seen: list[bytes] = []

    def ok(req: bytes) -> list[bytes]:
        seen.append(req)
        return [mbap(tid_of(req), 7, registers_pdu(4, [5, 6, 7]))]

    link = serve([ok, ok])
    assert link.read(7, Block("input", 30, 3, ())) == [5, 6, 7]
    assert link.read(7, Block("input", 30, 3, ())) == [5, 6, 7]
    tids = [tid_of(r) for r in seen]
    assert tids[1] == tids[0] + 1  # a new transaction id each request
    assert [r[2:] for r in seen] == [struct.pack(">HHBBHH", 0, 6, 7, 4, 30, 3)] * 2


def test_a_late_reply_to_an_earlier_request_is_skipped(serve) -> None:
    def stale_first(req: bytes) -> list[bytes]:
        tid = tid_of(req)
        return [
            mbap(tid - 1, 1, registers_pdu(3, [9, 9, 9])),
            mbap(tid, 1, registers_pdu(3, [1, 2, 3])),
        ]

    link = serve([stale_first])
    assert link.read(1, BLOCK) == [1, 2, 3]


@pytest.mark.parametrize(
    ("answer", "status", "words"),
    [
        (lambda t: mbap(t, 2, registers_pdu(3, [1, 2, 3])), DriverStatus.WRONG_DEVICE, "unit 2"),
        (lambda t: mbap(t, 1, bytes([0x83, 2])), DriverStatus.EXCEPTION, "illegal data address"),
        (lambda t: mbap(t, 1, registers_pdu(3, [1, 2])), DriverStatus.BAD_FRAME, "got 2"),
        (
            lambda t: mbap(t, 1, registers_pdu(3, [1, 2, 3]))[:-3],
            DriverStatus.BAD_FRAME,
            "truncated",
        ),
        (lambda t: b"\xde\xad\xbe\xef" * 4, DriverStatus.BAD_FRAME, "garbage"),
        (lambda t: mbap(t - 1, 1, registers_pdu(3, [1, 2, 3])), DriverStatus.TIMEOUT, "stale"),
        (lambda t: b"", DriverStatus.TIMEOUT, "no answer"),
    ],
    ids=["other-unit", "exception", "short-count", "truncated", "garbage", "only-stale", "silent"],
)
def test_a_reply_that_is_not_the_answer_is_named(serve, answer, status, words) -> None:
    link = serve([lambda req: [answer(tid_of(req))]])
    with pytest.raises(DeviceError) as err:
        link.read(1, BLOCK)
    assert err.value.status is status
    assert words in str(err.value)


def test_a_dropped_connection_is_port_unavailable_and_the_next_read_reconnects(serve) -> None:
    link = serve([None])
    with pytest.raises(DeviceError) as err:
        link.read(1, BLOCK)
    assert err.value.status is DriverStatus.PORT_UNAVAILABLE
    assert link.client.socket is None  # closed: the next poll opens a new connection


def test_a_silent_device_after_a_reconnect_still_times_out(serve) -> None:
    """The kernel receive timeout is set on each new connection (a reconnect may reuse the fd)."""
    link = serve([None])
    with pytest.raises(DeviceError):
        link.read(1, BLOCK)  # the server hangs up
    server = ScriptedServer([lambda req: []])  # the next one never answers
    link.client.comm_params.port = server.port
    started = time.monotonic()
    with pytest.raises(DeviceError) as err:
        link.read(1, BLOCK)
    assert err.value.status is DriverStatus.TIMEOUT
    assert time.monotonic() - started < 5 * 0.3


def test_a_server_we_did_not_write_reads_the_same_as_through_pymodbus() -> None:
    """pymodbus's own TCP server (another implementation than the simulator): holding and input
    registers through the driver's framing equal pymodbus's client; unmapped ones are its
    exception; writes (still pymodbus's) interleave on the same socket."""
    import asyncio

    from pymodbus.client import ModbusTcpClient
    from pymodbus.datastore import (
        ModbusDeviceContext,
        ModbusSequentialDataBlock,
        ModbusServerContext,
    )
    from pymodbus.server import ModbusTcpServer

    from drivers.profile import RegisterField

    holding = [(7 * i + 3) % 65536 for i in range(120)]
    device = ModbusDeviceContext(
        hr=ModbusSequentialDataBlock(1, holding), ir=ModbusSequentialDataBlock(1, holding[::-1])
    )
    context = ModbusServerContext(devices={5: device}, single=False)
    port = socket.create_server(("127.0.0.1", 0))
    number = port.getsockname()[1]
    port.close()
    loop = asyncio.new_event_loop()
    servers: list[ModbusTcpServer] = []

    async def serve() -> None:  # the server is made on its own loop, in its own thread
        servers.append(ModbusTcpServer(context, address=("127.0.0.1", number)))
        await servers[0].serve_forever()

    threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True).start()
    link = ModbusLink(f"tcp://127.0.0.1:{number}", SerialDefaults(), timeout_s=2.0)
    reference = ModbusTcpClient("127.0.0.1", port=number, timeout=2.0)
    try:
        deadline = time.monotonic() + 10
        while not reference.connect():
            assert time.monotonic() < deadline, "pymodbus server did not start"
            time.sleep(0.05)
        for table, start, count in [("holding", 0, 10), ("input", 17, 100), ("holding", 60, 1)]:
            call = (
                reference.read_holding_registers
                if table == "holding"
                else reference.read_input_registers
            )
            want = call(start, count=count, device_id=5).registers
            assert link.read(5, Block(table, start, count, ())) == want
        field = RegisterField(name="setpoint", address=3, table="holding", writable=True)
        link.write(5, field, [4242])  # pymodbus's path, on the same socket
        assert link.read(5, Block("holding", 0, 5, ()))[3] == 4242
        with pytest.raises(DeviceError) as err:
            link.read(5, Block("holding", 500, 4, ()))
        assert err.value.status is DriverStatus.EXCEPTION and err.value.code == 2
        assert link.read(5, Block("holding", 1, 2, ())) == holding[1:3]
    finally:
        reference.close()
        link.close()
        if servers:
            asyncio.run_coroutine_threadsafe(servers[0].shutdown(), loop).result(10)
