"""Identity embeddings: dlib's ResNet face-recognition model (``dlib_face_recognition_resnet_model_v1``,
CC0, shipped in ``face_recognition_models``). 128-d descriptors computed on a 150x150 dlib face chip
(padding 0.25) cut from dlib's 5-point landmarks. The network runs in PyTorch by default (the same
weights and arithmetic, :mod:`facegan.judges.dlib_torch`: ~6 ms a chip instead of dlib's ~73 ms, checked
against dlib at load); ``FACEGAN_IDENTITY_BACKEND=dlib`` keeps dlib's own.

Two ways to compare descriptors, both reported:
- ``distance`` (Euclidean): the model's own rule is *same person when < 0.6* (dlib reports 99.38%
  on LFW with it). ``same_person`` uses this rule.
- ``similarity`` (cosine, in [-1, 1]): scale-free, handy for plots and averaging. The descriptors
  are not unit length (norm ~1.4-1.6 on the portraits set), so the two are related but not
  interchangeable: measured there, distance 0.39-0.45 (same person, two photos) went with
  cosine 0.96-0.97 and distance 0.69-1.01 (different people) with cosine 0.77-0.90.
"""
from __future__ import annotations

import os
import threading
from functools import lru_cache

import numpy as np

from ..faces.templates import CropTemplate, get_template
from ..faces.types import Face

CHIP_SIZE = 150
CHIP_PADDING = 0.25


def _full_object_detection(dlib5: np.ndarray):
    import dlib

    pts = [dlib.point(int(round(x)), int(round(y))) for x, y in dlib5]
    x0, y0 = np.min(dlib5, 0)
    x1, y1 = np.max(dlib5, 0)
    return dlib.full_object_detection(dlib.rectangle(int(x0), int(y0), int(x1), int(y1)), pts)


class IdentityJudge:
    name = "dlib-resnet-v1"
    threshold = 0.6  # Euclidean distance below which dlib calls two descriptors the same person
    dim = 128

    def __init__(self):
        import dlib

        from ..faces.detect import _dlib_models

        self._dlib = dlib
        path = _dlib_models().face_recognition_model_location()
        self.model = dlib.face_recognition_model_v1(path)
        self._lock = threading.Lock()
        self.net = None  # the same network run by PyTorch (12x faster), when it checks out
        self.backend = "dlib"
        if os.environ.get("FACEGAN_IDENTITY_BACKEND", "auto") != "dlib":
            self._use_torch(path)

    def _use_torch(self, path) -> None:
        """Runs dlib's network in PyTorch (:mod:`facegan.judges.dlib_torch`) if it gives dlib's own
        descriptors on a test chip (to 1e-4); otherwise dlib stays."""
        from .dlib_torch import load_net

        net = load_net(path)
        if net is None:
            return
        chip = _test_chip()
        want = np.asarray(self.model.compute_face_descriptor(chip), np.float32)
        got = self._run(net, [chip])[0]
        if float(np.abs(got - want).max()) < 1e-4:
            self.net, self.backend = net, "torch"

    @staticmethod
    def _run(net, chips) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            return net(x).numpy().astype(np.float32)

    # -- chips -------------------------------------------------------------------------------
    def dlib5_of(self, rgb: np.ndarray, face: Face | np.ndarray) -> np.ndarray:
        """dlib's raw 5 points (eye corners + under-nose) for a Face; runs the shape model if the
        detector did not provide them. An array is taken to be dlib5 already."""
        if not isinstance(face, Face):
            return np.asarray(face, np.float64)
        from ..faces.detect import dlib5_of

        return np.asarray(dlib5_of(rgb, face), np.float64)

    def chip(self, rgb: np.ndarray, dlib5: np.ndarray) -> np.ndarray:
        det = _full_object_detection(dlib5)
        return np.asarray(self._dlib.get_face_chip(np.ascontiguousarray(rgb), det, size=CHIP_SIZE,
                                                   padding=CHIP_PADDING))

    # -- embeddings --------------------------------------------------------------------------
    def embed_chips(self, chips: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """(N, 150, 150, 3) uint8 RGB dlib chips -> (N, 128) float32 descriptors."""
        chips = [np.ascontiguousarray(c) for c in chips]
        if not chips:
            return np.zeros((0, self.dim), np.float32)
        if self.net is not None:
            return self._run(self.net, chips)
        with self._lock:
            d = self.model.compute_face_descriptor(chips)
        return np.asarray([np.asarray(x) for x in d], np.float32)

    def embed(self, rgb: np.ndarray, face: Face | np.ndarray) -> np.ndarray:
        return self.embed_chips([self.chip(rgb, self.dlib5_of(rgb, face))])[0]

    def embed_many(self, rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
        return self.embed_chips([self.chip(rgb, self.dlib5_of(rgb, f)) for f in faces])

    def embed_crops(self, crops: np.ndarray, template: str | CropTemplate = "utkface") -> np.ndarray:
        """Embeds aligned crops (N, S, S, 3) uint8 (e.g. a generator's output) using where the
        template puts dlib's landmarks; no detection is run."""
        from .agegender import dlib5_in_crop

        tpl = get_template(template)
        dl5 = dlib5_in_crop(tpl, crops.shape[1])
        return self.embed_chips([self.chip(c, dl5) for c in crops])

    def embed_crop(self, crop: np.ndarray, template: str | CropTemplate = "utkface") -> np.ndarray:
        return self.embed_crops(np.asarray(crop)[None], template)[0]

    # -- comparisons -------------------------------------------------------------------------
    @staticmethod
    def distance(e1: np.ndarray, e2: np.ndarray) -> float:
        return float(np.linalg.norm(np.asarray(e1, np.float64) - np.asarray(e2, np.float64)))

    @staticmethod
    def similarity(e1: np.ndarray, e2: np.ndarray) -> float:
        a, b = np.asarray(e1, np.float64), np.asarray(e2, np.float64)
        return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))

    def same_person(self, e1: np.ndarray, e2: np.ndarray, margin: float = 0.0) -> bool:
        """dlib's rule (distance < 0.6); ``margin`` > 0 asks for that much more distance before two
        descriptors count as different people (anonymize's check, ``ANONYMIZE_ID_MARGIN``)."""
        return self.distance(e1, e2) < self.threshold + margin

    def compare(self, e1: np.ndarray, e2: np.ndarray) -> dict:
        """The report fields: cosine similarity, Euclidean distance, and dlib's same-person rule."""
        d = self.distance(e1, e2)
        return {"identity_similarity": round(self.similarity(e1, e2), 4),
                "identity_distance": round(d, 4), "same_person": bool(d < self.threshold),
                "identity_threshold": self.threshold, "identity_judge": self.name}


def _test_chip() -> np.ndarray:
    """A fixed 150 px test image (smooth colour ramps plus seeded noise) for the backend check."""
    y, x = np.mgrid[0:CHIP_SIZE, 0:CHIP_SIZE] / CHIP_SIZE
    base = np.stack([x, y, (x + y) / 2], -1) * 200 + 20
    noise = np.random.default_rng(150).normal(0, 25, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@lru_cache(maxsize=1)
def get_identity() -> IdentityJudge:
    return IdentityJudge()
