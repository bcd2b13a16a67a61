"""Whatever bytes a driver sends, a simulated slave answers per the protocol or stays silent."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.profile import load_profile
from sim.devices.device import SimDevice
from sim.devices.modbus import crc_ok, respond, rtu_frame
from sim.spec import DeviceSpec, SiteSpec

pdus = st.binary(min_size=0, max_size=40) | st.builds(
    lambda fc, rest: bytes([fc]) + rest,
    st.sampled_from([1, 2, 3, 4, 5, 6, 15, 16, 43]),
    st.binary(max_size=20),
)


@pytest.fixture
def device(ramp) -> SimDevice:
    spec = DeviceSpec("level", "hlk-ld8001h", "b", 1)
    return SimDevice(spec, load_profile("hlk-ld8001h"), ramp, SiteSpec(), 1)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pdu=pdus, t=st.floats(-100, 20000))
def test_any_pdu_gets_a_normal_or_exception_answer(device, pdu, t):
    reply = respond(device, pdu, t, 9600)
    fc = pdu[0] if pdu else 0
    assert reply[0] in (fc, fc | 0x80)
    if reply[0] & 0x80:
        assert len(reply) == 2 and reply[1] in (1, 2, 3)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(noise=st.binary(min_size=1, max_size=64))
def test_noise_on_the_line_never_stops_the_bus(station, raw, noise):
    port = raw(station.endpoints["level"].port)
    line = station.buses["rs485-1"]
    frames = line.counts["frames"]
    port.transact(noise, wait_s=0.05, quiet_s=0.03)
    # a silence ends whatever the noise started; on a loaded machine the simulator's thread may
    # not run during it, so the request waits until the line has taken the noise as frames
    deadline = time.monotonic() + 10.0
    while line.counts["frames"] == frames or line.pending:
        assert time.monotonic() < deadline, "the noise never ended a frame"
        time.sleep(0.005)
    port.ser.reset_input_buffer()
    reply = port.transact(rtu_frame(1, bytes([3, 0, 5, 0, 1])), wait_s=0.5)
    assert crc_ok(reply) and reply[:3] == bytes([1, 3, 2])
    port.close()
