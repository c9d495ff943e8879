"""Baseline operations: Gaussian blur and pixelation (mosaic) of every face.

They generate no pixels (``synthetic=False``) and need no model, so every metric that judges a GAN
operation (gender read-out, identity similarity) has a classical comparison run through the same
harness.

Each face region is a feathered ellipse placed by the face's landmarks (the ``utkface`` crop
template's blend ellipse, enlarged to take in forehead and chin) and worked on at the photo's full
resolution: the blurred / pixelated pixels come from the original photo, not from an upsampled crop.
"""
from __future__ import annotations

import time

import cv2
import numpy as np

from ..errors import NoFaceError
from ..faces import align as _align
from ..faces.templates import get_template
from ..faces.types import Face
from .base import Operation, OpOption, OpResult, register_op

TEMPLATE = "utkface"
# the template's ellipse covers eyes-to-chin of a tight crop; enlarge it so the whole face goes
REGION_SCALE = 1.2
_MASK_SIZE = 256  # resolution of the mask in template space (it is warped to the photo, then feathered)


def _region_mask(shape: tuple[int, int], face: Face) -> tuple[np.ndarray, tuple[int, int, int, int], float]:
    """Feathered elliptical face mask at full resolution.

    Returns (mask float32 in [0, 1] for the region of interest, roi (x0, y0, x1, y1), face size px).
    """
    h, w = shape
    tpl = get_template(TEMPLATE)
    if face.landmarks5 is not None:
        idx = list(tpl.fit)
        m = _align.similarity_transform(face.landmarks5[idx], tpl.points_px(_MASK_SIZE)[idx])
        inv = _align.invert_affine(m)
        scale = float(np.sqrt(abs(np.linalg.det(inv[:, :2]))))  # photo px per template px
        cx, cy, rx, ry = (v * _MASK_SIZE for v in tpl.mask)
        rx, ry = rx * REGION_SCALE, ry * REGION_SCALE
        # ellipse in template space -> polygon in photo space (keeps rotation of tilted faces)
        t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        pts = np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t), np.ones_like(t)], 1) @ inv.T
        size = 2 * rx * scale
    else:  # no landmarks: an ellipse inscribed in the (enlarged) box
        x0, y0, x1, y1 = face.box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        rx, ry = (x1 - x0) / 2 * REGION_SCALE, (y1 - y0) / 2 * REGION_SCALE
        t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        pts = np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)
        size = 2 * rx
    feather = max(2.0, tpl.feather * size)
    pad = int(np.ceil(2 * feather)) + 2
    x0 = max(int(np.floor(pts[:, 0].min())) - pad, 0)
    y0 = max(int(np.floor(pts[:, 1].min())) - pad, 0)
    x1 = min(int(np.ceil(pts[:, 0].max())) + pad, w)
    y1 = min(int(np.ceil(pts[:, 1].max())) + pad, h)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0), np.float32), (0, 0, 0, 0), size
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    poly = np.round((pts[:, :2] - (x0, y0)) * 16).astype(np.int32)  # 4 fractional bits
    cv2.fillPoly(mask, [poly], 255, lineType=cv2.LINE_AA, shift=4)
    # feather: the blurred edge is centred on the ellipse, so the face itself stays fully covered
    # up to ~half the feather width outside the ellipse line
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), feather / 2)
    soft = np.clip(soft * 2.0, 0.0, 1.0)  # push the 0.5 contour outward: inside the ellipse is 1
    return soft, (x0, y0, x1, y1), float(size)


def _faces_or_raise(rgb: np.ndarray, detector: str, min_face: int, given: list[Face] | None = None) -> list[Face]:
    """The faces to work on: ``given`` (e.g. a video's tracked faces) or the detector's, at least ``min_face`` px (the
    baselines' default 0: every face found, however small — until session 23 faces under 24 px were left as they
    were, with no report row, so a `facegan blur` of a crowd missed its smallest faces silently)."""
    from ..faces.detect import detect_faces

    found = detect_faces(rgb, detector) if given is None else given
    faces = [f for f in found if min(f.width, f.height) >= min_face]
    if not faces:
        raise NoFaceError("no face found in the image")
    return faces


def _apply(rgb: np.ndarray, faces: list[Face], transform, name: str, **report) -> tuple[np.ndarray, list[dict]]:
    out = rgb.copy()
    rows = []
    for i, f in enumerate(faces):
        mask, (x0, y0, x1, y1), size = _region_mask(rgb.shape[:2], f)
        row = {"face": i, "box": [round(float(v), 1) for v in f.box], "score": round(float(f.score), 3),
               "region_px": round(size, 1)}
        if mask.size == 0:
            row["status"] = "skipped (outside the image)"
            rows.append(row)
            continue
        # the transform sees the ROI with a margin so blurs near the ellipse draw on real pixels
        roi = out[y0:y1, x0:x1]
        new, extra = transform(out, (x0, y0, x1, y1), size)
        m = mask[..., None]
        roi[:] = np.clip(roi.astype(np.float32) * (1 - m) + new.astype(np.float32) * m + 0.5, 0, 255).astype(np.uint8)
        row.update(extra)
        row["status"] = name
        rows.append(row)
    return out, rows


