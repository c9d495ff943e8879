#!/usr/bin/env python
"""Trains the gender probe on dlib identity descriptors that helps the ops decide which way to push a face
(``facegan/judges/gender_probe.py``, shipped in ``facegan/weights/gender-dlib-probe``):

    python scripts/train_gender_probe.py ../shared/datasets/utkface-200 -o src/facegan/weights/gender-dlib-probe

Every UTKFace ``train`` photo aged 16-75 goes through the ops' own steps (CenterFace, dlib's 5 points, the
largest face): dlib's 128-d identity descriptor (the one the ops compute anyway for the identity check),
judge 1's and faceres' P(female) (the ops' vote; faceres needs ``facegan models fetch faceres``). A logistic
regression (scikit-learn, ``C`` 10) on the descriptors is the probe. Measured, per combination rule, the faces
whose gender is read wrongly: 5-fold cross-validation on ``train`` (shuffled folds; the rule was chosen
there) and, with the final probe, every ``test`` photo (the evaluation's 200 among them), plus how many faces
each rule calls at least 0.6 / 0.7 sure and how many of those are wrong (the ops' thresholds). Features are
cached in ``cache/gender-probe-<split>.npz`` (``--refresh`` recomputes them). Writes ``model.safetensors``
(float32 weight + bias), ``manifest.json`` and ``metrics.json`` into ``-o``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

C = 10.0
SEED = 0


def collect(folder: str, split: str, cache: Path, refresh: bool) -> dict:
    if cache.exists() and not refresh:
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    from tqdm import tqdm

    from facegan.evaluate.harness import select_images
    from facegan.faces import align_face
    from facegan.faces.detect import detect_faces
    from facegan.io import read_image
    from facegan.judges.agegender import get_age_gender
    from facegan.judges.faceres import get_faceres
    from facegan.judges.identity import get_identity

    j1, fr, ident = get_age_gender(), get_faceres(), get_identity()
    cols: dict = {k: [] for k in ("files", "y", "age", "p1", "p3", "dlib")}
    for lab in tqdm(select_images(folder, 10 ** 6, split), desc=split):
        rgb = read_image(lab.path)
        faces = detect_faces(rgb)
        if not faces:
            continue
        f = max(faces, key=lambda f: f.width * f.height)
        d5 = ident.dlib5_of(rgb, f)
        _, p_male = fr.predict_crops(align_face(rgb, f, "utkface", 128).crop[None])
        cols["files"].append(lab.path.name)
        cols["y"].append(int(lab.gender == 1))
        cols["age"].append(int(lab.age))
        cols["p1"].append(float(j1.predict(rgb, d5)["p_female"]))
        cols["p3"].append(float(1.0 - p_male[0]))
        cols["dlib"].append(ident.embed(rgb, f))
    out = {k: np.asarray(v) for k, v in cols.items()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)
    return out


def rules(d: dict, probe: np.ndarray) -> dict:
    vote = (d["p1"] + d["p3"]) / 2
    return {"judge 1": d["p1"], "judge 1 + probe": (d["p1"] + probe) / 2, "vote (judge 1 + faceres)": vote,
            "vote + probe (shipped rule)": (vote + probe) / 2, "probe alone": probe}


def score(y: np.ndarray, p: np.ndarray) -> dict:
    wrong = (p >= 0.5) != (y == 1)
    conf = np.maximum(p, 1 - p)
    s = {"wrong": int(wrong.sum()), "men_wrong": int((wrong & (y == 0)).sum()),
         "women_wrong": int((wrong & (y == 1)).sum()), "faces": int(len(y))}
    for t in (0.6, 0.7):
        s[f"sure_at_{t:g}"], s[f"wrong_at_{t:g}"] = int((conf >= t).sum()), int((wrong & (conf >= t)).sum())
    return s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--cache", default="cache")
    ap.add_argument("--refresh", action="store_true")
    a = ap.parse_args()

    import torch
    from safetensors.torch import save_file
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from facegan.weights import sha256_file

    tr = collect(a.folder, "train", Path(a.cache) / "gender-probe-train.npz", a.refresh)
    te = collect(a.folder, "test", Path(a.cache) / "gender-probe-test.npz", a.refresh)
    model = LogisticRegression(C=C, max_iter=5000)
    cv = StratifiedKFold(5, shuffle=True, random_state=SEED)
    p_cv = cross_val_predict(model, tr["dlib"], tr["y"], cv=cv, method="predict_proba")[:, 1]
    model.fit(tr["dlib"], tr["y"])
    p_te = model.predict_proba(te["dlib"])[:, 1]
    metrics = {"train_cv": {k: score(tr["y"], p) for k, p in rules(tr, p_cv).items()},
               "test": {k: score(te["y"], p) for k, p in rules(te, p_te).items()}}
    for part, title in (("train_cv", f"train, 5-fold CV ({len(tr['y'])} faces)"), ("test", f"test ({len(te['y'])} faces)")):
        print(f"\n{title}\n| rule | wrong (men / women) | sure >= 0.6 / wrong | sure >= 0.7 / wrong |\n|---|---:|---:|---:|")
        for k, s in metrics[part].items():
            print(f"| {k} | {s['wrong']} ({s['men_wrong']} / {s['women_wrong']}) | {s['sure_at_0.6']} / {s['wrong_at_0.6']} "
                  f"| {s['sure_at_0.7']} / {s['wrong_at_0.7']} |")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file({"weight": torch.tensor(model.coef_[0], dtype=torch.float32),
               "bias": torch.tensor(model.intercept_, dtype=torch.float32)}, str(out / "model.safetensors"))
    manifest = {"name": "gender-dlib-probe", "class": "GenderProbe", "features": "dlib-resnet-v1", "dim": 128,
                "output": "P(female) = sigmoid(weight . descriptor + bias)", "C": C,
                "train_faces": {"male": int((tr["y"] == 0).sum()), "female": int((tr["y"] == 1).sum())},
                "data": "utkface-200 train split (DATETIME-stem hash), ages 16-75",
                "sha256": sha256_file(out / "model.safetensors")}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


if __name__ == "__main__":
    main()
