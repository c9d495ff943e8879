"""Build the refiner's training inputs: the composite face crops `anonymize` pastes back.

Runs the `anonymize` op on UTKFace photos (train split only, ages 16-75, N of each gender drawn with
`random.seed(SEED)`) and records every
crop its paste-back step receives (`finish` in ops/swap_gender.py: translated, k-Same blended, colour
scaled; 128 px on the `utkface` template) with the face's target gender, so the refiner trains on
exactly the crops it refines in use. Writes OUT (.npz: crops, target 0 male / 1 female, stem, attempt).

    python scripts/refiner_data.py ../shared/datasets/utkface-200 cache/refiner_inputs.npz \
        [--n-per-gender 1200] [--seed 0] [--workers 2]
"""
from __future__ import annotations

import argparse
import sys
from multiprocessing import get_context
from pathlib import Path

import numpy as np

MAX_PER_FACE = 3  # the op's attempts per face kept (first, and the last retries)


def _part(args):
    paths, seed = args
    import torch

    torch.set_num_threads(1)
    from PIL import Image

    from facegan.ops import swap_gender as sg

    seen: list = []
    orig = sg.chroma_scaled

    def recording(before, after, chroma, eye=1.0):
        out = orig(before, after, chroma, eye)
        seen.append(out)
        return out

    sg.chroma_scaled = recording
    crops, target, stems, attempt = [], [], [], []
    for i, p in enumerate(paths):
        seen.clear()
        rgb = np.asarray(Image.open(p).convert("RGB"))
        try:
            res = sg._anonymize(rgb, seed=seed + i, refine=0.0)
        except Exception:  # no face: nothing to record
            continue
        changed = [r for r in res.faces if r.get("status") == "changed"]
        if len(changed) != 1 or not seen:
            continue
        t = 1 if changed[0]["target"] == "female" else 0
        keep = seen[:1] + seen[1:][-(MAX_PER_FACE - 1):]
        for k, c in enumerate(keep):
            crops.append(c)
            target.append(t)
            stems.append(Path(p).name)
            attempt.append(k)
    return (np.stack(crops) if crops else np.zeros((0, 128, 128, 3), np.uint8), np.array(target),
            np.array(stems), np.array(attempt))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("out")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n-per-gender", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    import random

    from facegan.train.utkface import scan

    # train split only: the evaluation (and test-rest, where settings are chosen) never sees these
    labs = [lab for lab in scan(a.folder, 16, 75) if lab.split == "train"]
    random.seed(a.seed)
    sel = []
    for g in (0, 1):
        pool = [lab for lab in labs if lab.gender == g]
        if len(pool) < a.n_per_gender:
            sys.exit(f"only {len(pool)} train-split photos of gender {g} in {a.folder}")
        sel += random.sample(pool, a.n_per_gender)
    paths = sorted(str(lab.path) for lab in sel)
    chunks = [(paths[i::a.workers], 1000 * i) for i in range(a.workers)]
    with get_context("spawn").Pool(a.workers) as pool:
        parts = pool.map(_part, chunks)
    crops = np.concatenate([p[0] for p in parts])
    np.savez(a.out, crops=crops, target=np.concatenate([p[1] for p in parts]),
             stem=np.concatenate([p[2] for p in parts]), attempt=np.concatenate([p[3] for p in parts]))
    print(f"{len(crops)} crops from {len(paths)} photos -> {a.out}")


if __name__ == "__main__":
    main()
