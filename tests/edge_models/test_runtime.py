"""Nowcaster: loads the shipped model, picks a backend, refuses bad files and bad inputs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from edge_models.dataset import Samples
from edge_models.errors import FeatureMismatchError, ModelFileError, NowcastError
from edge_models.features import FEATURES
from edge_models.model import Net
from edge_models.runtime import DEFAULT_MODEL, Forecast, Nowcaster
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
