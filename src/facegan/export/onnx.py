"""ONNX export of facegan generators, checked against PyTorch with ONNX Runtime.

Two exporters are supported:

* ``legacy`` (default): torch's TorchScript-based exporter (``dynamo=False``). Needs nothing beyond
  torch and onnx; torch 2.13 marks it deprecated but it is what works offline with the pinned stack.
* ``dynamo``: the ``torch.export``-based exporter; needs the ``onnxscript`` package.

Conditioned generators are exported with their target baked in (``target=...``), or, without a
target, with a second input ``target`` (int64, one domain index per image).
The facegan meta (generator, io, domains, target) is stored in the model's ``metadata_props`` under
the key ``facegan`` so :class:`OnnxGenerator` can run the file without the checkpoint.
"""
from __future__ import annotations

import contextlib
import io as _io
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, InputNotFoundError, ModelError

META_KEY = "facegan"
EXPORTERS = ("legacy", "dynamo")


class _TargetInput(nn.Module):
    """A conditioned generator with the target as a model input (exported as int64 ``target``)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.net(x, target)


def _prepare(model: nn.Module) -> tuple[nn.Module, bool]:
    """-> (module to trace, takes_target_input)."""
    from ..nets.loading import ConditionedGenerator

    if isinstance(model, ConditionedGenerator) and model.target is None:
        return _TargetInput(model.net).eval(), True
    return model.eval(), False


def _example(size: int, batch: int = 1, channels: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, size, size, generator=g) * 2 - 1


def _in_channels(model: nn.Module) -> int:
    from ..nets.loading import ConditionedGenerator

    if isinstance(model, ConditionedGenerator):
        return 3  # the domain channels are added inside
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    return 3


@contextlib.contextmanager
def _quiet():
    """The exporters are chatty (deprecation and instance_norm training-mode warnings)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stdout(_io.StringIO()):
                yield
        finally:
            for lg, lv in zip(loggers, levels):
                lg.setLevel(lv)


def export_onnx(model: nn.Module, out: str | Path, *, size: int = 256, dynamic: bool = False, opset: int = 17,
                exporter: str = "legacy", meta: dict | None = None) -> Path:
    """Writes ``model`` (from :func:`facegan.nets.loading.load_generator`) as ONNX at ``out``.

    Input ``input``: float32 (N, C, size, size) in the model's range; output ``output``. With
    ``dynamic`` the batch, height and width axes are symbolic.
    """
    if exporter not in EXPORTERS:
        raise ConfigError(f"unknown exporter {exporter!r}; choose from {', '.join(EXPORTERS)}")
    out = Path(out)
    net, with_target = _prepare(model)
    x = _example(size, 1, _in_channels(model))
    args: tuple = (x, torch.zeros(1, dtype=torch.long)) if with_target else (x,)
    names = ["input", "target"] if with_target else ["input"]
    axes = None
    if dynamic:
        axes = {"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "height", 3: "width"}}
        if with_target:
            axes["target"] = {0: "batch"}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with _quiet(), torch.no_grad():
            if exporter == "legacy":
                torch.onnx.export(net, args, str(tmp), dynamo=False, opset_version=opset, input_names=names,
                                  output_names=["output"], dynamic_axes=axes, do_constant_folding=True)
            else:
                try:
                    import onnxscript  # noqa: F401
                except ImportError:
                    raise ConfigError("the dynamo exporter needs the onnxscript package "
                                      "(pip install onnxscript); or use --exporter legacy") from None
                prog = torch.onnx.export(net, args, dynamo=True, opset_version=max(opset, 18),
                                         input_names=names, output_names=["output"], dynamic_axes=axes,
                                         external_data=False)
                prog.save(str(tmp), external_data=False)
    except (ConfigError, ModelError):
        raise
    except Exception as e:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"ONNX export ({exporter}) failed: {type(e).__name__}: {str(e)[:500]}") from None
    import onnx

    proto = onnx.load(str(tmp))
    info = dict(meta or {})
    info.update(exporter=exporter, opset=int(proto.opset_import[0].version), size=size, dynamic=dynamic,
                target_input=with_target)
    keep = {k: info[k] for k in ("method", "source", "generator", "io", "domains", "target", "conditioned", "sha256",
                                 "exporter", "opset", "size", "dynamic", "target_input") if k in info}
    del proto.metadata_props[:]
    p = proto.metadata_props.add()
    p.key, p.value = META_KEY, json.dumps(keep, default=str)
    proto.producer_name = "facegan"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    os.replace(tmp, out)
    return out


