"""How often --keep-face would keep a bystander, and keep the right person: dlib descriptor distances between
different people (impostor pairs: the 400 held-out UTKFace `test` photos of the evaluation and of `test-rest`, one
per person as far as UTKFace goes) and between photos of one person (genuine pairs: the two talking-head clips,
frames a second apart), against the keep distance (facegan/faces/keep.py: 0.5) and dlib's own 0.6. Faces go through
the pipeline --keep-face uses (CenterFace, dlib's 5 points, dlib's descriptor); aligned 128 px crops embedded on the
template's landmark positions instead lie much closer together (3.5% of impostor pairs under 0.5), so they are not
used.

    python scripts/keep_face_threshold.py ../shared/datasets/utkface-200 ../shared/datasets/talking/video -o reports/keep-face
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("utkface", help="the UTKFace folder (labelled file names)")
    ap.add_argument("videos", help="folder of talking-head clips, one person each")
    ap.add_argument("-o", "--out", default="reports/keep-face")
    a = ap.parse_args()
    import av

    from facegan.faces.detect import detect_faces
    from facegan.faces.keep import DETECTOR, KEEP_DISTANCE
    from facegan.judges.identity import get_identity

    from facegan.evaluate.harness import select_images
    from facegan.io import read_image

    ident = get_identity()
    emb = []
    for lab in select_images(a.utkface, 100, "test") + select_images(a.utkface, 100, "test-rest"):
        rgb = read_image(lab.path)
        faces = detect_faces(rgb, DETECTOR)
        if faces:
            emb.append(ident.embed(rgb, max(faces, key=lambda f: f.width * f.height)))
    emb = np.asarray(emb)
    dist = np.sqrt(((emb[:, None] - emb[None]) ** 2).sum(-1))[np.triu_indices(len(emb), 1)]
    genuine = []
    per_clip = {}
    for clip in sorted(Path(a.videos).glob("*.mp4")):
        c = av.open(str(clip))
        fps = float(c.streams.video[0].average_rate or 25)
        descs = []
        for i, fr in enumerate(c.decode(video=0)):
            if i % int(round(fps)):
                continue
            rgb = fr.to_ndarray(format="rgb24")
            faces = detect_faces(rgb, DETECTOR)
            if faces:
                descs.append(ident.embed(rgb, max(faces, key=lambda f: f.width * f.height)))
        c.close()
        e = np.asarray(descs)
        g = np.sqrt(((e[:, None] - e[None]) ** 2).sum(-1))[np.triu_indices(len(e), 1)]
        per_clip[clip.name] = {"frames": len(e), "pairs": len(g), "max": float(g.max()), "median": float(np.median(g))}
        genuine += g.tolist()
    genuine = np.asarray(genuine)
    res = {"impostor_pairs": int(len(dist)), "impostor_faces": int(len(emb)), "genuine_pairs": int(len(genuine)),
           "clips": per_clip, "impostor_min": float(dist.min()),
           "impostor_percentiles": {str(q): float(np.percentile(dist, q)) for q in (0.01, 0.1, 1, 5)}}
    for t in (0.4, 0.45, KEEP_DISTANCE, 0.55, 0.6):
        res[f"at_{t}"] = {"bystander_kept_per_reference": float((dist < t).mean()), "impostor_pairs_under": int((dist < t).sum()),
                          "genuine_kept": float((genuine < t).mean())}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
