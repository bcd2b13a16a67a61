"""Physical limits: no rise without rain or inflow, no water on a dry road, no tier out of reach."""

from __future__ import annotations

import numpy as np

from edge_models import guards
from edge_models.dataset import Samples
from edge_models.features import FEATURES
from edge_models.model import Net

RAIN_10 = FEATURES.index("rain_10min_mm")
DEPTH = FEATURES.index("depth_median_3min_mm")
ZERO = [FEATURES.index(f"phys_zero_{h}_mm") for h in (15, 30, 60)]
HELD = [FEATURES.index(f"phys_held_{h}_mm") for h in (15, 30, 60)]
R15, R30 = FEATURES.index("rain_15min_mm"), FEATURES.index("rain_30min_mm")


def test_a_network_that_forecasts_floods_everywhere_is_held_to_physics(storm_set: Samples) -> None:
    x = storm_set.x
    wild = np.full((len(x), 3), 400.0)
    prob = np.ones((len(x), 2))
    depth, p = guards.clip(x, wild, prob)
    dry = x[:, RAIN_10] <= 0.0
    assert dry.any() and (~dry).any()
    ceiling = np.maximum(x[:, [DEPTH]], x[:, ZERO])
    assert (depth[dry] <= ceiling[dry] + 1e-4).all(), "no rise without rain or inflow"
    last, before = x[:, R15], x[:, R30] - x[:, R15]
    rising = ~dry & (last > (1 + guards.RISING_SHARE) * before + 2 * guards.TIP_MM)
    steady = ~dry & ~rising
    assert rising.any() and steady.any()
    assert (depth[rising] == 400.0).all(), "while the rain picks up the network is free"
    held = np.maximum(x[:, [DEPTH]], x[:, HELD]) * (1 + guards.MARGIN_SHARE) + guards.MARGIN_MM
    assert (depth[steady] <= held[steady] + 1e-3).all(), "no rise beyond the rain held"
    road_dry = dry & (x[:, DEPTH] <= 0.0) & (x[:, ZERO].max(axis=1) == 0.0)
    assert road_dry.any() and (depth[road_dry] == 0.0).all() and (p[road_dry] == 0.0).all()
    assert (p[rising] == 1.0).all()


def test_receding_water_may_be_forecast_lower_but_not_higher(storm_set: Samples) -> None:
    x = storm_set.x.copy()
    x[:, RAIN_10] = 0.0
    x[:, DEPTH] = 200.0
    x[:, ZERO] = 50.0
    low = np.full((len(x), 3), 10.0)
    depth, p = guards.clip(x, low, np.full((len(x), 2), 0.7))
    assert (depth == 10.0).all()
    assert (p[:, 0] == np.float32(0.7)).all(), "15 cm is already passed: the tier stays possible"
    assert (p[:, 1] == 0.0).all(), "30 cm is out of reach without rain"


def test_forward_clips_the_networks_output(storm_set: Samples, random_net: Net) -> None:
    with np.errstate(over="ignore"):  # a random network saturates its logistic
        depth_m, prob = random_net.forward(storm_set.x)
        depth, p = guards.forward(random_net, storm_set.x)
    want_depth, want_p = guards.clip(storm_set.x, depth_m * 1000.0, prob)
    np.testing.assert_array_equal(depth, want_depth)
    np.testing.assert_array_equal(p, want_p)
