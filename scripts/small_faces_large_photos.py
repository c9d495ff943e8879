#!/usr/bin/env python
"""Small faces in large photos: CenterFace's recall by face size, false detections and time, for the fine pass's
long side (``FACEGAN_DETECT_SIDE``; ``faces/centerface.py``: SMALL_SIDE).

    python scripts/small_faces_large_photos.py [--portraits ../shared/datasets/portraits] [--out reports/small-faces]

Crowds: seeded 4000x3000 canvases, each a 10 x 7 grid of the 30 portraits (ground-truth eye midpoints in
``benchmarks/portraits_faces.json``) shrunk so each face's eye distance is log-uniform in 3-40 px (heads of
about 8-110 px), on a flat colour with noise. A detection is a hit when its box holds a ground-truth eye midpoint
(one hit per face, as in benchmarks/bench_pipeline.py); every other detection is false. Large faces: the portraits
enlarged 3x (long side up to 3072 px, one face each): the detections beyond one a photo are false.
``--sides``: the fine pass's long sides to compare (1024 = the main pass alone, as before session 24; 0 = the
photo's own resolution, tiled).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def crowds(photos: dict, gt: dict, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    names = sorted(photos)
    W, H, cols, rows = 4000, 3000, 10, 7
    cw, ch = W // cols, H // rows
    out = []
    for k in range(n):
        canvas = np.empty((H, W, 3), np.uint8)
        canvas[:] = rng.integers(60, 200, 3)
        canvas = np.clip(canvas.astype(np.int16) + rng.integers(-12, 13, (H, W, 1)), 0, 255).astype(np.uint8)
        pts = []
        for cell in range(cols * rows):
            name = names[rng.integers(len(names))]
            img, faces = photos[name], gt["photos"][name]["faces"]
            ied = float(np.exp(rng.uniform(np.log(3.0), np.log(40.0))))
            s = min(ied / faces[0]["eye_dist"], cw / img.shape[1], ch / img.shape[0])
            small = cv2.resize(img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))),
                               interpolation=cv2.INTER_AREA)
            x0, y0 = (cell % cols) * cw + (cw - small.shape[1]) // 2, (cell // cols) * ch + (ch - small.shape[0]) // 2
            canvas[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
            for f in faces:
                pts.append((f["eye_mid"][0] * s + x0, f["eye_mid"][1] * s + y0, f["eye_dist"] * s))
        out.append((f"crowd_{k}", canvas, pts))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--portraits", type=Path, default=ROOT.parent / "shared" / "datasets" / "portraits")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "small-faces")
    ap.add_argument("--crowds", type=int, default=4)
    ap.add_argument("--sides", default="1024,2048,3072,0")
    a = ap.parse_args()
    from bench_pipeline import GT_FILE, score_dets

    from facegan.faces.detect import get_detector
    from facegan.io import read_image

    gt = json.loads(GT_FILE.read_text())
    photos = {n: read_image(a.portraits / n) for n in gt["photos"]}
    det = get_detector("centerface")
    sides = [int(x) for x in a.sides.split(",")]
    bins = [(3, 5), (5, 8), (8, 12), (12, 20), (20, 40)]
    res = {"sides": {}}
    big = {n: cv2.resize(p, (p.shape[1] * 3, p.shape[0] * 3), interpolation=cv2.INTER_CUBIC) for n, p in photos.items()}
    cs = crowds(photos, gt, a.crowds)
    # textures at their own resolution: 4096 px mosaics of 16 portraits each at 1024 px (16 faces, found by the
    # main pass): any detection beyond 16 is false
    rng = np.random.default_rng(1)
    names = sorted(photos)
    mosaics = []
    for _ in range(3):
        m = np.zeros((4096, 4096, 3), np.uint8)
        for i, j in enumerate(rng.choice(len(names), 16, replace=False)):
            m[(i // 4) * 1024:(i // 4 + 1) * 1024, (i % 4) * 1024:(i % 4 + 1) * 1024] = cv2.resize(
                photos[names[j]], (1024, 1024), interpolation=cv2.INTER_AREA)
        mosaics.append(m)
    for side in sides:
        os.environ["FACEGAN_DETECT_SIDE"] = str(side)
        per, hits, fps, n, times = [], 0, 0, 0, []
        for name, rgb, g in cs:
            t = time.perf_counter()
            faces = det.detect(rgb)
            times.append(time.perf_counter() - t)
            h, fp = score_dets([f.box for f in faces], g, per)
            hits, fps, n = hits + h, fps + fp, n + len(g)
        by_bin = {f"{lo}-{hi}": [int(sum(hit for e, hit in per if lo <= e < hi)), int(sum(1 for e, _ in per if lo <= e < hi))]
                  for lo, hi in bins}
        bfp, bmiss, btimes = 0, 0, []
        for name, rgb in big.items():
            t = time.perf_counter()
            faces = det.detect(rgb)
            btimes.append(time.perf_counter() - t)
            g = [(f["eye_mid"][0] * 3, f["eye_mid"][1] * 3, f["eye_dist"] * 3) for f in gt["photos"][name]["faces"]]
            h, fp = score_dets([f.box for f in faces], g)
            bfp, bmiss = bfp + fp, bmiss + len(g) - h
        mos = [len(det.detect(m)) for m in mosaics]
        res["sides"][str(side)] = {
            "mosaics": {"photos": len(mosaics), "faces": 16 * len(mosaics), "detections": int(sum(mos))},
            "crowds": {"hits": hits, "faces": n, "false": fps, "recall_by_eye_distance_px": by_bin,
                       "seconds_per_photo_median": round(float(np.median(times)), 2)},
            "portraits_x3": {"photos": len(big), "missed": bmiss, "false": bfp,
                             "seconds_per_photo_median": round(float(np.median(btimes)), 2)}}
        print(side, json.dumps(res["sides"][str(side)]), flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "small_faces.json").write_text(json.dumps(res, indent=2))
    (a.out / "README.md").write_text(markdown(res, a.crowds))


def markdown(res: dict, n_crowds: int) -> str:
    bins = next(iter(res["sides"].values()))["crowds"]["recall_by_eye_distance_px"]
    lines = ["# Small faces in large photos (CenterFace, `scripts/small_faces_large_photos.py`)", "",
             f"{n_crowds} crowds of 70 portraits on 4000x3000 canvases (eye distance 3-40 px); the 30 portraits enlarged "
             "3x; 3 mosaics of 16 portraits at 1024 px each (4096 px: textures at their own resolution). Fine-pass long "
             "side 1024 = the main pass alone (before session 24); 0 = the photo's own resolution (tiled). Found / faces "
             "per eye-distance bin.", "",
             "| fine pass side | crowd recall | " + " | ".join(f"eye dist. {k} px" for k in bins)
             + " | false (crowds) | s / crowd photo | portraits x3: missed / false | s / portrait | mosaics: detections / faces |",
             "|---|---|" + "---|" * len(bins) + "---|---|---|---|---|"]
    for side, r in res["sides"].items():
        c, p = r["crowds"], r["portraits_x3"]
        cells = " | ".join(f"{h}/{t}" for h, t in c["recall_by_eye_distance_px"].values())
        lines.append(f"| {side} | {c['hits']}/{c['faces']} | {cells} | {c['false']} | {c['seconds_per_photo_median']} | "
                     f"{p['missed']} / {p['false']} | {p['seconds_per_photo_median']} | "
                     f"{r['mosaics']['detections']} / {r['mosaics']['faces']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
