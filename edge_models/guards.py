"""Physical limits on the nowcast's outputs, applied after the network wherever it runs.

The network learns a correction on top of the point model's outlook; where physics leaves no
doubt, its outputs are clipped to it:

- **no rise without rain or inflow**: with no rain in the last :data:`DRY_MIN` minutes, the depth at
  each horizon stays at or below the higher of the depth now and the point model's no-more-rain
  run (which carries the water still running off the catchment);
- **no water on a dry road**: the same rule with no water standing and none on its way gives 0;
- **no tier out of reach**: with no rain, a tier's probability is 0 unless the depth now or the
  no-more-rain run reaches it within the tier horizon;
- **no rise beyond the rain**: while the rain is not picking up (it is when the last 15 min
  brought more than :data:`RISING_SHARE` over the 15 min before, plus two tips; 15-min sums, so a
  poller that misses every other minute does not make it flicker), the depth stays at or below
  the higher of the depth now and the point model's run with the rain held (plus
  :data:`MARGIN_SHARE` of it and :data:`MARGIN_MM`), and a tier that run does not reach has
  probability 0. Steady rain the drain takes leaves the road dry in the forecast too.

The rules read only the features, so training, the benchmark and the station clip alike.
"""

from __future__ import annotations

import numpy as np

from edge_models.features import FEATURES
from edge_models.model import TIERS_MM, Net

DRY_MIN = 10
TIP_MM = 0.2
RISING_SHARE = 0.05
MARGIN_MM = 10.0
MARGIN_SHARE = 0.25  # the point model's held run is coarse (5-min steps, 10-min mean rain)
_RAIN = FEATURES.index("rain_10min_mm")
_RAIN_15 = FEATURES.index("rain_15min_mm")
_RAIN_30 = FEATURES.index("rain_30min_mm")
_HELD = [FEATURES.index(f"phys_held_{h}_mm") for h in (15, 30, 60)]
_HELD_MAX = FEATURES.index("phys_held_max30_mm")
_DEPTH = FEATURES.index("depth_median_3min_mm")
_ZERO = [FEATURES.index(f"phys_zero_{h}_mm") for h in (15, 30, 60)]
_ZERO_30 = _ZERO[:2]


def clip(x: np.ndarray, depth_mm: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth forecasts (mm, ``(N, 3)``) and tier probabilities ``(N, 2)`` within the limits."""
    x = np.atleast_2d(x)
    dry = (x[:, _RAIN] <= 0.0)[:, None]
    now = np.maximum(x[:, _DEPTH], 0.0)[:, None]
    tiers = np.asarray(TIERS_MM)[None, :]
    ceiling = np.maximum(now, x[:, _ZERO])
    depth = np.where(dry, np.minimum(depth_mm, ceiling), depth_mm)
    reach = np.maximum(now[:, 0], x[:, _ZERO_30].max(axis=1))[:, None]
    out_of_reach = dry & (reach < tiers)

    last, before = x[:, _RAIN_15], x[:, _RAIN_30] - x[:, _RAIN_15]
    rising = last > (1.0 + RISING_SHARE) * before + 2.0 * TIP_MM
    steady = (~dry[:, 0] & ~rising)[:, None]
    held_ceiling = np.maximum(now, x[:, _HELD]) * (1.0 + MARGIN_SHARE) + MARGIN_MM
    depth = np.where(steady, np.minimum(depth, held_ceiling), depth)
    held_reach = np.maximum(now[:, 0], x[:, _HELD_MAX])[:, None] * (1.0 + MARGIN_SHARE) + MARGIN_MM
    out_of_reach |= steady & (held_reach < tiers)
    return depth.astype(np.float32), np.where(out_of_reach, 0.0, prob).astype(np.float32)


def forward(net: Net, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The network's depth (mm) and tier probabilities for features ``x``, clipped."""
    depth_m, prob = net.forward(x)
    return clip(x, depth_m * 1000.0, prob)
