"""UTKFace labels (``AGE_GENDER_RACE_DATETIME.jpg``), a leak-free split, and an aligned cache.

The split is decided by a hash of the DATETIME stem, so a face that appears in both
``utkface-64`` and ``utkface-200`` always lands on the same side.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_NAME = re.compile(r"^(\d+)_(\d)_(?:(\d)_)?(\d+)")


@dataclass(frozen=True)
class UtkLabel:
    path: Path
    age: int
    gender: int  # 0 male, 1 female
    race: int | None
    stem: str

    @property
    def split(self) -> str:
        return split_of(self.stem)


def parse_name(path: str | Path) -> UtkLabel | None:
    p = Path(path)
    m = _NAME.match(p.name)
    if not m:
        return None
    age, gender, race, stem = m.groups()
    if gender not in ("0", "1"):
        return None
    return UtkLabel(p, int(age), int(gender), None if race is None else int(race), stem)


def split_of(stem: str, test_fraction: float = 0.1) -> str:
    h = int(hashlib.sha1(stem.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if h < test_fraction else "train"


def scan(folder: str | Path, min_age: int = 0, max_age: int = 200) -> list[UtkLabel]:
    out = []
    for p in sorted(Path(folder).glob("*.jpg")):
        lab = parse_name(p)
        if lab is not None and min_age <= lab.age <= max_age:
            out.append(lab)
    return out


def build_aligned_cache(folder: str | Path, out: str | Path, template: str = "utkface", size: int = 128,
                        min_age: int = 0, max_age: int = 200, progress: bool = True) -> dict:
    """Detects, aligns and stores every labelled face of ``folder`` as one ``.npz``.

    Faces the detector misses are aligned from landmarks predicted on the whole-image box
    (UTKFace crops are tight), so nothing is silently dropped; the ``detected`` flag records which.
    """
    import dlib
    from PIL import Image
    from tqdm import tqdm

    from ..faces import align_face
    from ..faces.detect import detect_faces, dlib_shapes, five_from_dlib5

    labels = scan(folder, min_age, max_age)
    crops = np.zeros((len(labels), size, size, 3), np.uint8)
    detected = np.zeros(len(labels), bool)
    for i, lab in enumerate(tqdm(labels, disable=not progress, desc=f"align {Path(folder).name}")):
        rgb = np.asarray(Image.open(lab.path).convert("RGB"))
        faces = detect_faces(rgb)
        if faces:
            h, w = rgb.shape[:2]
            face = max(faces, key=lambda f: f.width * f.height -
                       ((f.box[0] + f.box[2]) / 2 - w / 2) ** 2)
            pts = face.landmarks5
            detected[i] = True
        else:
            h, w = rgb.shape[:2]
            rect = dlib.rectangle(int(0.1 * w), int(0.1 * h), int(0.9 * w), int(0.9 * h))
            pts = five_from_dlib5(dlib_shapes().five(rgb, rect))
        crops[i] = align_face(rgb, pts, template, size).crop
    meta = dict(age=np.array([lab.age for lab in labels]), gender=np.array([lab.gender for lab in labels]),
                race=np.array([-1 if lab.race is None else lab.race for lab in labels]),
                stem=np.array([lab.stem for lab in labels]), name=np.array([lab.path.name for lab in labels]),
                split=np.array([lab.split for lab in labels]), detected=detected)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, crops=crops, template=template, size=size, **meta)
    return {"n": len(labels), "detected": int(detected.sum()), "path": str(out)}


def load_cache(path: str | Path) -> dict:
    d = np.load(path, allow_pickle=False)
    return {k: d[k] for k in d.files}
