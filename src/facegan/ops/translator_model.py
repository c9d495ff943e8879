"""Loads the attribute translator that swap-gender/anonymize apply: the shipped fp16 weights, or a
user's checkpoint (a facegan training folder such as ``runs/gender-translator/last``)."""
from __future__ import annotations

import json
import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ModelError

SHIPPED = "gender-translator"
# an op may have its own shipped model (used when installed, else SHIPPED)
SHIPPED_FOR_OP = {"anonymize": "gender-anonymizer"}
ENV = "FACEGAN_GENDER_MODEL"  # a model or checkpoint folder that replaces the shipped model(s) of every op
BACKEND_ENV = "FACEGAN_TRANSLATOR_BACKEND"  # torch | onnx (ONNX Runtime; default) | auto
BACKENDS = ("torch", "onnx", "auto")
DEFAULT_BACKEND = "onnx"


def _onnx_delta_session(net, size: int, threads: int | None = None):
    """Exports ``net.delta`` (input, target) -> change to ONNX in memory and opens an ONNX Runtime
    session on it. Nothing is written to disk."""
    import io

    import onnxruntime as ort
    import torch

    from ..export.onnx import _quiet
    from ..runtime import ort_providers

    class _Delta(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x, target):
            return self.net.delta(x, target)

    buf = io.BytesIO()
    x = torch.zeros(1, 3, size, size)
    with _quiet(), torch.no_grad():
        torch.onnx.export(_Delta(net).eval(), (x, torch.zeros(1, dtype=torch.long)), buf, dynamo=False,
                          opset_version=17, input_names=["input", "target"], output_names=["delta"],
                          dynamic_axes={"input": {0: "batch"}, "target": {0: "batch"}, "delta": {0: "batch"}})
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # shares the cores with PyTorch / dlib
    return ort.InferenceSession(buf.getvalue(), sess_options=opts, providers=ort_providers())


