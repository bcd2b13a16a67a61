"""Whatever a sensor sends, QC and derived products answer with flags and never raise."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from qc_readings import T0

from agent.derived import DerivedEngine
from agent.flags import Flag, Reason
from agent.qc import QCEngine
from roadside.records import DriverStatus, Reading

CHANNELS = ["rain_total", "wind_speed", "wind_dir", "wind_gust", "water_depth", "water_distance",
            "rain_intensity", "uptime"]  # fmt: skip
REASONS = {"", *(r.value for r in Reason), *(s.value for s in DriverStatus)}

values = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-100, 5000),
    st.just("12.5#"),
)
readings = st.builds(
    lambda ch, sensor, dt, value, status: Reading(
        "st",
        sensor,
        ch,
        T0 + timedelta(seconds=dt),
        None if status != "ok" else value,
        "",
        None,
        DriverStatus(status),
    ),
    st.sampled_from(CHANNELS),
    st.sampled_from(["a", "b"]),
    st.floats(-600, 7200, allow_nan=False),
    values,
    st.sampled_from(["ok", "ok", "ok", "timeout", "counter_reset"]),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(readings, min_size=1, max_size=6), min_size=1, max_size=30))
def test_any_input_gets_flags_and_products(batches: list[list[Reading]]) -> None:
    qc, derived = QCEngine(), DerivedEngine()
    for batch in batches:
        flagged = qc.process(batch)
        assert [f.reading for f in flagged] == batch
        for f in flagged:
            assert isinstance(f.flag, Flag) and f.reason in REASONS
            if f.reading.value is None or isinstance(f.reading.value, str):
                assert f.flag in (Flag.MISSING, Flag.WRONG)
        for d in derived.update(flagged, max(r.time for r in batch)):
            assert 0.0 <= d.completeness <= 1.0
            assert (d.value is None) == (d.flag is Flag.MISSING)
