"""Coils (FC 01/05/15) on an actuator profile, and FC 16 / illegal values, via pymodbus."""

from __future__ import annotations

import pytest
from pymodbus.client import ModbusSerialClient

from sim.devices.modbus import rtu_frame
from sim.spec import BusSpec, DeviceSpec

LIGHT = """
[device]
model = "test-warning-light"
kind = "actuator"
protocol = "modbus"

[serial]
default_slave = 9

[[channels]]
name = "brightness"
register = 0x0010
unit = "%"
writable = true
"""


@pytest.fixture
def light(make_station, make_scenario, tmp_path):
    path = tmp_path / "light.toml"
    path.write_text(LIGHT)
    bus = BusSpec("rs485-1", "rtu", 9600, link="ttyRS485-1", pacing=False)
    sc = make_scenario(buses=(bus,), devices=(DeviceSpec("light", str(path), "rs485-1"),))
    st = make_station(sc)
    c = ModbusSerialClient(st.endpoints["light"].port, baudrate=9600, timeout=0.5, retries=0)
    assert c.connect()
    yield c
    c.close()


def test_write_and_read_coils(light):
    assert light.read_coils(0, count=4, device_id=9).bits[:4] == [False] * 4
    assert not light.write_coil(2, True, device_id=9).isError()
    assert not light.write_coils(5, [True, False, True], device_id=9).isError()
    bits = light.read_coils(0, count=8, device_id=9).bits[:8]
    assert bits == [False, False, True, False, False, True, False, True]
    beyond = light.read_coils(10, count=10, device_id=9)
    assert beyond.isError() and beyond.exception_code == 2


def test_writable_channel_register(light):
    assert not light.write_registers(0x0010, [75], device_id=9).isError()
    assert light.read_holding_registers(0x0010, count=1, device_id=9).registers == [75]


def test_illegal_data_value(light, raw, make_station):
    port = raw(light.comm_params.host)
    reply = port.transact(rtu_frame(9, bytes([5, 0, 1, 0x12, 0x34])))  # coil value not 0/FF00
    assert reply[1:3] == bytes([0x85, 3])
    reply = port.transact(rtu_frame(9, bytes([3, 0, 0x10, 0, 0])))  # zero registers
    assert reply[1:3] == bytes([0x83, 3])
    reply = port.transact(rtu_frame(9, bytes([0x2B, 0x0E, 1, 0])))  # FC 43 not supported
    assert reply[1:3] == bytes([0xAB, 1])
