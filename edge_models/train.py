"""Train the nowcast with numpy and export it: ``python -m edge_models.train`` (= ``make model``).

Deterministic from the seeds in :class:`~edge_models.dataset.DatasetConfig` and
:class:`TrainConfig`: the same command rebuilds the same model on the same platform. Writes
``nowcast.tflite`` (the model), ``nowcast.json`` (metadata, configuration and held-out skill) and
refreshes the skill table in ``MODEL_CARD.md``.

Loss: mean squared error of the three depths (in units of 10 cm) plus ``tier_weight`` times the
binary cross-entropy of the two tier probabilities; Adam with cosine learning-rate decay; the epoch
with the best validation RMSE at +30 min is kept.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# One BLAS thread, set before numpy loads: small matrices train ~25x faster on a busy machine
# than with threads fighting over cores, and the sums come out the same every run.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click
import numpy as np
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from edge_models import guards
from edge_models.dataset import PHYS_HELD, DatasetConfig, Samples, build
from edge_models.features import FEATURES
from edge_models.model import HORIZONS_MIN, TIER_HORIZON_MIN, TIERS_MM, Net
from edge_models.skill import compare, markdown
from edge_models.tflite_export import build_tflite
from sim.weather.ponding import SURFACE
from sim.weather.storms import FAMILIES, TRAIN_SITES

MODEL_FAMILY = "roadside-nowcast"
MODEL_MAJOR = 1
PACKAGE_DIR = Path(__file__).resolve().parent
DEPTH_UNIT_MM = 100.0  # training target unit (10 cm)
THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.01), 2)  # candidate tier thresholds
FAR_LIMIT = 0.10  # tier thresholds keep the validation false-alarm ratio at or below this


@dataclass(frozen=True)
class TrainConfig:
    """Network size and optimiser settings."""

    hidden: tuple[int, ...] = (64, 32)
    epochs: int = 30
    batch: int = 512
    lr: float = 3e-3
    weight_decay: float = 1e-5
    tier_weight: float = 0.3
    horizon_weights: tuple[float, float, float] = (1.0, 1.5, 0.5)  # +15, +30, +60 min
    seed: int = 7


@dataclass
class _Params:
    """Trainable arrays (normalised inputs, depth in DEPTH_UNIT_MM)."""

    arrays: list[np.ndarray]  # W1, b1, ..., Wd, bd, Ws, Wp, bp
    n_hidden: int


def _init(n_in: int, cfg: TrainConfig, rng: np.random.Generator) -> _Params:
    arrays: list[np.ndarray] = []
    fan_in = n_in
    for width in cfg.hidden:
        arrays += [rng.normal(0, np.sqrt(2.0 / fan_in), (fan_in, width)), np.zeros(width)]
        fan_in = width
    arrays += [rng.normal(0, np.sqrt(1.0 / fan_in), (fan_in, 3)), np.zeros(3)]
    arrays += [np.zeros((n_in, 3))]
    arrays += [rng.normal(0, np.sqrt(1.0 / fan_in), (fan_in, 2)), np.zeros(2)]
    return _Params([a.astype(np.float32) for a in arrays], len(cfg.hidden))


def _loss_and_grads(
    p: _Params, x: np.ndarray, y: np.ndarray, tier: np.ndarray, cfg: TrainConfig
) -> tuple[float, list[np.ndarray]]:
    """Loss of a batch and its gradient with respect to every array."""
    a = p.arrays
    nh = p.n_hidden
    hs, h = [x], x
    for i in range(nh):
        h = np.maximum(h @ a[2 * i] + a[2 * i + 1], 0.0)
        hs.append(h)
    wd, bd, ws, wp, bp = a[2 * nh :]
    pred = h @ wd + bd + x @ ws
    logits = h @ wp + bp
    prob = 1.0 / (1.0 + np.exp(-logits))
    n = x.shape[0]
    err = pred - y
    bce = np.logaddexp(0.0, logits) - tier * logits
    w = np.asarray(cfg.horizon_weights, np.float32)
    loss = float(np.mean(err**2 * w) + cfg.tier_weight * np.mean(bce))

    g_pred = 2.0 * err * w / err.size
    g_logit = cfg.tier_weight * (prob - tier) / (n * 2)
    grads: list[np.ndarray] = [np.empty(0)] * len(a)
    grads[2 * nh] = h.T @ g_pred
    grads[2 * nh + 1] = g_pred.sum(0)
    grads[2 * nh + 2] = x.T @ g_pred
    grads[2 * nh + 3] = h.T @ g_logit
    grads[2 * nh + 4] = g_logit.sum(0)
    g_h = g_pred @ wd.T + g_logit @ wp.T
    for i in reversed(range(nh)):
        g_h = g_h * (hs[i + 1] > 0)
        grads[2 * i] = hs[i].T @ g_h
        grads[2 * i + 1] = g_h.sum(0)
        if i:
            g_h = g_h @ a[2 * i].T
    return loss, grads


def _fold(p: _Params, mean: np.ndarray, std: np.ndarray) -> Net:
    """Export weights: normalisation folded into the first layer and skip, depth in metres."""
    a = [np.asarray(v, np.float64) for v in p.arrays]
    nh = p.n_hidden
    scale = DEPTH_UNIT_MM / 1000.0
    w1 = a[0] / std[:, None]
    hidden = [(w1, a[1] - (mean / std) @ a[0])]
    hidden += [(a[2 * i], a[2 * i + 1]) for i in range(1, nh)]
    wd, bd, ws, wp, bp = a[2 * nh :]
    f32 = np.float32

    return Net(
        hidden=tuple((w.astype(f32), b.astype(f32)) for w, b in hidden),
        depth=((wd * scale).astype(f32), ((bd - (mean / std) @ ws) * scale).astype(f32)),
        skip=(ws / std[:, None] * scale).astype(f32),
        prob=(wp.astype(f32), bp.astype(f32)),
    )


def fit(
    train: Samples,
    val: Samples,
    cfg: TrainConfig,
    log: Any = print,
    anchor: tuple[int, ...] | None = None,
) -> tuple[Net, list[dict[str, float]]]:
    """Train on ``train``; keep the epoch with the best validation RMSE at +30 min.

    ``anchor``: per depth output, the feature it starts equal to (the point model's forecast for
    that horizon): the skip begins as that identity, so the network learns a correction to it.
    """
    rng = np.random.default_rng(cfg.seed)
    mean = train.x.astype(np.float64).mean(0)
    std = train.x.astype(np.float64).std(0)
    std = np.where(std < 1e-6, 1.0, std)
    x = ((train.x - mean) / std).astype(np.float32)
    y = (train.depth / DEPTH_UNIT_MM).astype(np.float32)
    tier = train.tier.astype(np.float32)
    p = _init(x.shape[1], cfg, rng)
    if anchor is not None:
        for k, col in enumerate(anchor):
            p.arrays[-3][col, k] = std[col] / DEPTH_UNIT_MM
            p.arrays[2 * p.n_hidden + 1][k] = mean[col] / DEPTH_UNIT_MM
    m = [np.zeros_like(v) for v in p.arrays]
    v2 = [np.zeros_like(v) for v in p.arrays]
    b1, b2, eps, step = 0.9, 0.999, 1e-8, 0
    steps_per_epoch = int(np.ceil(len(x) / cfg.batch))
    total = cfg.epochs * steps_per_epoch
    best: tuple[float, Net] | None = None
    history = []
    for epoch in range(cfg.epochs):
        order = rng.permutation(len(x))
        losses = []
        for k in range(steps_per_epoch):
            idx = order[k * cfg.batch : (k + 1) * cfg.batch]
            loss, grads = _loss_and_grads(p, x[idx], y[idx], tier[idx], cfg)
            losses.append(loss)
            step += 1
            lr = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
            for i, g in enumerate(grads):
                g = g + cfg.weight_decay * p.arrays[i]
                m[i] = b1 * m[i] + (1 - b1) * g
                v2[i] = b2 * v2[i] + (1 - b2) * g * g
                mh = m[i] / (1 - b1**step)
                vh = v2[i] / (1 - b2**step)
                p.arrays[i] = (p.arrays[i] - lr * mh / (np.sqrt(vh) + eps)).astype(np.float32)
        net = _fold(p, mean, std)
        depth_m, _ = net.forward(val.x)
        val_rmse = float(np.sqrt(np.mean((depth_m[:, 1] * 1000.0 - val.depth[:, 1]) ** 2))) / 10
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_rmse30_cm": val_rmse})
        log(f"epoch {epoch:3d} loss {np.mean(losses):.4f} val rmse+30 {val_rmse:.3f} cm")
        if best is None or val_rmse < best[0]:
            best = (val_rmse, net)
    assert best is not None
    return best[1], history


def pick_threshold(prob: np.ndarray, observed: np.ndarray) -> float:
    """The lowest threshold (the most hits, the earliest warnings) whose false-alarm ratio stays
    at or below :data:`FAR_LIMIT`; the best critical success index if none does.

    CSI = hits / (hits + misses + false alarms).
    """
    observed = np.asarray(observed, bool)
    csi, ok = [], []
    for t in THRESHOLD_GRID:
        warned = prob >= t
        hits, alarms = np.sum(warned & observed), np.sum(warned)
        csi.append(hits / max(np.sum(warned | observed), 1))
        ok.append(alarms > 0 and (alarms - hits) / alarms <= FAR_LIMIT)
    if any(ok):
        return float(THRESHOLD_GRID[ok.index(True)])
    return float(THRESHOLD_GRID[int(np.argmax(csi))])


def choose_thresholds(net: Net, val: Samples) -> list[float]:
    """Per tier, :func:`pick_threshold` on the validation storms (outputs clipped)."""
    _, prob = guards.forward(net, val.x)
    return [pick_threshold(prob[:, j], val.tier[:, j]) for j in range(len(TIERS_MM))]


def evaluate(net: Net, test: Samples, thresholds: list[float]) -> dict[str, list[dict[str, Any]]]:
    """Skill of the network (clipped to the physical limits) and both baselines on ``test``."""
    depth_mm, prob = guards.forward(net, test.x)
    return compare(depth_mm, prob >= np.asarray(thresholds, np.float32), test)


def model_version(tflite_without_version: bytes) -> str:
    """Version string: family, major, and a digest of the weights."""
    digest = hashlib.sha256(tflite_without_version).hexdigest()[:10]
    return f"{MODEL_FAMILY}-{MODEL_MAJOR}+{digest}"


def metadata(version: str, thresholds: list[float]) -> dict[str, Any]:
    """What the flatbuffer carries besides weights (the runtime checks the feature names)."""
    return {
        "version": version,
        "features": list(FEATURES),
        "horizons_min": list(HORIZONS_MIN),
        "tiers_mm": list(TIERS_MM),
        "tier_horizon_min": TIER_HORIZON_MIN,
        "tier_thresholds": thresholds,
        "outputs": {"depth_m": "depth (m) at horizons", "tier_prob": "P(pass tier within)"},
    }


def _update_card(card: Path, table: str, version: str) -> None:
    text = card.read_text()
    block = f"<!-- skill:begin -->\nModel version `{version}`.\n\n{table}\n<!-- skill:end -->"
    card.write_text(re.sub(r"<!-- skill:begin -->.*<!-- skill:end -->", block, text, flags=re.S))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--storms", default=DatasetConfig.n_storms, show_default=True)
@click.option("--epochs", default=TrainConfig.epochs, show_default=True)
@click.option(
    "--out-dir", type=click.Path(file_okay=False, path_type=Path), default=PACKAGE_DIR,
    show_default="edge_models/",
)  # fmt: skip
@click.option(
    "--check", is_flag=True,
    help="rebuild into a temporary folder and compare with the shipped files (exit 1 if not equal)",
)  # fmt: skip
def main(storms: int, epochs: int, out_dir: Path, check: bool) -> None:
    """Generate storms, train the nowcast, export nowcast.tflite and report held-out skill."""
    if check:
        with tempfile.TemporaryDirectory() as tmp:
            main.callback(storms, epochs, Path(tmp), False)  # type: ignore[misc]
            differ = [
                name
                for name in ("nowcast.tflite", "nowcast.json")
                if (Path(tmp) / name).read_bytes() != (out_dir / name).read_bytes()
            ]
        if differ:
            click.echo(f"rebuild differs from {out_dir}: {', '.join(differ)}", err=True)
            sys.exit(1)
        click.echo(f"rebuild is bit for bit the model in {out_dir}")
        return
    t0 = time.perf_counter()
    dcfg = DatasetConfig(n_storms=storms)
    tcfg = TrainConfig(epochs=epochs)
    with Progress(
        TextColumn("generating storms"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    ) as bar:
        task = bar.add_task("storms", total=storms)
        data = build(dcfg, progress=lambda n: bar.advance(task, n))
    sizes = {k: len(v) for k, v in data.items()}
    click.echo(f"dataset: {storms} storms, samples {sizes} ({time.perf_counter() - t0:.0f} s)")
    net, history = fit(data["train"], data["val"], tcfg, log=click.echo, anchor=tuple(PHYS_HELD))
    thresholds = choose_thresholds(net, data["val"])
    version = model_version(build_tflite(net, metadata("unversioned", thresholds)))
    blob = build_tflite(net, metadata(version, thresholds))
    skill = evaluate(net, data["test"], thresholds)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "nowcast.tflite").write_bytes(blob)
    report = {
        **metadata(version, thresholds),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
        "params": net.n_params(),
        "dataset": {
            **asdict(dcfg),
            "families": {f: FAMILIES[f].manifest() for f in dcfg.families},
            "sites": asdict(TRAIN_SITES),
            "surface": asdict(SURFACE),
        },
        "samples": sizes,
        "training": {**asdict(tcfg), "history": history},
        "skill_test": skill,
        "weights": net.to_dict(),  # the same weights, for hosts without the TFLite schema
        "command": "python -m edge_models.train",
    }
    (out_dir / "nowcast.json").write_text(json.dumps(report, indent=1) + "\n")
    table = markdown(skill)
    card = out_dir / "MODEL_CARD.md"
    if card.exists():
        _update_card(card, table, version)
    click.echo(table)
    click.echo(f"wrote {out_dir / 'nowcast.tflite'} ({len(blob)} bytes), version {version}")
    click.echo(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
