"""WindSonic unsolicited frames and WXT polled answers on ASCII ptys, with their faults."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest

from roadside.clock import ScaledClock
from sim.devices import windsonic
from sim.spec import BusSpec, DeviceSpec

FRAME = re.compile(rb"\x02(Q),(\d{3})?,(\d{3}\.\d{2}),M,(\d{2}),\x03([0-9A-F]{2})\r\n")


def test_domain_example_checksum():
    assert windsonic.checksum("Q,036,002.57,M,00,") == "1B"
    assert windsonic.frame("Q,036,002.57,M,00,") == b"\x02Q,036,002.57,M,00,\x031B\r\n"


def test_calm_has_no_direction():
    assert windsonic.body(0.04, 200.0) == "Q,,000.04,M,00,"
    assert windsonic.body(0.05, 359.7) == "Q,000,000.05,M,00,"


@pytest.fixture
def sonic(make_station, make_scenario, ramp):
    """A WindSonic at 20 frames per real second (scenario clock x20)."""
    clock = ScaledClock(datetime(2026, 7, 21, 12, 30, tzinfo=UTC), speed=20)
    bus = BusSpec("rs232-1", "ascii", 9600, link="ttyRS232-1", pacing=False)
    sc = make_scenario(buses=(bus,), devices=(DeviceSpec("wind", "gill-windsonic", "rs232-1"),))
    return make_station(sc, clock)


def lines(port, n: int) -> list[bytes]:
    data = port.read(2.0, quiet_s=1.0) if n == 0 else b""
    while n and data.count(b"\n") < n + 1:
        more = port.read(0.5, quiet_s=0.5)
        if not more:
            break
        data += more
    return data.split(b"\n")[1 : n + 1] if n else data.split(b"\n")


def test_windsonic_streams_valid_frames(sonic, raw, ramp):
    port = raw(sonic.endpoints["wind"].port)
    frames = [ln + b"\n" for ln in lines(port, 5)]
    assert len(frames) == 5
    for f in frames:
        m = FRAME.fullmatch(f)
        assert m, f
        text = f[1 : f.index(b"\x03")].decode()
        assert m.group(5).decode() == windsonic.checksum(text)
        assert int(m.group(2)) == 135
        t = sonic.scenario_time()
        assert float(m.group(3)) == pytest.approx(ramp.sample(t).wind_speed_ms, abs=0.05)


@pytest.mark.parametrize(
    ("kind", "params", "check"),
    [
        ("crc_error", {}, lambda fs: all(m is None or not _sum_ok(f) for f, m in fs)),
        ("truncated", {}, lambda fs: all(b"\r" not in f or len(f) < 15 for f, _ in fs)),
        ("garbage", {"length": 12}, lambda fs: all(FRAME.fullmatch(f) is None for f, _ in fs)),
        ("wrong_slave", {}, lambda fs: all(f[1:2] == b"R" for f, _ in fs)),
        (
            "drift",
            {"rate_per_h": 36000.0, "channel": "wind_speed"},
            lambda fs: all(m and float(m[3]) > 15 and m[2] == b"135" for f, m in fs),
        ),
        ("stuck", {"status": "04"}, lambda fs: all(m and m[4] == b"04" for f, m in fs)),
    ],
)
def test_windsonic_faults(sonic, raw, kind, params, check):
    port = raw(sonic.endpoints["wind"].port)
    sonic.inject("wind", kind, **params)
    port.read(0.15)  # frames sent before the fault
    data = port.read(0.3, quiet_s=0.3)
    chunks = [c + b"\n" for c in data.split(b"\n")[1:-1]] if kind != "truncated" else [data]
    if kind == "garbage":
        chunks = [data]
    assert chunks
    assert check([(c, FRAME.fullmatch(c)) for c in chunks])


def _sum_ok(frame: bytes) -> bool:
    text = frame[1 : frame.index(b"\x03")].decode()
    return frame[frame.index(b"\x03") + 1 : -2].decode() == windsonic.checksum(text)


def test_windsonic_no_answer_is_silence(sonic, raw):
    port = raw(sonic.endpoints["wind"].port)
    sonic.inject("wind", "no_answer")
    port.read(0.2)
    assert port.read(0.3, quiet_s=0.3) == b""


@pytest.fixture
def wxt(station, raw):
    return raw(station.endpoints["wxt"].port, 19200)


def fields(reply: bytes) -> dict[str, str]:
    return dict(p.split("=") for p in reply.decode().strip().split(",")[1:])


def test_wxt_answers_polls(station, wxt, clock):
    clock.advance(1800)  # 18 mm, 5 m/s, gust 7.5 m/s
    r1 = wxt.transact(b"0R1\r\n")
    assert r1.startswith(b"0R1,") and r1.endswith(b"\r\n")
    f = fields(r1)
    assert (f["Dm"], f["Sm"], f["Sx"]) == ("135D", "5.0M", "7.5M")
    r3 = fields(wxt.transact(b"0R3\r\n"))
    assert r3["Rc"] == "18.00M" and r3["Ri"] == "36.0M" and r3["Rd"] == "1800s"
    r0 = wxt.transact(b"0R0\r\n")
    assert r0.startswith(b"0R0,") and fields(r0)["Rc"] == "18.00M"
    assert wxt.transact(b"0R5\r\n").startswith(b"0R5,Th=")
    assert wxt.transact(b"?\r\n") == b"0\r\n"
    assert wxt.transact(b"1R1\r\n") == b""  # another address: silence


def test_wxt_rain_reset(station, wxt, clock):
    clock.advance(600)
    assert fields(wxt.transact(b"0R3\r\n"))["Rc"] == "6.00M"
    assert wxt.transact(b"0XZRU\r\n") == b"0TX,Rain reset\r\n"
    assert fields(wxt.transact(b"0R3\r\n"))["Rc"] == "0.00M"
    clock.advance(100)
    assert fields(wxt.transact(b"0R3\r\n"))["Rc"] == "1.00M"


def test_wxt_marks_invalid_values(station, wxt):
    station.inject("wxt", "stuck", invalid=True)
    f = fields(wxt.transact(b"0R1\r\n"))
    assert all(v.endswith("#") for v in f.values())


def test_wxt_frame_faults(station, wxt):
    station.inject("wxt", "crc_error")
    hit = wxt.transact(b"0R1\r\n")
    assert any(b > 0x7F for b in hit)
    station.clear("wxt")
    station.inject("wxt", "wrong_slave", address=3)
    assert wxt.transact(b"0R1\r\n").startswith(b"3R1,")
    station.clear("wxt")
    station.inject("wxt", "wrong_slave", address="B")
    assert wxt.transact(b"0R1\r\n").startswith(b"BR1,")
    station.clear("wxt")
    station.inject("wxt", "truncated")
    cut = wxt.transact(b"0R1\r\n")
    assert cut and not cut.endswith(b"\r\n")


def test_windsonic_sends_one_frame_per_scenario_second(sonic, raw):
    port = raw(sonic.endpoints["wind"].port)
    port.read(0.1)
    t0 = sonic.scenario_time()
    data = port.read(1.0, quiet_s=1.0)
    seconds = sonic.scenario_time() - t0  # about 20 at x20
    assert abs(data.count(b"\x02") - seconds) <= 3


def test_wxt_paced_answer_takes_its_wire_time(make_station, make_scenario, raw):
    bus = BusSpec("rs485-2", "ascii", 19200, link="ttyRS485-2", pacing=True, turnaround_ms=5.0)
    st = make_station(
        make_scenario(buses=(bus,), devices=(DeviceSpec("wxt", "vaisala-wxt530", "rs485-2"),))
    )
    port = raw(st.endpoints["wxt"].port, 19200)
    port.ser.timeout = 1.0
    times = []
    for _ in range(3):
        t0 = time.monotonic()
        port.ser.write(b"0R5\r\n")
        answer = port.ser.readline()
        times.append(time.monotonic() - t0)
    floor = (5 + len(answer)) * 10 / 19200 + 0.005
    assert answer.startswith(b"0R5,")
    assert floor - 0.0005 <= min(times) < floor + 0.01