def crops_to_nchw(crops: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 crops -> (N, 3, S, S) float32 in [-1, 1], contiguous (an ONNX Runtime input)."""
    return np.ascontiguousarray(np.ascontiguousarray(crops, dtype=np.float32).transpose(0, 3, 1, 2)
                                / np.float32(127.5) - 1)


def onnx_session_for(net, size: int, backend: str | None, what: str = "translator"):
    """The ONNX Runtime session ``backend`` asks for (None: $FACEGAN_TRANSLATOR_BACKEND, else ``onnx``), or
    None for eager PyTorch — also when the export or the runtime fails, which is logged, never fatal."""
    import torch

    backend = (backend or os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND).lower()
    if backend not in BACKENDS:
        raise ModelError(f"unknown translator backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "torch":
        return None
    try:
        return _onnx_delta_session(net, size, torch.get_num_threads())
    except Exception as e:  # an exporter or runtime problem must not stop the op
        import logging

        logging.getLogger("facegan").warning("ONNX Runtime backend unavailable for the %s (%s); using PyTorch",
                                             what, type(e).__name__)
        return None


class _Defaults:
    """The strengths a model's manifest (or checkpoint spec) records per op; one rule for every reader."""

    def __init__(self, spec: dict | None = None):
        spec = spec or {}
        self.default_strengths = {k: float(v) for k, v in (spec.get("default_strength") or {}).items()}
        self.max_strengths = {k: float(v) for k, v in (spec.get("max_strength") or {}).items()}

    def default_strength(self, op: str = "swap-gender", target: str | None = None) -> float:
        """The scale of the change ``op`` applies when the user gives none (1.0 unless the model says).
        A manifest may set one direction apart (``"swap-gender:male"``: faces changed towards male)."""
        if target is not None and f"{op}:{target}" in self.default_strengths:
            return self.default_strengths[f"{op}:{target}"]
        return self.default_strengths.get(op, self.default_strengths.get("swap-gender", 1.0))

    def direction_strengths(self, op: str = "swap-gender") -> dict[str, float]:
        """The per-direction defaults of ``op`` the manifest sets apart (target -> strength)."""
        return {k.split(":", 1)[1]: v for k, v in self.default_strengths.items() if k.startswith(f"{op}:")}

    def max_strength(self, op: str = "swap-gender") -> float:
        """The strongest change ``op`` may escalate a face to when it fails verification and the user
        gave no strength (manifest ``max_strength``; without one: the default strength, no retries)."""
        return self.max_strengths.get(op, self.default_strength(op))


class AttrTranslator(_Defaults):
    """``backend``: ``torch`` (eager PyTorch), ``onnx`` (the same weights exported in memory and run by
    ONNX Runtime, faster on CPU; falls back to torch if the export fails) or ``auto`` (= onnx).
    Default: $FACEGAN_TRANSLATOR_BACKEND, else ``onnx``."""

    def __init__(self, state_dict: dict, spec: dict, source: str, backend: str | None = None):
        import torch

        from ..nets.translator import ResidualTranslator

        self.domains = list(spec["domains"])
        self.template = spec.get("template", "utkface")
        self.size = int(spec.get("size", 128))
        self.name = spec.get("name", SHIPPED)
        self.source = source
        # the scale of the trained change each op applies when the user gives none, chosen on held-out
        # photos and recorded in the shipped manifest ({"swap-gender": 1.0, "swap-gender:male": 1.15, "anonymize": 1.0}; 1.0 = as trained)
        _Defaults.__init__(self, spec)
        self.net = ResidualTranslator(len(self.domains), int(spec.get("ngf", 32)), int(spec.get("n_blocks", 6)),
                                     lowpass=int(spec.get("lowpass", 1)),
                                     residual_scale=float(spec.get("residual_scale", 1.0)))
        try:
            missing, unexpected = self.net.load_state_dict(state_dict, strict=False)
            # checkpoints from before conditional norm (facegan 0.1 dev) have no per-domain affines
            # and have conv biases that the following InstanceNorm cancels: defaults (scale 1, bias 0)
            # and dropping those biases reproduce that model exactly (it ignores its target)
            if (missing or unexpected) and not (self._only_norm(missing) and self._only_normed_bias(unexpected)):
                raise RuntimeError(f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
            self.conditioned = not missing
        except RuntimeError as e:
            raise ModelError(f"translator weights do not match the architecture ({source}): {e}") from e
        self.net.eval()
        self._torch = torch
        self._lock = threading.Lock()
        self._session = onnx_session_for(self.net, self.size, backend)
        self.backend = "torch" if self._session is None else "onnx"

    def _only_norm(self, keys) -> bool:
        from ..nets.blocks import DomainNorm2d

        norms = {n for n, m in self.net.named_modules() if isinstance(m, DomainNorm2d)}
        return all(k.rsplit(".", 1)[0] in norms for k in keys)

    def _only_normed_bias(self, keys) -> bool:
        mods = dict(self.net.named_modules())
        return all(k.endswith(".bias") and getattr(mods.get(k.rsplit(".", 1)[0]), "bias", 1) is None for k in keys)

    def translate(self, crops: np.ndarray, targets: list[str], strength: float = 1.0) -> np.ndarray:
        """crops (N, S, S, 3) uint8 at this model's size/template -> translated crops, uint8."""
        t = np.array([self.domains.index(d) for d in targets], dtype=np.int64)
        if self._session is not None:
            x = crops_to_nchw(crops)
            delta = self._session.run(["delta"], {"input": x, "target": t})[0] * np.float32(strength)
            y = np.clip(x + delta, -1, 1)
            return np.clip((y + 1) * 127.5 + 0.5, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1).copy()
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div(127.5).sub(1)
        with torch.inference_mode(), self._lock:
            delta = self.net.delta(x, torch.from_numpy(t)) * strength
            y = (x + delta).clamp(-1, 1)
        return ((y + 1) * 127.5 + 0.5).clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


class PairedTranslator(_Defaults):
    """One plain image-to-image generator per direction (e.g. the pix2pix students distilled from the
    attribute translator): a folder with ``male-to-female/`` and ``female-to-male/`` engine checkpoints
    (each a training folder with ``last/``, a checkpoint folder, or a ``.safetensors`` file).

    Only the generator's *change* is used, low-passed like the attribute translator's (``lowpass``
    k: averaged over k x k pixels, bilinear back) and scaled by ``strength``, so its reconstruction
    noise is not pasted onto the photo."""

    PREFIXES = ("male-to-female", "female-to-male")

    def __init__(self, folder: Path, backend: str | None = None, lowpass: int = 2):
        from ..commands.translate import FaceTranslator

        self.domains = ["male", "female"]
        self.name = f"paired:{folder}"
        self.source = str(folder)
        self.lowpass = int(lowpass)
        _Defaults.__init__(self)
        self.gens = {}
        use_onnx = (backend or DEFAULT_BACKEND) in ("onnx", "auto")
        for tag in self.PREFIXES:
            p = _paired_entry(folder, tag)
            try:
                self.gens[tag.split("-to-")[1]] = FaceTranslator.load(p, use_onnx=use_onnx, paste="residual")
            except Exception as e:  # noqa: BLE001 - a bad checkpoint becomes one clear error
                raise ModelError(f"{p}: cannot load the {tag} generator: {e}") from e
        tpls = {(g.template, g.size) for g in self.gens.values()}
        if len(tpls) != 1:
            raise ModelError(f"{folder}: the two generators were trained on different crops {sorted(tpls)}")
        self.template, self.size = tpls.pop()
        self.backend = "onnx" if use_onnx else "torch"

    def translate(self, crops: np.ndarray, targets: list[str], strength: float = 1.0) -> np.ndarray:
        import torch

        from ..nets.translator import lowpass_change

        bad = sorted(set(targets) - set(self.gens))
        if bad:
            raise ModelError(f"{self.name} has no generator for target {bad[0]!r}")
        out = crops.copy()
        for tgt, gen in self.gens.items():
            idx = [i for i, t in enumerate(targets) if t == tgt]
            if not idx:
                continue
            x = crops[idx].astype(np.float32)
            d = torch.from_numpy(gen.translate_crops(crops[idx]).astype(np.float32) - x).permute(0, 3, 1, 2)
            y = x + strength * lowpass_change(d, self.lowpass).permute(0, 2, 3, 1).numpy()
            out[idx] = np.clip(y + 0.5, 0, 255).astype(np.uint8)
        return out


def _paired_entry(folder: Path, tag: str) -> Path:
    for p in (folder / tag / "last", folder / tag, folder / f"{tag}.safetensors"):
        if p.exists():
            return p
    raise ModelError(f"{folder} has no {tag} generator ({tag}/last, {tag}/ or {tag}.safetensors)")


def _is_paired(folder: Path) -> bool:
    return any((folder / t).exists() or (folder / f"{t}.safetensors").exists() for t in PairedTranslator.PREFIXES)


def _from_checkpoint(folder: Path, backend: str | None = None) -> AttrTranslator:
    from safetensors.torch import load_file

    meta = json.loads((folder / "meta.json").read_text())
    cfg = meta.get("config", {})
    wf = folder / "G_ema.safetensors"
    if not wf.exists():
        wf = folder / "G.safetensors"
    sd = {k: v.float() for k, v in load_file(str(wf)).items()}
    spec = {"domains": cfg.get("domains", ["male", "female"]), "ngf": cfg.get("ngf", 32),
            "n_blocks": cfg.get("n_blocks", 6), "lowpass": cfg.get("lowpass", 1),
            "residual_scale": cfg.get("residual_scale", 1.0), "size": cfg.get("size", 128), "template": "utkface",
            "name": f"checkpoint:{folder}"}
    return AttrTranslator(sd, spec, str(folder), backend)


def shipped_name(op: str = "swap-gender") -> str:
    """The shipped model ``op`` runs: its own when installed (``SHIPPED_FOR_OP``), else SHIPPED."""
    from ..weights import available

    own = SHIPPED_FOR_OP.get(op)
    return own if own and available(own) else SHIPPED


def shipped_default_strength(op: str = "swap-gender", key: str = "default_strength",
                             target: str | None = None) -> float | None:
    """The default strength (``key="max_strength"``: the escalation limit) recorded in the shipped
    manifest ``op`` runs, for faces changed towards ``target`` (None when not installed)."""
    d = _shipped_defaults(op)
    if d is None:
        return None
    return d.max_strength(op) if key == "max_strength" else d.default_strength(op, target)


def _shipped_defaults(op: str) -> "_Defaults | None":
    from ..weights import model_dir

    mf = model_dir(shipped_name(op)) / "manifest.json"
    return _Defaults(json.loads(mf.read_text())) if mf.exists() else None


def shipped_direction_strengths(op: str = "swap-gender") -> dict[str, float]:
    """The shipped manifest's per-direction defaults for ``op`` (target -> strength; {} when none)."""
    d = _shipped_defaults(op)
    return d.direction_strengths(op) if d is not None else {}


def get_translator(path: str | None = None, backend: str | None = None,
                   op: str = "swap-gender") -> AttrTranslator | PairedTranslator:
    """The translator at ``path`` (a model folder in the shipped layout — ``manifest.json`` +
    ``model.safetensors``, its defaults included —, an attr-translator checkpoint folder, or a folder of
    per-direction generators, see :class:`PairedTranslator`), else $FACEGAN_GENDER_MODEL, else the shipped one for
    ``op`` (see ``shipped_name``)."""
    return _get_translator(path or os.environ.get(ENV) or None,
                           (backend or os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND).lower(),
                           shipped_name(op))


@lru_cache(maxsize=4)
def _get_translator(path: str | None, backend: str, shipped: str = SHIPPED) -> AttrTranslator:
    if path:
        from ..weights import is_model_folder, load_model_folder

        p = Path(path)
        if _is_paired(p):
            return PairedTranslator(p, backend)
        if is_model_folder(p):  # the shipped layout (e.g. a copy of the shipped model with other defaults)
            sd, manifest = load_model_folder(p)
            if manifest.get("class", "ResidualTranslator") != "ResidualTranslator" or "domains" not in manifest:
                raise ModelError(f"{p}: manifest.json describes no ResidualTranslator (class {manifest.get('class')!r})")
            return AttrTranslator(sd, manifest, str(p), backend)
        if not (p / "meta.json").exists():
            raise ModelError(f"{p} is not a facegan translator checkpoint folder (no meta.json), a model folder "
                             f"(manifest.json + model.safetensors), nor a folder of per-direction generators "
                             f"(male-to-female/, female-to-male/)")
        return _from_checkpoint(p, backend)
    from ..weights import load_shipped

    sd, manifest = load_shipped(shipped)
    return AttrTranslator(sd, manifest, f"shipped:{shipped}", backend)


def translator_available() -> bool:
    from ..weights import available

    return bool(os.environ.get(ENV)) or available(SHIPPED)