class OnnxGenerator:
    """Runs an exported generator with ONNX Runtime; call it like the PyTorch module.

    ``gen(x)`` takes an NCHW float tensor or array and returns a torch tensor; conditioned models
    exported without a fixed target take ``gen(x, target)`` (name or index) or use ``set_target``.
    """

    def __init__(self, path: str | Path, *, threads: int | None = None, target: str | int | None = None):
        import onnxruntime as ort

        from ..runtime import ort_providers

        path = Path(path)
        if not path.exists():
            raise InputNotFoundError(f"model not found: {path}")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=ort_providers())
        except Exception as e:
            raise ModelError(f"{path}: ONNX Runtime cannot load it: {e}") from None
        raw = self.session.get_modelmeta().custom_metadata_map.get(META_KEY)
        self.meta: dict = json.loads(raw) if raw else {}
        self.meta.setdefault("io", {"size": None, "template": None, "range": "-1,1"})
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.domains: list[str] = list(self.meta.get("domains") or [])
        self.target: int | None = None
        if target is not None:
            self.set_target(target)

    @property
    def takes_target(self) -> bool:
        return "target" in self.inputs

    def _index(self, target) -> int:
        if isinstance(target, str) and not target.isdigit():
            if target not in self.domains:
                raise ConfigError(f"unknown target {target!r}; this model's domains: {', '.join(self.domains)}")
            return self.domains.index(target)
        return int(target)

    def set_target(self, target: str | int) -> "OnnxGenerator":
        if not self.takes_target:
            baked = self.meta.get("target")
            if baked is not None and str(target) != str(baked) and self._index(target) != self._index(baked):
                raise ConfigError(f"this ONNX file was exported for target {baked!r}; re-export for {target!r}")
            return self
        self.target = self._index(target)
        return self

    def run(self, x: np.ndarray, target: str | int | None = None) -> np.ndarray:
        feed = {"input": np.ascontiguousarray(x, dtype=np.float32)}
        if self.takes_target:
            t = self._index(target) if target is not None else self.target
            if t is None:
                raise ConfigError("this model takes a target domain: "
                                  f"{', '.join(self.domains) or 'an index'}")
            feed["target"] = np.full((x.shape[0],), t, dtype=np.int64)
        return self.session.run(["output"], feed)[0]

    def __call__(self, x, target: str | int | None = None) -> torch.Tensor:
        arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        return torch.from_numpy(self.run(arr, target))

    def eval(self) -> "OnnxGenerator":  # duck-typing with nn.Module
        return self


def verify_onnx(model: nn.Module, path: str | Path, *, size: int, dynamic: bool = False,
                threads: int | None = None) -> dict:
    """Runs random inputs through PyTorch and ONNX Runtime; returns {"checks": [...], "max_abs_diff"}.

    Checks batch 1 at ``size``; with ``dynamic`` also batch 2 at another size (when PyTorch itself
    accepts that size) so the symbolic axes are exercised.
    """
    net, with_target = _prepare(model)
    ort_gen = OnnxGenerator(path, threads=threads)
    c = _in_channels(model)
    cases = [(1, size)]
    if dynamic:
        cases += [(2, size), (2, size + size // 2)]
    checks = []
    for i, (b, s) in enumerate(cases):
        x = _example(s, b, c, seed=100 + i)
        t = torch.arange(b) % max(len(ort_gen.domains), 1) if with_target else None
        try:
            with torch.no_grad():
                ref = net(x, t) if with_target else net(x)
        except RuntimeError:
            continue  # the architecture itself does not take this size (e.g. a U-Net at 384)
        feed = {"input": x.numpy()}
        if with_target:
            feed["target"] = t.numpy().astype(np.int64)
        got = ort_gen.session.run(["output"], feed)[0]
        checks.append({"batch": b, "size": s, "max_abs_diff": float(np.abs(got - ref.numpy()).max())})
    return {"checks": checks, "max_abs_diff": max(c["max_abs_diff"] for c in checks)}


def export_to_temp(model: nn.Module, *, size: int, meta: dict | None = None, dynamic: bool = True) -> Path:
    """Exports to a temporary file (the caller deletes it); used by ``facegan translate --onnx``."""
    fd, name = tempfile.mkstemp(suffix=".onnx", prefix="facegan-")
    os.close(fd)
    return export_onnx(model, name, size=size, dynamic=dynamic, meta=meta)
