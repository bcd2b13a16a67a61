"""Skill scores on small known cases."""

from __future__ import annotations

import numpy as np
import pytest

from edge_models.skill import depth_skill, nse, rmse, tier_skill


def test_rmse_and_nse() -> None:
    truth = np.array([0.0, 10.0, 20.0, 30.0])
    assert rmse(truth + 2, truth) == pytest.approx(2.0)
    assert nse(truth, truth) == 1.0
    assert nse(np.full(4, truth.mean()), truth) == pytest.approx(0.0)


def test_depth_skill_is_in_cm_per_horizon() -> None:
    truth = np.zeros((4, 3))
    forecast = truth.copy()
    forecast[:, 1] = 20.0  # 2 cm off at +30 only
    truth[:, 1] = [0.0, 40.0, 0.0, 40.0]
    forecast[:, 1] += truth[:, 1]
    skills = depth_skill("m", forecast, truth)
    assert [s.horizon_min for s in skills] == [15, 30, 60]
    assert skills[1].rmse_cm == pytest.approx(2.0) and skills[1].mae_cm == pytest.approx(2.0)


def test_tier_contingency() -> None:
    observed = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    forecast = np.array([1, 1, 1, 0, 1, 0, 0, 0], bool)
    t = tier_skill("m", 15, forecast, observed)
    assert t.hit_rate == pytest.approx(0.75)
    assert t.false_alarm_ratio == pytest.approx(0.25)
    assert (t.events, t.n) == (4, 8)
    none = tier_skill("m", 30, np.zeros(3, bool), np.zeros(3, bool))
    assert np.isnan(none.hit_rate) and none.false_alarm_ratio == 0.0
