"""Water depth at one street point: runoff into a low spot drained by an inlet of limited capacity.

The point model of the domain brief (section 4)::

    A_p dh/dt = psi i A_c - min(Q_cap, C_d A_o sqrt(2 g h)) - losses

``A_c`` the catchment (m²), ``A_p`` the ponding area (m²), ``psi`` the runoff coefficient, ``i`` the
rain intensity. ``Q_cap`` is the drain (pipe) capacity, given as the rain intensity it takes away
from the whole catchment: Q_cap = drain_capacity_mmh · A_c. The inlet grate is an orifice whose
area is sized so that it passes Q_cap at a head of :data:`HEAD_AT_CAPACITY_MM`; below that head the
orifice limits the outflow (Q = Q_cap sqrt(h / h_cap)), above it the pipe does. Losses
(infiltration, splash, evaporation) take :data:`LOSS_MMH` off the ponded area while water stands.

Integration is backward Euler, solved in closed form (a quadratic in sqrt(h)), so it is stable at
any step: 1 s for the simulator's truth and 60 s for nowcast training data alike.
"""

from __future__ import annotations

import math
from typing import overload

import numpy as np

from sim.spec import SiteSpec

DISCHARGE_COEFF = 0.6  # C_d of a grate inlet acting as an orifice
HEAD_AT_CAPACITY_MM = 20.0  # head (mm) at which the inlet orifice passes the pipe capacity
LOSS_MMH = 1.0  # infiltration and evaporation off the ponded area while water stands
GRAVITY = 9.81


def inlet_area_m2(site: SiteSpec) -> float:
    """Orifice area A_o of the inlet: C_d A_o sqrt(2 g h_cap) = Q_cap."""
    q_cap = site.drain_capacity_mmh / 3.6e6 * site.catchment_m2
    return q_cap / (DISCHARGE_COEFF * math.sqrt(2 * GRAVITY * HEAD_AT_CAPACITY_MM / 1000.0))


def _rates(site: SiteSpec) -> tuple[float, float, float]:
    """(inflow per mm/h of rain, drain capacity, losses) as depth rates over the pond, mm/s."""
    ratio = site.catchment_m2 / site.pond_area_m2
    return (
        site.runoff_coeff * ratio / 3600.0,
        site.drain_capacity_mmh * ratio / 3600.0,
        LOSS_MMH / 3600.0,
    )


def drain_outflow_mms(depth_mm: float, site: SiteSpec) -> float:
    """Outflow through the inlet at ``depth_mm``, as a depth rate over the pond (mm/s)."""
    _, q_cap, _ = _rates(site)
    if depth_mm <= 0:
        return 0.0
    return q_cap * min(1.0, math.sqrt(depth_mm / HEAD_AT_CAPACITY_MM))


def _step_float(h0: float, i: float, dt: float, site: SiteSpec) -> float:
    k_in, q_cap, loss = _rates(site)
    gain = h0 + dt * (k_in * max(i, 0.0) - loss)
    if gain <= 0.0:
        return 0.0
    b = dt * q_cap / math.sqrt(HEAD_AT_CAPACITY_MM)
    s = (-b + math.sqrt(b * b + 4.0 * gain)) / 2.0
    h = s * s
    if h < HEAD_AT_CAPACITY_MM:
        return h
    return gain - dt * q_cap


def _step_array(h0: np.ndarray, i: np.ndarray, dt: float, site: SiteSpec) -> np.ndarray:
    k_in, q_cap, loss = _rates(site)
    gain = h0 + dt * (k_in * np.maximum(i, 0.0) - loss)
    b = dt * q_cap / math.sqrt(HEAD_AT_CAPACITY_MM)
    s = (-b + np.sqrt(b * b + 4.0 * np.maximum(gain, 0.0))) / 2.0
    h = s * s
    return np.where(gain <= 0.0, 0.0, np.where(h < HEAD_AT_CAPACITY_MM, h, gain - dt * q_cap))


@overload
def ponding_step(depth_mm: float, intensity_mmh: float, dt_s: float, site: SiteSpec) -> float: ...
@overload
def ponding_step(
    depth_mm: np.ndarray, intensity_mmh: np.ndarray | float, dt_s: float, site: SiteSpec
) -> np.ndarray: ...
@overload
def ponding_step(
    depth_mm: float, intensity_mmh: np.ndarray, dt_s: float, site: SiteSpec
) -> np.ndarray: ...
def ponding_step(
    depth_mm: np.ndarray | float, intensity_mmh: np.ndarray | float, dt_s: float, site: SiteSpec
) -> np.ndarray | float:
    """Depth (mm) after ``dt_s`` seconds of rain at ``intensity_mmh`` starting from ``depth_mm``.

    Pure; floats give a float, arrays (broadcast together) give an array.
    """
    if dt_s <= 0:
        raise ValueError("dt_s must be positive")
    if isinstance(depth_mm, np.ndarray) or isinstance(intensity_mmh, np.ndarray):
        h0 = np.asarray(depth_mm, dtype=float)
        i = np.asarray(intensity_mmh, dtype=float)
        return _step_array(h0, i, dt_s, site)
    return _step_float(float(depth_mm), float(intensity_mmh), dt_s, site)


def simulate_ponding(
    intensity_mmh: np.ndarray, dt_s: float, site: SiteSpec, depth0_mm: float = 0.0
) -> np.ndarray:
    """Depth (mm) at the end of each step of a rain series (mm/h per ``dt_s`` step)."""
    if dt_s <= 0:
        raise ValueError("dt_s must be positive")
    out = np.empty(len(intensity_mmh))
    h = float(depth0_mm)
    for k, i in enumerate(np.asarray(intensity_mmh, dtype=float).tolist()):
        h = _step_float(h, i, dt_s, site)
        out[k] = h
    return out
