"""Design storms: the Shanghai intensity formula and hyetographs built from it.

The Chinese storm-intensity formula (domain brief section 3) gives the average intensity over a
duration ``t`` (minutes) for a return period ``P`` (years)::

    q = A (1 + C lg P) / (t + b)^n      [L/(s·ha)],   i [mm/h] = 0.36 q

with Shanghai's commonly quoted A = 1600, C = 0.846, b = 7.0, n = 0.656 (:data:`SHANGHAI`).

Hyetographs are arrays of intensity in mm/h, one value per step of ``dt_s`` seconds. The Chicago
hyetograph (Keifer & Chu 1957) is discretised by differencing its cumulative depth, so the storm's
total depth equals the formula's average intensity times the duration exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IntensityCoeffs:
    """Coefficients of q = A (1 + C lg P) / (t + b)^n, q in L/(s·ha), t in minutes."""

    A: float
    C: float
    b: float
    n: float

    def a_mm_per_min(self, return_period_y: float) -> float:
        """The Chicago 'a' = A (1 + C lg P) converted to mm/min (q / 166.67)."""
        return self.A * (1.0 + self.C * math.log10(return_period_y)) * 0.006


SHANGHAI = IntensityCoeffs(A=1600.0, C=0.846, b=7.0, n=0.656)
"""Shanghai's commonly quoted total formula (domain brief section 3, marked U)."""


def shanghai_intensity_mmh(
    return_period_y: float, t_min: float, *, coeffs: IntensityCoeffs = SHANGHAI
) -> float:
    """Average rain intensity (mm/h) over ``t_min`` minutes for a ``return_period_y``-year storm."""
    if return_period_y <= 0 or t_min <= 0:
        raise ValueError("return period and duration must be positive")
    q = coeffs.A * (1.0 + coeffs.C * math.log10(return_period_y)) / (t_min + coeffs.b) ** coeffs.n
    return 0.36 * q


def _steps(duration_min: float, dt_s: float) -> int:
    if duration_min <= 0 or dt_s <= 0:
        raise ValueError("duration and step must be positive")
    n = round(duration_min * 60.0 / dt_s)
    if n < 1 or not math.isclose(n * dt_s, duration_min * 60.0, rel_tol=1e-9):
        raise ValueError(f"duration {duration_min} min is not a whole number of {dt_s} s steps")
    return n


def chicago_cumulative_mm(
    t_min: np.ndarray,
    return_period_y: float,
    duration_min: float,
    *,
    peak_ratio: float = 0.367,
    coeffs: IntensityCoeffs = SHANGHAI,
) -> np.ndarray:
    """Cumulative depth (mm) of the Chicago storm from its start to each time in ``t_min``.

    With P(T) = a T / (T + b)^n the depth of the T-minute window centred on the peak, the depth
    fallen by time t is r P(D) - r P((rD - t)/r) before the peak and
    r P(D) + (1-r) P((t - rD)/(1-r)) after it; P(D) at t = D.
    """
    if not 0.0 < peak_ratio < 1.0:
        raise ValueError("peak ratio must lie strictly between 0 and 1")
    a = coeffs.a_mm_per_min(return_period_y)
    r, d = peak_ratio, duration_min

    def depth(window: np.ndarray) -> np.ndarray:
        return a * window / (window + coeffs.b) ** coeffs.n

    t = np.clip(np.asarray(t_min, dtype=float), 0.0, d)
    tp = r * d
    before = r * depth(np.array(d)) - r * depth(np.maximum(tp - t, 0.0) / r)
    after = r * depth(np.array(d)) + (1.0 - r) * depth(np.maximum(t - tp, 0.0) / (1.0 - r))
    return np.where(t <= tp, before, after)


def chicago_hyetograph(
    return_period_y: float,
    duration_min: float,
    *,
    peak_ratio: float = 0.367,
    dt_s: float = 60.0,
    coeffs: IntensityCoeffs = SHANGHAI,
) -> np.ndarray:
    """Chicago design storm: intensity (mm/h) per ``dt_s`` step, mass-conserving.

    Each step's value is the depth that falls in it (difference of the cumulative depth) over the
    step length, so ``sum(i) * dt_s / 3600`` equals the formula's total depth for the duration.
    """
    n = _steps(duration_min, dt_s)
    edges = np.linspace(0.0, duration_min, n + 1)
    cum = chicago_cumulative_mm(
        edges, return_period_y, duration_min, peak_ratio=peak_ratio, coeffs=coeffs
    )
    return np.diff(cum) * 3600.0 / dt_s


def two_peak_hyetograph(
    return_period_y: float,
    duration_min: float,
    *,
    split: float = 0.5,
    first_share: float = 0.4,
    peak_ratio: float = 0.367,
    dt_s: float = 60.0,
    coeffs: IntensityCoeffs = SHANGHAI,
) -> np.ndarray:
    """A storm with two bursts: two Chicago storms back to back, mass-conserving.

    The first burst lasts ``split`` of the duration and carries ``first_share`` of the total depth
    the formula gives for the whole duration; the second burst carries the rest. Each burst keeps
    the Chicago shape with ``peak_ratio``, so the storm has two maxima with a lull between them.
    """
    if not 0.0 < split < 1.0 or not 0.0 < first_share < 1.0:
        raise ValueError("split and first_share must lie strictly between 0 and 1")
    n = _steps(duration_min, dt_s)
    n1 = round(n * split)
    if n1 < 2 or n - n1 < 2:
        raise ValueError("each burst needs at least two steps")
    total = shanghai_intensity_mmh(return_period_y, duration_min, coeffs=coeffs) * duration_min / 60
    parts = []
    for steps, share in ((n1, first_share), (n - n1, 1.0 - first_share)):
        burst = chicago_hyetograph(
            return_period_y,
            steps * dt_s / 60.0,
            peak_ratio=peak_ratio,
            dt_s=dt_s,
            coeffs=coeffs,
        )
        parts.append(burst * (share * total) / (burst.sum() * dt_s / 3600.0))
    return np.concatenate(parts)


def drizzle(
    duration_min: float,
    rng: np.random.Generator,
    *,
    intensity_mmh: float = 0.6,
    variability: float = 0.5,
    cell_min: float = 10.0,
    dt_s: float = 60.0,
) -> np.ndarray:
    """Light, long rain: intensity wandering around ``intensity_mmh`` (lognormal, correlated).

    ``variability`` is the standard deviation of log-intensity, ``cell_min`` the time over which
    the intensity changes. The mean over the whole spell is exactly ``intensity_mmh``.
    """
    n = _steps(duration_min, dt_s)
    if intensity_mmh < 0 or variability < 0 or cell_min <= 0:
        raise ValueError("drizzle needs intensity >= 0, variability >= 0, cell_min > 0")
    phi = math.exp(-dt_s / (cell_min * 60.0))
    noise = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = noise[0]
    scale = math.sqrt(1.0 - phi * phi)
    for k in range(1, n):
        x[k] = phi * x[k - 1] + scale * noise[k]
    shape = np.exp(variability * x)
    return intensity_mmh * shape / shape.mean()


def dry(duration_min: float, *, dt_s: float = 60.0) -> np.ndarray:
    """No rain at all."""
    return np.zeros(_steps(duration_min, dt_s))
