"""Profile fields to register words: types, word order, scale, counters' rollover, saturation."""

from __future__ import annotations

import struct

import pytest

from drivers.profile import RegisterField, load_profile
from roadside.structs import convert
from sim.devices import registers
from sim.devices.registers import ModbusError


def field(**kw) -> RegisterField:
    return convert({"name": "x", "register": 0, **kw}, RegisterField)


def test_uint32_little_endian_words():
    f = field(type="uint32", word_order="little", scale=0.0001)
    assert registers.encode(f, 10.0) == [0x86A0, 0x0001]  # the SEN0575 profile's sample
    assert registers.encode(field(type="uint32"), 0x12345678) == [0x1234, 0x5678]


def test_counter_wraps_and_plain_values_saturate():
    counter = field(scale=0.1, counter={"rollover": 65536})
    assert registers.encode(counter, 6553.7) == [1]  # 65537 raw wraps to 1
    assert registers.encode(field(), 70000) == [0xFFFF]
    assert registers.encode(field(), -3) == [0]
    assert registers.encode(field(type="int16"), -3) == [0xFFFD]


def test_float32_and_offset():
    (w0, w1) = registers.encode(field(type="float32"), 1.5)
    assert struct.unpack(">f", struct.pack(">HH", w0, w1))[0] == 1.5
    assert registers.encode(field(scale=0.5, offset=10.0), 20.0) == [20]


def test_blocks_and_illegal_addresses():
    profile = load_profile("hlk-ld8001h")
    words = registers.image(profile, {"water_distance": 2900, "water_depth": 100}, {}, 1, 9600)
    assert registers.read(profile, words, "holding", 1, 3) == [2900, 0, 100]
    with pytest.raises(ModbusError) as err:
        registers.read(profile, words, "holding", 0x0100, 1)
    assert err.value.code == registers.ILLEGAL_ADDRESS
    with pytest.raises(ModbusError):
        registers.read(profile, words, "input", 1, 1)  # the radar has no input registers
