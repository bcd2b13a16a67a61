"""Features: what each one means, masking of flagged inputs, batch and single agree."""

from __future__ import annotations

import numpy as np
import pytest

from edge_models.features import (
    FEATURES,
    WINDOW_MIN,
    FeatureInput,
    SiteParams,
    features_from_history,
)

F = {name: i for i, name in enumerate(FEATURES)}


def history(rain: np.ndarray, depth: np.ndarray) -> FeatureInput:
    zeros = np.zeros(WINDOW_MIN, dtype=np.int8)
    return FeatureInput(rain.astype(float), zeros, depth.astype(float), zeros.copy())


def test_accumulations_rates_and_event_timing() -> None:
    rain = np.zeros(WINDOW_MIN)
    rain[-40:] = 0.5  # 30 mm/h for the last 40 minutes
    depth = np.zeros(WINDOW_MIN)
    depth[-31:] = np.arange(31) * 2.0  # rising 2 mm/min for 30 minutes
    x = features_from_history(history(rain, depth), SiteParams())
    assert x.shape == (len(FEATURES),) and x.dtype == np.float32
    assert x[F["rain_5min_mm"]] == pytest.approx(2.5)
    assert x[F["rain_30min_mm"]] == pytest.approx(15.0)
    assert x[F["rain_60min_mm"]] == pytest.approx(20.0)
    assert x[F["peak_intensity_mmh"]] == pytest.approx(30.0)
    assert x[F["min_since_rain_began"]] == pytest.approx(39.0)
    assert x[F["min_since_last_rain"]] == 0.0
    assert x[F["depth_mm"]] == pytest.approx(60.0)
    for w in (5, 15, 30):
        assert x[F[f"rise_{w}min_mm_per_min"]] == pytest.approx(2.0)
    # 30 mm/h x 0.9 = 27 mm/h, below the 36 mm/h drain: no excess, nothing stored
    assert x[F["excess_5min_mm_per_min"]] < 0
    assert x[F["excess_storage_60min_mm"]] == 0.0


def test_excess_uses_site_parameters() -> None:
    rain = np.full(WINDOW_MIN, 1.0)  # 60 mm/h
    site = SiteParams(
        drain_capacity_mmh=36.0, catchment_m2=2000, pond_area_m2=400, runoff_coeff=0.9
    )
    x = features_from_history(history(rain, np.zeros(WINDOW_MIN)), site)
    # (0.9 x 60 - 36) mm/h over the catchment, x 5 onto the pond, per minute
    assert x[F["excess_5min_mm_per_min"]] == pytest.approx(18 * 5 / 60)
    assert x[F["excess_storage_60min_mm"]] == pytest.approx(18 * 5)
    assert x[F["log_gain"]] == pytest.approx(np.log(0.9 * 5))


def test_rain_event_restarts_after_a_dry_gap() -> None:
    rain = np.zeros(WINDOW_MIN)
    rain[10:40] = 1.0  # an old shower, then 60 dry minutes
    rain[100:] = 0.2
    x = features_from_history(history(rain, np.zeros(WINDOW_MIN)), SiteParams())
    assert x[F["min_since_rain_began"]] == pytest.approx(WINDOW_MIN - 1 - 100)
    rain[-45:] = 0.0
    x = features_from_history(history(rain, np.zeros(WINDOW_MIN)), SiteParams())
    assert x[F["min_since_rain_began"]] == 0.0
    assert x[F["min_since_last_rain"]] == 45.0


@pytest.mark.parametrize("flag", [2, 8])
def test_flagged_values_are_masked_like_the_previous_good_value(flag: int) -> None:
    rng = np.random.default_rng(1)
    rain = rng.uniform(0, 1, WINDOW_MIN)
    depth = np.cumsum(rng.uniform(0, 2, WINDOW_MIN))
    clean = history(rain, depth)
    bad_rain, bad_depth = rain.copy(), depth.copy()
    bad_rain[-3], bad_depth[-1] = 40.0, 900.0  # a spike the QC caught
    rain_flag = np.zeros(WINDOW_MIN, np.int8)
    depth_flag = rain_flag.copy()
    rain_flag[-3], depth_flag[-1] = flag, flag
    flagged = FeatureInput(bad_rain, rain_flag, bad_depth, depth_flag)
    # what masking means: the same as if the value had repeated the last good one
    filled_rain, filled_depth = rain.copy(), depth.copy()
    filled_rain[-3], filled_depth[-1] = rain[-4], depth[-2]
    expected = features_from_history(history(filled_rain, filled_depth), SiteParams())
    got = features_from_history(flagged, SiteParams())
    indicators = {"rain_masked_share_60min", "depth_masked_share_15min", "min_since_good_depth"}
    for name, i in F.items():
        if name not in indicators:
            assert got[i] == pytest.approx(expected[i], rel=1e-5, abs=1e-5), name
    assert got[F["rain_masked_share_60min"]] == pytest.approx(1 / 60)
    assert got[F["depth_masked_share_15min"]] == pytest.approx(1 / 15)
    assert got[F["min_since_good_depth"]] == 1.0
    assert features_from_history(clean, SiteParams())[F["min_since_good_depth"]] == 0.0


