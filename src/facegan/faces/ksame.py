"""k-Same blending: move a face's low-frequency appearance towards the mean of its k nearest faces of
the target group (Newton, Sweeney, Malin, "Preserving privacy by de-identifying face images", 2005,
here in an eigenspace of 32 px face ellipses, as in k-Same-Eigen).

The change is computed at 32 x 32 on the aligned 128 px crop (the ``utkface`` template), inside the
face ellipse, without the face's own mean colour (skin tone stays), and added to the crop upsampled,
so paste-back keeps the photo's own detail. ``alpha`` 1 replaces the face's low-frequency appearance
by the neighbours' mean; above 1 it moves past the mean, away from the face's own (identity
repulsion in pixel space). Faces whose mouth or pose differ from their neighbours' get ghosted
contours at high ``alpha``: look at the output.

Hair, hats and background often reach into the ellipse (bangs, long hair at the cheeks): there the
neighbours' mean would paint pale skin over them, and with the mean colour taken over the whole
ellipse the face's own skin would darken to make up for it (a dark mask under bangs). So the change
is guarded (:func:`hair_guard`): inside the inner face (brows to chin, ``INNER_BOX``) it acts
everywhere; outside it only on pixels whose colour is like the face's own skin (measured on the cheeks
and nose, ``SKIN_BOX``), and the mean colour is kept over the pixels it acts on.

The bank (``weights/ksame-utkface``) holds no photo: a PCA basis and each training face's
coordinates in it (fp16), with its gender label; see its model card.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

SHIPPED = "ksame-utkface"
LOW = 32  # px: the scale the change lives at
K = 12  # neighbours averaged
# hair guard (fractions of the crop; the template's eyes are at y 0.31, nose 0.59, mouth 0.77). Fixed by
# eye on portraits with bangs and long hair, then measured on the 196 `test-rest` photos (2026-12-02):
# flips and both KIDs unchanged, faceres re-identification 5.1% vs 4.6% (one face)
INNER_BOX = (0.18, 0.15, 0.80, 0.88)  # brows, eyes, nose, mouth, chin: the change acts on every pixel
SKIN_BOX = (0.25, 0.45, 0.73, 0.70)  # cheeks and nose: where the face's own skin colour is measured
SKIN_Z = 2.5  # robust z-distance (CIELAB) from that skin colour up to which a pixel counts as skin
SKIN_FLOOR = (6.0, 3.0, 3.0)  # least spread (L*, a*, b*) assumed for the skin colour


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


def _box(box, n: int) -> tuple[slice, slice]:
    x0, y0, x1, y1 = (int(round(f * n)) for f in box)
    return slice(y0, y1), slice(x0, x1)


def hair_guard(crop: np.ndarray, low: int = LOW) -> np.ndarray:
    """(low, low, 1) float32 in [0, 1]: where the k-Same change of the 128 px ``crop`` may act. 1 inside
    ``INNER_BOX``; elsewhere the likeness of each pixel's colour to the face's skin (median and robust
    spread of CIELAB over ``SKIN_BOX``): 1 up to ``SKIN_Z``, falling off beyond, so hair, hats and
    background keep their own colours. (Scaling it down on the inner face's non-skin pixels too — eyes,
    lips, teeth, glasses — did not help: realism-test-rest/ksame-features, session 15.)"""
    small = cv2.resize(crop, (low, low), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    ref = lab[_box(SKIN_BOX, low)].reshape(-1, 3)
    med = np.median(ref, 0)
    spread = np.maximum(np.median(np.abs(ref - med), 0) * 1.4826, np.asarray(SKIN_FLOOR, np.float32))
    z = np.sqrt((((lab - med) / spread) ** 2).sum(-1))
    w = np.exp(-0.5 * np.maximum(0.0, z - SKIN_Z) ** 2).astype(np.float32)
    w[_box(INNER_BOX, low)] = 1.0
    return cv2.GaussianBlur(w, (0, 0), 1.0)[..., None]


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

    def nearest(self, crop: np.ndarray, target: str, k: int = K) -> np.ndarray:
        """Indices (into group ``target``'s faces) of the ``k`` bank faces nearest to ``crop``."""
        if target not in self.groups:
            raise ValueError(f"k-Same: no group {target!r} in the bank (has {self.groups})")
        q = (face_vectors(crop[None], self.low)[0] - self.mean) @ self.basis.T
        pool = self.codes[self.labels == self.groups.index(target)]
        return np.argsort(((pool - q) ** 2).sum(1))[:k]

    def change(self, crop: np.ndarray, target: str, k: int = K, guard: bool | np.ndarray = True,
               neighbours=None) -> np.ndarray:
        """The (128, 128, 3) float32 change at alpha 1 for the aligned ``crop`` (uint8 RGB) towards the
        mean of its ``k`` nearest bank faces of group ``target``; ``guard``: only where
        :func:`hair_guard` allows (True: computed here; an array: its result for this crop), its mean
        colour zero there (False: everywhere in the ellipse, its mean colour zero over the ellipse, the
        behaviour before 2026-12-02 16:30). ``neighbours``: use these (:meth:`nearest`'s indices, e.g. the
        ones chosen on another frame of a video) instead of this crop's nearest."""
        if target not in self.groups:
            raise ValueError(f"k-Same: no group {target!r} in the bank (has {self.groups})")
        v = face_vectors(crop[None], self.low)[0]
        q = (v - self.mean) @ self.basis.T
        pool = self.codes[self.labels == self.groups.index(target)]
        nn = np.argsort(((pool - q) ** 2).sum(1))[:k] if neighbours is None else np.asarray(neighbours, int)
        # towards the neighbours' mean face; the face's own detail the eigenspace does not hold (its
        # finest 32 px structure) goes too, which is where much of the identity change comes from
        d = (self.mean + pool[nn].mean(0) @ self.basis - v).reshape(self.low, self.low, 3)
        size = crop.shape[0]
        if guard is not False:
            g = hair_guard(crop, self.low) if guard is True else np.asarray(guard, np.float32)
            w = g * _ellipse_low(size, self.low)
            d = (d - (d * w).sum((0, 1)) / w.sum()) * g  # the skin it acts on keeps its mean colour
        # faded towards the ellipse's edge (the feathered mask squared): a change that ends at full size on
        # the edge draws an elliptical rim there
        return cv2.resize(d, (size, size), interpolation=cv2.INTER_CUBIC) * _taper(size)

    def apply(self, crop: np.ndarray, change: np.ndarray, alpha: float) -> np.ndarray:
        return np.clip(crop.astype(np.float32) + alpha * change + 0.5, 0, 255).astype(np.uint8)


BANK_ENV = "FACEGAN_KSAME_BANK"  # a bank folder (e.g. built with `facegan data ksame-bank`) instead of the shipped one
GROUPS = ("male", "female")


def get_bank() -> KSameBank:
    """The bank in ``$FACEGAN_KSAME_BANK`` when set (one you built from faces you may use, e.g. under
    other licence terms than UTKFace's), else the shipped one."""
    import os

    return _load_bank(os.environ.get(BANK_ENV) or "")


@lru_cache(maxsize=2)
def _load_bank(path: str) -> KSameBank:
    from ..weights import load_model_folder, model_dir

    if path:
        sd, manifest = load_model_folder(Path(path), label=f"k-Same bank {path!r} (${BANK_ENV})")
    else:
        sd, manifest = load_model_folder(model_dir(SHIPPED), label=f"shipped model {SHIPPED!r}")
    return KSameBank({k: v.numpy() for k, v in sd.items()}, manifest)


def save_bank(arrays: dict, out_dir: str | Path, name: str, extra: dict | None = None) -> dict:
    """Writes a bank (``build_bank``'s arrays) in the shipped layout: ``model.safetensors`` + ``manifest.json``
    (sha256, groups, sizes). Returns the manifest."""
    import json

    import torch
    from safetensors.torch import save_file

    from ..weights import sha256_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wf = out / "model.safetensors"
    save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, str(wf))
    labels = np.asarray(arrays["labels"])
    manifest = {"name": name, "class": "KSameBank", "groups": list(GROUPS), "low": LOW,
                "components": int(np.asarray(arrays["basis"]).shape[0]),
                "faces": {g: int((labels == i).sum()) for i, g in enumerate(GROUPS)},
                "template": "utkface", "size": 128, **(extra or {}), "sha256": sha256_file(wf)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def crops_from_folder(folder: str | Path, progress: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
    """The largest face of every image under ``folder/male`` and ``folder/female``, aligned at 128 px on the
    ``utkface`` template: (crops, labels 0 male / 1 female, images without a face)."""
    from ..errors import InputNotFoundError
    from ..io import iter_images, read_image
    from .align import align_face
    from .detect import detect_faces

    crops, labels, missed = [], [], 0
    for i, g in enumerate(GROUPS):
        sub = Path(folder) / g
        if not sub.is_dir():
            raise InputNotFoundError(f"{sub}: a bank needs a folder per group ({', '.join(GROUPS)})")
        files = iter_images(sub)
        if progress:
            from tqdm import tqdm

            files = tqdm(files, desc=g, unit="photo")
        for f in files:
            try:
                rgb = read_image(f)
                faces = detect_faces(rgb, "centerface")
            except Exception:  # an unreadable image is a missed face, not a failed bank
                missed += 1
                continue
            if not faces:
                missed += 1
                continue
            face = max(faces, key=lambda x: x.width * x.height)
            crops.append(align_face(rgb, face, "utkface", 128).crop)
            labels.append(i)
    return np.asarray(crops, np.uint8).reshape(-1, 128, 128, 3), np.asarray(labels, np.int64), missed
