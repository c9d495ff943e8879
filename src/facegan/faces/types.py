from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Face:
    """One detected face in a full photo (pixel coordinates of that photo)."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float
    landmarks5: np.ndarray | None = None  # (5, 2): left eye, right eye, nose, left mouth, right mouth
    landmarks68: np.ndarray | None = None  # (68, 2) iBUG layout when available
    detector: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    def to_dict(self) -> dict:
        d = {"box": [round(float(v), 1) for v in self.box], "score": round(float(self.score), 4),
             "detector": self.detector}
        if "roll" in self.extra:  # a face found turned (faces/centerface.py): its eye line's angle from level
            d["roll"] = float(self.extra["roll"])
        if self.landmarks5 is not None:
            d["landmarks5"] = np.round(self.landmarks5, 1).tolist()
        if self.landmarks68 is not None:
            d["landmarks68"] = np.round(self.landmarks68, 1).tolist()
        return d
