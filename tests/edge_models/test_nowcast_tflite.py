"""The flatbuffer written without TensorFlow: LiteRT runs it exactly as the numpy forward pass."""

from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from edge_models.dataset import Samples
from edge_models.errors import ModelFileError
from edge_models.model import Net
from edge_models.runtime import DEFAULT_MODEL
from edge_models.tflite_export import build_tflite, read_tflite


def litert_forward(blob: bytes, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run a batch through LiteRT (input resized to the batch)."""
    interp = Interpreter(model_content=blob)
    idx = interp.get_input_details()[0]["index"]
    interp.resize_tensor_input(idx, list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(idx, x.astype(np.float32))
    interp.invoke()
    outs = {d["name"]: d["index"] for d in interp.get_output_details()}
    return interp.get_tensor(outs["depth_m"]), interp.get_tensor(outs["tier_prob"])


def test_roundtrip_keeps_weights_and_metadata(random_net: Net) -> None:
    blob = build_tflite(random_net, {"version": "t-1", "features": ["a"]})
    net, meta = read_tflite(blob)
    assert meta == {"version": "t-1", "features": ["a"]}
    for (w0, b0), (w1, b1) in zip(random_net.hidden, net.hidden, strict=True):
        np.testing.assert_array_equal(w0, w1)
        np.testing.assert_array_equal(b0, b1)
    np.testing.assert_array_equal(random_net.skip, net.skip)
    np.testing.assert_array_equal(random_net.prob[0], net.prob[0])


def test_random_network_litert_matches_numpy(random_net: Net) -> None:
    blob = build_tflite(random_net, {"version": "t-2"})
    x = np.random.default_rng(3).normal(0, 3, (5000, random_net.n_features)).astype(np.float32)
    depth, prob = litert_forward(blob, x)
    want_depth, want_prob = random_net.forward(x)
    assert np.abs(depth - want_depth).max() < 1e-5
    assert np.abs(prob - want_prob).max() < 1e-5
    assert (depth == 0).any() and (depth > 0).any()  # the output ReLU is exercised


def test_shipped_model_litert_matches_numpy_on_storm_inputs(storm_set: Samples) -> None:
    blob = DEFAULT_MODEL.read_bytes()
    net, _ = read_tflite(blob)
    depth, prob = litert_forward(blob, storm_set.x)
    want_depth, want_prob = net.forward(storm_set.x)
    assert len(storm_set) > 1000
    assert np.abs(depth - want_depth).max() < 1e-5
    assert np.abs(prob - want_prob).max() < 1e-5


def test_shipped_model_is_small() -> None:
    assert DEFAULT_MODEL.stat().st_size <= 64 * 1024


@pytest.mark.parametrize("blob", [b"", b"not a model at all", b"\0" * 4 + b"TFL3" + b"\0" * 40])
def test_garbage_is_refused(blob: bytes) -> None:
    with pytest.raises(ModelFileError):
        read_tflite(blob)
