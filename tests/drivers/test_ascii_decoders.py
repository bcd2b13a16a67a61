"""WindSonic and WXT decoders: golden cases from tests/drivers/cases and random bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import DeviceError
from drivers.windsonic import FrameReader, checksum, decode, encode
from drivers.wxt import parse_answer
from roadside.records import DriverStatus

CASES = Path(__file__).parent / "cases"
WINDSONIC = json.loads((CASES / "windsonic.json").read_text())
WXT = json.loads((CASES / "wxt.json").read_text())


def _bytes(text: str) -> bytes:
    raw = text.encode("latin-1")
    if b"%CS%" in raw:
        body = raw[1 : raw.index(b"\x03")]
        raw = raw.replace(b"%CS%", f"{checksum(body):02X}".encode())
    return raw


def _windsonic(frame: bytes) -> tuple[DriverStatus, str, float | None, float | None]:
    [framed] = FrameReader().feed(frame)
    if framed.status is not DriverStatus.OK:
        return framed.status, framed.detail, None, None
    try:
        m = decode(framed.body)
    except DeviceError as exc:
        return exc.status, exc.detail, None, None
    return DriverStatus.OK, "", m.direction, m.speed


@pytest.mark.parametrize("case", WINDSONIC, ids=[c["name"] for c in WINDSONIC])
def test_windsonic_golden(case: dict) -> None:
    status, detail, direction, speed = _windsonic(_bytes(case["frame"]))
    assert status.value == case["status"], detail
    assert case.get("detail", "") in detail
    if status is DriverStatus.OK:
        assert direction == case["direction"]
        assert speed == pytest.approx(case["speed"], abs=1e-6)


def test_datasheet_checksum() -> None:
    assert checksum(b"Q,036,002.57,M,00,") == 0x1B
    assert encode("Q,036,002.57,M,00,") == b"\x02Q,036,002.57,M,00,\x031B\r\n"


def test_reader_resyncs_after_garbage_and_cut_frames() -> None:
    good = encode("Q,036,002.57,M,00,")
    stream = b"\xff\x13junk" + good + b"\x02Q,03" + good + b"\x02Q,036,002.57,M,00,\x03" + good
    out = FrameReader().feed(stream)
    assert [f.status for f in out] == [
        DriverStatus.BAD_FRAME,  # stray bytes
        DriverStatus.OK,
        DriverStatus.BAD_FRAME,  # frame cut short by the next STX
        DriverStatus.OK,
        DriverStatus.BAD_FRAME,  # checksum cut off
        DriverStatus.OK,
    ]


def test_reader_waits_for_the_rest_of_a_frame() -> None:
    good = encode("Q,036,002.57,M,00,")
    reader = FrameReader()
    assert reader.feed(good[:7]) == []
    assert reader.feed(good[7:-3]) == []
    [framed] = reader.feed(good[-3:])
    assert framed.status is DriverStatus.OK


@given(st.binary(max_size=300))
def test_windsonic_reader_never_raises_on_random_bytes(data: bytes) -> None:
    reader = FrameReader()
    for framed in reader.feed(data):
        if framed.status is DriverStatus.OK:
            try:
                decode(framed.body)
            except DeviceError as exc:
                assert exc.status in (DriverStatus.BAD_FRAME, DriverStatus.DEVICE_FAULT)


@given(st.binary(max_size=60), st.binary(max_size=60), st.integers(0, 999), st.integers(0, 359))
def test_a_good_frame_survives_any_garbage_before_it(pre: bytes, post: bytes, cs: int, d: int):
    body = f"Q,{d:03d},{cs / 10:06.2f},M,00,"
    frames = FrameReader().feed(pre + b"\r\n" + encode(body) + post)
    decoded = [
        decode(f.body) for f in frames if f.status is DriverStatus.OK and f.body == body.encode()
    ]
    assert decoded and decoded[0].speed == pytest.approx(cs / 10)


@given(st.integers(0, 255), st.integers(0, 17))
def test_a_corrupted_byte_is_never_taken_as_good(byte: int, at: int) -> None:
    good = bytearray(encode("Q,036,002.57,M,00,"))
    pos = 1 + at  # a byte of the body
    if good[pos] == byte:
        return
    good[pos] = byte
    assert all(f.status is not DriverStatus.OK for f in FrameReader().feed(bytes(good)))


@pytest.mark.parametrize("case", WXT, ids=[c["name"] for c in WXT])
def test_wxt_golden(case: dict) -> None:
    line = case["line"].encode("latin-1")
    if "status" in case:
        with pytest.raises(DeviceError) as err:
            parse_answer(line, case["address"], case["message"])
        assert err.value.status.value == case["status"]
        return
    fields = parse_answer(line, case["address"], case["message"])
    for key, (number, unit) in case["fields"].items():
        assert fields[key].number == number, key
        assert fields[key].unit == unit, key


@given(st.binary(max_size=200))
def test_wxt_parser_never_raises_anything_but_a_status(data: bytes) -> None:
    try:
        fields = parse_answer(data, "0", "R1")
    except DeviceError as exc:
        assert exc.status in (
            DriverStatus.BAD_FRAME,
            DriverStatus.WRONG_DEVICE,
            DriverStatus.TIMEOUT,
        )
        return
    assert all(v.number is None or v.number == v.number for v in fields.values())


@given(st.text(alphabet="0123456789.,=#DMRSmnx", max_size=80))
def test_wxt_parser_on_near_miss_answers(tail: str) -> None:
    try:
        parse_answer(f"0R1,{tail}\r\n".encode(), "0", "R1")
    except DeviceError as exc:
        assert exc.status is DriverStatus.BAD_FRAME
