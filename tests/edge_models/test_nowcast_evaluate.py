"""Event scores: never-reached storms warned, lead time to the 15 cm passing, flapping."""

from __future__ import annotations

import numpy as np

from edge_models.dataset import Samples
from edge_models.evaluate import events


def _samples(storms: list[int], minutes: list[int]) -> Samples:
    n = len(storms)
    z3, z2 = np.zeros((n, 3), np.float32), np.zeros((n, 2), bool)
    return Samples(
        x=np.zeros((n, 1), np.float32),
        depth=z3,
        tier=z2,
        storm=np.array(storms, np.int32),
        minute=np.array(minutes, np.int32),
        persistence=z3,
        physics=z3,
        physics_tier=z2,
    )


def test_lead_is_from_the_start_of_the_warning_on_before_the_passing() -> None:
    # storm 1 passes 15 cm at minute 40; storm 2 never does; storm 3 passes at 30, never warned
    storms = [1] * 6 + [2] * 4 + [3] * 4
    minutes = [0, 5, 10, 15, 20, 25, 0, 5, 10, 15, 0, 10, 20, 30]
    warned = np.array(
        [
            *(False, True, False, True, True, True),  # raised at 5, dropped, raised again at 15
            *(False, True, True, False),  # a false alarm
            *(False, False, False, False),
        ]
    )
    peak = {1: 300.0, 2: 120.0, 3: 200.0}
    reach = {1: 40, 2: -1, 3: 30}
    e = events(_samples(storms, minutes), warned, peak, reach)
    assert e["never_reached"] == 1 and e["never_reached_warned"] == 1.0
    assert e["reached"] == 2 and e["missed_storms"] == 1
    assert e["median_lead_min"] == (25.0 + 0.0) / 2  # 40 - 15 for storm 1, a miss for storm 3
    assert e["flaps_per_storm"] == 1 / 3  # storm 1 raised twice
