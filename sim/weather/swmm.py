"""EPA SWMM as the reference for the point model (optional: ``pip install roadside[swmm]``).

:func:`swmm_depth` runs one storm through SWMM 5 (``pyswmm``, dynamic-wave routing at 1 s) on a
site matched to the point model: one subcatchment of the catchment's area, imperviousness = runoff
coefficient, the same Manning, depression-storage and Horton terms (:class:`Surface`), routed to a
junction whose ponded area is the pond's, drained by a conduit whose flow is capped at the drain
capacity. The depth at the street point is the ponded depth (node depth above its rim).

``python -m sim.weather.swmm`` compares the two per storm family (NSE of the depth series; onset,
peak time, peak depth and recession differences) and can search the surface terms that fit best
(``--calibrate``). Without pyswmm the command says so and exits 1.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import click
import numpy as np

from sim.spec import SiteSpec
from sim.weather.ponding import SURFACE, SiteLike, Surface, simulate_ponding

REFERENCE = Surface()
"""The catchment's physical terms as SWMM is given them (the point model's are calibrated)."""

RIM_M = 1.0  # inlet box depth below the road (m): water above it ponds on the street
ONSET_MM = 10.0  # 'water stands' from this depth
REPORT_S = 60


class SwmmUnavailable(RuntimeError):
    """pyswmm (EPA SWMM) is not installed."""


def swmm_input(rain_mmh: np.ndarray, site: SiteLike, surface: Surface = REFERENCE) -> str:
    """The SWMM ``.inp`` text for one storm (mm/h per minute) at ``site``."""
    n = len(rain_mmh)
    area_ha = float(site.catchment_m2) / 1e4
    width = float(site.catchment_m2) / surface.flow_length_m
    q_cap = float(site.drain_capacity_mmh) / 3.6e6 * float(site.catchment_m2)
    imperv = 100.0 * float(site.runoff_coeff)
    end_h, end_m = divmod(n, 60)
    series = "\n".join(f"TS1 {k // 60}:{k % 60:02d} {v:.6f}" for k, v in enumerate(rain_mmh))
    return f"""[TITLE]
