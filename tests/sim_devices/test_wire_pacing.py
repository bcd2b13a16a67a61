"""Wire-time pacing: a paced 9600-baud bus is as slow as a real one; silence cuts frames."""

from __future__ import annotations

import os
import statistics
import threading
import time
import tty

import pytest

from sim.devices import timing
from sim.devices.modbus import rtu_frame
from sim.devices.timing import (
    char_time_s,
    min_cycle_s,
    paced_write,
    read_registers_cycle_s,
    silence_s,
)
from sim.spec import BusSpec

PACED = BusSpec("rs485-1", "rtu", 9600, link="ttyRS485-1", pacing=True, turnaround_ms=5.0)


def test_character_time_and_silence():
    assert char_time_s(PACED) == pytest.approx(10 / 9600)
    assert char_time_s(BusSpec("b", "rtu", 9600, parity="E")) == pytest.approx(11 / 9600)
    assert char_time_s(BusSpec("b", "rtu", 9600, stopbits=2)) == pytest.approx(11 / 9600)
    assert silence_s(PACED) == pytest.approx(3.5 * 10 / 9600)
    assert silence_s(BusSpec("b", "rtu", 38400)) == pytest.approx(0.00175)


def test_theoretical_cycle_of_a_ten_register_read():
    # domain brief: about 40 ms on the wire with turnaround at 9600 baud
    expected = (8 + 25) * 10 / 9600 + 2 * 3.5 * 10 / 9600 + 0.005
    assert read_registers_cycle_s(PACED, 10) == pytest.approx(expected)
    assert 0.035 < expected < 0.050


def _one_way(port, frame: bytes, nbytes: int) -> float:
    """Seconds from writing ``frame`` to holding the ``nbytes``-byte answer."""
    port.ser.reset_input_buffer()
    port.ser.timeout = 1.0  # block in select (no busy loop holding the GIL from the sim thread)
    t0 = time.monotonic()
    port.ser.write(frame)
    got = port.ser.read(nbytes)
    elapsed = time.monotonic() - t0
    port.ser.timeout = 0
    assert len(got) == nbytes, got
    return elapsed


@pytest.fixture
def paced(make_station, make_scenario):
    rain, level = make_scenario.__defaults__[1][:2]  # the default devices: rain 192, level 1
    return make_station(make_scenario(buses=(PACED,), devices=(rain, level)))


def test_paced_transaction_takes_its_wire_time(paced, raw):
    port = raw(paced.endpoints["level"].port)
    request = rtu_frame(1, bytes([3, 0, 1, 0, 1]))  # 8 bytes; answer 7 bytes
    ct = char_time_s(PACED)
    floor = (8 + 7) * ct + silence_s(PACED) + PACED.turnaround_ms / 1000
    times = []
    for _ in range(5):
        times.append(_one_way(port, request, 7))
        time.sleep(0.01)  # leave the bus its silence
    assert min(times) >= floor - 0.0005
    assert min(times) < floor + 0.005  # and not much more (the median too, with room for load)
    assert statistics.median(times) < floor + 0.015
    assert floor + silence_s(PACED) == pytest.approx(min_cycle_s(PACED, 8, 7))


def test_ten_register_read_paced(paced, raw):
    port = raw(paced.endpoints["rain"].port)
    request = rtu_frame(192, bytes([4, 0, 0, 0, 10]))  # 0x0000..0x0009, answer 25 bytes
    floor = read_registers_cycle_s(PACED, 10) - silence_s(PACED)
    times = []
    for _ in range(5):
        times.append(_one_way(port, request, 25))
        time.sleep(0.01)
    assert floor - 0.0005 <= min(times) < floor + 0.006


def test_back_to_back_requests_merge_into_one_bad_frame(paced, raw):
    port = raw(paced.endpoints["level"].port)
    request = rtu_frame(1, bytes([3, 0, 1, 0, 1]))
    assert port.transact(request + request) == b""  # no silence between: one 16-byte frame
    assert len(port.transact(request)) == 7  # the bus recovers


