"""Storm families: named, seeded generators of one-minute hyetographs, and street-point sites.

Each :class:`Family` draws its parameters from declared ranges (:attr:`Family.ranges`, recorded in
the nowcast's training manifest) and builds an intensity series (mm/h per minute) from them. Depths
come from the Shanghai formula (:mod:`sim.weather.rain`) unless a family is defined otherwise.

- ``chicago``: Keifer-Chu single peak; ``two_peak``: two Chicago bursts back to back;
  ``multi_burst``: 2-4 Chicago bursts separated by 20-150 min dry gaps
- ``huff_q1`` ... ``huff_q4``: first- to fourth-quartile mass curves shaped after Huff's (1967)
  median curves (values at tenths of the duration, rounded; front- to back-loaded)
- ``scs_ii``: the SCS (NRCS TR-55) type II 24-h mass curve compressed to the storm's duration
- ``block``: constant intensity for the duration (the formula's average intensity)
- ``bartlett_lewis``: Bartlett-Lewis rectangular pulses (Rodriguez-Iturbe et al. 1987): cells
  arrive at rate beta while the storm is active (exponential, mean 1/gamma), each lasts an
  exponential time (mean 1/eta) at an exponential intensity (mean mu_x); parameters span
  plausible Shanghai summer convection (mean cell 10-60 mm/h, cells 5-30 min, storms 1-4 h)
- ``steady_near_capacity``: constant rain at 0.5-1.05 of the site's drain capacity for 1-5 h
- ``abrupt_stop``: a Chicago storm cut off at 30-90 % of its duration, at full intensity
- ``drizzle``: light correlated rain; ``dry_tail``: a short burst then 6 h of nothing;
  ``dry``: no rain

:data:`TRAIN_SITES` and :data:`HELD_OUT_SITES` are the site ranges for training and for the
held-out-site evaluation (drains, catchment/pond ratios and runoff outside the training box).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.spec import SiteSpec
from sim.weather.rain import (
    chicago_hyetograph,
    drizzle,
    shanghai_intensity_mmh,
    two_peak_hyetograph,
)

Range = tuple[float, float, str]  # low, high, "lin" | "log" | "int"

# Mass curves after Huff's (1967) median (50 %) quartile curves, rounded: cumulative share of
# rain at 0, 0.1, ..., 1 of the duration.
HUFF_CURVES: dict[int, tuple[float, ...]] = {
    1: (0.0, 0.23, 0.45, 0.60, 0.70, 0.77, 0.83, 0.88, 0.93, 0.97, 1.0),
    2: (0.0, 0.06, 0.14, 0.28, 0.48, 0.67, 0.79, 0.87, 0.93, 0.97, 1.0),
    3: (0.0, 0.04, 0.09, 0.15, 0.22, 0.32, 0.48, 0.69, 0.86, 0.95, 1.0),
    4: (0.0, 0.03, 0.07, 0.11, 0.15, 0.20, 0.26, 0.34, 0.47, 0.70, 1.0),
}
# SCS type II 24-h mass curve (TR-55): (hour, cumulative share).
SCS_II: tuple[tuple[float, float], ...] = (
    (0, 0.0), (2, 0.022), (4, 0.048), (6, 0.080), (8, 0.120), (9, 0.147), (10, 0.181),
    (11, 0.235), (11.5, 0.283), (11.75, 0.357), (12, 0.663), (12.5, 0.735), (13, 0.772),
    (14, 0.820), (16, 0.880), (20, 0.952), (24, 1.0),
)  # fmt: skip


@dataclass(frozen=True)
class Family:
    """A named storm generator: parameter ranges and the function that builds the series."""

    name: str
    ranges: Mapping[str, Range]
    build: Callable[[dict[str, float], SiteSpec, np.random.Generator], np.ndarray]
    doc: str

    def draw(self, rng: np.random.Generator) -> dict[str, float]:
        """Parameters drawn from :attr:`ranges` (in declaration order)."""
        out: dict[str, float] = {}
        for key, (lo, hi, scale) in self.ranges.items():
            if scale == "log":
                out[key] = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
            elif scale == "int":
                out[key] = float(rng.integers(int(lo), int(hi) + 1))
            else:
                out[key] = float(rng.uniform(lo, hi))
        return out

    def generate(
        self, rng: np.random.Generator, site: SiteSpec
    ) -> tuple[dict[str, float], np.ndarray]:
        """Parameters and the intensity series (mm/h per minute) of one storm."""
        params = self.draw(rng)
        return params, np.maximum(self.build(params, site, rng), 0.0)

    def manifest(self) -> dict[str, Any]:
        """The family as data, for the training manifest."""
        return {"doc": self.doc, "ranges": {k: list(v) for k, v in self.ranges.items()}}


def _total_mm(p: dict[str, float]) -> float:
    return shanghai_intensity_mmh(p["return_period_y"], p["duration_min"]) * p["duration_min"] / 60


def _from_mass_curve(times: np.ndarray, shares: np.ndarray, total_mm: float, n: int) -> np.ndarray:
    """Per-minute intensity (mm/h) of a mass curve given at fractions ``times`` of ``n`` minutes."""
    cum = np.interp(np.linspace(0.0, 1.0, n + 1), times, shares) * total_mm
    return np.diff(cum) * 60.0


def _chicago(p: dict[str, float], _site: SiteSpec, _rng: np.random.Generator) -> np.ndarray:
    return chicago_hyetograph(p["return_period_y"], int(p["duration_min"]), peak_ratio=p["peak"])


def _two_peak(p: dict[str, float], _site: SiteSpec, _rng: np.random.Generator) -> np.ndarray:
    return two_peak_hyetograph(
        p["return_period_y"],
        int(p["duration_min"]),
        split=p["split"],
        first_share=p["first_share"],
        peak_ratio=p["peak"],
    )


def _multi_burst(p: dict[str, float], _site: SiteSpec, rng: np.random.Generator) -> np.ndarray:
    parts: list[np.ndarray] = []
    for k in range(int(p["bursts"])):
        if k:
            parts.append(np.zeros(int(rng.integers(int(p["gap_min"]), int(p["gap_max"]) + 1))))
        period = float(math.exp(rng.uniform(math.log(0.5), math.log(p["return_period_y"]))))
        duration = int(rng.integers(30, int(p["burst_max_min"]) + 1))
        parts.append(chicago_hyetograph(period, duration, peak_ratio=float(rng.uniform(0.2, 0.6))))
    return np.concatenate(parts)


def _huff(q: int) -> Callable[[dict[str, float], SiteSpec, np.random.Generator], np.ndarray]:
    def build(p: dict[str, float], _site: SiteSpec, _rng: np.random.Generator) -> np.ndarray:
        n = int(p["duration_min"])
        return _from_mass_curve(np.linspace(0, 1, 11), np.array(HUFF_CURVES[q]), _total_mm(p), n)

    return build


def _scs(p: dict[str, float], _site: SiteSpec, _rng: np.random.Generator) -> np.ndarray:
    hours, shares = (np.array(v) for v in zip(*SCS_II, strict=True))
    # the formula's depth for the duration, so the peak stays in the Shanghai range
    return _from_mass_curve(hours / 24.0, shares, _total_mm(p), int(p["duration_min"]))


def _block(p: dict[str, float], _site: SiteSpec, _rng: np.random.Generator) -> np.ndarray:
    n = int(p["duration_min"])
    return np.full(n, shanghai_intensity_mmh(p["return_period_y"], n))


def _bartlett_lewis(p: dict[str, float], _site: SiteSpec, rng: np.random.Generator) -> np.ndarray:
    active = max(rng.exponential(p["storm_mean_min"]), 10.0)
    starts = [0.0]  # the storm's first cell starts it
    t = rng.exponential(p["cell_gap_min"])
    while t < active:
        starts.append(t)
        t += rng.exponential(p["cell_gap_min"])
    ends = [s + rng.exponential(p["cell_mean_min"]) for s in starts]
    n = max(math.ceil(max(ends)), 1)
    out = np.zeros(n)
    minute = np.arange(n)
    for s, e in zip(starts, ends, strict=True):
        overlap = np.clip(np.minimum(minute + 1, e) - np.maximum(minute, s), 0.0, 1.0)
        out += overlap * rng.exponential(p["cell_mmh"])
    return out


def _steady(p: dict[str, float], site: SiteSpec, _rng: np.random.Generator) -> np.ndarray:
    return np.full(int(p["duration_min"]), p["capacity_share"] * site.drain_capacity_mmh)


def _abrupt(p: dict[str, float], site: SiteSpec, rng: np.random.Generator) -> np.ndarray:
    full = _chicago(p, site, rng)
    return full[: max(round(full.size * p["cut_share"]), 1)]


def _drizzle(p: dict[str, float], _site: SiteSpec, rng: np.random.Generator) -> np.ndarray:
    return drizzle(int(p["duration_min"]), rng, intensity_mmh=p["intensity_mmh"])


def _dry_tail(p: dict[str, float], site: SiteSpec, rng: np.random.Generator) -> np.ndarray:
    return np.concatenate([_chicago(p, site, rng), np.zeros(int(p["tail_min"]))])


def _dry(p: dict[str, float], _site: SiteSpec, _rng: np.random.Generator) -> np.ndarray:
    return np.zeros(int(p["duration_min"]))


_DESIGN: dict[str, Range] = {"return_period_y": (0.5, 100.0, "log")}
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "chicago",
            {**_DESIGN, "duration_min": (60, 360, "int"), "peak": (0.25, 0.55, "lin")},
            _chicago,
            "Keifer-Chu single peak",
        ),
        Family(
            "two_peak",
            {
                **_DESIGN,
                "duration_min": (90, 360, "int"),
                "peak": (0.25, 0.55, "lin"),
                "split": (0.3, 0.7, "lin"),
                "first_share": (0.2, 0.8, "lin"),
            },
            _two_peak,
            "two Chicago bursts back to back",
        ),
        Family(
            "multi_burst",
            {
                **_DESIGN,
                "bursts": (2, 4, "int"),
                "burst_max_min": (40, 120, "int"),
                "gap_min": (20, 60, "int"),
                "gap_max": (60, 150, "int"),
            },
            _multi_burst,
            "2-4 Chicago bursts with dry gaps",
        ),
        *(
            Family(
                f"huff_q{q}",
                {**_DESIGN, "duration_min": (60, 360, "int")},
                _huff(q),
                f"Huff quartile {q} median mass curve",
            )
            for q in (1, 2, 3, 4)
        ),
        Family(
            "scs_ii",
            {**_DESIGN, "duration_min": (180, 720, "int")},
            _scs,
            "SCS type II mass curve compressed to the duration",
        ),
        Family(
            "block",
            {**_DESIGN, "duration_min": (15, 180, "int")},
            _block,
            "constant intensity (formula average) for the duration",
        ),
        Family(
            "bartlett_lewis",
            {
                "storm_mean_min": (40, 240, "log"),
                "cell_gap_min": (5, 30, "log"),
                "cell_mean_min": (5, 30, "log"),
                "cell_mmh": (10, 60, "log"),
            },
            _bartlett_lewis,
            "Bartlett-Lewis rectangular pulses",
        ),
        Family(
            "steady_near_capacity",
            {"duration_min": (60, 300, "int"), "capacity_share": (0.5, 1.05, "lin")},
            _steady,
            "constant rain near or below the drain capacity",
        ),
        Family(
            "abrupt_stop",
            {
                **_DESIGN,
                "duration_min": (60, 240, "int"),
                "peak": (0.2, 0.6, "lin"),
                "cut_share": (0.3, 0.9, "lin"),
            },
            _abrupt,
            "Chicago storm cut off at full intensity",
        ),
        Family(
            "drizzle",
            {"duration_min": (60, 480, "int"), "intensity_mmh": (0.5, 8.0, "lin")},
            _drizzle,
            "light correlated rain",
        ),
        Family(
            "dry_tail",
            {
                **_DESIGN,
                "duration_min": (20, 90, "int"),
                "peak": (0.2, 0.6, "lin"),
                "tail_min": (300, 360, "int"),
            },
            _dry_tail,
            "short burst then hours without rain",
        ),
        Family("dry", {"duration_min": (60, 240, "int")}, _dry, "no rain"),
    )
}
"""Every storm family by name."""


@dataclass(frozen=True)
class SiteRanges:
    """Ranges a site is drawn from (log-uniform pond and catchment/pond ratio)."""

    drain_mmh: tuple[float, float] = (25.0, 60.0)
    ratio: tuple[float, float] = (2.0, 15.0)
    pond_m2: tuple[float, float] = (150.0, 1200.0)
    catchment_m2: tuple[float, float] = (500.0, 6000.0)
    runoff: tuple[float, float] = (0.6, 0.95)
    height_cm: tuple[float, float] = (150.0, 600.0)

    def draw(self, rng: np.random.Generator) -> SiteSpec:
        pond = float(math.exp(rng.uniform(*np.log(self.pond_m2))))
        ratio = float(math.exp(rng.uniform(*np.log(self.ratio))))
        return SiteSpec(
            drain_capacity_mmh=float(rng.uniform(*self.drain_mmh)),
            catchment_m2=float(np.clip(pond * ratio, *self.catchment_m2)),
            pond_area_m2=pond,
            runoff_coeff=float(rng.uniform(*self.runoff)),
            installation_height_cm=float(rng.uniform(*self.height_cm)),
        )


TRAIN_SITES = SiteRanges()
HELD_OUT_SITES = SiteRanges(
    drain_mmh=(15.0, 75.0), ratio=(15.0, 25.0), catchment_m2=(3000.0, 12000.0), runoff=(0.5, 0.98)
)
"""Sites for the held-out-site evaluation: larger catchments per pond, drains 15-75 mm/h."""