roadside point model reference
[OPTIONS]
FLOW_UNITS CMS
INFILTRATION HORTON
FLOW_ROUTING DYNWAVE
START_DATE 01/01/2020
START_TIME 00:00:00
REPORT_START_DATE 01/01/2020
REPORT_START_TIME 00:00:00
END_DATE 01/{1 + end_h // 24:02d}/2020
END_TIME {end_h % 24:02d}:{end_m:02d}:00
WET_STEP 00:00:10
DRY_STEP 00:01:00
REPORT_STEP 00:01:00
ROUTING_STEP 1
ALLOW_PONDING YES
[RAINGAGES]
G1 INTENSITY 0:01 1.0 TIMESERIES TS1
[SUBCATCHMENTS]
S1 G1 J1 {area_ha:.6f} {imperv:.4f} {width:.4f} {100 * surface.slope:.4f} 0
[SUBAREAS]
S1 {surface.n_imperv} {surface.n_perv} {surface.dstore_imperv_mm} {surface.dstore_perv_mm} 0 OUTLET
[INFILTRATION]
S1 {surface.horton_max_mmh} {surface.horton_min_mmh} {surface.horton_decay_per_h} \
{surface.horton_dry_days} 0
[JUNCTIONS]
J1 0 {RIM_M} 0 0 {float(site.pond_area_m2):.4f}
[OUTFALLS]
O1 -0.5 FREE
[CONDUITS]
C1 J1 O1 20 0.013 0 0 0 {q_cap:.6f}
[XSECTIONS]
C1 CIRCULAR 0.8 0 0 0 1
[TIMESERIES]
{series}
"""


def swmm_depth(rain_mmh: np.ndarray, site: SiteLike, surface: Surface = REFERENCE) -> np.ndarray:
    """Ponded depth (mm) at the end of each minute, from EPA SWMM."""
    try:
        from pyswmm import Nodes, Simulation
    except ImportError as exc:
        raise SwmmUnavailable("pyswmm is not installed (pip install 'roadside[swmm]')") from exc
    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / "point.inp"
        inp.write_text(swmm_input(np.asarray(rain_mmh, float), site, surface))
        out = []
        with Simulation(str(inp)) as sim:
            node = Nodes(sim)["J1"]
            sim.step_advance(REPORT_S)
            for _ in sim:
                out.append(max(node.depth - RIM_M, 0.0) * 1000.0)
    depth = np.zeros(len(rain_mmh))
    k = min(len(out), depth.size)
    depth[:k] = out[:k]
    return depth


@dataclass(frozen=True)
class Agreement:
    """How the point model's depth series compares with SWMM's for one storm."""

    nse: float
    peak_swmm_mm: float
    peak_point_mm: float
    onset_diff_min: float  # point minus SWMM, first minute past ONSET_MM (NaN if either never)
    peak_time_diff_min: float
    recession_diff_min: float  # minutes from peak to below ONSET_MM, point minus SWMM


def _first(a: np.ndarray) -> float:
    idx = np.flatnonzero(a > ONSET_MM)
    return float(idx[0]) if idx.size else math.nan


def _recession(a: np.ndarray) -> float:
    peak = int(a.argmax())
    after = np.flatnonzero(a[peak:] <= ONSET_MM)
    return float(after[0]) if after.size and a.max() > ONSET_MM else math.nan


def agreement(point: np.ndarray, ref: np.ndarray) -> Agreement:
    """Scores of ``point`` against the reference series ``ref`` (mm per minute)."""
    var = float(np.sum((ref - ref.mean()) ** 2))
    nse = 1.0 - float(np.sum((point - ref) ** 2)) / var if var > 0 else math.nan
    wet = ref.max() > ONSET_MM and point.max() > ONSET_MM
    return Agreement(
        nse=nse,
        peak_swmm_mm=float(ref.max()),
        peak_point_mm=float(point.max()),
        onset_diff_min=_first(point) - _first(ref),
        peak_time_diff_min=float(point.argmax()) - float(ref.argmax()) if wet else math.nan,
        recession_diff_min=_recession(point) - _recession(ref),
    )


def reference_storms(per_family: int, seed: int = 5) -> list[tuple[str, np.ndarray, SiteSpec]]:
    """Storms of every family at training sites, each with 30 min before and 180 min after."""
    from sim.weather.storms import FAMILIES, TRAIN_SITES

    out = []
    for f, fam in enumerate(FAMILIES.values()):
        for k in range(per_family):
            rng = np.random.default_rng([seed, f, k])
            site = TRAIN_SITES.draw(rng)
            _, rain = fam.generate(rng, site)
            out.append((fam.name, np.concatenate([np.zeros(30), rain, np.zeros(180)]), site))
    return out


def compare(
    storms: list[tuple[str, np.ndarray, SiteSpec]],
    refs: list[np.ndarray],
    surface: Surface = SURFACE,
) -> dict[str, dict[str, float]]:
    """Median agreement per family (and ``all``) of the point model with the SWMM series."""
    rows: dict[str, list[Agreement]] = {}
    for (fam, rain, site), ref in zip(storms, refs, strict=True):
        a = agreement(simulate_ponding(rain, 60.0, site, surface=surface), ref)
        rows.setdefault(fam, []).append(a)
        rows.setdefault("all", []).append(a)
    out = {}
    for fam, items in rows.items():
        table = {k: [getattr(a, k) for a in items] for k in asdict(items[0])}
        out[fam] = {k: float(np.nanmedian(v)) if np.isfinite(v).any() else math.nan
                    for k, v in table.items()}  # fmt: skip
        out[fam]["storms"] = len(items)
    return out


CALIBRATION_GRID: dict[str, tuple[float, ...]] = {
    "flow_length_m": (30.0, 40.0, 60.0, 80.0),
    "n_perv": (0.1, 0.15, 0.25),
    "horton_decay_per_h": (2.0, 4.0, 6.0),
    "pond_loss_mmh": (0.0, 1.0, 3.0),
}
CALIBRATE_FROM_MM = 20.0


def calibrate(
    storms: list[tuple[str, np.ndarray, SiteSpec]], refs: list[np.ndarray]
) -> tuple[Surface, float]:
    """The point model's terms on :data:`CALIBRATION_GRID` with the best mean NSE over the
    storms that pond past :data:`CALIBRATE_FROM_MM` in SWMM (run with :data:`REFERENCE`)."""
    best: tuple[float, Surface] | None = None
    keys = list(CALIBRATION_GRID)
    for values in itertools.product(*CALIBRATION_GRID.values()):
        surface = replace(REFERENCE, **dict(zip(keys, values, strict=True)))
        nses = []
        for (_, rain, site), ref in zip(storms, refs, strict=True):
            if ref.max() < CALIBRATE_FROM_MM:
                continue
            a = agreement(simulate_ponding(rain, 60.0, site, surface=surface), ref)
            if math.isfinite(a.nse):
                nses.append(a.nse)
        score = float(np.mean(nses))
        if best is None or score > best[0]:
            best = (score, surface)
    assert best is not None
    return best[1], best[0]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--per-family", default=4, show_default=True, help="storms per family")
@click.option("--calibrate", "do_calibrate", is_flag=True, help="search the surface terms")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def main(per_family: int, do_calibrate: bool, as_json: bool) -> None:
    """Compare the point model with EPA SWMM per storm family (needs pyswmm)."""
    storms = reference_storms(per_family)
    try:
        refs = [swmm_depth(rain, site) for _, rain, site in storms]
    except SwmmUnavailable as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    report: dict[str, Any] = {
        "shipped": compare(storms, refs),
        "surface": asdict(SURFACE),
        "reference": asdict(REFERENCE),
    }
    if do_calibrate:
        surface, score = calibrate(storms, refs)
        report["calibrated"] = {"surface": asdict(surface), "mean_nse": score}
        report["calibrated"]["families"] = compare(storms, refs, surface)
    if as_json:
        click.echo(json.dumps(report, indent=1))
        return
    click.echo(
        "| family | storms | NSE | peak SWMM (cm) | peak point (cm) | onset diff (min) "
        "| peak time diff (min) | recession diff (min) |\n|---|---|---|---|---|---|---|---|"
    )
    for fam, s in report["shipped"].items():
        click.echo(
            f"| {fam} | {s['storms']:.0f} | {s['nse']:.3f} | {s['peak_swmm_mm'] / 10:.1f} "
            f"| {s['peak_point_mm'] / 10:.1f} | {s['onset_diff_min']:+.0f} "
            f"| {s['peak_time_diff_min']:+.0f} | {s['recession_diff_min']:+.0f} |"
        )
    if do_calibrate:
        click.echo(json.dumps(report["calibrated"]["surface"]))
        click.echo(f"calibrated mean NSE {report['calibrated']['mean_nse']:.3f}")


if __name__ == "__main__":
    main()
