"""Reshape a face's identity-bearing proportions with a smooth warp driven by its 68 landmarks.

Face recognisers key on the geometry of the eyes, brows, nose, mouth and jaw as much as on skin and
make-up. :func:`random_targets` moves those landmark groups by random amounts (eye spacing,
brow height, nose width and length, mouth width and height, jaw width), each a fraction
``magnitude`` of the inter-ocular distance or of the feature's own size, with a random sign;
:class:`FaceWarp` turns the moves into a thin-plate-spline displacement field that is zero at the
edge of a margin around the face, and resamples the photo there at its own resolution (detail
stays sharp; nothing outside the margin moves). ``anonymize`` applies it on top of the gender
translation: a warp alone barely moves a recogniser (on 60 held-out crops, faceres still matched
100% at magnitude 0.12), but after the translation it is what pushes many faces past the
recogniser's threshold.

The moves are drawn from a random generator the caller passes (``anonymize`` seeds it from the
operating system unless ``seed`` is given) and are not recorded, so the warp cannot simply be undone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# iBUG 68-point groups (dlib's shape_predictor_68 order)
JAW = slice(0, 17)
BROW_R, BROW_L = slice(17, 22), slice(22, 27)
NOSE_TIP = slice(30, 36)  # tip and nostrils: 30-35
NOSTRILS = slice(31, 36)
EYE_R, EYE_L = slice(36, 42), slice(42, 48)
MOUTH = slice(48, 68)
MAX_MAGNITUDE = 0.2


def landmarks68(rgb: np.ndarray, box) -> np.ndarray:
    """(68, 2) float landmarks from dlib's 68-point model of the face in ``box`` (x0, y0, x1, y1), or of a
    :class:`~facegan.faces.types.Face` (a rolled one fitted where it is upright: ``detect.shape_upright``)."""
    import dlib

    from .detect import dlib_shapes, shape_upright
    from .types import Face

    if isinstance(box, Face):
        if "upright" in box.extra:
            return np.asarray(shape_upright(rgb, box, 68), np.float64)
        box = box.box
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    return np.asarray(dlib_shapes().sixty_eight(rgb, dlib.rectangle(x0, y0, x1, y1)), np.float64)


LEVEL_ABOVE = 20.0  # degrees: a face rolled more than this gets its moves in its own level frame


def random_targets(p: np.ndarray, magnitude: float, rng: np.random.Generator) -> np.ndarray:
    """Where each of the 68 landmarks ``p`` should move: a random proportion change of size ``magnitude``. The
    moves are along the face's own axes; a face rolled more than ``LEVEL_ABOVE`` degrees (eye line from level)
    is turned level for them and back (below that the photo's axes, as before session 22)."""
    p = np.asarray(p, np.float64)
    e = p[EYE_L].mean(0) - p[EYE_R].mean(0)
    roll = float(np.arctan2(e[1], e[0]))
    if abs(np.degrees(roll)) > LEVEL_ABOVE:
        c, s = np.cos(roll), np.sin(roll)
        m = np.array([[c, s], [-s, c]])  # turns the face level about its mean point
        mid = p.mean(0)
        q = random_targets((p - mid) @ m.T, magnitude, rng)
        return q @ m + mid
    q = p.copy()
    if magnitude <= 0:
        return q
    iod = float(np.linalg.norm(p[EYE_R].mean(0) - p[EYE_L].mean(0)))

    def amount():  # a random sign, 60-100% of the magnitude
        return float(rng.choice((-1.0, 1.0)) * magnitude * rng.uniform(0.6, 1.0))

    spread = amount() * iod * 0.5  # eyes (with their brows) apart / together
    for part, side in ((EYE_R, -1), (BROW_R, -1), (EYE_L, 1), (BROW_L, 1)):
        q[part, 0] += side * spread
    # (no eye-size change: on 80 held-out crops it did not lower re-identification, and enlarged
    # eyes made faces look doll-like)
    lift = amount() * iod  # brows up / down
    q[BROW_R, 1] += lift
    q[BROW_L, 1] += lift
    c = p[NOSTRILS].mean(0)  # nose width
    q[NOSTRILS, 0] = c[0] + (p[NOSTRILS, 0] - c[0]) * (1 + 1.5 * amount())
    q[NOSE_TIP, 1] += amount() * iod * 0.5  # nose length
    c = p[MOUTH].mean(0)  # mouth width and height in the face
    q[MOUTH, 0] = c[0] + (p[MOUTH, 0] - c[0]) * (1 + amount())
    q[MOUTH, 1] += amount() * iod * 0.4
    c = p[27:36].mean(0)  # jaw width about the nose
    q[JAW, 0] = c[0] + (p[JAW, 0] - c[0]) * (1 + amount())
    return q


@dataclass
class FaceWarp:
    """A precomputed resampling of one region of a photo: ``apply`` moves landmarks ``p`` to ``q``."""

    region: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) in the photo
    map_x: np.ndarray  # float32 (h, w): where each region pixel samples the photo
    map_y: np.ndarray

    @classmethod
    def plan(cls, shape, p: np.ndarray, q: np.ndarray, margin: float = 0.35, grid: int = 32) -> "FaceWarp":
        """``shape``: the photo's (H, W, ...); the region is the landmarks' box grown by ``margin`` of its size."""
        import cv2
        from scipy.interpolate import RBFInterpolator

        H, W = int(shape[0]), int(shape[1])
        p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
        lo, hi = np.minimum(p.min(0), q.min(0)), np.maximum(p.max(0), q.max(0))
        pad = (hi - lo) * margin + 2
        x0, y0 = (int(max(0, np.floor(v))) for v in lo - pad)
        x1, y1 = int(min(W, np.ceil(hi[0] + pad[0]))), int(min(H, np.ceil(hi[1] + pad[1])))
        w, h = x1 - x0, y1 - y0
        # fixed anchors on the region's edge keep the field at zero there
        t = np.linspace(0.0, 1.0, 9)
        edge = np.concatenate([np.stack([x0 + t * (w - 1), np.full_like(t, y0)], 1),
                               np.stack([x0 + t * (w - 1), np.full_like(t, y1 - 1)], 1),
                               np.stack([np.full_like(t, x0), y0 + t * (h - 1)], 1),
                               np.stack([np.full_like(t, x1 - 1), y0 + t * (h - 1)], 1)])
        field = RBFInterpolator(np.concatenate([q, edge]), np.concatenate([p - q, np.zeros_like(edge)]),
                                kernel="thin_plate_spline", smoothing=1e-3)
        gy, gx = np.meshgrid(np.linspace(y0, y1 - 1, grid), np.linspace(x0, x1 - 1, grid), indexing="ij")
        d = field(np.stack([gx.ravel(), gy.ravel()], 1)).reshape(grid, grid, 2).astype(np.float32)
        d = cv2.resize(d, (w, h), interpolation=cv2.INTER_CUBIC)
        # taper to exactly zero at the edge (the spline is only ~0 between anchors)
        ramp = lambda n: np.clip(np.minimum(np.arange(n), np.arange(n)[::-1]) / max(1.0, 0.08 * n), 0, 1)  # noqa: E731
        win = (np.outer(ramp(h), ramp(w)) ** 2).astype(np.float32)[..., None]
        d *= win
        # (the pixel grid by broadcasting: no two region-sized index arrays, ~0.5 s on a 16 MP photo)
        return cls((x0, y0, x1, y1), np.arange(x0, x1, dtype=np.float32)[None, :] + d[..., 0],
                   np.arange(y0, y1, dtype=np.float32)[:, None] + d[..., 1])

    def apply(self, img: np.ndarray) -> np.ndarray:
        """A copy of ``img`` with the region resampled (same dtype and channels)."""
        import cv2

        x0, y0, x1, y1 = self.region
        out = img.copy()
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = cv2.remap(img, self.map_x, self.map_y, cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_REFLECT)
        return out
