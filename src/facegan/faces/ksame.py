"""k-Same blending: move a face's low-frequency appearance towards the mean of its k nearest faces of
the target group (Newton, Sweeney, Malin, "Preserving privacy by de-identifying face images", 2005,
here in an eigenspace of 32 px face ellipses, as in k-Same-Eigen).

The change is computed at 32 x 32 on the aligned 128 px crop (the ``utkface`` template), inside the
face ellipse, without the face's own mean colour (skin tone stays), and added to the crop upsampled,
so paste-back keeps the photo's own detail. ``alpha`` 1 replaces the face's low-frequency appearance
by the neighbours' mean; above 1 it moves past the mean, away from the face's own (identity
repulsion in pixel space). Faces whose mouth or pose differ from their neighbours' get ghosted
contours at high ``alpha``: look at the output.

The bank (``weights/ksame-utkface``) holds no photo: a PCA basis and each training face's
coordinates in it (fp16), with its gender label; see its model card.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

SHIPPED = "ksame-utkface"
LOW = 32  # px: the scale the change lives at
K = 12  # neighbours averaged


@lru_cache(maxsize=2)
def _ellipse(size: int) -> np.ndarray:
    """The ``utkface`` template's feathered face ellipse at ``size`` px, float32 (size, size)."""
    from .align import crop_mask
    from .templates import get_template

    return crop_mask(get_template("utkface"), size, "ellipse").astype(np.float32)


def _ellipse_low(size: int = 128, low: int = LOW) -> np.ndarray:
    return cv2.resize(_ellipse(size), (low, low), interpolation=cv2.INTER_AREA)[..., None]


def _taper(size: int) -> np.ndarray:
    return (_ellipse(size) ** 2)[..., None]


def face_vectors(crops: np.ndarray, low: int = LOW) -> np.ndarray:
    """(N, low*low*3) float32: each 128 px crop at ``low`` px, its mean colour inside the face ellipse
    removed, outside the ellipse zeroed."""
    m = _ellipse_low(crops.shape[1], low)
    out = np.empty((len(crops), low * low * 3), np.float32)
    for i, c in enumerate(crops):
        x = cv2.resize(c.astype(np.float32), (low, low), interpolation=cv2.INTER_AREA)
        x = (x - (x * m).sum((0, 1)) / m.sum()) * m
        out[i] = x.ravel()
    return out


def build_bank(crops: np.ndarray, labels: np.ndarray, n_components: int = 128, seed: int = 0) -> dict:
    """PCA of the face vectors of ``crops`` (labels: one int per face) -> arrays for safetensors."""
    v = face_vectors(crops)
    mean = v.mean(0)
    rng = np.random.default_rng(seed)
    fit = v[rng.permutation(len(v))[:4000]] - mean
    _, _, vt = np.linalg.svd(fit, full_matrices=False)
    basis = vt[:n_components]
    codes = (v - mean) @ basis.T
    return {"mean": mean.astype(np.float32), "basis": basis.astype(np.float16), "codes": codes.astype(np.float16),
            "labels": labels.astype(np.uint8)}


class KSameBank:
    def __init__(self, arrays: dict, manifest: dict):
        self.mean = np.asarray(arrays["mean"], np.float32)
        self.basis = np.asarray(arrays["basis"], np.float32)
        self.codes = np.asarray(arrays["codes"], np.float32)
        self.labels = np.asarray(arrays["labels"]).astype(int)
        self.groups = list(manifest.get("groups", ["male", "female"]))
        self.low = int(manifest.get("low", LOW))
        self.name = manifest.get("name", SHIPPED)

    def change(self, crop: np.ndarray, target: str, k: int = K) -> np.ndarray:
        """The (128, 128, 3) float32 change at alpha 1 for the aligned ``crop`` (uint8 RGB) towards the
        mean of its ``k`` nearest bank faces of group ``target``."""
        if target not in self.groups:
            raise ValueError(f"k-Same: no group {target!r} in the bank (has {self.groups})")
        v = face_vectors(crop[None], self.low)[0]
        q = (v - self.mean) @ self.basis.T
        pool = self.codes[self.labels == self.groups.index(target)]
        nn = np.argsort(((pool - q) ** 2).sum(1))[:k]
        # towards the neighbours' mean face; the face's own detail the eigenspace does not hold (its
        # finest 32 px structure) goes too, which is where much of the identity change comes from
        d = (self.mean + pool[nn].mean(0) @ self.basis - v).reshape(self.low, self.low, 3)
        size = crop.shape[0]
        # faded towards the ellipse's edge (the feathered mask squared): a change that ends at full size on
        # the edge draws an elliptical rim there
        return cv2.resize(d, (size, size), interpolation=cv2.INTER_CUBIC) * _taper(size)

    def apply(self, crop: np.ndarray, change: np.ndarray, alpha: float) -> np.ndarray:
        return np.clip(crop.astype(np.float32) + alpha * change + 0.5, 0, 255).astype(np.uint8)


@lru_cache(maxsize=1)
def get_bank() -> KSameBank:
    from ..weights import load_model_folder, model_dir

    sd, manifest = load_model_folder(model_dir(SHIPPED), label=f"shipped model {SHIPPED!r}")
    return KSameBank({k: v.numpy() for k, v in sd.items()}, manifest)
