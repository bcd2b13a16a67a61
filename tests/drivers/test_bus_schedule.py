"""The bus scheduler running in its thread against the simulated station: intervals on clock
boundaries, a failing device backing off without stalling the others, a vanishing port, the
inter-frame silence on a paced bus.

The scheduler runs on the manual clock: it moves only when the scheduler waits for its next poll,
so how many polls fall into a stretch of scenario time does not depend on how busy the machine
is. Tests wait on conditions (scenario time reached, a status seen), never on fixed sleeps; only
the device timeouts are real time, and they are generous.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from datetime import UTC, datetime
from threading import Lock

import pytest

from drivers.bus import BusScheduler, open_buses
from roadside.clock import ManualClock, ScaledClock

START = datetime(2026, 7, 21, 12, tzinfo=UTC)
INTERVAL = 1.0  # scenario seconds
TIMEOUT_S = 0.25  # real seconds a silent device costs (the clock stands still meanwhile)
RUN_S = 7.0  # scenario seconds a scheduler runs
POLLS = 6  # polls of each device in it: at 1, 2, ... 6 s (the first boundary after the start)
REAL_LIMIT_S = 60.0  # real seconds before a condition counts as never reached


@pytest.fixture
def live(make_station, make_configs, make_scenario):
    """An RTU bus of three slaves (rain, level, anemo), its batches collected by sensor."""
    batches: dict[str, list] = defaultdict(list)
    lock = Lock()
    clock = ManualClock(START)

    def sink(readings):
        with lock:
            batches[readings[0].sensor].append(readings)

    station = make_station(None, clock)
    cfgs = make_configs(station, INTERVAL, "rain", "level", "anemo")
    bus = BusScheduler(
        cfgs[0].port, cfgs, station="st", clock=clock, sink=sink, timeout_s=TIMEOUT_S
    )
    yield station, bus, batches, clock
    bus.stop()


def wait_until(cond, what: str) -> None:
    deadline = time.monotonic() + REAL_LIMIT_S
    while not cond():
        assert time.monotonic() < deadline, f"never reached: {what}"
        time.sleep(0.01)


def run(bus: BusScheduler, clock: ManualClock, scenario_s: float) -> None:
    """Run the scheduler until the clock has passed ``scenario_s``."""
    bus.start()
    wait_until(lambda: clock.monotonic() >= scenario_s, f"{scenario_s} scenario seconds")
    bus.stop()


def within(batches, scenario_s: float) -> list:
    """The batches polled in the first ``scenario_s`` (the clock runs on until stop)."""
    return [b for b in batches if (b[0].time - START).total_seconds() < scenario_s]


def statuses(batches) -> set[str]:
    return {r.status.value for b in batches for r in b}


def test_polls_keep_their_interval_on_clock_boundaries(live):
    _, bus, batches, clock = live
    run(bus, clock, RUN_S)
    for name in ("rain", "level", "anemo"):
        mine = within(batches[name], RUN_S)
        assert len(mine) == POLLS, (name, len(mine))
        assert statuses(mine) == {"ok"}
        for b in mine:
            frac = b[0].time.timestamp() % INTERVAL
            assert frac < 0.5 * INTERVAL, b[0].time  # polled after the boundary, in turn
        times = [b[0].time.timestamp() for b in mine]
        assert all(round(t2 - t1) >= 1 for t1, t2 in itertools.pairwise(times))


@pytest.mark.parametrize(
    ("kind", "params", "shows"),
    [
        ("no_answer", {}, {"timeout", "breaker_open"}),
        # answering after the run: a late reply would be taken for the answer to a later request
        ("slow_answer", {"delay_s": 30.0}, {"timeout", "breaker_open"}),
        ("crc_error", {}, {"crc_error", "breaker_open"}),
        ("truncated", {}, {"bad_frame", "breaker_open"}),
        ("garbage", {}, {"bad_frame", "breaker_open"}),
        ("wrong_slave", {}, {"wrong_device", "breaker_open"}),
    ],
)
def test_a_failing_device_does_not_stall_the_others(live, kind, params, shows):
    station, bus, batches, clock = live
    station.inject("level", kind, **params)
    run(bus, clock, RUN_S)
    for good in ("rain", "anemo"):
        assert len(within(batches[good], RUN_S)) == POLLS, (good, len(batches[good]))
        assert statuses(batches[good]) == {"ok"}, [
            (r.time, r.status, r.detail) for b in batches[good] for r in b if not r.ok
        ]
    assert statuses(batches["level"]) == shows
    health = bus.health()
    assert health["rain"].state == "ok" and health["anemo"].state == "ok"
    h = health["level"]
    assert h.state == "failed" and h.breaker in ("open", "half_open")
    assert h.counts["skipped"] >= 2  # backing off: the bus was not spent on it
    assert h.last_error.split(":")[0] in shows


def test_backing_off_device_comes_back_when_it_answers_again(live):
    station, bus, batches, clock = live
    station.inject("level", "no_answer", duration_s=3.0)  # scenario seconds
    run(bus, clock, 9.0)  # fails 3 times, backs off 2 s, tries again at 5 s and gets an answer
    last = within(batches["level"], 9.0)[-1]
    assert statuses([last]) == {"ok"}, last
    assert bus.health()["level"].state == "ok"
    assert bus.health()["level"].counts["timeout"] >= 1


def test_a_vanished_port_is_reopened_when_it_returns(live):
    station, bus, batches, _ = live
    names = ("rain", "level", "anemo")
    bus.start()
    wait_until(lambda: all(batches[n] for n in names), "a first poll of every device")
    station.inject("rain", "port_vanish", duration_s=2.0)  # the whole bus goes

    def back(name: str) -> bool:
        seen = [next(iter(statuses([b]))) for b in list(batches[name])]
        return "port_unavailable" in seen and seen[-1] == "ok"

    wait_until(lambda: all(back(n) for n in names), "the port gone and back")
    bus.stop()
    for name in names:
        seen = [next(iter(statuses([b]))) for b in batches[name]]
        assert "port_unavailable" in seen, (name, seen)
        gone = seen.index("port_unavailable")
        assert "ok" in seen[:gone] and seen[-1] == "ok", (name, seen)
    assert all(h.state == "ok" for h in bus.health().values())


def test_adaptive_interval_and_a_failing_sink(live):
    _, bus, _, clock = live
    seen: list[str] = []

    def flaky(readings):
        if (readings[0].time - START).total_seconds() < RUN_S:
            seen.append(readings[0].sensor)
        if len(seen) % 2:
            raise RuntimeError("downstream hiccup")

    bus.sink = flaky
    bus.set_interval("rain", 0.5)
    run(bus, clock, RUN_S)
    assert bus.interval("rain") == 0.5
    assert seen.count("level") >= 5 and seen.count("anemo") >= 5  # polling went on
    assert seen.count("rain") >= 1.5 * seen.count("level")  # twice as often


def judged(counts: dict[str, int]) -> int:
    """Requests an RTU line has dealt with: answered, refused as merged or corrupt, not for it."""
    return sum(counts[k] for k in ("answered", "merged", "bad_crc", "ignored"))


def test_the_master_keeps_the_inter_frame_silence_on_a_paced_bus(make_station, make_configs):
    clock = ScaledClock(START, speed=1.0)
    station = make_station(None, clock, pacing=True)
    cfgs = make_configs(station, 1.0, "rain", "level", "anemo")
    counts = station.buses["rs485-1"].counts
    # a generous answer timeout: what is under test is the silence between frames, and the
    # simulator shares this process's GIL with the master on a loaded machine
    [bus] = open_buses(cfgs, station="st", clock=clock, sink=lambda b: None, timeout_s=3.0)
    broken = 0  # answers the simulator itself broke (descheduled mid-frame: see paced_write)
    try:
        for asked, name in enumerate(("rain", "level", "anemo") * 10, start=1):
            gapped = counts["gapped"]
            got = bus.poll_once(name)
            if statuses([got]) != {"ok"}:  # the line may still be sending the answer: let it end
                wait_until(lambda n=asked: judged(counts) >= n, "the simulator done with it")
                if counts["gapped"] > gapped:
                    broken += 1
                    continue
            assert statuses([got]) == {"ok"}, (name, got, dict(counts))
    finally:
        bus.stop()
    wait_until(lambda: counts["answered"] >= 30, "the simulator's count of its answers")
    assert counts["answered"] == 30
    assert counts["merged"] == 0 and counts["bad_crc"] == 0
    assert broken <= 10, dict(counts)  # most transactions were whole: the silence was tested
