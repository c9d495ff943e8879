"""k-Same blending: move a face's low-frequency appearance towards the mean of its k nearest faces of
the target group (Newton, Sweeney, Malin, "Preserving privacy by de-identifying face images", 2005,
here in an eigenspace of 32 px face ellipses, as in k-Same-Eigen).

The change is computed at 32 x 32 on the aligned 128 px crop (the ``utkface`` template), inside the
face ellipse, without the face's own mean colour (skin tone stays), and added to the crop upsampled,
so paste-back keeps the photo's own detail. ``alpha`` 1 replaces the face's low-frequency appearance
by the neighbours' mean; above 1 it moves past the mean, away from the face's own (identity
repulsion in pixel space). Faces whose mouth or pose differ from their neighbours' get ghosted
contours at high ``alpha``: look at the output.

With ``shape`` > 0 (k-Same-M, after Gross et al., "Model-based face de-identification", 2006) the
face's 68 landmarks also move towards the mean of its neighbours' (``shape`` 1: all the way), and the
appearance change is computed with the face warped there, where it lines up with the neighbours'
mean: the face's own eyes, brows, nose and mouth then sit where the blended ones do, instead of both
showing (doubled contours). :meth:`KSameBank.change` returns the change warped back to the face's own
geometry and the landmark move; the caller warps the photo by that move (with its other reshapes).

The bank (``weights/ksame-utkface``) holds no photo: a PCA basis and each training face's
coordinates in it (fp16), with its gender label and its 68 landmarks in the crop; see its model card.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

SHIPPED = "ksame-utkface"
LOW = 32  # px: the scale the change lives at
K = 12  # neighbours averaged
# the box dlib's 68-point model is given on a 128 px ``utkface`` crop (scaled with the crop): the median
# of dlib's HOG detections on 500 training crops, so bank and query landmarks are measured alike
CROP_RECT = (8.0, 8.0, 115.0, 116.0)


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


def crop_landmarks(crop: np.ndarray) -> np.ndarray:
    """(68, 2) float64 landmarks of the aligned ``utkface`` crop (uint8 RGB), dlib's 68-point model on
    the fixed box :data:`CROP_RECT` (scaled to the crop's size)."""
    import dlib

    from .detect import dlib_shapes

    s = crop.shape[0] / 128.0
    x0, y0, x1, y1 = (int(round(v * s)) for v in CROP_RECT)
    return dlib_shapes().sixty_eight(np.ascontiguousarray(crop), dlib.rectangle(x0, y0, x1, y1))


def warp_crop(img: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``img`` (a crop, any dtype) resampled so landmarks ``p`` move to ``q`` (a smooth warp that is
    zero at the crop's edge)."""
    from .reshape import FaceWarp

    return FaceWarp.plan(img.shape, p, q, margin=1.0).apply(img)


def build_bank(crops: np.ndarray, labels: np.ndarray, n_components: int = 128, seed: int = 0,
               shapes: np.ndarray | None = None) -> dict:
    """PCA of the face vectors of ``crops`` (labels: one int per face; ``shapes``: each crop's
    :func:`crop_landmarks`, optional) -> arrays for safetensors."""
    v = face_vectors(crops)
    mean = v.mean(0)
    rng = np.random.default_rng(seed)
    fit = v[rng.permutation(len(v))[:4000]] - mean
    _, _, vt = np.linalg.svd(fit, full_matrices=False)
    basis = vt[:n_components]
    codes = (v - mean) @ basis.T
    out = {"mean": mean.astype(np.float32), "basis": basis.astype(np.float16), "codes": codes.astype(np.float16),
           "labels": labels.astype(np.uint8)}
    if shapes is not None:
        out["shapes"] = np.asarray(shapes, np.float16)
    return out


class KSameBank:
    def __init__(self, arrays: dict, manifest: dict):
        self.mean = np.asarray(arrays["mean"], np.float32)
        self.basis = np.asarray(arrays["basis"], np.float32)
        self.codes = np.asarray(arrays["codes"], np.float32)
        self.labels = np.asarray(arrays["labels"]).astype(int)
        self.shapes = np.asarray(arrays["shapes"], np.float32) if "shapes" in arrays else None
        self.groups = list(manifest.get("groups", ["male", "female"]))
        self.low = int(manifest.get("low", LOW))
        self.name = manifest.get("name", SHIPPED)

    def change(self, crop: np.ndarray, target: str, k: int = K, shape: float | None = None,
               landmarks: np.ndarray | None = None, parts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The (128, 128, 3) float32 change at alpha 1 for the aligned ``crop`` (uint8 RGB) towards the
        mean of its ``k`` nearest bank faces of group ``target``, and the (68, 2) landmark move in crop
        pixels. ``shape`` None: the neighbours' mean as it is, no move. ``shape`` >= 0 (the bank must
        hold landmarks): the face's landmarks move that fraction of the way to the neighbours' mean ones
        (only the landmarks ``parts`` marks, a (68,) bool array; default all), the neighbours' mean is
        warped to where they land, and the change lines up with the crop warped by that move.
        ``landmarks``: the crop's :func:`crop_landmarks` if already measured."""
        if target not in self.groups:
            raise ValueError(f"k-Same: no group {target!r} in the bank (has {self.groups})")
        if shape is not None and self.shapes is None:
            raise ValueError(f"k-Same: the bank {self.name!r} holds no landmarks (rebuild it to line faces up)")
        v = face_vectors(crop[None], self.low)[0]
        q = (v - self.mean) @ self.basis.T
        group = self.labels == self.groups.index(target)
        pool = self.codes[group]
        nn = np.argsort(((pool - q) ** 2).sum(1))[:k]
        size = crop.shape[0]
        move = np.zeros((68, 2))
        m = self.mean + pool[nn].mean(0) @ self.basis
        if shape is not None:
            s = crop_landmarks(crop) if landmarks is None else np.asarray(landmarks, np.float64)
            t = self.shapes[group][nn].mean(0) * (size / 128.0)
            move = shape * (t - s)
            if parts is not None:
                move[~np.asarray(parts, bool)] = 0.0
            u = s + move
            if shape > 0:
                v = face_vectors(warp_crop(crop, s, u)[None], self.low)[0]
            big = cv2.resize(m.reshape(self.low, self.low, 3), (size, size), interpolation=cv2.INTER_CUBIC)
            m = (cv2.resize(warp_crop(big, t, u), (self.low, self.low), interpolation=cv2.INTER_AREA)
                 * _ellipse_low(size, self.low)).ravel()
        # towards the neighbours' mean face; the face's own detail the eigenspace does not hold (its
        # finest 32 px structure) goes too, which is where much of the identity change comes from
        d = (m - v).reshape(self.low, self.low, 3)
        # faded towards the ellipse's edge (the feathered mask squared): a change that ends at full size on
        # the edge draws an elliptical rim there
        d = cv2.resize(d, (size, size), interpolation=cv2.INTER_CUBIC) * _taper(size)
        if shape:
            d = warp_crop(d, u, s)  # back to the face's own geometry: the caller's warp takes it to u
        return d, move

    def apply(self, crop: np.ndarray, change: np.ndarray, alpha: float) -> np.ndarray:
        return np.clip(crop.astype(np.float32) + alpha * change + 0.5, 0, 255).astype(np.uint8)


@lru_cache(maxsize=1)
def get_bank() -> KSameBank:
    from ..weights import load_model_folder, model_dir

    sd, manifest = load_model_folder(model_dir(SHIPPED), label=f"shipped model {SHIPPED!r}")
    return KSameBank({k: v.numpy() for k, v in sd.items()}, manifest)
