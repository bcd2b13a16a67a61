"""Write and read the nowcast ``.tflite`` flatbuffer without TensorFlow.

The TFLite schema ships inside ``ai-edge-litert`` (``schema_py_generated``, flatbuffers object
API). The graph is::

    x[1,F] -FC+relu-> h1 -FC+relu-> ... -> h --FC--> a --ADD(+skip)+relu--> depth[1,3]  (metres)
    x ------------------------------FC (no bias)--> skip --^
                                        h --FC--> logits --LOGISTIC--> prob[1,2]

The model's metadata (version, feature names, horizons, tiers) is a JSON document in the
flatbuffer's ``metadata`` entry :data:`METADATA_NAME`; the version is also its ``description``.
:func:`read_tflite` parses a file back into :class:`~edge_models.model.Net` weights, so the
numpy fallback runs exactly the weights the interpreter runs.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as tfl

from edge_models.errors import ModelFileError
from edge_models.model import Layer, Net

METADATA_NAME = "roadside_nowcast"
_ALIGN = 16


class _AlignedBufferT(tfl.BufferT):
    """A buffer whose bytes start on a 16-byte boundary (so weights can be used in place)."""

    def Pack(self, builder: flatbuffers.Builder) -> int:
        data = None
        if self.data is not None:
            payload = bytes(self.data)
            builder.StartVector(1, len(payload), _ALIGN)
            builder.head = builder.head - len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            builder.vectorNumElems = len(payload)
            data = builder.EndVector()
        tfl.BufferStart(builder)
        if data is not None:
            tfl.BufferAddData(builder, data)
        return int(tfl.BufferEnd(builder))


class _Graph:
    """Accumulates tensors, buffers and operators of one subgraph."""

    def __init__(self) -> None:
        self.buffers: list[tfl.BufferT] = [tfl.BufferT()]  # buffer 0: the empty sentinel
        self.tensors: list[tfl.TensorT] = []
        self.operators: list[tfl.OperatorT] = []
        self.opcodes: list[int] = []

    def tensor(self, name: str, shape: tuple[int, ...], data: np.ndarray | None = None) -> int:
        t = tfl.TensorT()
        t.name, t.shape, t.type = name, list(shape), tfl.TensorType.FLOAT32
        t.buffer = 0
        if shape and shape[0] == 1 and data is None:
            t.shapeSignature = [-1, *shape[1:]]
        if data is not None:
            buf = _AlignedBufferT()
            buf.data = np.ascontiguousarray(data, dtype="<f4").reshape(-1).view(np.uint8)
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, code: int, inputs: list[int], outputs: list[int], options: Any = None) -> None:
        if code not in self.opcodes:
            self.opcodes.append(code)
        o = tfl.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.opcodes.index(code), inputs, outputs
        if isinstance(options, tfl.FullyConnectedOptionsT):
            o.builtinOptionsType = tfl.BuiltinOptions.FullyConnectedOptions
        elif isinstance(options, tfl.AddOptionsT):
            o.builtinOptionsType = tfl.BuiltinOptions.AddOptions
        o.builtinOptions = options
        self.operators.append(o)

    def fully_connected(
        self, name: str, x: int, w: np.ndarray, b: np.ndarray | None, relu: bool
    ) -> int:
        """FC layer; ``w`` is (in, out) as in :class:`Net` (TFLite stores (out, in))."""
        wt = self.tensor(f"{name}/weights", (w.shape[1], w.shape[0]), w.T)
        bt = -1 if b is None else self.tensor(f"{name}/bias", (b.shape[0],), b)
        out = self.tensor(name, (1, w.shape[1]))
        opts = tfl.FullyConnectedOptionsT()
        opts.fusedActivationFunction = (
            tfl.ActivationFunctionType.RELU if relu else tfl.ActivationFunctionType.NONE
        )
        self.op(tfl.BuiltinOperator.FULLY_CONNECTED, [x, wt, bt], [out], opts)
        return out


def build_tflite(net: Net, metadata: dict[str, Any]) -> bytes:
    """Serialise ``net`` as a TFLite flatbuffer carrying ``metadata`` (needs a ``version``)."""
    g = _Graph()
    x = g.tensor("features", (1, net.n_features))
    h = x
    for i, (w, b) in enumerate(net.hidden):
        h = g.fully_connected(f"hidden{i}", h, w, b, relu=True)
    head = g.fully_connected("depth_head", h, net.depth[0], net.depth[1], relu=False)
    skip = g.fully_connected("skip", x, net.skip, None, relu=False)
    depth = g.tensor("depth_m", (1, net.depth[0].shape[1]))
    add = tfl.AddOptionsT()
    add.fusedActivationFunction = tfl.ActivationFunctionType.RELU
    g.op(tfl.BuiltinOperator.ADD, [head, skip], [depth], add)
    logits = g.fully_connected("prob_logits", h, net.prob[0], net.prob[1], relu=False)
    prob = g.tensor("tier_prob", (1, net.prob[0].shape[1]))
    g.op(tfl.BuiltinOperator.LOGISTIC, [logits], [prob])

    meta_buf = tfl.BufferT()
    meta_buf.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), dtype=np.uint8)
    g.buffers.append(meta_buf)
    meta = tfl.MetadataT()
    meta.name, meta.buffer = METADATA_NAME, len(g.buffers) - 1

    sub = tfl.SubGraphT()
    sub.tensors, sub.operators, sub.name = g.tensors, g.operators, "nowcast"
    sub.inputs, sub.outputs = [x], [depth, prob]
    model = tfl.ModelT()
    model.version = 3
    model.description = str(metadata["version"])
    model.buffers, model.subgraphs, model.metadata = g.buffers, [sub], [meta]
    codes = []
    for code in g.opcodes:
        oc = tfl.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
        codes.append(oc)
    model.operatorCodes = codes
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def read_tflite(data: bytes) -> tuple[Net, dict[str, Any]]:
    """Weights and metadata of a nowcast flatbuffer written by :func:`build_tflite`."""
    if len(data) < 8 or not tfl.Model.ModelBufferHasIdentifier(data, 0):
        raise ModelFileError("not a TFLite flatbuffer (identifier TFL3 missing)")
    try:
        model = tfl.ModelT.InitFromPackedBuf(bytearray(data), 0)
        sub = model.subgraphs[0]
        arrays: dict[str, np.ndarray] = {}
        for t in sub.tensors:
            buf = model.buffers[t.buffer]
            if t.buffer and buf.data is not None:
                raw = np.asarray(buf.data, dtype=np.uint8).tobytes()
                shape = tuple(int(s) for s in t.shape)
                arrays[t.name.decode()] = np.frombuffer(raw, "<f4").reshape(shape).copy()
        metas = {m.name.decode(): m.buffer for m in model.metadata or []}
        meta_bytes = np.asarray(model.buffers[metas[METADATA_NAME]].data, np.uint8).tobytes()
        metadata = json.loads(meta_bytes)
        n_hidden = sum(1 for k in arrays if k.startswith("hidden") and k.endswith("/weights"))

        def layer(name: str) -> Layer:
            return arrays[f"{name}/weights"].T.copy(), arrays[f"{name}/bias"]

        net = Net(
            hidden=tuple(layer(f"hidden{i}") for i in range(n_hidden)),
            depth=layer("depth_head"),
            skip=arrays["skip/weights"].T.copy(),
            prob=layer("prob_logits"),
        )
    except (KeyError, IndexError, AttributeError, ValueError, TypeError, struct.error) as exc:
        raise ModelFileError(f"nowcast model file is malformed: {exc!r}") from exc
    if n_hidden == 0:
        raise ModelFileError("nowcast model file has no hidden layers")
    return net, metadata
