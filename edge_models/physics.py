"""The point model run forward from a station's history: the physics inside the nowcast.

:func:`point_outlook` spins the simulator's point model (:mod:`sim.weather.ponding`: routed
catchment, depression storage, Horton infiltration, drain) up over the rain history at
:data:`STEP_MIN`-minute steps, puts the observed depth in the pond, and runs it
:data:`HORIZON_MIN` minutes ahead twice: with no more rain, and with the last
:data:`HELD_MIN` minutes' intensity held. The nowcast network learns a correction on top of these
(``edge_models.features``), and the forecast is clipped to them where physics leaves no doubt
(``edge_models.guards``).
"""

from __future__ import annotations

import numpy as np

from sim.weather.ponding import SURFACE, PointState, SiteLike, point_step, step_rates

STEP_MIN = 5
HORIZON_MIN = 60
HELD_MIN = 10
OUTLOOK = (
    "phys_zero_15_mm",
    "phys_zero_30_mm",
    "phys_zero_60_mm",
    "phys_held_15_mm",
    "phys_held_30_mm",
    "phys_held_60_mm",
    "phys_held_max30_mm",
    "phys_depth_now_mm",  # the point model's own depth now (from rain alone)
    "phys_detention_mm",  # water on the catchment still to arrive
    "phys_infil_mmh",
)
"""Names of :func:`point_outlook`'s values, in order."""


def point_outlook(rain_mm: np.ndarray, depth_now_mm: float, site: SiteLike) -> list[float]:
    """Outlook values (:data:`OUTLOOK`) from per-minute rain (mm, oldest first, no gaps)."""
    r = step_rates(site, STEP_MIN * 60.0, SURFACE)
    n = rain_mm.size - rain_mm.size % STEP_MIN
    blocks = rain_mm[rain_mm.size - n :].reshape(-1, STEP_MIN).sum(axis=1) * (60.0 / STEP_MIN)
    s = PointState(infil_mmh=SURFACE.horton_max_mmh)
    wet = np.flatnonzero(blocks > 0.0)
    for i in blocks[wet[0] :].tolist() if wet.size else []:  # dry blocks leave the state as is
        s, _ = point_step(s, i, r)
    model_now = s.pond_mm
    s = s._replace(pond_mm=max(float(depth_now_mm), 0.0))
    held = float(rain_mm[-HELD_MIN:].sum()) * 60.0 / HELD_MIN
    out: list[float] = []
    peak = 0.0
    for intensity in (0.0, held):
        state = s
        at: dict[int, float] = {}
        peak = 0.0
        for k in range(1, HORIZON_MIN // STEP_MIN + 1):
            state, _ = point_step(state, intensity, r)
            if k * STEP_MIN <= 30:
                peak = max(peak, state.pond_mm)
            at[k * STEP_MIN] = state.pond_mm
        out += [at[15], at[30], at[60]]
    return [*out, peak, model_now, s.detention_mm, s.infil_mmh]
