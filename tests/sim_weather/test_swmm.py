"""The point model against EPA SWMM (the reference runs only where pyswmm is installed)."""

import math

import numpy as np
import pytest
from click.testing import CliRunner

from sim.spec import SiteSpec
from sim.weather.ponding import simulate_ponding
from sim.weather.rain import chicago_hyetograph
from sim.weather.swmm import agreement, main, swmm_input

SITE = SiteSpec()
RAIN = np.concatenate([np.zeros(30), chicago_hyetograph(50, 120), np.zeros(120)])


def test_the_swmm_input_matches_the_site() -> None:
    inp = swmm_input(RAIN, SITE)
    sub = next(line for line in inp.splitlines() if line.startswith("S1 G1"))
    assert sub.split()[3:5] == ["0.200000", "90.0000"]  # 2000 m² = 0.2 ha, 90 % impervious
    conduit = next(line for line in inp.splitlines() if line.startswith("C1 J1"))
    assert float(conduit.split()[-1]) == pytest.approx(36.0 / 3.6e6 * 2000.0, rel=1e-5)
    assert "J1 0 1.0 0 0 400.0000" in inp
    assert inp.count("TS1 ") == RAIN.size


def test_agreement_scores_shifts_and_peaks() -> None:
    ref = simulate_ponding(RAIN, 60.0, SITE)
    late = np.concatenate([np.zeros(3), ref[:-3]])
    a = agreement(late, ref)
    assert a.onset_diff_min == 3.0 and a.peak_time_diff_min == 3.0
    assert a.peak_point_mm == a.peak_swmm_mm and 0.5 < a.nse < 1.0
    assert agreement(ref, ref).nse == 1.0
    assert math.isnan(agreement(np.zeros(10), np.zeros(10)).nse)


def test_point_model_agrees_with_swmm_on_a_design_storm() -> None:
    pytest.importorskip("pyswmm", reason="EPA SWMM is the optional extra roadside[swmm]")
    from sim.weather.swmm import swmm_depth

    ref = swmm_depth(RAIN, SITE)
    a = agreement(simulate_ponding(RAIN, 60.0, SITE), ref)
    assert ref.max() > 100.0
    assert a.nse > 0.95
    assert abs(a.peak_time_diff_min) <= 5 and abs(a.onset_diff_min) <= 5
    assert a.peak_point_mm == pytest.approx(a.peak_swmm_mm, rel=0.1)


def test_cli_has_help() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "--calibrate" in result.output