def test_suspect_values_are_used() -> None:
    depth = np.full(WINDOW_MIN, 50.0)
    flags = np.zeros(WINDOW_MIN, np.int8)
    flags[-1] = 1
    h = FeatureInput(np.zeros(WINDOW_MIN), flags * 0, depth, flags)
    assert features_from_history(h, SiteParams())[F["depth_mm"]] == 50.0


def test_all_missing_history_gives_finite_features() -> None:
    x = features_from_history(FeatureInput.empty(), SiteParams())
    assert np.all(np.isfinite(x))
    assert x[F["depth_mm"]] == 0.0 and x[F["min_since_good_depth"]] == 60.0
    assert x[F["rain_masked_share_60min"]] == 1.0


def test_batch_rows_equal_single_histories() -> None:
    rng = np.random.default_rng(2)
    n = 7
    rain = rng.uniform(0, 1, (n, WINDOW_MIN)) * (rng.uniform(size=(n, WINDOW_MIN)) > 0.5)
    depth = np.cumsum(rng.normal(0, 2, (n, WINDOW_MIN)), axis=1)
    rf = rng.choice([0, 1, 2, 8], size=(n, WINDOW_MIN), p=[0.85, 0.05, 0.05, 0.05])
    df = rng.choice([0, 1, 2, 8], size=(n, WINDOW_MIN), p=[0.85, 0.05, 0.05, 0.05])
    caps = rng.uniform(20, 60, n)
    batch = features_from_history(
        FeatureInput(rain, rf, depth, df),
        SiteParams(drain_capacity_mmh=caps),  # type: ignore[arg-type]
    )
    assert batch.shape == (n, len(FEATURES))
    for k in range(n):
        one = features_from_history(
            FeatureInput(rain[k], rf[k], depth[k], df[k]), SiteParams(drain_capacity_mmh=caps[k])
        )
        np.testing.assert_allclose(batch[k], one, rtol=1e-6)


def test_wrong_window_length_is_refused() -> None:
    short = np.zeros(60)
    with pytest.raises(ValueError, match="180 minutes"):
        features_from_history(FeatureInput(short, short, short, short), SiteParams())


def test_site_params_from_config() -> None:
    site = SiteParams.from_dict({"drain_capacity_mmh": "45", "installation_height_cm": 300})
    assert site.drain_capacity_mmh == 45.0 and site.catchment_m2 == 2000.0
    with pytest.raises(ValueError, match="pond_area_m2"):
        SiteParams.from_dict({"pond_area_m2": 0})


def test_point_model_outlook_from_the_rain_history() -> None:
    site = SiteParams()
    rain = np.zeros(WINDOW_MIN)
    rain[-20:] = 100.0 / 60.0  # 100 mm/h for 20 min: well past the 36 mm/h drain
    depth = np.zeros(WINDOW_MIN)
    x = features_from_history(history(rain, depth), site)
    zero = [x[F[f"phys_zero_{h}_mm"]] for h in (15, 30, 60)]
    held = [x[F[f"phys_held_{h}_mm"]] for h in (15, 30, 60)]
    assert held[0] < held[1] < held[2], "held rain beyond the drain keeps the water rising"
    assert all(z <= h for z, h in zip(zero, held, strict=True))
    assert x[F["phys_held_max30_mm"]] >= held[1]
    assert x[F["phys_depth_now_mm"]] > 0.0, "the model's own pond has filled from the rain"
    assert x[F["phys_detention_mm"]] > 0.0 and x[F["phys_infil_mmh"]] < 60.0
    dry = features_from_history(history(np.zeros(WINDOW_MIN), depth), site)
    outlook = [name for name in F if name.startswith("phys_") and "infil" not in name]
    assert all(dry[F[name]] == 0.0 for name in outlook)


def test_depth_now_ignores_a_single_spike() -> None:
    depth = np.full(WINDOW_MIN, 20.0)
    depth[-1] = 400.0  # an obstruction echo used because flagged suspect only
    x = features_from_history(history(np.zeros(WINDOW_MIN), depth), SiteParams())
    assert x[F["depth_median_3min_mm"]] == 20.0
    assert x[F["phys_zero_15_mm"]] < 20.0, "the outlook starts from the median, and drains"
