"""How CenterFace's 5 landmarks hold up as a face gets larger in the photo (faces/centerface.py, LARGE_FACE and
COARSE_SIDE). Held-out UTKFace photos are resized so the face is 150-800 px, alone or with a grey border as
wide as the face; each detection's landmarks are compared with the ones found at the photo's own 200 px
(largest error over the 5 points, in eye distances; no face found counts as a miss).

    python scripts/centerface_scale.py ../shared/datasets/utkface-200 [--n 60] [--network-alone]

``--network-alone``: without the coarse pass (the detector before session 21).
"""
from __future__ import annotations

import argparse

import cv2
import numpy as np

from facegan.faces import centerface
from facegan.faces.detect import detect_faces
from facegan.io import read_image
from facegan.train.utkface import scan


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--network-alone", action="store_true")
    a = ap.parse_args()
    if a.network_alone:
        centerface.COARSE_SIDE = 10 ** 6

    def l5(rgb):
        fs = detect_faces(rgb, "centerface")
        return max(fs, key=lambda f: f.width * f.height).landmarks5 if fs else None

    res: dict = {}
    for lab in [x for x in scan(a.folder) if x.split == "test"][:a.n]:
        rgb = read_image(lab.path)
        ref = l5(rgb)
        if ref is None:
            continue
        iod = np.linalg.norm(ref[0] - ref[1])
        for face_px in (150, 250, 350, 450, 600, 800):
            for pad in (0.0, 1.0):
                k = face_px / rgb.shape[0]
                big = cv2.resize(rgb, (face_px, face_px), interpolation=cv2.INTER_LANCZOS4 if k > 1 else cv2.INTER_AREA)
                b = int(pad * face_px)
                if b:
                    big = cv2.copyMakeBorder(big, b, b, b, b, cv2.BORDER_CONSTANT, value=(128, 128, 128))
                p = l5(big)
                res.setdefault((face_px, pad), []).append(np.inf if p is None else np.abs((p - b) / k - ref).max() / iod)
    print("| face px | border | faces | median error (eye distances) | off by > 0.25 or missed |")
    print("|---|---|---|---|---|")
    for (face_px, pad), v in sorted(res.items()):
        v = np.asarray(v)
        print(f"| {face_px} | {'yes' if pad else 'no'} | {len(v)} | {np.median(v):.3f} | {(v > 0.25).mean():.0%} |")


if __name__ == "__main__":
    main()
