"""Faces to leave alone: people who agreed to be shown (``--keep-face ME.jpg``), everyone else changed — or the
other way round, only some people changed (``--only-face THEM.jpg``: someone who withdrew their consent from a data
set, or the one face a filter is for), everyone else left.

A reference photo gives its largest face's dlib descriptor; a face in a photo (or a video's face track, on its
keyframe) whose descriptor lies closer than ``KEEP_DISTANCE`` to any reference is one of those people. Faces left
alone are reported as ``kept``. The distance is stricter than dlib's own 0.6: with ``--keep-face`` a bystander
wrongly kept is a privacy failure, a kept person wrongly changed only an inconvenience (with ``--only-face`` the
other way round: lower it there only knowingly). Only the descriptors are held, never the reference photos' pixels.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

KEEP_DISTANCE = 0.5  # dlib descriptor distance under which a face is one of the kept people
VERIFY_MIN = 24  # px: a face smaller than this cannot be told apart reliably — it always goes to the op (the
# privacy-safe side in both modes: a bystander is never kept, an only-face person never left, on a guess)
DETECTOR = "centerface"


@dataclass
class KeepList:
    descriptors: np.ndarray = field(default_factory=lambda: np.zeros((0, 128), np.float32))
    sources: list[str] = field(default_factory=list)
    distance: float = KEEP_DISTANCE
    only: bool = False  # True: the references' people are the ones changed (--only-face), everyone else left
    notes: list[str] = field(default_factory=list)  # references with more than one face (the largest was taken)

    def __bool__(self) -> bool:
        return len(self.descriptors) > 0

    @classmethod
    def from_paths(cls, paths, distance: float = KEEP_DISTANCE, only: bool = False) -> "KeepList":
        """One descriptor per reference photo (its largest face); a folder gives each image in it. A reference
        without a face, or unreadable, is an error: a silently missing reference would change that person."""
        from ..errors import ConfigError, FaceganError
        from ..io import iter_images, read_image

        files: list[Path] = []
        for p in [paths] if isinstance(paths, (str, os.PathLike)) else list(paths):
            files += iter_images(p)
        if not files:
            raise ConfigError(f"--keep-face: no reference photo in {paths}")
        photos = []
        for f in files:
            try:
                photos.append((read_image(f), str(f)))
            except FaceganError as e:
                raise ConfigError(f"keep-face reference {f}: {e}") from None
        return cls.from_photos(photos, distance, only)

    @classmethod
    def from_photos(cls, photos, distance: float = KEEP_DISTANCE, only: bool = False) -> "KeepList":
        """``photos``: (RGB array, label) pairs, each a reference of one person (its largest face)."""
        from ..errors import NoFaceError
        from ..judges.identity import get_identity
        from .detect import detect_faces

        ident = get_identity()
        out, notes = [], []
        for rgb, label in photos:
            faces = detect_faces(rgb, DETECTOR)
            if not faces:
                raise NoFaceError(f"keep-face reference {label}: no face found in it")
            if len(faces) > 1:
                notes.append(f"reference {label} has {len(faces)} faces: only the largest is taken (one person a photo)")
            out.append(ident.embed(rgb, max(faces, key=lambda x: x.width * x.height)))
        return cls(np.asarray(out, np.float32), [label for _, label in photos], float(distance), bool(only), notes)

    def nearest(self, descriptor: np.ndarray) -> float:
        """The dlib distance from ``descriptor`` to the nearest reference."""
        return float(np.linalg.norm(self.descriptors - np.asarray(descriptor, np.float32)[None], axis=1).min())

    def leaves(self, descriptor: np.ndarray) -> float | None:
        """The distance to the nearest reference when the face is to be left as it is, else None."""
        if not self:
            return None
        d = self.nearest(descriptor)
        return d if (d < self.distance) != self.only else None

    def split(self, rgb: np.ndarray, faces: list) -> tuple[list[int], dict[int, float]]:
        """(indices of ``faces`` to change, {index: distance to the nearest reference} of those left as they are)."""
        from ..judges.identity import get_identity

        if not self or not faces:
            return list(range(len(faces))), {}
        big = [i for i, f in enumerate(faces) if min(f.width, f.height) >= VERIFY_MIN]
        desc = get_identity().embed_many(rgb, [faces[i] for i in big]) if big else []
        kept = {i: d for i, d in zip(big, (self.leaves(x) for x in desc)) if d is not None}
        return [i for i in range(len(faces)) if i not in kept], kept

    def row(self, index: int, face, distance: float) -> dict:
        """The report row of a face left as it is."""
        why = "not an only-face person" if self.only else "matches a keep-face reference"
        return {**_face_row(index, face), "status": f"kept ({why})", "keep_distance": round(distance, 4)}


def _face_row(index: int, face) -> dict:
    return {"face": index, "box": [round(float(v), 1) for v in face.box], "score": round(float(face.score), 3)}


def run_keeping(op, rgb: np.ndarray, options: dict, keep: KeepList | None):
    """``op`` on ``rgb`` with the faces ``keep`` leaves as they are (their rows say so)."""
    from ..errors import NoFaceError
    from ..ops.base import OpResult
    from .detect import detect_faces

    if not keep:
        return op.run(rgb, **options)
    import inspect

    params = inspect.signature(op.run).parameters
    if "faces" not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        from ..errors import ConfigError

        raise ConfigError(f"{op.name}: its run takes no faces=, so it cannot leave some faces as they are "
                          "(--keep-face / --only-face); see docs/ops.md")
    faces = detect_faces(rgb, options.get("detector") or DETECTOR)
    faces.sort(key=lambda f: (f.box[0], f.box[1]))
    change, kept = keep.split(rgb, faces)
    rows = [keep.row(i, faces[i], d) for i, d in kept.items()]
    if not change:
        if not faces:
            return op.run(rgb, **options)  # the op's own "no face" error
        return OpResult(image=rgb.copy(), faces=rows, synthetic=False)
    try:
        res = op.run(rgb, **options, faces=[faces[i] for i in change])
    except NoFaceError:  # the faces left for the op are all too small for it (swap-gender's 24 px)
        rows += [{**_face_row(i, faces[i]), "status": "too small for the operation: left as it is", "too_small": True}
                 for i in change]
        return OpResult(image=rgb.copy(), faces=sorted(rows, key=lambda r: r["face"]), synthetic=False)
    for r in res.faces:
        if isinstance(r.get("face"), int) and 0 <= r["face"] < len(change):
            r["face"] = change[r["face"]]
    res.faces = sorted(res.faces + rows, key=lambda r: r.get("face", 0))
    return res
