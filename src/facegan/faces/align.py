"""Alignment to a canonical crop and paste-back into the full-resolution photo."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .templates import CropTemplate, get_template
from .types import Face


@dataclass
class AlignedFace:
    crop: np.ndarray  # (size, size, 3) uint8 RGB
    matrix: np.ndarray  # 2x3, full photo -> crop
    inverse: np.ndarray  # 2x3, crop -> full photo
    template: CropTemplate
    size: int
    face: Face | None = None


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation), Umeyama without reflection."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1
    r = u @ e @ vt
    var_s = (s ** 2).sum() / len(src)
    scale = np.trace(np.diag(sig) @ e) / var_s
    t = mu_d - scale * r @ mu_s
    return np.hstack([scale * r, t[:, None]])


def invert_affine(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(m, np.float64))


def align_face(rgb: np.ndarray, face: Face | np.ndarray, template: str | CropTemplate = "utkface",
               size: int = 128, border: str = "reflect") -> AlignedFace:
    """Warps the face to ``template`` at ``size`` px. ``face`` is a Face or a (5, 2) landmark array."""
    tpl = get_template(template)
    pts = face.landmarks5 if isinstance(face, Face) else np.asarray(face)
    idx = list(tpl.fit)
    m = similarity_transform(pts[idx], tpl.points_px(size)[idx])
    mode = cv2.BORDER_REFLECT101 if border == "reflect" else cv2.BORDER_CONSTANT
    # area-average when shrinking a lot, so the crop is not aliased
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    src = rgb
    mm = m.copy()
    if scale < 0.5:
        f = max(1, int(1 / scale / 1.5))
        if f > 1:
            src = cv2.resize(rgb, (rgb.shape[1] // f, rgb.shape[0] // f), interpolation=cv2.INTER_AREA)
            mm = m.copy()
            mm[:, :2] *= rgb.shape[1] / src.shape[1]
    crop = cv2.warpAffine(src, mm, (size, size), flags=cv2.INTER_LINEAR, borderMode=mode)
    return AlignedFace(crop=crop, matrix=m, inverse=invert_affine(m), template=tpl, size=size,
                       face=face if isinstance(face, Face) else None)


def crop_mask(template: CropTemplate, size: int, shape: str = "ellipse") -> np.ndarray:
    """Soft mask in crop coordinates, float32 in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    f = max(template.feather * size, 1.0)
    if shape == "ellipse":
        cx, cy, rx, ry = (v * size for v in template.mask)
        r = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
        # distance (approx., in px) outside the ellipse edge, measured along the shorter axis
        dist = (r - 1.0) * min(rx, ry)
        m = np.clip(0.5 - dist / f, 0.0, 1.0)
    elif shape == "square":
        d = np.minimum(np.minimum(xx, size - xx), np.minimum(yy, size - yy))
        m = np.clip(d / f, 0.0, 1.0)
    else:
        raise ValueError(f"unknown mask shape {shape!r}")
    return m.astype(np.float32)


def crop_region(aligned: AlignedFace, shape: tuple, mask: str = "ellipse", pad: int = 2):
    """Where the aligned crop lies in a photo of ``shape``: ((x0, y0, x1, y1) its bounding box plus ``pad`` px,
    clipped to the photo; the crop -> box affine; the template's ``mask`` warped into the box, float32), or None
    when the box is empty."""
    h, w = shape[:2]
    size = aligned.size
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) @ aligned.inverse.T
    x0, y0 = np.floor(corners.min(0)).astype(int) - pad
    x1, y1 = np.ceil(corners.max(0)).astype(int) + pad
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    inv_roi = aligned.inverse.copy()
    inv_roi[:, 2] -= (x0, y0)
    m = crop_mask(aligned.template, size, mask).astype(np.float32)
    wm = cv2.warpAffine(m, inv_roi, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderValue=0)
    return (x0, y0, x1, y1), inv_roi, wm


def paste_back(full: np.ndarray, aligned: AlignedFace, new_crop: np.ndarray, mask: str = "ellipse",
               mode: str = "residual", residual_blur: float = 0.0) -> np.ndarray:
    """Blends ``new_crop`` (the processed aligned crop) back into ``full``.

    mode="replace": the crop's pixels replace the photo's under the mask (upsampled crop detail).
    mode="residual": only the change (new_crop - crop) is warped back and added to the original
    pixels, so the photo keeps its own resolution and detail where the model changed nothing.
    """
    # only work on the bounding box of the warped crop
    region = crop_region(aligned, full.shape, mask)
    if region is None:
        return full.copy()
    (x0, y0, x1, y1), inv_roi, wm = region
    roi_size = (x1 - x0, y1 - y0)
    wm = wm[..., None]
    # only the box is converted to float and back: pixels outside it are returned unchanged
    roi = full[y0:y1, x0:x1].astype(np.float32)
    if mode == "replace":
        wc = cv2.warpAffine(new_crop.astype(np.float32), inv_roi, roi_size, flags=cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_REFLECT101)
        roi[:] = roi * (1 - wm) + wc * wm
    elif mode == "residual":
        delta = new_crop.astype(np.float32) - aligned.crop.astype(np.float32)
        if residual_blur > 0:
            delta = cv2.GaussianBlur(delta, (0, 0), residual_blur)
        wd = cv2.warpAffine(delta, inv_roi, roi_size, flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT101)
        roi[:] = roi + wd * wm
    else:
        raise ValueError(f"unknown paste mode {mode!r}")
    if full.dtype == np.uint8:
        out = full.copy()
        out[y0:y1, x0:x1] = np.clip(roi + 0.5, 0, 255).astype(np.uint8)
    else:
        out = full.astype(np.float32)  # always a copy
        out[y0:y1, x0:x1] = roi
    return out
