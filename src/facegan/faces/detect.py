"""Face detectors behind one interface, found by name.

``detect_faces(rgb)`` returns every face with a score and 5-point landmarks
(left eye, right eye, nose, left mouth, right mouth in image coordinates; mouth points are
estimated when the backend has none).
"""
from __future__ import annotations

import threading
from functools import lru_cache
from typing import Protocol

import numpy as np

from .types import Face


class Detector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[Face]: ...


_REGISTRY: dict[str, type] = {}
# backends in their own modules, imported on first use (they import this module)
_LAZY = {"centerface": "facegan.faces.centerface", "centerface-upright": "facegan.faces.centerface",
         "centerface-video": "facegan.faces.centerface",
         "dlib-cnn": "facegan.faces.dlib_cnn"}


def register_detector(cls):
    _REGISTRY[cls.name] = cls
    return cls


def list_detectors() -> list[str]:
    return sorted(set(_REGISTRY) | set(_LAZY))


@lru_cache(maxsize=None)
def get_detector(name: str = "dlib-hog") -> Detector:
    from ..errors import ConfigError

    if name not in _REGISTRY and name in _LAZY:
        import importlib

        importlib.import_module(_LAZY[name])
    if name not in _REGISTRY:
        raise ConfigError(f"unknown detector {name!r}; known: {', '.join(list_detectors())}")
    return _REGISTRY[name]()


def _dlib_models():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import face_recognition_models as frm
    return frm


def five_from_dlib5(pts: np.ndarray) -> np.ndarray:
    """dlib's 5-point model: 0,1 = one eye's corners, 2,3 = the other's, 4 = below the nose."""
    e_a = pts[0:2].mean(0)
    e_b = pts[2:4].mean(0)
    left, right = (e_a, e_b) if e_a[0] < e_b[0] else (e_b, e_a)
    nose = pts[4]
    # mouth corners are not in the model: estimate them from the eye line (used for display only)
    eye_mid = (left + right) / 2
    down = nose - eye_mid
    ex = right - left
    ml = nose + 0.6 * down - 0.25 * ex
    mr = nose + 0.6 * down + 0.25 * ex
    return np.stack([left, right, nose, ml, mr]).astype(np.float64)


def five_from_68(pts: np.ndarray) -> np.ndarray:
    le = pts[36:42].mean(0)
    re = pts[42:48].mean(0)
    left, right = (le, re) if le[0] < re[0] else (re, le)
    return np.stack([left, right, pts[30], pts[48], pts[54]]).astype(np.float64)


class _DlibShapes:
    """dlib shape predictors (5 and 68 points), shared by the dlib detectors."""

    _lock = threading.Lock()

    def __init__(self):
        import dlib

        frm = _dlib_models()
        self.sp5 = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        self._sp68 = None
        self._dlib = dlib
        self._frm = frm

    @property
    def sp68(self):
        if self._sp68 is None:
            self._sp68 = self._dlib.shape_predictor(self._frm.pose_predictor_model_location())
        return self._sp68

    def five(self, rgb, rect) -> np.ndarray:
        s = self.sp5(rgb, rect)
        return np.array([[p.x, p.y] for p in s.parts()], dtype=np.float64)

    def sixty_eight(self, rgb, rect) -> np.ndarray:
        s = self.sp68(rgb, rect)
        return np.array([[p.x, p.y] for p in s.parts()], dtype=np.float64)


@lru_cache(maxsize=1)
def dlib_shapes() -> _DlibShapes:
    return _DlibShapes()


@register_detector
class DlibHogDetector:
    """dlib's HOG + linear SVM frontal detector (CC0 model). Upsamples small photos so faces of
    ~40 px are found; large photos are scanned at a reduced size for speed."""

    name = "dlib-hog"

    def __init__(self, work_side: int = 1024, min_side_upsample: int = 640):
        import dlib

        self.det = dlib.get_frontal_face_detector()
        self.work_side = work_side
        self.min_side_upsample = min_side_upsample
        self.dlib = dlib

    def detect(self, rgb: np.ndarray) -> list[Face]:
        import cv2

        h, w = rgb.shape[:2]
        scale = min(1.0, self.work_side / max(h, w))
        img = rgb if scale == 1.0 else cv2.resize(rgb, (round(w * scale), round(h * scale)),
                                                  interpolation=cv2.INTER_AREA)
        upsample = 1 if max(img.shape[:2]) <= self.min_side_upsample else 0
        rects, scores, _ = self.det.run(np.ascontiguousarray(img), upsample, -0.2)
        shapes = dlib_shapes()
        faces = []
        for r, s in zip(rects, scores):
            box = np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64) / scale
            rect = self.dlib.rectangle(int(box[0]), int(box[1]), int(box[2]), int(box[3]))
            p5 = shapes.five(rgb, rect)
            faces.append(Face(box=tuple(box.tolist()), score=float(s), landmarks5=five_from_dlib5(p5),
                              detector=self.name, extra={"dlib5": p5}))
        return nms(faces)


