"""Face tracks across video frames: the same person's face in consecutive frames gets one id.

Greedy matching by box overlap (IoU) to each track's last box; a face that matches none starts a new
track. After the last frame (:meth:`Tracker.finish`):

- **gaps are filled**: a face the detector misses for up to ``max_gap`` frames between two detections
  of its track is placed there by linear interpolation of box and landmarks (``extra["filled"]``) — a
  privacy tool must not leave a face untouched for the frames a detector blinks;
- **jitter is smoothed**: boxes and landmarks (5 points, and 68 where the caller added them) are averaged over ``smooth`` frames either side within
  the track, so a per-frame edit does not shake with the detector's noise.

Video ops decide once per track (see ``facegan.video``), so a face keeps one direction, strength and
draw for the whole clip.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .types import Face

IOU_MIN = 0.3  # boxes overlapping less than this are not the same face in the next frame
MAX_GAP = 12  # frames a track may miss and still be continued (and the gap filled): ~0.5 s at 25 fps
SMOOTH = 2  # frames either side averaged


def iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class Track:
    id: int
    faces: dict[int, Face] = field(default_factory=dict)  # frame index -> face

    @property
    def first(self) -> int:
        return min(self.faces)

    @property
    def last(self) -> int:
        return max(self.faces)

    def detected(self) -> int:
        return sum(1 for f in self.faces.values() if not f.extra.get("filled"))

    def keyframe(self) -> int:
        """The frame whose detected face is the largest (the best view to decide on)."""
        cands = [(t, f) for t, f in self.faces.items() if not f.extra.get("filled")] or list(self.faces.items())
        return max(cands, key=lambda tf: (tf[1].width * tf[1].height, -tf[0]))[0]


class Tracker:
    def __init__(self, iou_min: float = IOU_MIN, max_gap: int = MAX_GAP, smooth: int = SMOOTH):
        self.iou_min, self.max_gap, self.smooth = float(iou_min), int(max_gap), int(smooth)
        self.tracks: list[Track] = []

    def update(self, t: int, faces: list[Face]) -> list[int]:
        """Adds frame ``t``'s faces; returns the track id of each."""
        live = [k for k in self.tracks if t - k.last <= self.max_gap + 1 and k.last < t]
        pairs = sorted(((iou(f.box, k.faces[k.last].box), i, j) for i, f in enumerate(faces)
                        for j, k in enumerate(live)), reverse=True)
        ids: list[int | None] = [None] * len(faces)
        used: set[int] = set()
        for v, i, j in pairs:
            if v < self.iou_min:
                break
            if ids[i] is None and j not in used:
                ids[i] = live[j].id
                live[j].faces[t] = faces[i]
                used.add(j)
        for i, f in enumerate(faces):
            if ids[i] is None:
                k = Track(len(self.tracks), {t: f})
                self.tracks.append(k)
                ids[i] = k.id
        return [int(v) for v in ids]

    def finish(self) -> list[Track]:
        """The tracks with their gaps filled and their boxes and landmarks smoothed."""
        out = []
        for k in self.tracks:
            frames = sorted(k.faces)
            filled = dict(k.faces)
            for a, b in zip(frames, frames[1:]):
                for t in range(a + 1, b):  # b - a <= max_gap + 1 by construction
                    filled[t] = _lerp(k.faces[a], k.faces[b], (t - a) / (b - a))
            out.append(Track(k.id, _smoothed(filled, self.smooth)))
        return out


def _lerp(a: Face, b: Face, w: float) -> Face:
    box = tuple(float(x) * (1 - w) + float(y) * w for x, y in zip(a.box, b.box))
    lm = [None, None]
    for i, (x, y) in enumerate(((a.landmarks5, b.landmarks5), (a.landmarks68, b.landmarks68))):
        if x is not None and y is not None:
            lm[i] = np.asarray(x, np.float64) * (1 - w) + np.asarray(y, np.float64) * w
    return Face(box, min(a.score, b.score), lm[0], lm[1], a.detector, {"filled": True})


def _smoothed(faces: dict[int, Face], r: int) -> dict[int, Face]:
    if r <= 0:
        return faces
    out = {}
    for t, f in faces.items():
        near = [faces[u] for u in range(t - r, t + r + 1) if u in faces]
        box = tuple(float(np.mean([g.box[i] for g in near])) for i in range(4))
        lm = []
        for attr in ("landmarks5", "landmarks68"):
            own = getattr(f, attr)
            lms = [getattr(g, attr) for g in near if getattr(g, attr) is not None]
            lm.append(np.mean(np.stack(lms), 0) if own is not None and lms else own)
        out[t] = Face(box, f.score, lm[0], lm[1], f.detector, dict(f.extra))
    return out
