"""How the default detector (CenterFace + dlib's 5 points, faces/centerface.py) holds up when a face is rolled:
photos turned by 30-270 degrees (a head on a pillow, a phone photo without its EXIF turn, a scan fed sideways).
Each photo's faces found upright are the reference; the turned photo's detections are turned back and matched by
their box centre; the error is the largest distance of the eyes' and the nose's points (the ones the 128 px crop
is fitted on) from the reference's (in eye distances; a face not found counts as a miss). The mouth corners are
left out: CenterFace's own, they are the least sure points, and at times wrong in the upright reference itself.

    python scripts/centerface_rotation.py ../shared/datasets/portraits ../shared/datasets/utkface-200 [--n 60]

The UTKFace photos (tight crops) get a grey border as wide as the face first, so no turn cuts the face.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from facegan.faces.detect import detect_faces
from facegan.io import read_image

ANGLES = (0, 30, 45, 60, 90, 135, 180, 270)


def turned(rgb: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """``rgb`` turned counter-clockwise by ``angle`` degrees on a canvas that holds all of it, and the (2, 3)
    affine from the photo's pixels to the turned one's."""
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    W, H = int(round(h * s + w * c)), int(round(h * c + w * s))
    m[0, 2] += W / 2 - w / 2
    m[1, 2] += H / 2 - h / 2
    return cv2.warpAffine(rgb, m, (W, H), flags=cv2.INTER_LINEAR, borderValue=(128, 128, 128)), m


def photos(folders: list[str], n: int) -> list[np.ndarray]:
    from facegan.train.utkface import scan

    out = []
    for folder in folders:
        if any(Path(folder).glob("[0-9]*_[01]_*.jpg")):  # UTKFace: held-out photos, a border as wide as the face
            for lab in [x for x in scan(folder) if x.split == "test"][:n]:
                rgb = read_image(lab.path)
                b = rgb.shape[0] // 2
                out.append(cv2.copyMakeBorder(rgb, b, b, b, b, cv2.BORDER_CONSTANT, value=(128, 128, 128)))
        else:
            out += [read_image(p) for p in sorted(Path(folder).iterdir()) if p.suffix.lower() in (".jpg", ".png")]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--n", type=int, default=60, help="UTKFace photos per folder")
    a = ap.parse_args()
    res: dict = {}
    for rgb in photos(a.folders, a.n):
        refs = [f.landmarks5 for f in detect_faces(rgb, "centerface")]
        for angle in ANGLES:
            img, m = turned(rgb, angle)
            back = cv2.invertAffineTransform(m)
            found = [np.c_[f.landmarks5, np.ones(5)] @ back.T for f in detect_faces(img, "centerface")]
            for ref in refs:
                iod = np.linalg.norm(ref[0] - ref[1])
                near = [p for p in found if np.linalg.norm(p.mean(0) - ref.mean(0)) < iod]
                err = min((np.linalg.norm(p[:3] - ref[:3], axis=1).max() / iod for p in near), default=np.inf)
                res.setdefault(angle, []).append(err)
    print("| turned by (degrees) | faces | median error (eye distances) | off by > 0.25 or missed | missed |")
    print("|---|---|---|---|---|")
    for angle, v in sorted(res.items()):
        v = np.asarray(v)
        print(f"| {angle} | {len(v)} | {np.median(v):.3f} | {(v > 0.25).mean():.0%} | {np.isinf(v).mean():.0%} |")


if __name__ == "__main__":
    main()
