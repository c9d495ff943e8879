"""High-resolution redraw of ``anonymize``'s faces (``--redraw-large``): a face much larger in the photo than the
128 px crop the models work on is re-drawn at (nearly) the photo's own resolution instead of getting the
crop's change added to its own pixels.

Paste-back as a residual keeps the photo's own fine detail and adds the models' change on top. For
``swap-gender`` that is the point (the person stays, the photo stays sharp). For ``anonymize`` on a large
face it is not: the change moves eyes, brows, nose and mouth (k-Same, the reshape, the translator), while
the photo's own sharp contours of the old ones stay under it — doubled features, and fine detail the
identity models still match. Here the final 128 px crop is upsampled in 2x steps, each step blurred by
``sigma`` px and re-drawn by the detail restorer (``weights/anonymize-restorer``, fully convolutional: the
same network at 256 and 512 px), and pasted back at that size: inside the face the photo's own detail is
replaced; where the hair guard (``faces/ksame.hair_guard``) says hair or background reaches into the face
ellipse, the old residual paste (own detail + change) is kept. The redraw's detail is capped at the photo's
own (:func:`capped_detail`): no sharper than the face was.
"""
from __future__ import annotations

import cv2
import numpy as np

REDRAW_MIN = 2.0  # the crop must be enlarged at least this much in the photo (a 256 px face) to be redrawn
REDRAW_MAX = 512  # px: the largest size the network redraws at (cost grows with its square)
REDRAW_REACH = 1.2  # redraw at 2x steps while the next size stays below this many times the face's own


def crop_scale(al) -> float:
    """How many photo pixels one pixel of the aligned crop covers."""
    return float(np.sqrt(abs(np.linalg.det(al.inverse[:, :2]))))


def redraw_size(al) -> int:
    """The size the face of aligned crop ``al`` is redrawn at (``al.size`` when it is not redrawn)."""
    scale = crop_scale(al)
    n = al.size
    if scale < REDRAW_MIN:
        return n
    while n * 2 <= min(REDRAW_MAX, REDRAW_REACH * scale * al.size):
        n *= 2
    return n


def redraw(rgb: np.ndarray, face, al, new_crop: np.ndarray, target: str, restorer, sigma: float,
           guard: np.ndarray | None = None):
    """(aligned crop at the redraw size, its new crop) for ``paste_back``, or None when the face is too small.
    ``al``: the face's aligned 128 px crop of ``rgb``; ``new_crop``: the op's final crop for it; ``guard``:
    where the change may act (hair_guard's map at any size, 1 = face), None = everywhere."""
    from ..faces.align import align_face

    n = redraw_size(al)
    if n == al.size:
        return None
    cur, m = new_crop, al.size
    while m < n:
        m *= 2
        up = cv2.resize(cur, (m, m), interpolation=cv2.INTER_CUBIC)
        cur = restorer.restore(up[None], [target], sigma)[0]
    hi = align_face(rgb, face, al.template, n)
    change = cv2.resize(new_crop.astype(np.float32) - al.crop.astype(np.float32), (n, n), interpolation=cv2.INTER_CUBIC)
    kept = hi.crop.astype(np.float32) + change  # the residual paste at this size: own detail + the change
    cur = capped_detail(cur, new_crop, hi.crop, al.crop, al.template)
    if guard is None:
        g = np.ones((n, n, 1), np.float32)
    else:
        g = np.clip(cv2.resize(np.asarray(guard, np.float32).reshape(guard.shape[0], guard.shape[1]), (n, n),
                               interpolation=cv2.INTER_CUBIC), 0.0, 1.0)[..., None]
    out = g * cur.astype(np.float32) + (1.0 - g) * kept
    return hi, np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _fine(big: np.ndarray, small: np.ndarray) -> np.ndarray:
    """What ``big`` holds beyond ``small`` (the same face at 128 px) brought to its size."""
    n = big.shape[0]
    return big.astype(np.float32) - cv2.resize(small.astype(np.float32), (n, n), interpolation=cv2.INTER_CUBIC)


def capped_detail(drawn: np.ndarray, new_crop: np.ndarray, hi_crop: np.ndarray, crop: np.ndarray, template) -> np.ndarray:
    """The redraw with its detail (what it holds beyond the upsampled final crop) scaled down, where it is
    stronger, to the RMS the photo's own face has beyond its 128 px crop, inside the face ellipse: the restorer
    draws sharp skin, brows and lashes wherever it is asked, and on a soft face (an enlarged or out-of-focus
    photo) that was hard lines and a grid-like texture (detail kept 3.7 on the evaluation's 200 enlarged to
    500 px, session 21). On a sharp face the two are alike and the redraw is kept as drawn. ``hi_crop`` / ``crop``:
    the photo's face aligned at the redraw's size and at 128 px; ``template``: their crop template."""
    from ..faces.align import crop_mask

    n = drawn.shape[0]
    m = crop_mask(template, n, "ellipse") > 0.5
    d_new = _fine(drawn, new_crop)
    r_new = float(np.sqrt((d_new[m] ** 2).mean()))
    r_own = float(np.sqrt((_fine(hi_crop, crop)[m] ** 2).mean()))
    if r_new <= r_own or r_new == 0.0:
        return drawn
    base = drawn.astype(np.float32) - d_new
    return np.clip(base + d_new * (r_own / r_new) + 0.5, 0, 255).astype(np.uint8)
