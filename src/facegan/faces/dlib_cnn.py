"""dlib's MMOD CNN face detector (``mmod_human_face_detector.dat``, CC0, in face_recognition_models).

More robust than the HOG detector to pose and paintings but slow on CPU (seconds per photo), so
it is not the default. dlib's 5-point shape model is documented to work with its boxes.
"""
from __future__ import annotations

import threading

import numpy as np

from .detect import _dlib_models, dlib_shapes, five_from_dlib5, nms, register_detector
from .types import Face


@register_detector
class DlibCnnDetector:
    """MMOD CNN at ``work_side`` px on the long side (faces down to ~40 px at that size)."""

    name = "dlib-cnn"

    def __init__(self, work_side: int = 640, min_confidence: float = 0.3):
        import dlib

        self.det = dlib.cnn_face_detection_model_v1(_dlib_models().cnn_face_detector_model_location())
        self.work_side = work_side
        self.min_confidence = min_confidence
        self.dlib = dlib
        self._lock = threading.Lock()

    def detect(self, rgb: np.ndarray) -> list[Face]:
        import cv2

        h, w = rgb.shape[:2]
        scale = min(1.0, self.work_side / max(h, w))
        img = rgb if scale == 1.0 else cv2.resize(rgb, (round(w * scale), round(h * scale)),
                                                  interpolation=cv2.INTER_AREA)
        with self._lock:
            dets = self.det(np.ascontiguousarray(img), 0)
        shapes = dlib_shapes()
        faces = []
        for d in dets:
            if d.confidence < self.min_confidence:
                continue
            r = d.rect
            box = np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64) / scale
            rect = self.dlib.rectangle(int(box[0]), int(box[1]), int(box[2]), int(box[3]))
            p5 = shapes.five(rgb, rect)
            faces.append(Face(box=tuple(box.tolist()), score=float(d.confidence),
                              landmarks5=five_from_dlib5(p5), detector=self.name, extra={"dlib5": p5}))
        return nms(faces)