def test_request_during_an_answer_is_not_heard(paced, raw):
    port = raw(paced.endpoints["level"].port)
    line = paced.buses["rs485-1"]
    long_read = rtu_frame(192, bytes([4, 0, 0, 0, 13]))  # answer 31 bytes, 32 ms on the wire
    request = rtu_frame(1, bytes([3, 0, 1, 0, 1]))
    for _ in range(3):  # an answer the simulator broke itself (descheduled mid-frame) is redone
        gapped, merged = line.counts["gapped"], line.counts["merged"]
        port.ser.timeout = 1.0
        port.ser.write(long_read)
        assert len(port.ser.read(3)) == 3  # the answer is on the wire...
        port.ser.write(request)  # ...and the master talks over it: no 3.5-character silence
        port.ser.timeout = 0
        rest = port.read(1.0)
        if line.counts["gapped"] == gapped:
            break
        time.sleep(0.01)
    else:
        pytest.fail(f"the simulator broke every answer itself: {line.counts}")
    assert len(rest) == 28, rest  # the answer went on, and nobody answered the request
    assert line.counts["merged"] == merged + 1
    time.sleep(0.01)
    assert len(port.transact(request)) == 7


def _pty() -> tuple[int, int]:
    """A raw pty pair: the writer's (non-blocking) side and the reader's."""
    writer, reader = os.openpty()
    tty.setraw(writer)
    tty.setraw(reader)
    os.set_blocking(writer, False)
    return writer, reader


def _read_n(fd: int, n: int) -> bytes:
    got = b""
    while len(got) < n:
        got += os.read(fd, n - len(got))
    return got


def test_paced_write_hears_a_reader_talking_over_it():
    writer, reader = _pty()
    char = 0.02  # slow characters: a 70 ms silence this thread is not descheduled for
    data = bytes(range(10))
    got: list[bytes] = []

    def talk_over() -> None:
        got.append(_read_n(reader, 2))
        os.write(reader, b"\x01\x02")  # at once, while the rest is still to come
        got.append(_read_n(reader, 8))

    talker = threading.Thread(target=talk_over)
    talker.start()
    try:
        out = paced_write(writer, data, char, listen=3.5 * char)
        talker.join(5)
        assert out.heard and not out.cut
        assert b"".join(got) == data  # the output went on regardless
        assert os.read(writer, 16) == b"\x01\x02"
    finally:
        os.close(writer)
        os.close(reader)


def test_paced_write_ends_a_frame_it_paused_a_silence_in_when_the_reader_talks(monkeypatch):
    """This thread descheduled mid-frame for more than a silence, the reader talking in it:
    the frame ended there on the wire, the rest is not sent and the talk is no collision."""
    writer, reader = _pty()
    char = 0.005
    silence = 3.5 * char
    data = bytes(range(50))  # 250 ms: many chunks however loaded the machine
    real_write = timing.write_some
    stalls = []

    def write_then_stall(fd: int, chunk: bytes) -> None:
        real_write(fd, chunk)
        if not stalls:
            stalls.append(len(chunk))
            time.sleep(2 * silence)  # this thread descheduled...
            os.write(reader, b"\x01")  # ...and the reader, after a silence, talks
            time.sleep(char)

    monkeypatch.setattr(timing, "write_some", write_then_stall)
    try:
        t0 = time.monotonic()
        out = paced_write(writer, data, char, t0, listen=silence)
        assert out.cut and not out.heard
        assert out.gap >= 2 * silence
        assert out.end < t0 + len(data) * char  # the end of what went out, before the pause
        assert os.read(reader, 64) == data[: stalls[0]]  # only what went out before the pause
        assert os.read(writer, 16) == b"\x01"
    finally:
        os.close(writer)
        os.close(reader)


def test_paced_write_without_a_reader_talking_sends_it_all_and_reports_its_pauses(monkeypatch):
    writer, reader = _pty()
    char = 0.005
    data = bytes(range(20))
    real_write = timing.write_some
    stalls: list[int] = []

    def write_then_stall(fd: int, chunk: bytes) -> None:
        real_write(fd, chunk)
        if not stalls:
            stalls.append(len(chunk))
            time.sleep(10 * char)

    monkeypatch.setattr(timing, "write_some", write_then_stall)
    try:
        out = paced_write(writer, data, char, listen=3.5 * char)
        assert not out.cut and not out.heard
        assert out.gap >= 10 * char
        assert _read_n(reader, len(data)) == data  # the rest went out (a pty may hand it in parts)
    finally:
        os.close(writer)
        os.close(reader)
