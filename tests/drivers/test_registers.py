"""Block planning, register decoding/encoding and RTU reply diagnosis (pure functions)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.diagnose import diagnose_rtu, diagnose_tcp, rtu_frame
from drivers.profile import RegisterField, load_profile
from drivers.registers import decode_field, encode_value, plan_blocks
from roadside.records import DriverStatus
from roadside.structs import convert


def field(name: str, address: int, type_: str = "uint16", table: str = "holding", **kw):
    return convert(
        {"name": name, "register": address, "type": type_, "table": table, **kw}, RegisterField
    )


def test_profile_channels_become_one_request_each():
    sen = plan_blocks(load_profile("dfrobot-sen0575").modbus_channels)
    assert [(b.table, b.start, b.count) for b in sen] == [("input", 8, 5)]  # the profile's sample
    hlk = plan_blocks(load_profile("hlk-ld8001h").modbus_channels)
    assert [(b.table, b.start, b.count) for b in hlk] == [("holding", 1, 3)]
    assert hlk[0].has_gaps and not sen[0].has_gaps


def test_planning_splits_tables_large_gaps_and_long_blocks():
    fields = [field("a", 0), field("b", 1, "uint32"), field("c", 40), field("d", 0, table="input")]
    blocks = plan_blocks(fields, max_gap=8)
    assert [(b.table, b.start, b.count) for b in blocks] == [
        ("holding", 0, 3),
        ("holding", 40, 1),
        ("input", 0, 1),
    ]
    assert len(plan_blocks(fields, max_gap=40)) == 2
    many = [field(f"f{i}", i) for i in range(300)]
    assert [b.count for b in plan_blocks(many)] == [125, 125, 50]
    assert plan_blocks([field("x", 3), field("y", 5)], max_gap=0)[0].count == 1


@given(st.lists(st.tuples(st.integers(0, 400), st.sampled_from(["uint16", "uint32"])), max_size=40))
def test_every_field_is_read_by_exactly_one_block_that_holds_it(spec):
    fields = [field(f"f{i}", a, t) for i, (a, t) in enumerate(spec)]
    blocks = plan_blocks(fields)
    placed = [f.name for b in blocks for f in b.fields]
    assert sorted(placed) == sorted(f.name for f in fields)
    for b in blocks:
        assert 1 <= b.count <= 125
        for f in b.fields:
            assert b.start <= f.address and f.address + f.words <= b.start + b.count


@pytest.mark.parametrize(
    ("type_", "order", "regs", "value"),
    [
        ("uint16", "big", [0xFFFF], 65535),
        ("int16", "big", [0xFFFE], -2),
        ("uint32", "little", [0x86A0, 0x0001], 100000),  # SEN0575 sample: 10.0 mm
        ("uint32", "big", [0x0001, 0x86A0], 100000),
        ("int32", "big", [0xFFFF, 0xFFFF], -1),
        ("float32", "big", [0x4120, 0x0000], 10.0),
    ],
)
def test_decode_known_values(type_, order, regs, value):
    assert decode_field(field("x", 0, type_, word_order=order), regs) == value


def test_decode_refuses_misfits():
    with pytest.raises(ValueError):
        decode_field(field("x", 0, "uint32"), [1])
    with pytest.raises(ValueError):
        decode_field(field("x", 0, "float32"), [0x7FC0, 0])  # NaN
    with pytest.raises(ValueError):
        decode_field(field("x", 0), [70000])


@given(
    st.sampled_from(["uint16", "int16", "uint32", "int32", "float32"]),
    st.sampled_from(["big", "little"]),
    st.lists(st.integers(0, 0xFFFF), min_size=0, max_size=3),
)
def test_decode_raises_only_value_error(type_, order, regs):
    try:
        v = decode_field(field("x", 0, type_, word_order=order), regs)
    except ValueError:
        return
    assert isinstance(v, int | float)


@given(st.integers(-32768, 32767), st.sampled_from([1.0, 0.1, 0.0001]))
def test_encode_then_decode_round_trips(raw, scale):
    f = field("x", 0, "int16", scale=scale)
    regs = encode_value(f, raw * scale)
    assert decode_field(f, regs) == raw


def test_encode_refuses_values_that_do_not_fit():
    with pytest.raises(ValueError):
        encode_value(field("x", 0), -1)
    assert encode_value(field("light", 0, "bool", table="coil"), 1) == [1]


# --- RTU reply diagnosis -----------------------------------------------------------------------

READ = bytes([4, 4, 0, 1, 0, 2])  # FC04 reply, 2 registers
GOOD = rtu_frame(192, READ)


def test_diagnosis_of_each_failure():
    assert diagnose_rtu(b"", 192, 4, 0.5).status is DriverStatus.TIMEOUT
    bad_crc = GOOD[:-1] + bytes([GOOD[-1] ^ 0xFF])
    assert diagnose_rtu(bad_crc, 192, 4).status is DriverStatus.CRC_ERROR
    other = diagnose_rtu(rtu_frame(193, READ), 192, 4)
    assert other.status is DriverStatus.WRONG_DEVICE and "193" in other.detail
    cut = diagnose_rtu(GOOD[:5], 192, 4)
    assert cut.status is DriverStatus.BAD_FRAME and "5 of 9" in cut.detail
    assert diagnose_rtu(b"\x00\x00\x00", 192, 4).status is DriverStatus.BAD_FRAME


def test_diagnosis_recovers_a_reply_after_stray_bytes():
    d = diagnose_rtu(b"\x11\x03\x99" + GOOD, 192, 4)
    assert d.status is DriverStatus.OK and d.pdu == READ and "3 stray" in d.detail
    exc = rtu_frame(192, bytes([0x84, 2]))
    assert diagnose_rtu(b"\xff" + exc, 192, 4).pdu == bytes([0x84, 2])


@given(st.binary(max_size=80), st.integers(0, 247), st.sampled_from([1, 2, 3, 4, 5, 6, 16]))
def test_rtu_diagnosis_never_raises(data, slave, fc):
    d = diagnose_rtu(data, slave, fc)
    assert d.status is not DriverStatus.OK or d.pdu is not None


@given(st.integers(0, len(GOOD) - 1), st.integers(1, 255))
def test_a_corrupted_reply_is_never_recovered(at, flip):
    bad = bytearray(GOOD)
    bad[at] ^= flip
    assert diagnose_rtu(bytes(bad), 192, 4).status is not DriverStatus.OK


def test_tcp_diagnosis():
    def mbap(tid: int, unit: int, pdu: bytes) -> bytes:
        return (
            tid.to_bytes(2, "big")
            + b"\0\0"
            + (len(pdu) + 1).to_bytes(2, "big")
            + bytes([unit])
            + pdu
        )

    assert diagnose_tcp(b"", 1, 3).status is DriverStatus.TIMEOUT
    assert (
        diagnose_tcp(mbap(7, 2, b"\x03\x02\x00\x01"), 1, 3, 7).status is DriverStatus.WRONG_DEVICE
    )
    assert (
        diagnose_tcp(mbap(7, 1, b"\x03\x02\x00\x01")[:9], 1, 3, 7).status is DriverStatus.BAD_FRAME
    )
    stale_then_good = mbap(6, 1, b"\x03\x02\x00\x09") + mbap(7, 1, b"\x03\x02\x00\x01")
    assert diagnose_tcp(stale_then_good, 1, 3, 7).pdu == b"\x03\x02\x00\x01"


@given(st.binary(max_size=80), st.integers(0, 255))
def test_tcp_diagnosis_never_raises(data, unit):
    diagnose_tcp(data, unit, 3, 1)
