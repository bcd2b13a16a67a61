"""ArrayTruth: seeded, consistent between channels, and sampled correctly between seconds."""

import numpy as np
import pytest

from sim.spec import SiteSpec, Truth
from sim.weather.rain import shanghai_intensity_mmh
from sim.weather.truth import ArrayTruth, build_truth

STORM = {
    "kind": "chicago",
    "return_period_y": 5,
    "duration_min": 60,
    "start_min": 10,
    "jitter": 0.2,
}
WIND = {"kind": "gusty", "mean_ms": 6.0}
FIELDS = (
    "rain_intensity_mmh",
    "rain_total_mm",
    "wind_speed_ms",
    "wind_dir_deg",
    "wind_gust_ms",
    "water_depth_mm",
)


def _truth(
    seed: int = 1, storm: dict | None = None, wind: dict | None = None, minutes: int = 120
) -> ArrayTruth:
    return build_truth(storm or STORM, wind or WIND, SiteSpec(), seed, minutes * 60)


def test_same_seed_same_truth_other_seed_other_truth() -> None:
    a, b, c = _truth(1), _truth(1), _truth(2)
    for name in FIELDS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert not np.array_equal(a.rain_intensity_mmh, c.rain_intensity_mmh)
    assert not np.array_equal(a.wind_speed_ms, c.wind_speed_ms)


def test_rain_does_not_depend_on_the_wind() -> None:
    calm = _truth(3, wind={"kind": "calm"})
    windy = _truth(3, wind={"kind": "squall"})
    assert np.array_equal(calm.rain_intensity_mmh, windy.rain_intensity_mmh)
    assert np.array_equal(calm.water_depth_mm, windy.water_depth_mm)


def test_rain_total_is_the_integral_and_keeps_the_storm_depth() -> None:
    t = _truth()
    as_protocol: Truth = t
    assert as_protocol.sample(0).rain_total_mm == 0.0
    assert t.duration_s == 7200.0 and t.t_s.size == 7201
    assert np.allclose(np.diff(t.rain_total_mm), t.rain_intensity_mmh[:-1] / 3600.0)
    assert t.rain_total_mm[-1] == pytest.approx(shanghai_intensity_mmh(5, 60), rel=1e-9)
    assert not t.rain_intensity_mmh[: 10 * 60].any(), "dry before the storm starts"
    assert not t.rain_intensity_mmh[70 * 60 :].any(), "dry after it ends"
    assert t.rain_intensity_mmh[10 * 60 : 70 * 60].all()


def test_sample_interpolates_totals_and_clamps() -> None:
    t = _truth()
    k = 30 * 60
    s0, s_half, s1 = t.sample(k), t.sample(k + 0.5), t.sample(k + 1)
    assert s0.rain_total_mm < s_half.rain_total_mm < s1.rain_total_mm
    assert s_half.rain_total_mm == pytest.approx((s0.rain_total_mm + s1.rain_total_mm) / 2)
    assert s_half.wind_speed_ms == s0.wind_speed_ms
    assert t.sample(-5) == t.sample(0)
    assert t.sample(1e9).rain_total_mm == pytest.approx(t.rain_total_mm[-1])
    assert t.sample(k).water_depth_mm == t.water_depth_mm[k]
    assert t.sample(k).wind_gust_ms >= t.sample(k).wind_speed_ms


def test_water_follows_the_rain() -> None:
    t = _truth(storm={**STORM, "return_period_y": 20}, minutes=240)
    peak = int(t.water_depth_mm.argmax())
    assert 10 * 60 < peak < 100 * 60
    assert t.water_depth_mm.max() > 50.0
    assert t.water_depth_mm[-1] == 0.0


@pytest.mark.parametrize(
    "storm",
    [
        {"kind": "two_peak", "return_period_y": 2, "duration_min": 60},
        {"kind": "drizzle", "duration_min": 60, "intensity_mmh": 0.5},
        {"kind": "dry"},
    ],
)
def test_every_storm_kind_builds(storm: dict) -> None:
    t = _truth(storm=storm)
    assert (t.rain_intensity_mmh >= 0).all()
    assert (np.diff(t.rain_total_mm) >= 0).all()
    assert (t.water_depth_mm >= 0).all()


def test_array_truth_refuses_mismatched_arrays() -> None:
    t = _truth()
    with pytest.raises(ValueError, match="wind_gust_ms"):
        ArrayTruth(
            t_s=t.t_s,
            rain_intensity_mmh=t.rain_intensity_mmh,
            rain_total_mm=t.rain_total_mm,
            wind_speed_ms=t.wind_speed_ms,
            wind_dir_deg=t.wind_dir_deg,
            wind_gust_ms=t.wind_gust_ms[:-1],
            water_depth_mm=t.water_depth_mm,
        )
