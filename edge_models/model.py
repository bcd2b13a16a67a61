"""The nowcast network: a small MLP with a linear skip, as plain numpy weights.

Inputs are the raw features (``edge_models.features.FEATURES``; normalisation is folded into the
first layer and the skip). Outputs, as in the exported ``.tflite`` graph:

- ``depth`` ``(N, 3)``: water depth in **metres** at +15, +30, +60 min,
  ``relu(head(h) + skip(x))``;
- ``prob`` ``(N, 2)``: probability that the depth passes 15 cm and 30 cm at some time within the
  next :data:`TIER_HORIZON_MIN` minutes, ``sigmoid(prob_head(h))``.

``h`` is the last hidden layer; hidden layers are fully connected with ReLU.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np

HORIZONS_MIN = (15, 30, 60)
"""Depth forecast lead times (minutes)."""

TIERS_MM = (150.0, 300.0)
"""Ponding tiers whose exceedance probability the model gives (15 cm ordinary, 30 cm light)."""

TIER_HORIZON_MIN = 30
"""Tier probabilities are for passing the tier at any time within this many minutes."""

Layer = tuple[np.ndarray, np.ndarray]  # (W (in, out), b (out,)), float32


@dataclass(frozen=True)
class Net:
    """Weights of the exported network (float32, normalisation folded in)."""

    hidden: tuple[Layer, ...]
    depth: Layer
    skip: np.ndarray  # (n_features, 3), no bias (folded into depth's bias)
    prob: Layer

    @property
    def n_features(self) -> int:
        return int(self.hidden[0][0].shape[0])

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Depth (m) and tier probabilities for features ``x`` of shape ``(N, F)`` or ``(F,)``."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float32))
        h = x
        for w, b in self.hidden:
            h = np.maximum(h @ w + b, np.float32(0.0))
        depth = np.maximum(h @ self.depth[0] + self.depth[1] + x @ self.skip, np.float32(0.0))
        logits = h @ self.prob[0] + self.prob[1]
        prob = np.float32(1.0) / (np.float32(1.0) + np.exp(-logits))
        return depth.astype(np.float32), prob.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready weights (little-endian float32, base64), for hosts without the schema."""

        def enc(a: np.ndarray) -> dict[str, Any]:
            raw = np.ascontiguousarray(a, "<f4").tobytes()
            return {"shape": list(a.shape), "f32le": base64.b64encode(raw).decode()}

        return {
            "hidden": [[enc(w), enc(b)] for w, b in self.hidden],
            "depth": [enc(self.depth[0]), enc(self.depth[1])],
            "skip": enc(self.skip),
            "prob": [enc(self.prob[0]), enc(self.prob[1])],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Net:
        """Inverse of :meth:`to_dict`."""

        def dec(e: dict[str, Any]) -> np.ndarray:
            raw = base64.b64decode(e["f32le"])
            return np.frombuffer(raw, "<f4").reshape(e["shape"]).astype(np.float32)

        def layer(pair: list[dict[str, Any]]) -> Layer:
            return dec(pair[0]), dec(pair[1])

        return cls(
            hidden=tuple(layer(p) for p in d["hidden"]),
            depth=layer(d["depth"]),
            skip=dec(d["skip"]),
            prob=layer(d["prob"]),
        )

    def n_params(self) -> int:
        arrays = [a for layer in (*self.hidden, self.depth, self.prob) for a in layer]
        return sum(a.size for a in arrays) + self.skip.size
