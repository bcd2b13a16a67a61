"""Rain counters: rollover and resets never make the total go backwards or count twice."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.counter import RainCounter
from drivers.profile import load_profile
from drivers.samples import Sample, make_counter, to_readings
from roadside.records import DriverStatus

T0 = datetime(2026, 7, 21, 12, tzinfo=UTC)


def run(counter: RainCounter, raws: list[float], dt: float = 10.0) -> list[tuple[float, str]]:
    return [
        (step.total, step.status.value)
        for i, raw in enumerate(raws)
        for step in [counter.update(raw, i * dt)]
    ]


def test_forward_steps_add_up():
    assert run(RainCounter(65536), [100, 105, 105, 130]) == [
        (100, "ok"),
        (105, "ok"),
        (105, "ok"),
        (130, "ok"),
    ]


def test_rollover_continues_the_total():
    c = RainCounter(65536, max_rate=10.0)
    assert run(c, [65530, 4, 20])[-1] == (65536 + 20, "ok")


def test_reset_holds_the_total_and_counts_on_from_the_new_value():
    c = RainCounter(65536, max_rate=10.0)
    out = run(c, [500, 520, 3, 10])
    assert out == [(500, "ok"), (520, "ok"), (520, "counter_reset"), (527, "ok")]


def test_reset_near_rollover_is_not_taken_for_a_wrap_when_rates_say_so():
    # 60000 -> 5 would be a wrap of 5541 counts; at most 100 counts fit in 10 s
    c = RainCounter(65536, max_rate=10.0)
    assert run(c, [60000, 5])[-1] == (60000, "counter_reset")


def test_without_a_rate_a_small_wrap_is_a_wrap_and_a_big_one_a_reset():
    assert run(RainCounter(1000), [990, 5])[-1] == (1005, "ok")
    assert run(RainCounter(1000), [400, 5])[-1] == (400, "counter_reset")


def test_a_reset_just_below_rollover_looks_like_a_wrap():
    """The one ambiguous case: 65535 -> 20 within 10 s is a plausible wrap, and is taken as one."""
    c = RainCounter(65536, max_rate=10.0)
    assert run(c, [65535, 20])[-1] == (65556, "ok")


def test_values_outside_the_counter_are_refused_without_moving_it():
    c = RainCounter(1000)
    run(c, [10])
    assert c.update(1000, 20).status is DriverStatus.BAD_FRAME
    assert c.update(-1, 20).status is DriverStatus.BAD_FRAME
    assert c.update(12, 30).total == 12


def test_state_survives_a_restart():
    a = RainCounter(65536, max_rate=10.0)
    run(a, [100, 65530])
    b = RainCounter(65536, max_rate=10.0)
    b.restore(a.state())
    assert b.update(10, 30).total == pytest.approx(65530 + 16)  # wrapped while we were away
    c = RainCounter(65536, max_rate=10.0)
    c.restore({})
    assert c.update(7, 0).total == 7


def test_float_counters_of_an_ascii_device():
    c = RainCounter(100000.0, max_rate=1.0)
    assert run(c, [12.5, 12.75, 0.25, 1.0]) == [
        (12.5, "ok"),
        (12.75, "ok"),
        (12.75, "counter_reset"),
        (13.5, "ok"),
    ]


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("rain"), st.integers(0, 90)),
            st.tuples(st.just("reset"), st.integers(0, 20)),
        ),
        max_size=60,
    ),
    st.integers(0, 65535),
)
def test_total_never_decreases_and_counts_every_step_once(events, start):
    """A gauge that rains, wraps and power-cycles: the total never goes back, never exceeds the
    rain that fell, and misses at most the rain between a power-on and the next read."""
    c = RainCounter(65536, max_rate=10.0)
    device, fell, may_miss, t = start, float(start), 0.0, 0.0
    last_total = c.update(device, t).total
    for kind, n in events:
        t += 10.0
        if kind == "rain" or device > 65536 - 100:  # (see test_a_reset_just_below_rollover...)
            device = (device + n) % 65536
        else:
            device = n  # power cycle: restarts from 0, then n counts of rain before the read
            may_miss += n
        fell += n
        step = c.update(device, t)
        assert step.total >= last_total
        last_total = step.total
    assert fell - may_miss <= last_total <= fell


def test_to_readings_scales_counts_and_reports_reset_without_a_value():
    profile = load_profile("dfrobot-sen0575")
    fields = {c.name: c for c in profile.channels}
    counters = {"rain_total": make_counter(fields["rain_total"])}
    assert counters["rain_total"] is not None

    def read(raw: int, t: int) -> tuple[float | None, str]:
        [r] = to_readings(
            [Sample("rain_total", raw, float(raw))],
            fields,
            counters,  # type: ignore[arg-type]
            station="st",
            sensor="rain",
            time=T0.replace(second=t),
        )
        assert r.unit == "mm" and r.raw == raw and r.sensor == "rain"
        return r.value, r.status.value

    assert read(100000, 0) == (10.0, "ok")
    assert read(101000, 10) == (10.1, "ok")
    assert read(0, 20) == (None, "counter_reset")
    assert read(2000, 30) == (10.3, "ok")
