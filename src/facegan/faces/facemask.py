"""Where a face ends: a soft mask of the region above the jaw line, from the face's 68 landmarks.

The paste-back ellipse is a fixed shape in the aligned crop; on a portrait whose chin sits near the crop's
bottom edge the ellipse's lower arc crosses the chin and the neck, and whatever the translator draws there
(its beard shadow) ends in a grey arc below the chin that follows no edge of the face. :func:`jaw_mask`
limits a change to the face the landmarks outline — inside the jaw line (points 0-16), extended straight up
from the two ends of the jaw to the top of the crop — grown by ``grow`` and feathered over ``feather``
(fractions of the crop side), so a change stops at the face's own jaw line, where the photo already has an
edge.
"""
from __future__ import annotations

import cv2
import numpy as np

JAW = slice(0, 17)
GROW = 0.05  # of the crop side: the mask's 0.5 level lies this far outside the jaw line (6 px of 128: the jaw's
# own edge shadow is kept; 0.02 lost a women -> men flip more on held-out photos, session 24)
FEATHER = 0.05  # of the crop side: the width of the ramp from 0 to 1


def jaw_mask(l68: np.ndarray, size: int, grow: float | None = None, feather: float | None = None) -> np.ndarray:
    """(size, size) float32 in [0, 1]: 1 inside the face outlined by the 68 landmarks ``l68`` (crop pixels),
    0 below and beside its jaw line, a linear ramp ``feather * size`` wide centred ``grow * size`` outside it
    (None: ``GROW``, ``FEATHER``)."""
    grow = GROW if grow is None else grow
    feather = FEATHER if feather is None else feather
    p = np.asarray(l68, np.float64)
    if p.shape != (68, 2) or not np.isfinite(p).all():
        raise ValueError("jaw_mask needs (68, 2) finite landmarks")
    jaw = p[JAW]
    top = min(float(p[:, 1].min()), 0.0) - size  # well above the crop: the mask is open upwards
    poly = np.vstack([jaw, [[jaw[-1, 0], top], [jaw[0, 0], top]]])
    s = 4  # drawn at 4x for a smooth edge
    inside = np.zeros((size * s, size * s), np.uint8)
    cv2.fillPoly(inside, [np.round(poly * s).astype(np.int32)], 1, lineType=cv2.LINE_8)
    inside = cv2.resize(inside.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA) > 0.5
    # signed distance to the outline (px, > 0 inside)
    d_in = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 5)
    d_out = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 5)
    sd = d_in - d_out
    f = max(feather * size, 1.0)
    return np.clip(0.5 + (sd + grow * size) / f, 0.0, 1.0).astype(np.float32)


def plausible(p: np.ndarray, m: np.ndarray) -> bool:
    """Whether landmarks ``p`` (crop pixels) and their mask ``m`` look like a face dlib fitted well: both eyes'
    centres and the mouth's inside the mask, and the chin (point 8) below the mouth by at least 5% of the crop.
    A poor fit (a profile, a face turned past dlib's range, a blurred face) can draw a jaw through the face;
    the caller then keeps its ellipse rather than cut the change across the cheeks."""
    size = m.shape[0]
    centres = np.stack([p[36:42].mean(0), p[42:48].mean(0), p[48:68].mean(0)])
    xy = np.round(centres).astype(int)
    if (xy < 0).any() or (xy >= size).any():
        return False
    if (m[xy[:, 1], xy[:, 0]] < 0.99).any():
        return False
    return bool(p[8, 1] - centres[2, 1] >= 0.05 * size)


def face_mask_in_crop(rgb: np.ndarray, face, aligned) -> np.ndarray | None:
    """:func:`jaw_mask` of ``face`` (a :class:`~facegan.faces.types.Face` in photo ``rgb``) in the frame of its
    aligned crop ``aligned``; its 68 landmarks are fitted (dlib) unless it carries them. None when they cannot
    be fitted or the fit is not :func:`plausible` (the caller keeps its ellipse)."""
    from .detect import shape_upright

    l68 = face.landmarks68
    try:
        if l68 is None:
            l68 = shape_upright(rgb, face, 68)
        p = np.asarray(l68, np.float64) @ np.asarray(aligned.matrix, np.float64)[:, :2].T + aligned.matrix[:, 2]
        m = jaw_mask(p, aligned.size)
    except (ValueError, RuntimeError):
        return None
    return m if plausible(p, m) else None
