"""Modbus TCP slaves on loopback ports: an independent client, raw MBAP bytes, faults."""

from __future__ import annotations

import socket
import struct
import time

import pytest
from pymodbus.client import ModbusTcpClient

REQUEST = struct.pack(">HHHB", 7, 0, 6, 1) + bytes([3, 0, 0, 0, 2])  # holding 0..1 of unit 1


def host_port(station) -> tuple[str, int]:
    host, port = station.endpoints["gauge"].port.removeprefix("tcp://").split(":")
    return host, int(port)


@pytest.fixture
def sock(station):
    s = socket.create_connection(host_port(station), timeout=1.0)
    yield s
    s.close()


def exchange(s: socket.socket, data: bytes = REQUEST, wait_s: float = 0.3) -> bytes:
    out = b""
    try:
        s.sendall(data)
        s.settimeout(wait_s)
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
            s.settimeout(0.05)
    except (TimeoutError, ConnectionError):  # silence, or the port went away
        pass
    return out


def test_pymodbus_tcp_client_reads_the_gauge(station, clock):
    clock.advance(1800)  # 18 mm at 36 mm/h
    host, port = host_port(station)
    c = ModbusTcpClient(host, port=port, timeout=1, retries=0)
    assert c.connect()
    try:
        total, intensity = c.read_holding_registers(0, count=2, device_id=1).registers
        assert total == 180  # 0.1 mm
        assert intensity == 6  # 0.1 mm/min = 36 mm/h / 6
        unknown = c.read_holding_registers(0, count=2, device_id=9)
        assert unknown.isError() and unknown.exception_code == 0x0B  # gateway: no such unit
    finally:
        c.close()


def test_mbap_reply_bytes(station, sock):
    reply = exchange(sock)
    tid, proto, length, unit = struct.unpack(">HHHB", reply[:7])
    assert (tid, proto, length, unit) == (7, 0, 7, 1)
    assert reply[7:9] == bytes([3, 4])


def test_tcp_frame_faults(station, sock):
    station.inject("gauge", "crc_error")
    assert struct.unpack(">H", exchange(sock)[2:4])[0] != 0  # corrupted protocol id
    station.clear("gauge")
    station.inject("gauge", "wrong_slave", address=5)
    assert exchange(sock)[6] == 5
    station.clear("gauge")
    station.inject("gauge", "truncated")
    assert 0 < len(exchange(sock)) < 13
    station.clear("gauge")
    station.inject("gauge", "garbage", length=5)
    assert len(exchange(sock)) == 5
    station.clear("gauge")
    station.inject("gauge", "no_answer")
    assert exchange(sock) == b""
    station.clear("gauge")
    station.inject("gauge", "slow_answer", delay_s=0.25)
    t0 = time.monotonic()
    assert len(exchange(sock, wait_s=1.0)) == 13
    assert time.monotonic() - t0 >= 0.25


def test_tcp_value_faults_and_counter_reset(station, sock, clock):
    clock.advance(600)
    assert struct.unpack(">H", exchange(sock)[9:11])[0] == 60
    station.inject("gauge", "counter_reset")
    assert struct.unpack(">H", exchange(sock)[9:11])[0] == 0
    station.inject("gauge", "stuck")
    clock.advance(600)
    assert struct.unpack(">H", exchange(sock)[9:11])[0] == 0


def test_tcp_port_vanishes_and_returns_on_the_same_port(station, sock, clock):
    host, port = host_port(station)
    station.inject("gauge", "port_vanish", duration_s=10)
    assert exchange(sock) == b""  # the open connection was dropped
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=1.0)
    clock.advance(11)
    time.sleep(0.2)
    again = socket.create_connection((host, port), timeout=1.0)
    try:
        assert len(exchange(again)) == 13
    finally:
        again.close()
