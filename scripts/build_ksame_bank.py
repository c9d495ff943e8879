"""Builds the k-Same bank shipped with facegan (``src/facegan/weights/ksame-utkface``): a PCA of the
32 px face ellipses of the UTKFace ``train`` faces (ages 16-75) and every such face's coordinates in
it, with its gender label. No photo is stored.

    facegan data utkface-cache ../shared/datasets/utkface-200 cache/utk200_utkface128.npz --size 128
    python scripts/build_ksame_bank.py cache/utk200_utkface128.npz
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from facegan.faces.ksame import SHIPPED, build_bank, save_bank
from facegan.weights import ROOT


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cache", help="UTKFace cache at 128 px, utkface template (facegan data utkface-cache)")
    ap.add_argument("--components", type=int, default=128)
    a = ap.parse_args()
    d = np.load(a.cache)
    if int(d["size"]) != 128 or str(d["template"]) != "utkface":
        raise SystemExit("the cache must be 128 px crops on the utkface template")
    keep = (d["split"] == "train") & (d["age"] >= 16) & (d["age"] <= 75)
    arrays = build_bank(d["crops"][keep], d["gender"][keep], a.components)
    manifest = save_bank(arrays, ROOT / SHIPPED, SHIPPED)
    print(json.dumps({"bytes": (ROOT / SHIPPED / "model.safetensors").stat().st_size, **manifest}))


if __name__ == "__main__":
    main()
