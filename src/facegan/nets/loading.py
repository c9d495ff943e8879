"""The one place generator weights are loaded: reference ``.pth`` files and facegan checkpoints.

``load_generator(path)`` returns ``(module in eval mode, meta)``. It understands

* reference pytorch-CycleGAN-and-pix2pix ``state_dict`` files (``latest_net_G_A.pth``, ...):
  ResNet generators (``resnet_9blocks``, ``resnet_6blocks`` and any ngf/n_blocks/in/out channels,
  instance/batch/no norm, reflect/zero padding, with or without dropout) and U-Nets
  (``unet_128``/``unet_256``) when a reference-layout U-Net class is registered in
  ``facegan.nets.GENERATORS``. ``module.`` prefixes (DataParallel), the InstanceNorm
  ``running_mean``/``running_var`` keys of pre-0.4 PyTorch and the ``block``/``conv_block`` naming of
  close re-implementations (e.g. the ``vintagify`` package) are handled. These files are read with
  ``torch.load(weights_only=True)``; anything that loader refuses (arbitrary pickles) is refused.
* facegan checkpoints: a folder holding ``G_ema.safetensors`` (preferred) or ``G.safetensors`` and
  ``meta.json``; or a single ``.safetensors`` file whose header metadata or sibling ``.json`` carries
  the meta. fp16 weights are upcast to fp32.

Conditioned (multi-domain) generators, whose forward is ``G(x, target_index)``, are wrapped in
:class:`ConditionedGenerator` so every caller can write ``gen(x)`` once a target is fixed
(``load_generator(path, target="female")``).

Classes are only ever looked up by name in facegan's own registry; a checkpoint cannot make this
module import or call anything else.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, InputNotFoundError, ModelError

PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".pkl", ".tar")
_NESTED_KEYS = ("state_dict", "model", "generator", "netG", "netG_A", "G", "G_A", "params_ema", "params",
                "g_ema", "G_ema")
_NORM_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


# ------------------------------------------------------------------------------------------ helpers
def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _check_sha(path: Path, sha256: str | None) -> str:
    digest = sha256_of(path)
    if sha256 is not None and digest.lower() != sha256.lower().strip():
        raise ModelError(f"{path}: sha256 {digest} does not match the expected {sha256}")
    return digest


def generator_registry() -> dict[str, type]:
    """Name -> class for every generator facegan can build. ``facegan.nets.GENERATORS`` (the engine's
    registry) wins; the built-in classes are the fallback so old checkpoints keep loading."""
    from .cyclegan import ResnetGenerator
    from .translator import ResidualTranslator

    reg: dict[str, type] = {"ResnetGenerator": ResnetGenerator, "ResidualTranslator": ResidualTranslator}
    try:
        from . import GENERATORS  # type: ignore[attr-defined]

        reg.update(dict(GENERATORS))
    except ImportError:
        pass
    return reg


def _strip_prefix(sd: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def _as_float32(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v.float() if v.is_floating_point() and v.dtype != torch.float32 else v) for k, v in sd.items()}


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _unwrap_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """A training checkpoint often nests the weights (``{"state_dict": ...}``); find them."""
    if _is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, dict):
        for k in _NESTED_KEYS:
            if k in obj and _is_state_dict(obj[k]):
                return dict(obj[k])
        # a dict of tensors plus some scalars (epoch, ...)
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors and all(isinstance(k, str) for k in tensors):
            return tensors
    raise ModelError(f"{path}: no generator state_dict found (top-level keys: "
                     f"{list(obj)[:8] if isinstance(obj, dict) else type(obj).__name__})")


def _torch_load_weights_only(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError for refused globals, RuntimeError for junk
        raise ModelError(
            f"{path}: refused — not a plain weights file that torch.load(weights_only=True) accepts "
            f"(facegan never unpickles arbitrary objects): {type(e).__name__}: {str(e).splitlines()[0][:300]}"
        ) from None
    return _unwrap_state_dict(obj, path)


def _parse_meta_value(v: str) -> Any:
    try:
        return json.loads(v)
    except (ValueError, TypeError):
        pass
    try:  # export_half writes str(dict): a Python literal, parsed safely (no eval)
        return ast.literal_eval(v)
    except (ValueError, SyntaxError):
        return v


def _safetensors_meta(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        raw = f.metadata() or {}
    if "meta" in raw:  # whole meta as one JSON string
        m = _parse_meta_value(raw["meta"])
        if isinstance(m, dict):
            return m
    return {k: _parse_meta_value(v) for k, v in raw.items() if k != "format"}


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as e:
        raise ModelError(f"{path}: not a readable safetensors file: {e}") from None


# --------------------------------------------------------------------------- reference: ResNet
def _conv_idx(sd, pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in sd if (m := rx.match(k))})


def infer_resnet(sd: dict[str, torch.Tensor]) -> dict | None:
    """ResnetGenerator kwargs from a reference-layout state_dict (``model.N.*``), or None."""
    if "model.1.weight" not in sd or sd["model.1.weight"].ndim != 4:
        return None
    blocks = _conv_idx(sd, r"^model\.(\d+)\.conv_block\.")
    if not blocks:
        return None
    w0 = sd["model.1.weight"]
    if tuple(w0.shape[2:]) != (7, 7):
        return None
    ngf, input_nc = int(w0.shape[0]), int(w0.shape[1])
    first = blocks[0]
    if (first - 4) % 3 or blocks != list(range(first, first + len(blocks))):
        return None
    n_down = (first - 4) // 3
    conv_bias = "model.1.bias" in sd
    has_norm_w = "model.2.weight" in sd
    has_running = "model.2.running_mean" in sd
    if conv_bias:
        norm = "instance-affine" if has_norm_w else "instance"
    else:
        norm = "batch" if has_norm_w or has_running else "none"
    b = f"model.{first}.conv_block."
    zero = f"{b}0.weight" in sd
    second = f"{b}{4 if zero else 6}.weight"
    use_dropout = second in sd and sd[second].ndim == 4
    last = max(_conv_idx(sd, r"^model\.(\d+)\.weight$"))
    wl = sd[f"model.{last}.weight"]
    if wl.ndim != 4 or tuple(wl.shape[2:]) != (7, 7):
        return None
    return {"input_nc": input_nc, "output_nc": int(wl.shape[0]), "ngf": ngf, "norm": norm,
            "use_dropout": use_dropout, "n_blocks": len(blocks), "padding_type": "zero" if zero else "reflect",
            "n_downsampling": n_down}


def _norm_arg(norm: str):
    if norm == "instance-affine":
        return functools.partial(nn.InstanceNorm2d, affine=True, track_running_stats=False)
    return norm


def build_resnet(kwargs: dict) -> nn.Module:
    from .cyclegan import ResnetGenerator

    kw = dict(kwargs)
    kw["norm"] = _norm_arg(kw.get("norm", "instance"))
    return ResnetGenerator(**kw)


# ----------------------------------------------------------------------------- reference: U-Net
def infer_unet(sd: dict[str, torch.Tensor]) -> dict | None:
    """Reference UnetGenerator kwargs (nested ``model.model.1.model.3...`` keys), or None."""
    w0 = sd.get("model.model.0.weight")
    if w0 is None or w0.ndim != 4 or tuple(w0.shape[2:]) != (4, 4):
        return None
    ngf, input_nc = int(w0.shape[0]), int(w0.shape[1])
    up = sd.get("model.model.3.weight")
    if up is None or up.ndim != 4:
        return None
    output_nc = int(up.shape[1])
    # walk the nesting: outermost submodule at .model.1, the others at .model.3
    depth, prefix = 1, "model.model.1."
    while f"{prefix}model.3.model.1.weight" in sd:  # a further intermediate level
        depth += 1
        prefix += "model.3."
    innermost = prefix
    num_downs = depth + 1  # the outermost plus every intermediate and the innermost
    if f"{innermost}model.1.weight" not in sd:
        return None
    conv_bias = f"{innermost}model.1.bias" in sd
    # innermost: [relu, downconv, relu, upconv, upnorm]
    norm_w = f"{innermost}model.4.weight" in sd
    norm_rm = f"{innermost}model.4.running_mean" in sd
    if conv_bias:
        norm = "instance-affine" if norm_w else "instance"
    else:
        norm = "batch" if (norm_w or norm_rm) else "none"
    return {"input_nc": input_nc, "output_nc": output_nc, "num_downs": num_downs, "ngf": ngf, "norm": norm,
            "use_dropout": False}


# ------------------------------------------------------------------------------- the wrapper
class ConditionedGenerator(nn.Module):
    """``gen(x)`` for generators whose forward is ``G(x, target_index)``.

    The target is fixed with ``set_target("female")`` (a domain name or index) or passed per call.
    """

    def __init__(self, net: nn.Module, domains: list[str] | None, target: str | int | None = None):
        super().__init__()
        self.net = net
        self.domains = list(domains or [])
        self.target: int | None = None
        if target is not None:
            self.set_target(target)

    def index_of(self, target: str | int) -> int:
        n = len(self.domains) or int(getattr(self.net, "n_domains", 0))
        return _domain_index(target, self.domains or [str(i) for i in range(n)] or None)

    def set_target(self, target: str | int) -> "ConditionedGenerator":
        self.target = self.index_of(target)
        return self

    def forward(self, x: torch.Tensor, target: str | int | None = None) -> torch.Tensor:
        t = self.index_of(target) if target is not None else self.target
        if t is None:
            raise ConfigError("this generator is conditioned on a target domain; pass target="
                              f"one of {', '.join(self.domains) or 'its domain indices'}")
        idx = torch.zeros_like(x[:, 0, 0, 0], dtype=torch.long) + t  # traces with a dynamic batch
        return self.net(x, idx)


def _is_conditioned(net: nn.Module) -> bool:
    try:
        params = list(inspect.signature(net.forward).parameters.values())
    except (TypeError, ValueError):
        return False
    required = [p for p in params if p.default is inspect.Parameter.empty
                and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(required) >= 2


# ------------------------------------------------------------------------------------- loading
def _load_into(net: nn.Module, sd: dict[str, torch.Tensor], path: Path, drop_instance_stats: bool) -> None:
    own = net.state_dict()
    if drop_instance_stats:  # pre-0.4 InstanceNorm buffers the reference code also patches away
        sd = {k: v for k, v in sd.items() if not (k.endswith(_NORM_SUFFIXES) and k not in own)}
    bad_shape = [k for k in sd if k in own and tuple(own[k].shape) != tuple(sd[k].shape)]
    if bad_shape:
        k = bad_shape[0]
        raise ModelError(f"{path}: weights do not fit {type(net).__name__}: {len(bad_shape)} tensors of another "
                         f"shape, e.g. {k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}")
    res = net.load_state_dict(sd, strict=False)
    if res.missing_keys or res.unexpected_keys:
        raise ModelError(f"{path}: weights do not fit {type(net).__name__}: missing {res.missing_keys[:5]}, "
                         f"unexpected {res.unexpected_keys[:5]}")


def _reference_generator(sd: dict[str, torch.Tensor], path: Path) -> tuple[nn.Module, dict]:
    sd = _strip_prefix(sd)
    # close re-implementations name the residual branch "block" instead of "conv_block"
    sd = {re.sub(r"^(model\.\d+)\.block\.", r"\1.conv_block.", k): v for k, v in sd.items()}
    kw = infer_resnet(sd)
    if kw is not None:
        net = build_resnet(kw)
        _load_into(net, sd, path, drop_instance_stats=kw["norm"] != "batch")
        return net, {"class": "ResnetGenerator", "kwargs": kw}
    ukw = infer_unet(sd)
    if ukw is not None:
        reg = generator_registry()
        cls = reg.get("UnetGenerator")
        if cls is None:
            raise ModelError(f"{path}: looks like a reference U-Net (num_downs={ukw['num_downs']}, "
                             f"ngf={ukw['ngf']}) but no UnetGenerator is registered in facegan.nets")
        try:
            net = cls(**{**ukw, "norm": _norm_arg(ukw["norm"])})
        except TypeError as e:
            raise ModelError(f"{path}: reference U-Net found but facegan's UnetGenerator does not take "
                             f"the reference arguments ({e})") from None
        _load_into(net, sd, path, drop_instance_stats=ukw["norm"] != "batch")
        return net, {"class": "UnetGenerator", "kwargs": ukw}
    raise ModelError(f"{path}: unrecognised generator layout (first keys: {list(sd)[:6]})")


def _build_from_meta(gen: dict, path: Path) -> nn.Module:
    reg = generator_registry()
    name = gen.get("class")
    if name not in reg:
        raise ModelError(f"{path}: generator class {name!r} is not in facegan's registry "
                         f"({', '.join(sorted(reg))})")
    kw = dict(gen.get("kwargs") or {})
    if "norm" in kw and kw["norm"] == "instance-affine":
        kw["norm"] = _norm_arg("instance-affine")
    try:
        return reg[name](**kw)
    except TypeError as e:
        raise ModelError(f"{path}: cannot build {name}({kw}): {e}") from None


def _domains_of(meta: dict) -> list[str] | None:
    for src in (meta, meta.get("generator") or {}, meta.get("config") or {}):
        d = src.get("domains") if isinstance(src, dict) else None
        if isinstance(d, (list, tuple)) and d:
            return [str(x) for x in d]
    return None


def _facegan_generator(sd: dict[str, torch.Tensor], meta: dict, path: Path) -> tuple[nn.Module, dict]:
    gen = meta.get("generator")
    cfg = meta.get("config") or {}
    if isinstance(gen, dict) and gen.get("class"):
        net = _build_from_meta(gen, path)
        spec = {"class": gen["class"], "kwargs": dict(gen.get("kwargs") or {})}
    elif _domains_of(meta) and any(k.startswith("net.") for k in sd):
        # the attr-translator trainer's checkpoints (meta has "config" but no "generator")
        from .translator import ResidualTranslator

        kw = {"n_domains": len(_domains_of(meta)), "ngf": int(cfg.get("ngf", 32)),
              "n_blocks": int(cfg.get("n_blocks", 6))}
        if "n_downsampling" in cfg:
            kw["n_downsampling"] = int(cfg["n_downsampling"])
        if int(cfg.get("lowpass", 1)) > 1:
            kw["lowpass"] = int(cfg["lowpass"])
        if float(cfg.get("residual_scale", 1.0)) != 1.0:
            kw["residual_scale"] = float(cfg["residual_scale"])
        net = ResidualTranslator(**kw)
        spec = {"class": "ResidualTranslator", "kwargs": kw}
    elif any(k.startswith("net.model.") for k in sd):  # a ResidualTranslator without meta
        from .translator import ResidualTranslator

        rk = infer_resnet({k[4:]: v for k, v in sd.items() if k.startswith("net.")})
        if rk is None:
            raise ModelError(f"{path}: unrecognised translator layout")
        kw = {"n_domains": rk["input_nc"] - 3, "ngf": rk["ngf"], "n_blocks": rk["n_blocks"],
              "n_downsampling": rk["n_downsampling"]}
        net = ResidualTranslator(**kw)
        spec = {"class": "ResidualTranslator", "kwargs": kw}
    else:  # plain reference-layout weights stored as safetensors
        return _reference_generator(sd, path)
    _load_into(net, sd, path, drop_instance_stats=False)
    return net, spec


def _default_io(meta: dict, source: str) -> dict:
    io = dict(meta.get("io") or {})
    cfg = meta.get("config") or {}
    if "size" not in io and cfg.get("size"):
        io["size"] = int(cfg["size"])
    if "template" not in io and source == "facegan":
        # facegan's trainers train on aligned crops; the attr-translator's cache is "utkface" framing
        io["template"] = cfg.get("template", "utkface")
    io.setdefault("size", None)
    io.setdefault("template", None)
    io.setdefault("range", "-1,1")
    return io


def _read_meta_json(p: Path) -> dict:
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{p}: unreadable meta.json: {e}") from None


def _domain_index(target: str | int, domains: list[str] | None) -> int:
    if isinstance(target, str) and not target.lstrip("-").isdigit():
        if not domains or target not in domains:
            raise ConfigError(f"unknown target {target!r}; this model's domains: {', '.join(domains or [])}")
        return domains.index(target)
    i = int(target)
    if domains and not 0 <= i < len(domains):
        raise ConfigError(f"target index {i} out of range (model has {len(domains)} domains)")
    return i


def _pick_spec(meta: dict, target: str | int | None) -> tuple[dict, bool]:
    """The generator entry to build: the main one, or its ``reverse`` (e.g. CycleGAN's F: B->A) when
    ``target`` names the source domain of an ``A->B`` model. -> (spec, reversed)."""
    gen = meta.get("generator") if isinstance(meta.get("generator"), dict) else {}
    rev = gen.get("reverse")
    domains = _domains_of(meta)
    if target is not None and isinstance(rev, dict) and not gen.get("call") and domains and len(domains) == 2:
        if _domain_index(target, domains) == 0:
            return rev, True
    return gen, False


def _resolve(path: Path, prefer_ema: bool, target: str | int | None) -> tuple[Path, dict, str, bool]:
    """-> (weights file, meta, kind ("torch" | "safetensors"), reversed)."""
    if not path.exists():
        raise InputNotFoundError(f"model not found: {path}")
    if path.is_dir():
        meta = _read_meta_json(path / "meta.json") if (path / "meta.json").exists() else {}
        spec, reverse = _pick_spec(meta, target)
        names = []
        if spec.get("file"):
            f = str(spec["file"])
            plain = f.replace("_ema.safetensors", ".safetensors")
            names = [f, plain] if prefer_ema else [plain, f]
        names += ["G_ema.safetensors", "G.safetensors"] if prefer_ema else ["G.safetensors", "G_ema.safetensors"]
        w = next((path / n for n in names if "/" not in n and (path / n).is_file()), None)
        if w is None:
            st = sorted(path.glob("*.safetensors"))
            if len(st) == 1:
                w = st[0]
        if w is None:
            raise ModelError(f"{path}: no generator weights ({', '.join(dict.fromkeys(names))}) in this folder")
        if not meta:
            meta = _safetensors_meta(w)
        return w, meta, "safetensors", reverse
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        meta = _safetensors_meta(path)
        side = path.with_suffix(".json")
        if side.exists():
            meta = {**meta, **_read_meta_json(side)}
        elif not meta.get("generator") and (path.parent / "meta.json").exists():
            meta = {**meta, **_read_meta_json(path.parent / "meta.json")}
        return path, meta, "safetensors", False
    if suffix in PICKLE_SUFFIXES:
        return path, {}, "torch", False
    if suffix == ".onnx":
        raise ModelError(f"{path}: an ONNX model; run it with facegan.export.onnx.OnnxGenerator")
    raise ModelError(f"{path}: unknown model format {suffix!r} (expected a checkpoint folder, .safetensors "
                     f"or a reference .pth state_dict)")


class BoundGenerator(nn.Module):
    """``gen(x)`` for generators called with fixed keyword arguments, e.g. ``G(x, target=1)`` (UNIT,
    twin-GAN) or ``G(x, identity=0)`` (autoencoder swap); the arguments are baked into ONNX exports."""

    def __init__(self, net: nn.Module, call: dict):
        super().__init__()
        self.net = net
        self.call = dict(call)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, **self.call)


def load_generator(path: str | Path, *, device: str | torch.device = "cpu", target: str | int | None = None,
                   sha256: str | None = None, prefer_ema: bool = True) -> tuple[nn.Module, dict]:
    """Loads any generator facegan knows. Returns ``(module in eval mode, meta)``; ``module(x)`` maps an
    NCHW batch in the range ``meta["io"]["range"]`` to the translated batch.

    ``target`` picks the output domain (name from the checkpoint's ``domains`` or index) of a model with
    several: conditioned translators, models with call arguments (``{"target": 1}``), CycleGAN
    checkpoints with a ``reverse`` generator. ``meta`` always has ``source`` ("reference-pth" or
    "facegan"), ``generator`` ({"class", "kwargs", ...}), ``io`` ({"size", "template", "range"}),
    ``weights`` (file loaded), ``sha256``, ``conditioned``, and ``domains``/``target`` where they apply.
    ``sha256`` (optional) is checked against the weights file before anything is parsed.
    """
    path = Path(path)
    wfile, meta, kind, reverse = _resolve(path, prefer_ema, target)
    digest = _check_sha(wfile, sha256)
    meta = dict(meta)
    if kind == "torch":
        sd = _torch_load_weights_only(wfile)
        net, spec = _reference_generator(_as_float32(sd), wfile)
        source = "reference-pth"
        meta.setdefault("method", "cyclegan-reference")
    else:
        sd = _as_float32(_load_safetensors(wfile))
        gen, _ = _pick_spec(meta, target)
        net, spec = _facegan_generator(_strip_prefix(sd), {**meta, "generator": gen} if gen else meta, wfile)
        source = "facegan"
        meta.setdefault("method", "attr-translator" if spec["class"] == "ResidualTranslator" else "unknown")
        extra = {k: v for k, v in gen.items() if k in ("direction", "call", "file")}
        spec = {**spec, **extra}
    net.eval().requires_grad_(False)
    meta.update(source=source, generator=spec, weights=str(wfile), sha256=digest,
                io=_default_io(meta, source))
    domains = _domains_of(meta)
    conditioned = _is_conditioned(net)
    meta["conditioned"] = conditioned
    meta["target"] = None
    if conditioned:
        domains = domains or [str(i) for i in range(int(getattr(net, "n_domains", 0)))]
        meta["domains"] = domains
        net = ConditionedGenerator(net, domains, target).eval()
        meta["target"] = domains[net.target] if net.target is not None and net.target < len(domains) else None
    elif isinstance(spec.get("call"), dict) and spec["call"]:
        call = dict(spec["call"])
        key = next(iter(call))  # "target" / "identity": the output domain
        if target is not None:
            call[key] = _domain_index(target, domains)
        idx = int(call[key])
        meta["target"] = domains[idx] if domains and 0 <= idx < len(domains) else idx
        net = BoundGenerator(net, call).eval()
    elif reverse or (target is not None and spec.get("direction") and domains and len(domains) == 2):
        want = _domain_index(target, domains)
        if not reverse and want != 1:
            raise ConfigError(f"{path}: no reverse generator in this checkpoint; it only maps to {domains[1]}")
        meta["target"] = domains[want]
        if reverse:
            meta["generator"]["direction"] = "B->A"
    elif target is not None:
        raise ConfigError(f"{path}: this generator has a single direction; it takes no target")
    elif domains and spec.get("direction") == "A->B" and len(domains) == 2:
        meta["target"] = domains[1]
    return net.to(device), meta


def to_input(crops_uint8, io: dict | None = None) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> NCHW float in the model's range ("-1,1" or "0,1")."""
    import numpy as np

    x = torch.from_numpy(np.ascontiguousarray(crops_uint8)).permute(0, 3, 1, 2).float()
    if (io or {}).get("range", "-1,1") == "0,1":
        return x / 255.0
    return x / 127.5 - 1.0


def to_uint8(x: torch.Tensor, io: dict | None = None):
    """NCHW float in the model's range -> (N, H, W, 3) uint8 RGB."""
    if (io or {}).get("range", "-1,1") == "0,1":
        y = x.clamp(0, 1) * 255.0
    else:
        y = (x.clamp(-1, 1) + 1.0) * 127.5
    return (y + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
