"""Wind: gusts never below the speed, seeded, and the shapes of squalls and typhoons."""

import numpy as np
import pytest

from sim.weather.wind import WIND_KINDS, wind_series


@pytest.mark.parametrize("kind", WIND_KINDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gust_is_never_below_speed(kind: str, seed: int) -> None:
    w = wind_series(kind, 3 * 3600, np.random.default_rng(seed))
    assert w.speed.shape == w.gust.shape == w.direction.shape == (3 * 3600,)
    assert (w.gust >= w.speed).all()
    assert (w.speed >= 0).all()
    assert ((w.direction >= 0) & (w.direction < 360)).all()
    # and never below the mean wind over the trailing 10 minutes (the gust window)
    ten_min = np.convolve(w.speed, np.ones(600) / 600, mode="valid")
    assert (w.gust[599:] >= ten_min - 1e-9).all()


def test_gusty_wind_has_its_mean_and_gust_factor() -> None:
    w = wind_series("gusty", 6 * 3600, np.random.default_rng(5), mean_ms=8.0, gust_factor=1.5)
    assert w.speed.mean() == pytest.approx(8.0, rel=0.05)
    # peak 3-s gust per 10-minute block over its mean: about the gust factor
    blocks = w.speed.reshape(-1, 600)
    means = blocks.mean(axis=1)
    gusts = w.gust.reshape(-1, 600).max(axis=1)
    factor = float(np.median(gusts / means))
    assert 1.3 < factor < 1.8


def test_direction_wanders_around_its_mean() -> None:
    w = wind_series("gusty", 4 * 3600, np.random.default_rng(2), direction_deg=90, wander_deg=15)
    offsets = (w.direction - 90 + 180) % 360 - 180
    assert abs(float(np.median(offsets))) < 15
    assert offsets.std() > 3, "the direction does wander"
    assert np.abs(offsets).max() < 90


def test_same_seed_same_wind_other_seed_other_wind() -> None:
    a = wind_series("gusty", 3600, np.random.default_rng(7))
    b = wind_series("gusty", 3600, np.random.default_rng(7))
    c = wind_series("gusty", 3600, np.random.default_rng(8))
    assert np.array_equal(a.speed, b.speed) and np.array_equal(a.direction, b.direction)
    assert not np.array_equal(a.speed, c.speed)


def test_squall_front_jumps_and_veers() -> None:
    w = wind_series(
        "squall", 2 * 3600, np.random.default_rng(1), mean_ms=3, peak_ms=22, front_min=30
    )
    before = w.speed[20 * 60 : 29 * 60].mean()
    just_after = w.speed[31 * 60 : 36 * 60].mean()
    late = w.speed[110 * 60 :].mean()
    assert before < 5 and just_after > 15 and late < just_after / 2
    rise_window = w.speed[29 * 60 : 32 * 60]
    assert rise_window.max() > 3 * before, "sudden"
    dir_before = np.median(w.direction[20 * 60 : 29 * 60])
    dir_after = np.median(w.direction[32 * 60 : 40 * 60])
    assert 45 < (dir_after - dir_before) % 360 < 135


def test_typhoon_rises_for_hours_then_falls_and_veers() -> None:
    w = wind_series("typhoon", 12 * 3600, np.random.default_rng(3), centre_min=360)
    hourly = w.speed.reshape(12, 3600).mean(axis=1)
    peak_hour = int(hourly.argmax())
    assert 4 <= peak_hour <= 7
    assert (np.diff(hourly[: peak_hour - 1]) > 0).all(), "long rise"
    assert (np.diff(hourly[peak_hour + 2 :]) < 0).all(), "long fall"
    assert hourly.max() > 1.8 * hourly[0]
    first = np.median(w.direction[:3600])
    last = np.median(w.direction[-3600:])
    assert (last - first) % 360 > 90, "veers as the centre passes"


def test_unknown_kind_or_parameter_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown wind kind"):
        wind_series("tornado", 60, np.random.default_rng(0))
    with pytest.raises(ValueError, match="peak_ms"):
        wind_series("gusty", 60, np.random.default_rng(0), peak_ms=3)
