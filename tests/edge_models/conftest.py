"""Fixtures for the nowcast tests: a few simulated storms and a small random network."""

from __future__ import annotations

import numpy as np
import pytest

from edge_models.dataset import Samples, make_storm, storm_samples
from edge_models.features import FEATURES
from edge_models.model import Net


@pytest.fixture(scope="session")
def storm_set() -> Samples:
    """Samples (with baselines) of twelve storms of a test seed."""
    return Samples.concat([storm_samples(make_storm(99, i), 3) for i in range(12)])


@pytest.fixture
def random_net() -> Net:
    rng = np.random.default_rng(5)
    f = len(FEATURES)

    def layer(i: int, o: int) -> tuple[np.ndarray, np.ndarray]:
        w = rng.normal(0, 1 / np.sqrt(i), (i, o)).astype(np.float32)
        return w, rng.normal(0, 0.1, o).astype(np.float32)

    return Net(
        hidden=(layer(f, 32), layer(32, 16)),
        depth=layer(16, 3),
        skip=rng.normal(0, 0.01, (f, 3)).astype(np.float32),
        prob=layer(16, 2),
    )
