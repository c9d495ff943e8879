"""The realism refiner of ``anonymize`` (trained by :mod:`facegan.train.refiner`): a small residual network
that cleans the composite crop paste-back receives (translated, k-Same blended, colour scaled) towards a real
face of the target gender, changing it as little as it can.

``anonymize`` applies half of its change to faces changed towards female by default (``--refine`` /
``--refine-male``, ``REFINE`` in ``ops/swap_gender.py``); shipped as ``weights/anonymize-refiner`` (v5, fp16
safetensors + manifest + model card with its numbers: lower KID at the same flips and re-identification; on
the ``test-rest`` photos settings are chosen on, faces changed towards male lost two flips, hence 0 there).
It runs on ONNX Runtime (exported in memory, as the translator) unless ``FACEGAN_TRANSLATOR_BACKEND=torch``.
``facegan train configs/anonymize-refiner.yaml`` writes a finished run's model folder to ``OUT/model``;
``FACEGAN_REFINER=DIR`` loads such a folder instead. Its change is applied inside the crop template's
feathered face ellipse, as in training, and scaled by ``amount`` (0 = off, 1 = as trained).
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .translator_model import crops_to_nchw, onnx_session_for

SHIPPED = "anonymize-refiner"
ENV = "FACEGAN_REFINER"
SHIPPED_RESTORER = "anonymize-restorer"
ENV_RESTORER = "FACEGAN_RESTORER"
DOMAINS = ("male", "female")


class Refiner:
    """``backend`` as the translator's (``FACEGAN_TRANSLATOR_BACKEND``): ``onnx`` (default; the weights exported
    in memory and run by ONNX Runtime, falling back to PyTorch if that fails), ``torch`` or ``auto`` (= onnx)."""

    def __init__(self, state: dict, manifest: dict, name: str, source: str, backend: str | None = None):
        import torch

        from ..nets.translator import ResidualTranslator
        from ..train.attr_translator import edit_mask_tensor

        if manifest.get("class") != "ResidualTranslator" or manifest.get("template") != "utkface":
            raise ModelError(f"{source}: not a refiner model folder (class ResidualTranslator, template utkface)")
        self.size = int(manifest.get("size", 128))
        self.name, self.source = name, source
        self.net = ResidualTranslator(2, int(manifest["ngf"]), int(manifest["n_blocks"]),
                                      n_downsampling=int(manifest.get("n_downsampling", 2)),
                                      lowpass=int(manifest.get("lowpass", 1)),
                                      upsample=str(manifest.get("upsample", "transpose")))
        try:
            self.net.load_state_dict(state)
        except RuntimeError as e:
            raise ModelError(f"{source}: weights do not fit the manifest's network ({e})") from e
        self.net.eval()
        self.mask = edit_mask_tensor("ellipse", self.size)
        self._masks: dict = {}  # other sizes' ellipses (redraw)
        self._torch = torch
        self._session = onnx_session_for(self.net, self.size, backend, "refiner")
        self.backend = "torch" if self._session is None else "onnx"

    def _mask(self, size: int):
        if size == self.size:
            return self.mask
        if size not in self._masks:
            from ..train.attr_translator import edit_mask_tensor

            self._masks[size] = edit_mask_tensor("ellipse", size)
        return self._masks[size]

    def refine(self, crops: np.ndarray, targets, amount: float = 1.0) -> np.ndarray:
        """``crops`` (N, size, size, 3) uint8 on the ``utkface`` template, ``targets`` "male"/"female" each:
        the refined crops, uint8. Crops of another square size than the model's (the network is fully
        convolutional; :meth:`redraw` uses it on larger crops) run on PyTorch."""
        torch = self._torch
        n = crops.shape[1]
        if crops.shape[1:] != (n, n, 3) or n % 4:
            raise ValueError(f"refiner expects square crops a multiple of 4 px wide, got {crops.shape[1:]}")
        if self._session is not None and n == self.size:
            x = crops_to_nchw(crops)
            t = np.array([DOMAINS.index(d) for d in targets], dtype=np.int64)
            d = self._session.run(["delta"], {"input": x, "target": t})[0]
            y = x + np.float32(amount) * self.mask.numpy() * (np.clip(x + d, -1, 1) - x)
            return (np.clip(y, -1, 1) * np.float32(127.5) + np.float32(128.0)).astype(np.uint8).transpose(0, 2, 3, 1).copy()
        t = torch.tensor([DOMAINS.index(x) for x in targets])
        x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        with torch.inference_mode():
            y = x + float(amount) * self._mask(n) * (self.net(x, t) - x)
        return ((y.clamp(-1, 1) + 1) * 127.5 + 0.5).byte().permute(0, 2, 3, 1).numpy()

    def restore(self, crops: np.ndarray, targets, sigma: float, amount: float = 1.0) -> np.ndarray:
        """A detail restorer's use (``mode: restore`` models): each crop Gaussian-blurred by ``sigma`` px (as in its
        training), re-drawn by the network, and ``amount`` of the way from the crop to that inside the face
        ellipse (outside it the crop is kept)."""
        import cv2

        r = max(1, int(3 * float(sigma)))
        blurred = np.stack([cv2.GaussianBlur(c, (2 * r + 1, 2 * r + 1), float(sigma), borderType=cv2.BORDER_REFLECT_101)
                            for c in crops])
        y = self.refine(blurred, targets, 1.0).astype(np.float32)
        m = self._mask(crops.shape[1]).numpy()[0, 0][None, ..., None]
        out = crops.astype(np.float32) + float(amount) * m * (y - crops.astype(np.float32))
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def refiner_available() -> bool:
    from ..weights import available, is_model_folder

    env = os.environ.get(ENV)
    return is_model_folder(Path(env)) if env else available(SHIPPED)


def _read(path: str | None, env: str, shipped: str) -> tuple:
    """(state, manifest, name, source) of the model folder ``path`` (named by ``env``), else the shipped one."""
    from ..weights import load_model_folder, load_shipped

    if path:
        sd, man = load_model_folder(Path(path), label=f"{env}={path}")
        return sd, man, man.get("name", Path(path).name), path
    sd, man = load_shipped(shipped)
    return sd, man, man.get("name", shipped), "shipped"


@lru_cache(maxsize=2)
def _load(path: str | None) -> Refiner:
    return Refiner(*_read(path, ENV, SHIPPED))


def get_refiner() -> Refiner:
    """The refiner ``FACEGAN_REFINER`` names, else a shipped one (ModelError when neither is there)."""
    from ..weights import available

    path = os.environ.get(ENV) or None
    if path is None and not available(SHIPPED):
        raise ModelError(f"--refine needs a realism refiner and the shipped one ({SHIPPED}) is not installed: "
                         "reinstall facegan, or train one with `python scripts/refiner_data.py DATASET "
                         "cache/refiner_inputs.npz` and `facegan train configs/anonymize-refiner.yaml`, then set "
                         f"{ENV}=runs/anonymize-refiner/model")
    return _load(path)


@lru_cache(maxsize=2)
def _load_restorer(path: str | None) -> Refiner:
    sd, man, name, src = _read(path, ENV_RESTORER, SHIPPED_RESTORER)
    if man.get("mode") != "restore":
        raise ModelError(f"{src}: not a detail restorer (its manifest's mode is {man.get('mode', 'refine')!r})")
    return Refiner(sd, man, name, src)


def get_restorer() -> Refiner:
    """The detail restorer ``FACEGAN_RESTORER`` names, else the shipped one (ModelError when neither is there)."""
    from ..weights import available

    path = os.environ.get(ENV_RESTORER) or None
    if path is None and not available(SHIPPED_RESTORER):
        raise ModelError(f"--restore needs a detail restorer and the shipped one ({SHIPPED_RESTORER}) is not installed: "
                         "reinstall facegan, or train one with `facegan train configs/anonymize-restorer.yaml`, then set "
                         f"{ENV_RESTORER}=runs/anonymize-restorer/model")
    return _load_restorer(path)


def export_refiner(checkpoint: str | Path, out: str | Path, extra: dict | None = None) -> Path:
    """Writes a training checkpoint's EMA generator as a model folder (fp16 safetensors + manifest)."""
    import json

    from ..train.checkpoint import export_half, load_checkpoint
    from ..train.refiner import RefinerConfig, build_refiner
    from ..weights import sha256_file

    ck = Path(checkpoint)
    meta = json.loads((ck / "meta.json").read_text())
    cfg = RefinerConfig(**{k: v for k, v in meta["config"].items() if k in RefinerConfig.__dataclass_fields__})
    G = build_refiner(cfg)
    load_checkpoint(ck, {"G_ema": G})
    out = Path(out)
    wf = export_half(G, out / "model.safetensors")
    restore = getattr(cfg, "mode", "refine") == "restore"
    man = {"name": SHIPPED_RESTORER if restore else SHIPPED, "class": "ResidualTranslator", "ngf": cfg.ngf, "n_blocks": cfg.n_blocks,
           "n_downsampling": cfg.n_downsampling, "lowpass": cfg.lowpass,
           "upsample": cfg.upsample, "template": "utkface", "size": cfg.size, "domains": list(DOMAINS), "step": meta["step"],
           **({"mode": "restore", "restore_sigma": list(cfg.restore_sigma)} if restore else {}),
           **(extra or {}), "sha256": sha256_file(wf)}
    (out / "manifest.json").write_text(json.dumps(man, indent=2) + "\n")
    return out
