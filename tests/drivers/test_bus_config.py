"""Configurations a bus refuses before touching the port, each with one clear message."""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

import pytest

from drivers.bus import BusScheduler, DeviceConfig, open_buses
from drivers.errors import PortError, ProfileError
from drivers.profile import load_profile
from roadside.clock import Doorbell, ManualClock, SystemClock
from roadside.structs import replace

P = "/dev/ttyNOPE"


def dev(name: str, profile: str, port: str = P, slave: int | None = None, **kw) -> DeviceConfig:
    return DeviceConfig(name, load_profile(profile), port, slave, **kw)


def bus(*devices: DeviceConfig) -> BusScheduler:
    return BusScheduler(P, devices, station="st", clock=ManualClock(), sink=lambda b: None)


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ((dev("a", "hlk-ld8001h"), dev("a", "generic-rain-gauge", slave=4)), "names repeated"),
        ((dev("a", "hlk-ld8001h"), dev("b", "generic-rain-gauge")), "share an address"),
        ((dev("a", "hlk-ld8001h"), dev("w", "gill-windsonic")), "cannot mix protocols"),
        ((dev("w", "gill-windsonic"), dev("v", "gill-windsonic")), "needs its own port"),
        ((dev("a", "hlk-ld8001h"), dev("x", "vaisala-wxt530", slave=3)), "mix protocols"),
        ((dev("a", "hlk-ld8001h"), dev("b", "generic-rain-gauge", "/dev/other", 4)), "another"),
        ((), "no devices"),
    ],
)
def test_refused_bus_layouts(devices, message):
    with pytest.raises(PortError, match=message) as err:
        bus(*devices)
    assert err.value.reason == "config"


def test_one_bus_one_baud_rate():
    hlk = load_profile("hlk-ld8001h")
    fast = replace(hlk, serial=replace(hlk.serial, baudrate=19200))
    with pytest.raises(PortError, match="a and b disagree on serial settings"):
        bus(dev("a", "generic-rain-gauge"), DeviceConfig("b", fast, P, 3))


def test_unknown_channel_names_the_profile():
    with pytest.raises(ProfileError, match=r"hlk-ld8001h.toml: device 'a': no channel \['flow'\]"):
        bus(dev("a", "hlk-ld8001h", channels=("water_depth", "flow")))


def test_open_buses_groups_by_port_in_order():
    devices = [
        dev("a", "hlk-ld8001h", "/dev/ttyA"),
        dev("w", "gill-windsonic", "/dev/ttyB"),
        dev("b", "generic-rain-gauge", "/dev/ttyA", 4),
        dev("t", "generic-rain-gauge", "tcp://127.0.0.1:1502"),
    ]
    buses = open_buses(devices, station="st", clock=ManualClock(), sink=lambda b: None)
    assert [(b.port, b.devices) for b in buses] == [
        ("/dev/ttyA", ["a", "b"]),
        ("/dev/ttyB", ["w"]),
        ("tcp://127.0.0.1:1502", ["t"]),
    ]


def test_a_poll_on_a_missing_port_is_a_reading_not_an_exception():
    b = bus(dev("a", "hlk-ld8001h"))
    readings = b.poll_once("a")
    assert {r.status.value for r in readings} == {"port_unavailable"}
    assert all("does not exist" in r.detail for r in readings)
    assert b.health()["a"].state == "failed"


def test_a_bus_asleep_on_the_real_clock_wakes_for_a_new_interval_and_for_stop():
    """The scheduler sleeps on a :class:`~roadside.clock.Doorbell` (poll(2) on a pipe): a long
    sleep is cut short by ``set_interval`` and by ``stop``."""
    got: list[list[object]] = []
    seen = threading.Event()

    def sink(batch: list[object]) -> None:
        got.append(batch)
        seen.set()

    device = dev("a", "hlk-ld8001h", interval_s=86400.0)
    b = BusScheduler(P, [device], station="st", clock=SystemClock(), sink=sink)
    b.start()
    try:
        assert not seen.wait(0.3)  # the first poll is at the next midnight (UTC)
        b.set_interval("a", 0.05)
        assert seen.wait(10)  # woken at once, not at midnight
        assert b._thread is not None  # and named for top -H and the benchmark's figures
        comm = Path(f"/proc/self/task/{b._thread.native_id}/comm").read_text().strip()
        assert comm == "bus ttyNOPE"
        b.set_interval("a", 86400.0)
    finally:
        thread = b._thread
        started = time.monotonic()
        b.stop()
    assert thread is not None and not thread.is_alive()
    assert time.monotonic() - started < 5  # not the day's sleep
    assert got and got[0][0].status.value == "port_unavailable"


def test_the_doorbell_wakes_a_waiter_and_drains_on_clear():
    bell = Doorbell()
    assert not bell.is_set() and not bell.wait(0.01)
    for _ in range(100_000):  # more than the pipe holds: set never blocks
        bell.set()
        bell._set = False
    bell.clear()  # not set: nothing to drain, the bytes stay for now
    assert not bell.wait(0.01)  # stale bytes (sets a clear overtook) wake it once and drain
    assert bell._poll.poll(0) == []  # so the next wait sleeps: no busy loop
    bell.set()
    bell.clear()
    assert bell._poll.poll(0) == [] and not bell.wait(0.01)  # a clear after a set drains
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda b: woke.append(b.wait(30)), args=(bell,))
    waiter.start()
    bell.set()
    waiter.join(10)
    assert woke == [True] and bell.is_set() and bell.wait(30)
    read_end = bell._read
    del bell
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(read_end)  # the pipe closed with the object