def blur_faces(rgb: np.ndarray, faces: list[Face], strength: float = 1.0) -> tuple[np.ndarray, list[dict]]:
    """The blur baseline's blur of the given faces' regions (also ``anonymize --fallback blur``):
    (new photo, one report row per face)."""

    def tf(img, roi, size):
        sigma = max(strength * 0.08 * size, 0.0)
        x0, y0, x1, y1 = roi
        if sigma <= 0:
            return img[y0:y1, x0:x1].copy(), {"sigma_px": 0.0}
        # blur a margin around the ROI too so the region's edge does not mirror its own pixels
        mg = int(np.ceil(3 * sigma))
        h, w = img.shape[:2]
        X0, Y0, X1, Y1 = max(x0 - mg, 0), max(y0 - mg, 0), min(x1 + mg, w), min(y1 + mg, h)
        big = cv2.GaussianBlur(img[Y0:Y1, X0:X1], (0, 0), sigma, borderType=cv2.BORDER_REFLECT101)
        return big[y0 - Y0:y1 - Y0, x0 - X0:x1 - X0], {"sigma_px": round(sigma, 1)}

    return _apply(rgb, faces, tf, "blurred")


def blur(rgb: np.ndarray, strength: float = 1.0, detector: str = "centerface", min_face: int = 0,
         faces: list[Face] | None = None) -> OpResult:
    """Gaussian blur of each face region; sigma = strength x 8 % of the face region's width."""
    if strength < 0:
        from ..errors import ConfigError

        raise ConfigError("blur: strength must be >= 0")
    t0 = time.perf_counter()
    faces = _faces_or_raise(rgb, detector, min_face, faces)
    out, rows = blur_faces(rgb, faces, strength)
    return OpResult(image=out, faces=rows, synthetic=False,
                    info={"operation": "blur", "strength": strength, "faces": len(rows),
                          "time_s": round(time.perf_counter() - t0, 3)})


def pixelate(rgb: np.ndarray, blocks: int = 10, detector: str = "centerface", min_face: int = 0,
             faces: list[Face] | None = None) -> OpResult:
    """Mosaic of each face region: ``blocks`` cells across the face region's width."""
    if blocks < 1:
        from ..errors import ConfigError

        raise ConfigError("pixelate: blocks must be >= 1")
    t0 = time.perf_counter()
    faces = _faces_or_raise(rgb, detector, min_face, faces)

    def tf(img, roi, size):
        x0, y0, x1, y1 = roi
        cell = max(size / blocks, 1.0)
        patch = img[y0:y1, x0:x1]
        ph, pw = patch.shape[:2]
        nx, ny = max(1, round(pw / cell)), max(1, round(ph / cell))
        small = cv2.resize(patch, (nx, ny), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (pw, ph), interpolation=cv2.INTER_NEAREST), {"cell_px": round(cell, 1)}

    out, rows = _apply(rgb, faces, tf, "pixelated")
    return OpResult(image=out, faces=rows, synthetic=False,
                    info={"operation": "pixelate", "blocks": blocks, "faces": len(rows),
                          "time_s": round(time.perf_counter() - t0, 3)})


register_op(Operation(
    name="blur", title="Blur faces (baseline)",
    description="Gaussian blur of every face region (classical baseline; no generated pixels).",
    run=lambda rgb, strength=1.0, faces=None: blur(rgb, strength=strength, faces=faces), video="frames",
    options=(OpOption("strength", "float", 1.0, None,
                      "blur sigma as a multiple of 8% of the face width (0 = none)"),),
    examples=("facegan blur photo.jpg -o out/", "facegan blur photos/ -o out/ --strength 2",
              "facegan blur clip.mp4 -o out/  # a video: faces tracked, missed frames filled"),
))

register_op(Operation(
    name="pixelate", title="Pixelate faces (baseline)",
    description="Mosaic of every face region (classical baseline; no generated pixels).",
    run=lambda rgb, blocks=10, faces=None: pixelate(rgb, blocks=blocks, faces=faces), video="frames",
    options=(OpOption("blocks", "int", 10, None, "number of mosaic cells across the face width"),),
    examples=("facegan pixelate photo.jpg -o out/", "facegan pixelate photos/ -o out/ --blocks 6"),
))
