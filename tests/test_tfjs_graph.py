"""The TensorFlow.js graph-model interpreter against the same maths written directly in PyTorch, on
small graphs built here (weights in a .bin, topology in model.json, as the tfjs converter writes)."""
import base64
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facegan.errors import ModelError
from facegan.nets.tfjs_graph import TFJSGraph


def _s(v: str) -> str:
    return base64.b64encode(v.encode()).decode()


def _write(tmp_path, nodes, weights, fp16=()):
    """weights: {name: array}; names in fp16 are stored as float16-quantized, like the converter does."""
    blob, manifest = b"", []
    for name, arr in weights.items():
        arr = np.asarray(arr)
        w = {"name": name, "shape": list(arr.shape), "dtype": "int32" if arr.dtype.kind == "i" else "float32"}
        if name in fp16:
            w["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            blob += arr.astype("<f2").tobytes()
        else:
            blob += arr.astype("<i4" if arr.dtype.kind == "i" else "<f4").tobytes()
        manifest.append(w)
    nodes = [{"name": n, "op": "Const", "attr": {}} for n in weights] + nodes
    (tmp_path / "m.bin").write_bytes(blob)
    (tmp_path / "m.json").write_text(json.dumps({
        "format": "graph-model", "modelTopology": {"node": nodes},
        "weightsManifest": [{"paths": ["m.bin"], "weights": manifest}]}))
    return tmp_path / "m.json"


def _conv_node(name, op, inputs, stride, fused=(), padding="SAME"):
    attr = {"strides": {"list": {"i": ["1", str(stride), str(stride), "1"]}},
            "padding": {"s": _s(padding)}, "data_format": {"s": _s("NHWC")}}
    if fused:
        attr["fused_ops"] = {"list": {"s": [_s(f) for f in fused]}}
    return {"name": name, "op": op, "input": inputs, "attr": attr}


def test_conv_same_stride2_depthwise_fused_bias_relu_and_mean(tmp_path):
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(3, 3, 3, 4)).astype(np.float32)
    b1 = rng.normal(size=4).astype(np.float32)
    dw = rng.normal(size=(3, 3, 4, 1)).astype(np.float32)
    fc = rng.normal(size=(4, 2)).astype(np.float32)
    nodes = [
        {"name": "x", "op": "Placeholder", "attr": {}},
        _conv_node("c1", "_FusedConv2D", ["x", "w1", "b1"], 2, ("BiasAdd", "Relu")),
        _conv_node("d1", "DepthwiseConv2dNative", ["c1", "dw"], 1),
        {"name": "m", "op": "Mean", "input": ["d1", "axes"], "attr": {"keep_dims": {"b": False}}},
        {"name": "y", "op": "MatMul", "input": ["m", "fc"], "attr": {}},
    ]
    net = TFJSGraph(_write(tmp_path, nodes, {"w1": w1, "b1": b1, "dw": dw, "fc": fc,
                                             "axes": np.array([1, 2], np.int32)}, fp16=("fc",)))
    x = torch.from_numpy(rng.normal(size=(2, 9, 9, 3)).astype(np.float32))
    # reference: TF 'SAME' at stride 2 on 9 px pads 1 on each side (total 2); stride 1 pads 1/1
    xc = x.permute(0, 3, 1, 2)
    h = F.relu(F.conv2d(F.pad(xc, [1, 1, 1, 1]), torch.from_numpy(w1).permute(3, 2, 0, 1), stride=2)
               + torch.from_numpy(b1)[:, None, None])
    h = F.conv2d(F.pad(h, [1, 1, 1, 1]), torch.from_numpy(dw).permute(2, 3, 0, 1), groups=4)
    fc16 = torch.from_numpy(fc.astype(np.float16).astype(np.float32))
    ref = h.mean((2, 3)) @ fc16
    assert torch.allclose(net(x), ref, atol=1e-4)


def test_same_padding_is_asymmetric_like_tensorflow(tmp_path):
    # 8 px, kernel 3, stride 2 -> TF pads 0 on top/left and 1 on bottom/right
    w = np.ones((3, 3, 1, 1), np.float32)
    nodes = [{"name": "x", "op": "Placeholder", "attr": {}}, _conv_node("c", "Conv2D", ["x", "w"], 2)]
    net = TFJSGraph(_write(tmp_path, nodes, {"w": w}))
    x = torch.arange(64, dtype=torch.float32).reshape(1, 8, 8, 1)
    y = net(x)
    assert y.shape == (1, 4, 4, 1)
    assert float(y[0, 0, 0, 0]) == float(x[0, :3, :3, 0].sum())  # window starts at pixel 0
    assert float(y[0, 3, 3, 0]) == float(x[0, 6:8, 6:8, 0].sum())  # last window hangs off the edge


def test_prelu_pattern_under_a_fused_relu_is_restored(tmp_path):
    """Converter output: Relu fused into the conv while Abs/Sub still read that conv. The interpreter
    computes relu(y) + a * (y - |y|), i.e. the PReLU the graph was written for."""
    w = np.array([[[[1.0]]]], np.float32)
    a = np.array([0.25], np.float32)
    nodes = [{"name": "x", "op": "Placeholder", "attr": {}},
             _conv_node("c", "_FusedConv2D", ["x", "w", "b"], 1, ("BiasAdd", "Relu")),
             {"name": "abs", "op": "Abs", "input": ["c"], "attr": {}},
             {"name": "sub", "op": "Sub", "input": ["c", "abs"], "attr": {}},
             {"name": "mul", "op": "Mul", "input": ["sub", "a"], "attr": {}},
             {"name": "out", "op": "Add", "input": ["c", "mul"], "attr": {}}]
    net = TFJSGraph(_write(tmp_path, nodes, {"w": w, "b": np.zeros(1, np.float32), "a": a}))
    x = torch.tensor([-2.0, -1.0, 0.5, 3.0]).reshape(1, 1, 4, 1)
    y = net(x).reshape(-1)
    assert torch.allclose(y, torch.tensor([-2.0 * 0.5 + 0.0, -1.0 * 0.5, 0.5, 3.0]) * torch.tensor([1, 1, 1, 1.0]))


def test_outputs_are_differentiable_wrt_the_input(tmp_path):
    w = np.random.default_rng(1).normal(size=(3, 3, 3, 2)).astype(np.float32)
    nodes = [{"name": "x", "op": "Placeholder", "attr": {}}, _conv_node("c", "Conv2D", ["x", "w"], 1)]
    net = TFJSGraph(_write(tmp_path, nodes, {"w": w}))
    x = torch.randn(1, 5, 5, 3, requires_grad=True)
    net(x).square().sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert not list(net.parameters())  # weights are buffers: nothing to train by accident


def test_unknown_operator_and_bad_files_are_clear_errors(tmp_path):
    nodes = [{"name": "x", "op": "Placeholder", "attr": {}},
             {"name": "y", "op": "NonMaxSuppressionV5", "input": ["x"], "attr": {}}]
    with pytest.raises(ModelError, match="NonMaxSuppressionV5"):
        TFJSGraph(_write(tmp_path, nodes, {}))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ModelError, match="not a TensorFlow.js graph model"):
        TFJSGraph(tmp_path / "bad.json")
    nodes = [{"name": "x", "op": "Placeholder", "attr": {}}, _conv_node("c", "Conv2D", ["x", "w"], 1)]
    p = _write(tmp_path, nodes, {"w": np.ones((3, 3, 3, 2), np.float32)})
    (tmp_path / "m.bin").write_bytes(b"\0" * 10)
    with pytest.raises(ModelError, match="too short"):
        TFJSGraph(p)
