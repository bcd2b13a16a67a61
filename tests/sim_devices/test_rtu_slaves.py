"""Modbus RTU slaves on one pty bus, read by an independent client (pymodbus and mbpoll)."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from pymodbus.client import ModbusSerialClient

from drivers.profile import load_profile
from sim.devices.modbus import crc, rtu_frame


@pytest.fixture
def client(station):
    c = ModbusSerialClient(station.endpoints["rain"].port, baudrate=9600, timeout=0.5, retries=0)
    assert c.connect()
    yield c
    c.close()


def u32_little(words: list[int]) -> int:
    return words[1] << 16 | words[0]


def test_endpoints_are_symlinks_to_ptys(station, tmp_path):
    port = station.endpoints["rain"].port
    assert port == str(tmp_path / "dev" / "ttyRS485-1")
    assert station.endpoints["level"].port == port  # one multidrop bus
    assert (tmp_path / "dev" / "ttyRS485-1").resolve().as_posix().startswith("/dev/pts/")
    assert station.endpoints["rain"].slave == 192


def test_rain_gauge_counts_tips_low_word_first(station, client, clock):
    clock.advance(1800)  # 18 mm at 36 mm/h = 180 tips of 0.1 mm
    r = client.read_input_registers(0x0008, count=5, device_id=192)
    assert not r.isError(), r
    total_raw, tips = u32_little(r.registers[0:2]), u32_little(r.registers[2:4])
    assert tips == 180
    assert total_raw == 180 * 1000  # 1/10000 mm
    assert r.registers[4] == 30  # uptime in minutes
    ident = client.read_input_registers(0x0000, count=2, device_id=192)
    assert ident.registers[1] == 0x3343  # VID from the datasheet


def test_rain_counter_follows_profile_decoding(station, client, clock, ramp):
    profile = load_profile("dfrobot-sen0575")
    ch = profile.channel("rain_total")
    clock.advance(600)
    r = client.read_input_registers(ch.address, count=2, device_id=192)
    value = u32_little(r.registers) * ch.scale
    assert value == pytest.approx(ramp.sample(600).rain_total_mm, abs=0.1)


def test_radar_distance_and_depth(station, client, clock):
    clock.advance(1800)  # depth 60 mm
    r = client.read_holding_registers(0x0001, count=5, device_id=1)
    assert not r.isError(), r
    distance, gap, depth, _, height = r.registers
    assert gap == 0
    assert height == 300  # cm, from the site
    assert abs(distance - (3000 - 60)) <= 5  # +-5 mm noise
    assert struct.unpack(">h", struct.pack(">H", depth))[0] == 3000 - distance


def test_radar_installation_height_is_writable(station, client, clock):
    clock.advance(1800)
    assert not client.write_register(0x0005, 250, device_id=1).isError()
    distance, _, depth, _, height = client.read_holding_registers(
        0x0001, count=5, device_id=1
    ).registers
    assert height == 250
    assert abs(distance - (3000 - 60)) <= 5  # the water did not move
    assert (
        struct.unpack(">h", struct.pack(">H", depth))[0] == 2500 - distance
    )  # negative: wrong height
    ident = client.read_holding_registers(0x03F4, count=3, device_id=1).registers
    assert ident == [1, 0, 96]  # address, (gap), baud / 100


def test_write_multiple_and_read_only_registers(station, client):
    assert not client.write_registers(0x0005, [280], device_id=1).isError()
    assert client.read_holding_registers(0x0005, count=1, device_id=1).registers == [280]
    refused = client.write_register(0x0001, 5, device_id=1)  # the distance is not writable
    assert refused.isError() and refused.exception_code == 2


def test_anemometer_registers(station, client, clock):
    clock.advance(3600)  # 8 m/s, gust 12 m/s, from 135 deg
    speed, direction, gust = client.read_holding_registers(0, count=3, device_id=2).registers
    assert (speed, direction, gust) == (80, 135, 120)


def test_exceptions_illegal_address_and_function(station, client):
    bad = client.read_holding_registers(0x0100, count=2, device_id=2)
    assert bad.isError() and bad.exception_code == 2
    beyond = client.read_input_registers(0x0008, count=6, device_id=192)  # 0x000D is not there
    assert beyond.isError() and beyond.exception_code == 2
    coils = client.read_coils(0, count=1, device_id=2)  # a sensor has no coils
    assert coils.isError() and coils.exception_code == 1


def test_only_the_addressed_slave_answers(station, raw):
    port = raw(station.endpoints["rain"].port)
    req = rtu_frame(2, bytes([3, 0, 0, 0, 1]))
    reply = port.transact(req)
    assert reply[:3] == bytes([2, 3, 2]) and reply[-2:] == crc(reply[:-2])
    assert port.transact(rtu_frame(77, bytes([3, 0, 0, 0, 1]))) == b""  # nobody at 77
    assert port.transact(req[:-1] + bytes([req[-1] ^ 1])) == b""  # bad CRC: silence
    for slave in (192, 1):
        answer = port.transact(rtu_frame(slave, bytes([3 if slave == 1 else 4, 0, 1, 0, 1])))
        assert answer[0] == slave


def test_broadcast_write_is_applied_without_answer(station, raw, client):
    port = raw(station.endpoints["rain"].port)
    assert port.transact(rtu_frame(0, bytes([6, 0, 5, 0, 200]))) == b""
    assert client.read_holding_registers(5, count=1, device_id=1).registers == [200]


@pytest.mark.skipif(shutil.which("mbpoll") is None, reason="Debian mbpoll not installed")
def test_mbpoll_reads_the_radar(station, clock):
    clock.advance(1800)
    out = subprocess.run(
        [
            "mbpoll",
            "-m",
            "rtu",
            "-b",
            "9600",
            "-P",
            "none",
            "-a",
            "1",
            "-t",
            "4",
            "-r",
            "2",
            "-c",
            "5",
            "-1",
            "-o",
            "1",
            station.endpoints["level"].port,
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    values = dict(
        line.strip().strip("[").split("]:")
        for line in out.stdout.splitlines()
        if line.startswith("[")
    )
    assert abs(int(values["2"]) - 2940) <= 5  # air gap, register 0x0001 (mbpoll counts from 1)
    assert int(values["6"]) == 300  # installation height, cm
