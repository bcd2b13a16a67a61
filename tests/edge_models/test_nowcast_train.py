"""Training: exact gradients, normalisation folded correctly, deterministic from the seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edge_models import guards
from edge_models.dataset import Samples, make_storm, storm_samples
from edge_models.train import (
    DEPTH_UNIT_MM,
    FAR_LIMIT,
    THRESHOLD_GRID,
    TrainConfig,
    _fold,
    _init,
    _loss_and_grads,
    _update_card,
    choose_thresholds,
    evaluate,
    fit,
    main,
    pick_threshold,
)


def test_gradients_match_finite_differences() -> None:
    rng = np.random.default_rng(0)
    cfg = TrainConfig(hidden=(6, 5))
    p = _init(4, cfg, rng)
    p.arrays = [a.astype(np.float64) + rng.normal(0, 0.1, a.shape) for a in p.arrays]
    x = rng.normal(size=(9, 4))
    y = rng.normal(size=(9, 3))
    tier = (rng.uniform(size=(9, 2)) > 0.5).astype(float)
    _, grads = _loss_and_grads(p, x, y, tier, cfg)
    for i, a in enumerate(p.arrays):
        for j in range(min(a.size, 5)):
            flat = a.reshape(-1)
            old = flat[j]
            flat[j] = old + 1e-6
            up, _ = _loss_and_grads(p, x, y, tier, cfg)
            flat[j] = old - 1e-6
            down, _ = _loss_and_grads(p, x, y, tier, cfg)
            flat[j] = old
            assert grads[i].reshape(-1)[j] == pytest.approx((up - down) / 2e-6, rel=1e-4, abs=1e-7)


def test_folded_network_equals_normalised_training_network() -> None:
    rng = np.random.default_rng(1)
    cfg = TrainConfig(hidden=(8,))
    p = _init(5, cfg, rng)
    p.arrays[-3] = rng.normal(size=p.arrays[-3].shape).astype(np.float32)  # non-zero skip
    mean, std = rng.normal(size=5), rng.uniform(0.5, 3, 5)
    x = rng.normal(size=(20, 5)) * std + mean
    xn = (x - mean) / std
    w1, b1, wd, bd, ws, wp, bp = p.arrays
    h = np.maximum(xn @ w1 + b1, 0)
    want_depth = np.maximum(h @ wd + bd + xn @ ws, 0) * DEPTH_UNIT_MM / 1000
    want_prob = 1 / (1 + np.exp(-(h @ wp + bp)))
    depth, prob = _fold(p, mean, std).forward(x)
    np.testing.assert_allclose(depth, want_depth, atol=1e-5)
    np.testing.assert_allclose(prob, want_prob, atol=1e-6)


@pytest.fixture(scope="module")
def small_data() -> dict[str, Samples]:
    train = Samples.concat([storm_samples(make_storm(11, i), 5) for i in range(40)])
    val = Samples.concat([storm_samples(make_storm(11, i), 5) for i in range(40, 50)])
    return {"train": train, "val": val}


def test_training_is_deterministic_and_beats_persistence(small_data: dict[str, Samples]) -> None:
    cfg = TrainConfig(hidden=(16, 16), epochs=4, batch=128)
    net1, hist1 = fit(small_data["train"], small_data["val"], cfg, log=lambda _: None)
    net2, hist2 = fit(small_data["train"], small_data["val"], cfg, log=lambda _: None)
    assert hist1 == hist2
    np.testing.assert_array_equal(net1.skip, net2.skip)
    assert hist1[-1]["loss"] < hist1[0]["loss"]
    skill = {
        (s["forecaster"], s["horizon_min"]): s
        for s in evaluate(net1, small_data["val"], [0.5, 0.5])["depth"]
    }
    assert skill[("model", 30)]["rmse_cm"] < skill[("persistence", 30)]["rmse_cm"]


def _far(prob: np.ndarray, observed: np.ndarray, theta: float) -> float:
    warned = prob >= theta
    return float((warned & ~observed).sum() / max(warned.sum(), 1))


def test_thresholds_are_the_lowest_within_the_false_alarm_limit() -> None:
    rng = np.random.default_rng(3)
    observed = rng.uniform(size=4000) < 0.2
    prob = np.clip(observed * 0.5 + rng.uniform(0, 0.6, 4000), 0, 1)
    theta = pick_threshold(prob, observed)
    assert theta in THRESHOLD_GRID
    assert _far(prob, observed, theta) <= FAR_LIMIT
    lower = THRESHOLD_GRID[theta > THRESHOLD_GRID]
    assert all(_far(prob, observed, t) > FAR_LIMIT for t in lower)
    # no threshold keeps the limit: the best critical success index
    noise = rng.uniform(size=4000)
    theta = pick_threshold(noise, observed)
    csi = [
        ((noise >= t) & observed).sum() / ((noise >= t) | observed).sum() for t in THRESHOLD_GRID
    ]
    assert theta == THRESHOLD_GRID[int(np.argmax(csi))]


def test_chosen_thresholds_on_validation(small_data: dict[str, Samples]) -> None:
    cfg = TrainConfig(hidden=(16, 16), epochs=3, batch=128)
    net, _ = fit(small_data["train"], small_data["val"], cfg, log=lambda _: None)
    val = small_data["val"]
    _, prob = guards.forward(net, val.x)
    thresholds = choose_thresholds(net, val)
    assert thresholds == [pick_threshold(prob[:, j], val.tier[:, j]) for j in range(2)]


def test_model_card_skill_block_is_replaced(tmp_path: Path) -> None:
    card = tmp_path / "MODEL_CARD.md"
    card.write_text("# card\n<!-- skill:begin -->\nold\n<!-- skill:end -->\n## Limits\n")
    _update_card(card, "| new table |", "v-9")
    text = card.read_text()
    assert "old" not in text and "| new table |" in text and "`v-9`" in text
    assert text.endswith("## Limits\n")


def test_make_model_command_has_help() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "--storms" in result.output
