"""facegan's own gender judge: a ResNet-18 trained by facegan on UTKFace (``facegan-gender-resnet18-v2``).

It is an *independent judge* of the gender translators: no translator is ever trained against it
(their training signal is a separate small CNN). It reads 64x64 crops aligned with the ``utkface``
template; larger crops of that template (e.g. the translator's 128 px output) are downscaled with
area averaging, exactly as during training. Crops cut with another template are refused
(:class:`~facegan.errors.ConfigError`): re-align the face from the photo with :meth:`predict`.

It estimates how *male- or female-looking a face appears* in UTKFace's binary labels, for
evaluation; it does not infer anyone's gender identity.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ModelError

NAME = "facegan-gender-resnet18-v2"
WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "gender-resnet18"
INPUT_SIZE = 64
TEMPLATE = "utkface"


def resize_crops(crops: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, size, size, 3) uint8; area averaging when shrinking (antialiased)."""
    crops = np.asarray(crops)
    if crops.ndim == 3:
        crops = crops[None]
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.shape[1] != crops.shape[2]:
        raise ConfigError(f"expected square RGB crops (N, S, S, 3), got shape {crops.shape}")
    if crops.dtype != np.uint8:
        raise ConfigError(f"expected uint8 crops, got {crops.dtype}")
    if crops.shape[1] == size:
        return crops
    import cv2

    interp = cv2.INTER_AREA if crops.shape[1] > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(c, (size, size), interpolation=interp) for c in crops])


def to_tensor(crops: np.ndarray):
    """uint8 NHWC -> float NCHW in [-1, 1] (channels_last memory layout)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last)


def load_weights(folder: str | Path = WEIGHTS) -> tuple[dict, dict]:
    """(fp32 state_dict, manifest) from ``folder``; the sha256 in ``manifest.json`` is checked first."""
    from safetensors.torch import load_file

    from ..weights import sha256_file

    folder = Path(folder)
    mf, wf = folder / "manifest.json", folder / "model.safetensors"
    if not mf.exists() or not wf.exists():
        raise ModelError(f"gender judge weights not found (expected {wf} and {mf.name})")
    try:
        manifest = json.loads(mf.read_text())
    except ValueError as e:
        raise ModelError(f"gender judge manifest {mf} is not valid JSON ({e})") from e
    want = manifest.get("sha256")
    if not want:
        raise ModelError(f"gender judge manifest {mf} has no sha256")
    if sha256_file(wf) != want:
        raise ModelError(f"gender judge weights {wf}: sha256 mismatch — the file is corrupt or was replaced")
    try:
        sd = load_file(str(wf))
    except Exception as e:  # safetensors raises its own error types
        raise ModelError(f"gender judge weights {wf}: cannot read ({e})") from e
    return {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}, manifest


class GenderResNetJudge:
    name = NAME

    def __init__(self, folder: str | Path = WEIGHTS):
        import torch

        from ..nets.resnet import resnet18

        sd, self.manifest = load_weights(folder)
        self.name = str(self.manifest.get("name", NAME))  # the weights' own name: reports say which version judged
        arch = self.manifest.get("arch", {})
        self.template = self.manifest.get("template", TEMPLATE)
        self.size = int(self.manifest.get("input_size", INPUT_SIZE))
        self.labels = list(self.manifest.get("labels", ["male", "female"]))
        self.model = resnet18(n_classes=len(self.labels), stem=arch.get("stem", "imagenet"))
        try:
            self.model.load_state_dict(sd, strict=True)
        except RuntimeError as e:
            raise ModelError(f"gender judge weights do not fit the ResNet-18 layout ({e})") from e
        self.model.eval().to(memory_format=torch.channels_last)

    def _logits(self, crops64: np.ndarray, batch: int = 256) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(crops64), batch):
                out.append(self.model(to_tensor(crops64[i:i + batch])).float().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)

    def features_crops(self, crops: np.ndarray, batch: int = 256) -> np.ndarray:
        """The network's pooled 512-d features (before its gender layer) for ``utkface`` crops (N, S, S, 3):
        an appearance space for the evaluation's second realism score."""
        import torch

        x = resize_crops(crops, self.size)
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), batch):
                out.append(self.model.features(to_tensor(x[i:i + batch])).float().numpy())
        return np.concatenate(out) if out else np.zeros((0, 512), np.float32)

    def predict_crops(self, crops: np.ndarray, template: str = "utkface") -> dict:
        """P(female) for aligned crops (N, S, S, 3) uint8 RGB cut with the ``utkface`` template."""
        name = getattr(template, "name", template)
        if name != self.template:
            raise ConfigError(f"{self.name} reads crops aligned with the {self.template!r} template, not "
                              f"{name!r}; re-align the face from the photo (predict(rgb, face))")
        x = resize_crops(crops, self.size)
        logits = self._logits(x)
        z = logits - logits.max(1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        return {"p_female": p[:, self.labels.index("female")].astype(np.float32)}

    def predict(self, rgb: np.ndarray, face) -> dict:
        """Aligns ``face`` (a Face or (5, 2) landmarks: eyes, nose, mouth corners) in ``rgb`` and judges it."""
        from ..faces.align import align_face

        # aligned at twice the input size, then area-averaged: the same path as the training crops
        crop = align_face(rgb, face, self.template, 2 * self.size).crop
        pf = float(self.predict_crops(crop[None], self.template)["p_female"][0])
        return {"gender": "female" if pf >= 0.5 else "male", "p_female": pf, "judge": self.name}


@lru_cache(maxsize=1)
def get_gender_resnet() -> GenderResNetJudge:
    return GenderResNetJudge()
