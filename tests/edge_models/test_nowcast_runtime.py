"""Nowcaster: loads the shipped model, picks a backend, refuses bad files and bad inputs."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from edge_models.dataset import Samples
from edge_models.errors import FeatureMismatchError, ModelFileError, NowcastError
from edge_models.features import FEATURES
from edge_models.model import Net
from edge_models.runtime import DEFAULT_MODEL, Forecast, Nowcaster, weights_from_json
from edge_models.tflite_export import build_tflite


def test_default_model_loads_with_litert() -> None:
    nc = Nowcaster()
    assert nc.backend == "litert"
    meta = json.loads((DEFAULT_MODEL.parent / "nowcast.json").read_text())
    assert nc.version == meta["version"] and nc.version.startswith("roadside-nowcast-")


def test_backends_agree_on_storm_inputs(storm_set: Samples) -> None:
    lite, numpy_nc = Nowcaster(), Nowcaster(backend="numpy")
    assert numpy_nc.backend == "numpy"
    for x in storm_set.x[::7]:
        a, b = lite.raw(x), numpy_nc.raw(x)
        assert np.abs(a[0] - b[0]).max() < 1e-5 and np.abs(a[1] - b[1]).max() < 1e-5


def test_forecast_fields(storm_set: Samples) -> None:
    f = Nowcaster().predict_features(storm_set.x[-1])
    assert isinstance(f, Forecast)
    assert min(f.depth_15_mm, f.depth_30_mm, f.depth_60_mm) >= 0.0
    assert 0.0 <= f.p_30cm <= 1.0 and 0.0 <= f.p_15cm <= 1.0
    assert set(f.as_dict()) >= {"depth_30_mm", "p_15cm", "model_version"}


def test_bad_inputs_are_refused() -> None:
    nc = Nowcaster()
    with pytest.raises(FeatureMismatchError, match="expected"):
        nc.predict_features(np.zeros(len(FEATURES) - 1))
    x = np.zeros(len(FEATURES))
    x[3] = np.nan
    with pytest.raises(FeatureMismatchError, match="finite"):
        nc.predict_features(x)


def test_missing_and_corrupt_files_name_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "none.tflite"
    with pytest.raises(ModelFileError, match=str(missing)):
        Nowcaster(missing)
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(DEFAULT_MODEL.read_bytes()[:200])
    with pytest.raises(NowcastError, match=r"corrupt\.tflite"):
        Nowcaster(corrupt)


def test_model_for_other_features_is_refused(tmp_path: Path, random_net: Net) -> None:
    path = tmp_path / "other.tflite"
    path.write_bytes(build_tflite(random_net, {"version": "x", "features": ["rain"]}))
    with pytest.raises(FeatureMismatchError, match="other features"):
        Nowcaster(path)


@pytest.mark.skipif(
    importlib.util.find_spec("tflite_runtime") is not None, reason="tflite-runtime installed"
)
def test_backend_not_installed_is_refused() -> None:
    with pytest.raises(ModelFileError, match="not installed"):
        Nowcaster(backend="tflite-runtime")


def test_json_weights_are_the_tflite_weights(tmp_path: Path, random_net: Net) -> None:
    blob = build_tflite(random_net, {"version": "j-1", "features": list(FEATURES)})
    doc = {
        "version": "j-1",
        "features": list(FEATURES),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "weights": random_net.to_dict(),
    }
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    net, meta = weights_from_json(path, blob)
    assert meta["version"] == "j-1"
    x = np.random.default_rng(4).normal(size=(50, len(FEATURES)))
    np.testing.assert_array_equal(net.forward(x)[0], random_net.forward(x)[0])
    with pytest.raises(ModelFileError, match="do not belong"):
        weights_from_json(path, blob + b"\0")


def test_shipped_json_matches_shipped_model() -> None:
    content = DEFAULT_MODEL.read_bytes()
    net, _ = weights_from_json(DEFAULT_MODEL.with_suffix(".json"), content)
    x = np.random.default_rng(6).normal(size=(100, len(FEATURES))).astype(np.float32)
    np.testing.assert_array_equal(net.forward(x)[1], Nowcaster(backend="numpy")._net.forward(x)[1])


def test_numpy_fallback_without_the_tflite_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host where neither ai-edge-litert nor tflite-runtime imports still forecasts."""
    import builtins

    real_import = builtins.__import__

    def no_tflite(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith(("ai_edge_litert", "tflite_runtime", "edge_models.tflite_export")):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_tflite)
    nc = Nowcaster()
    assert nc.backend == "numpy" and nc.version.startswith("roadside-nowcast-")
    x = np.zeros(len(FEATURES))
    monkeypatch.undo()
    ref = Nowcaster()
    assert nc.predict_features(x).depth_30_mm == pytest.approx(
        ref.predict_features(x).depth_30_mm, abs=1e-2
    )


def test_model_the_interpreter_refuses_is_a_model_file_error(tmp_path: Path) -> None:
    f = len(FEATURES)
    z = np.zeros
    broken = Net(  # second layer: 8 outputs but 5 biases; parses, cannot run
        hidden=(
            (z((f, 32), np.float32), z(32, np.float32)),
            (z((32, 8), np.float32), z(5, np.float32)),
        ),
        depth=(z((8, 3), np.float32), z(3, np.float32)),
        skip=z((f, 3), np.float32),
        prob=(z((8, 2), np.float32), z(2, np.float32)),
    )
    path = tmp_path / "broken.tflite"
    path.write_bytes(build_tflite(broken, {"version": "b", "features": list(FEATURES)}))
    with pytest.raises(ModelFileError, match="litert refused"):
        Nowcaster(path)
