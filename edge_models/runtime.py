"""Run the shipped nowcast on the station: LiteRT, tflite-runtime, or numpy with the same weights.

``Nowcaster()`` loads ``edge_models/nowcast.tflite``. The backend is the first that loads:
``ai_edge_litert.interpreter`` ('litert'), ``tflite_runtime.interpreter`` ('tflite-runtime'),
else a numpy forward pass ('numpy'). Metadata (version, features, tier thresholds) and the numpy
pass's weights come from the ``.json`` beside the model when it carries the model file's SHA-256
(the file's own weights, without importing the 5 MB TFLite schema into the station), else they
are parsed from the flatbuffer itself with the schema from ai-edge-litert. The interpreter runs
without its default XNNPACK delegate: nothing to gain on a 9k-parameter network, 1 MB to save.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edge_models import guards
from edge_models.errors import FeatureMismatchError, ModelFileError
from edge_models.features import FEATURES, FeatureInput, SiteLike, features_from_history
from edge_models.model import Net

DEFAULT_MODEL = Path(__file__).resolve().parent / "nowcast.tflite"
Backend = Literal["litert", "tflite-runtime", "numpy"]
BACKENDS: tuple[Backend, ...] = ("litert", "tflite-runtime", "numpy")


@dataclass(frozen=True)
class Forecast:
    """Depth forecasts (mm) at +15/+30/+60 min and P(depth passes 15/30 cm within 30 min)."""

    depth_15_mm: float
    depth_30_mm: float
    depth_60_mm: float
    p_15cm: float
    p_30cm: float
    model_version: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _interpreter(backend: Backend, content: bytes) -> Any:
    if backend == "litert":
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    else:
        from tflite_runtime.interpreter import Interpreter, OpResolverType
    interp = Interpreter(
        model_content=content,
        num_threads=1,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    return interp


def weights_from_json(json_path: Path, content: bytes) -> tuple[Net, dict[str, Any]]:
    """Weights and metadata from the model's JSON, checked against the model file's digest."""
    try:
        doc = json.loads(json_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{json_path}: cannot read model weights ({exc})") from exc
    if doc.get("sha256") != hashlib.sha256(content).hexdigest():
        raise ModelFileError(f"{json_path}: weights do not belong to this model file (sha256)")
    try:
        return Net.from_dict(doc["weights"]), doc
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{json_path}: malformed weights ({exc!r})") from exc


def _load(path: Path, content: bytes) -> tuple[Net, dict[str, Any]]:
    json_path = path.with_suffix(".json")
    if json_path.is_file():
        try:
            return weights_from_json(json_path, content)
        except ModelFileError:
            pass  # not this file's weights: read the file itself
    try:
        from edge_models.tflite_export import read_tflite
    except ImportError:  # no TFLite schema on this host (ai-edge-litert not installable)
        return weights_from_json(path.with_suffix(".json"), content)
    try:
        return read_tflite(content)
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from exc


class Nowcaster:
    """The nowcast model, loaded once; ``predict_features`` takes about ten microseconds."""

    def __init__(self, model_path: str | Path | None = None, *, backend: Backend | None = None):
        path = Path(model_path) if model_path is not None else DEFAULT_MODEL
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise ModelFileError(f"{path}: cannot read nowcast model ({exc.strerror})") from exc
        self._net, meta = _load(path, content)
        if tuple(meta.get("features", ())) != FEATURES:
            raise FeatureMismatchError(
                f"{path}: model was trained on other features than edge_models.features.FEATURES"
            )
        self.path = path
        self.version: str = str(meta["version"])
        self.metadata: dict[str, Any] = meta
        self.tier_thresholds: tuple[float, ...] = tuple(meta.get("tier_thresholds", (0.5, 0.5)))
        """Probability from which each tier (15, 30 cm) counts as forecast (set in training)."""
        self._lock = threading.Lock()
        self._interp: Any = None
        self.backend: Backend = "numpy"
        for candidate in (backend,) if backend else BACKENDS:
            if candidate == "numpy":
                break
            try:
                self._interp = _interpreter(candidate, content)
            except ImportError:
                continue
            except (RuntimeError, ValueError) as exc:
                raise ModelFileError(f"{path}: {candidate} refused the model ({exc})") from exc
            self.backend = candidate
            break
        else:
            if backend:
                raise ModelFileError(f"backend {backend!r} is not installed")
        if self._interp is not None:
            self._in = self._interp.get_input_details()[0]["index"]
            outs = {d["name"]: d["index"] for d in self._interp.get_output_details()}
            self._out_depth, self._out_prob = outs["depth_m"], outs["tier_prob"]

    def network(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The network's own outputs for one feature vector: depth (m, 3), tier probabilities."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape != (len(FEATURES),):
            raise FeatureMismatchError(f"expected {len(FEATURES)} features, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise FeatureMismatchError("features must be finite (mask flagged inputs first)")
        if self._interp is None:
            depth, prob = self._net.forward(x)
            return depth[0], prob[0]
        with self._lock:
            self._interp.set_tensor(self._in, x[None, :])
            self._interp.invoke()
            depth = self._interp.get_tensor(self._out_depth)[0].copy()
            prob = self._interp.get_tensor(self._out_prob)[0].copy()
        return depth, prob

    def raw(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The forecast for one feature vector: the network's outputs within the physical limits
        (``edge_models.guards``): depth (m, 3) and tier probabilities (2)."""
        depth, prob = self.network(x)
        depth_mm, p = guards.clip(np.asarray(x, np.float32)[None, :], depth[None, :] * 1e3, prob)
        return depth_mm[0] / np.float32(1000.0), p[0]

    def predict_features(self, x: np.ndarray) -> Forecast:
        """Forecast from a feature vector (``edge_models.features.features_from_history``)."""
        depth, prob = self.raw(x)
        d = [float(v) * 1000.0 for v in depth]
        return Forecast(d[0], d[1], d[2], float(prob[0]), float(prob[1]), self.version)

    predict = predict_features  # the name in the cross-helper contract

    def predict_history(self, history: FeatureInput, site: SiteLike) -> Forecast:
        """Forecast from a station history and the site parameters."""
        return self.predict_features(features_from_history(history, site))
