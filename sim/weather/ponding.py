"""Water depth at one street point: a routed catchment draining into a low spot with an inlet.

The point model of the domain brief (section 4), with the runoff physics of EPA SWMM's
subcatchment (``subcatch.c``)::

    catchment, per subarea:  dd/dt = i - f - alpha (d - d_s)^(5/3)   (nonlinear reservoir)
    pond:                    A_p dh/dt = Q_runoff - min(Q_cap, what reaches the inlet) - losses

The catchment ``A_c`` is ``runoff_coeff`` impervious (road: depression storage
:attr:`Surface.dstore_imperv_mm`, no infiltration) and the rest pervious (verge, tree pits:
depression storage and Horton infiltration ``f = f_c + (f_0 - f_c) e^{-k t}``, the capacity decaying
with the water infiltrated and recovering while dry). Each subarea routes its water to the inlet as
a nonlinear reservoir with ``alpha = W sqrt(S) / (n A)`` (Manning), so runoff lags the rain by a few
minutes and the pervious part runs off more as infiltration decays. ``Q_cap`` is the drain (pipe)
capacity, given as the rain intensity it takes away from the whole catchment (Q_cap =
drain_capacity_mmh * A_c); the inlet takes all that reaches it up to ``Q_cap`` (gutter flow into a
grate needs no standing head), so rain below capacity leaves the road dry. Standing water loses
:attr:`Surface.pond_loss_mmh` (splash, seepage, evaporation).

Integration is backward Euler on each reservoir (a few Newton steps, monotone from above) and exact
for the pond's linear balance, so it is stable at any step: 1 s for the simulator's truth, 60 s for
nowcast training data, 5 min inside the nowcast's own forecast.
:func:`ponding_step` keeps the pond balance alone, with runoff as ``runoff_coeff * i`` at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, overload

import numpy as np


class SiteLike(Protocol):
    """What the physics needs of a street point (sim.spec.SiteSpec and SiteParams fit)."""

    @property
    def drain_capacity_mmh(self) -> Any: ...
    @property
    def catchment_m2(self) -> Any: ...
    @property
    def pond_area_m2(self) -> Any: ...
    @property
    def runoff_coeff(self) -> Any: ...


@dataclass(frozen=True)
class Surface:
    """Catchment surface terms beyond the site's four numbers (SWMM-manual typical values)."""

    slope: float = 0.01
    flow_length_m: float = 40.0  # overland flow path; SWMM's width W = A_c / flow length
    n_imperv: float = 0.015  # Manning n, smooth asphalt
    n_perv: float = 0.15  # short grass
    dstore_imperv_mm: float = 1.5
    dstore_perv_mm: float = 5.0
    horton_max_mmh: float = 60.0  # f_0
    horton_min_mmh: float = 4.0  # f_c (clayey Shanghai soils)
    horton_decay_per_h: float = 4.0
    horton_dry_days: float = 7.0  # days for a fully wet soil to regain f_0
    pond_loss_mmh: float = 1.0


SURFACE = Surface(flow_length_m=60.0, horton_decay_per_h=6.0, pond_loss_mmh=3.0)
"""The point model's terms: the defaults (what SWMM is given) calibrated against EPA SWMM's
dynamic-wave run of the same sites (``python -m sim.weather.swmm --calibrate``, mean NSE 0.976
over 60 storms of every family)."""

NEWTON_STEPS = 4  # relative error < 1e-14 for dt * alpha up to 30 (an hour's step)


class PointState(NamedTuple):
    """State of the point model: catchment storages, infiltration capacity, pond depth."""

    imperv_mm: float = 0.0  # water on the impervious part
    perv_mm: float = 0.0  # water on the pervious part
    infil_mmh: float = SURFACE.horton_max_mmh  # Horton infiltration capacity now
    pond_mm: float = 0.0  # depth at the street point

    @property
    def detention_mm(self) -> float:
        """Water on the catchment (mm over the impervious and pervious parts, area-weighted)."""
        return self.imperv_mm + self.perv_mm


@dataclass(frozen=True)
class StepRates:
    """Per-site constants of one time step, in mm and seconds."""

    dt: float
    psi: float
    to_pond: float  # catchment mm -> pond mm
    a_imp: float  # dt * alpha in mm^(-2/3) (per step)
    a_perv: float
    cap: float  # drain per step, pond mm
    loss: float  # pond losses per step, mm
    decay: float  # Horton wet decay factor per step
    regen: float  # Horton dry recovery factor per step
    surface: Surface


def step_rates(site: SiteLike, dt: float, surface: Surface) -> StepRates:
    area = float(site.catchment_m2)
    width = area / surface.flow_length_m
    root_s = math.sqrt(surface.slope)
    ratio = area / float(site.pond_area_m2)
    # q [m/s] = alpha (d [m])^(5/3) -> q [mm/s] = alpha / 100 (d [mm])^(5/3)
    alpha = width * root_s / area / 100.0
    return StepRates(
        dt=dt,
        psi=float(site.runoff_coeff),
        to_pond=ratio,
        a_imp=dt * alpha / surface.n_imperv,
        a_perv=dt * alpha / surface.n_perv,
        cap=float(site.drain_capacity_mmh) * ratio * dt / 3600.0,
        loss=surface.pond_loss_mmh * dt / 3600.0,
        decay=math.exp(-surface.horton_decay_per_h * dt / 3600.0),
        regen=math.exp(math.log(0.02) * dt / (surface.horton_dry_days * 86400.0)),
        surface=surface,
    )


