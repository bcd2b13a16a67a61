"""`make demo` end to end: broker, fleet, simulator and agent as real processes, accelerated."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from sim.demo import run_demo


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_demo_storm_reaches_the_fleet_acks_thresholds_and_forecasts_before_the_water(
    tmp_path: Path,
) -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=False)
    # to minute 115: past the water's 15 cm (about minute 100) and the response chain's levels
    code = run_demo("storm-50y-3h", 400.0, 20.0, tmp_path, console, pacing=False, until_min=115)
    text = out.getvalue()
    assert code == 0, text
    assert "station acked at minute" in text
    assert "forecast raised waterlogging at minute" in text
    assert "min ahead)" in text
    assert "warning light: switched on at minute" in text