def nms(faces: list[Face], iou_thr: float = 0.4) -> list[Face]:
    faces = sorted(faces, key=lambda f: -f.score)
    keep: list[Face] = []
    for f in faces:
        if all(_iou(f.box, k.box) < iou_thr for k in keep):
            keep.append(f)
    return keep


def _iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


def shape_upright(rgb: np.ndarray, face: Face, points: int = 68) -> np.ndarray:
    """dlib's ``points`` (5 or 68) landmarks of ``face`` in photo pixels, run where the face is upright: a rolled
    face (CenterFace's ``extra["upright"]``: the affine to its upright patch, the patch size and the dlib-like box
    there) in that patch, others on their dlib-like box (``extra["dlib_rect"]``, else the box) in the photo.
    dlib's shape models only fit faces within about 30 degrees of level."""
    import dlib

    shapes = dlib_shapes()
    run = shapes.sixty_eight if points == 68 else shapes.five
    up = face.extra.get("upright")
    if up is None and face.landmarks5 is not None:  # e.g. a video's tracked face: its patch from its 5 points
        up = upright_frame(rgb, face)
    if up is None:
        b = face.extra.get("dlib_rect", face.box)  # backends with other box framing give a dlib-like one
        return run(rgb, dlib.rectangle(int(b[0]), int(b[1]), int(b[2]), int(b[3])))
    import cv2

    to, w, h, r = up
    patch = cv2.warpAffine(rgb, np.asarray(to), (int(w), int(h)), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    pts = run(patch, dlib.rectangle(int(round(r[0])), int(round(r[1])), int(round(r[2])), int(round(r[3]))))
    back = cv2.invertAffineTransform(np.asarray(to))
    return pts @ back[:, :2].T + back[:, 2]


def dlib5_of(rgb: np.ndarray, face: Face) -> np.ndarray:
    """dlib's raw 5 points (eye corners + under-nose) of ``face``: the detector's (``extra["dlib5"]``), else dlib's
    shape model run on its box — a rolled face where it is upright — and kept there."""
    if "dlib5" not in face.extra:
        on_box = Face(face.box, face.score, face.landmarks5, None, face.detector,
                      {k: v for k, v in face.extra.items() if k == "upright"})  # its box, not a dlib_rect it carries
        face.extra["dlib5"] = shape_upright(rgb, on_box, 5)
    return face.extra["dlib5"]


def upright_frame(rgb: np.ndarray, face: Face):
    """For a face whose 5 points are rolled more than CenterFace's ``ROLL_REFINE`` degrees and that carries no
    ``extra["upright"]`` (a tracked video face, rebuilt from smoothed points): the same (affine, width, height,
    dlib-like box) built from its points; None for a face about level."""
    from .centerface import ROLL_REFINE, _roll, _upright_patch, hog_like_rect

    l5 = np.asarray(face.landmarks5, np.float64)
    if abs(_roll(l5)) <= ROLL_REFINE:
        return None
    patch, to = _upright_patch(rgb, face.box, l5)
    q = l5 @ to[:, :2].T + to[:, 2]
    return to, patch.shape[1], patch.shape[0], hog_like_rect(q)


def add_landmarks68(rgb: np.ndarray, face: Face) -> Face:
    """Adds the 68-point iBUG landmarks (dlib model; its training data excludes commercial use)."""
    face.landmarks68 = shape_upright(rgb, face, 68)
    return face


def detect_faces(rgb: np.ndarray, detector: str = "dlib-hog", min_score: float = -0.2) -> list[Face]:
    faces = get_detector(detector).detect(rgb)
    return [f for f in faces if f.score >= min_score]