def _reservoir(d: float, dstore: float, c: float) -> float:
    """Depth left after a backward-Euler step of dd/dt = -alpha (d - d_s)^(5/3) (c = dt alpha)."""
    e = d - dstore
    if e <= 0.0:
        return d
    y = min(e, (e / c) ** 0.6)  # both bound the root from above; Newton stays above it
    for _ in range(NEWTON_STEPS):
        p = y ** (2.0 / 3.0)
        y -= (y + c * y * p - e) / (1.0 + c * (5.0 / 3.0) * p)
    return dstore + max(y, 0.0)


def _pond(h: float, inflow: float, r: StepRates) -> float:
    """Pond depth after one step with ``inflow`` (pond mm) arriving at the inlet."""
    h1 = h + inflow - r.cap
    if h1 <= 0.0:
        return 0.0
    return max(h1 - r.loss, 0.0)


def point_step(s: PointState, i: float, r: StepRates) -> tuple[PointState, float]:
    """One step of rain ``i`` (mm/h); returns the new state and the runoff (catchment mm)."""
    sf = r.surface
    rain = max(i, 0.0) * r.dt / 3600.0
    imp = s.imperv_mm + rain
    imp_left = _reservoir(imp, sf.dstore_imperv_mm, r.a_imp)
    supply = s.perv_mm + rain
    cap_mm = s.infil_mmh * r.dt / 3600.0
    infil = min(cap_mm, supply)
    fp = s.infil_mmh
    if infil > 0.0:  # capacity decays with the share of the step spent infiltrating at capacity
        fp = sf.horton_min_mmh + (fp - sf.horton_min_mmh) * r.decay ** (infil / cap_mm)
    else:
        fp = sf.horton_max_mmh - (sf.horton_max_mmh - fp) * r.regen
    perv = supply - infil
    perv_left = _reservoir(perv, sf.dstore_perv_mm, r.a_perv)
    runoff = r.psi * (imp - imp_left) + (1.0 - r.psi) * (perv - perv_left)
    pond = _pond(s.pond_mm, runoff * r.to_pond, r)
    return PointState(imp_left, perv_left, fp, pond), runoff


def point_run(
    intensity_mmh: Any,
    dt_s: float,
    site: SiteLike,
    state: PointState | None = None,
    *,
    surface: Surface = SURFACE,
) -> tuple[list[float], PointState]:
    """Run the point model over a rain series; pond depth (mm) after each step and the end state."""
    if dt_s <= 0:
        raise ValueError("dt_s must be positive")
    r = step_rates(site, dt_s, surface)
    s = state if state is not None else PointState(infil_mmh=surface.horton_max_mmh)
    out = []
    for i in np.asarray(intensity_mmh, dtype=float).tolist():
        s, _ = point_step(s, i, r)
        out.append(s.pond_mm)
    return out, s


def simulate_ponding(
    intensity_mmh: np.ndarray,
    dt_s: float,
    site: SiteLike,
    depth0_mm: float = 0.0,
    *,
    surface: Surface = SURFACE,
) -> np.ndarray:
    """Depth (mm) at the end of each step of a rain series (mm/h per ``dt_s`` step).

    The catchment starts empty with dry soil; ``depth0_mm`` is water already standing.
    """
    state = PointState(infil_mmh=surface.horton_max_mmh, pond_mm=float(depth0_mm))
    depth, _ = point_run(intensity_mmh, dt_s, site, state, surface=surface)
    return np.asarray(depth, dtype=float)


@overload
def ponding_step(depth_mm: float, intensity_mmh: float, dt_s: float, site: SiteLike) -> float: ...
@overload
def ponding_step(
    depth_mm: np.ndarray, intensity_mmh: np.ndarray | float, dt_s: float, site: SiteLike
) -> np.ndarray: ...
@overload
def ponding_step(
    depth_mm: float, intensity_mmh: np.ndarray, dt_s: float, site: SiteLike
) -> np.ndarray: ...
def ponding_step(
    depth_mm: np.ndarray | float, intensity_mmh: np.ndarray | float, dt_s: float, site: SiteLike
) -> np.ndarray | float:
    """The pond balance alone: depth (mm) after ``dt_s`` s of rain with runoff ``psi * i`` at once.

    No routing, depression storage or infiltration (those need :class:`PointState`; see
    :func:`point_run`). Pure; floats give a float, arrays (broadcast together) give an array.
    """
    if dt_s <= 0:
        raise ValueError("dt_s must be positive")
    r = step_rates(site, dt_s, SURFACE)
    if isinstance(depth_mm, np.ndarray) or isinstance(intensity_mmh, np.ndarray):
        inflow = r.psi * np.maximum(np.asarray(intensity_mmh, float), 0.0) * r.to_pond * dt_s / 3600
        h1 = np.asarray(depth_mm, dtype=float) + inflow - r.cap
        return np.where(h1 <= 0.0, 0.0, np.maximum(h1 - r.loss, 0.0))
    inflow_f = r.psi * max(float(intensity_mmh), 0.0) * r.to_pond * dt_s / 3600.0
    return _pond(float(depth_mm), inflow_f, r)
