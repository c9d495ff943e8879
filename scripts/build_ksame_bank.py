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
import torch
from safetensors.torch import save_file

from facegan.faces.ksame import LOW, SHIPPED, build_bank
from facegan.weights import ROOT, sha256_file


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
    out = ROOT / SHIPPED
    out.mkdir(parents=True, exist_ok=True)
    wf = out / "model.safetensors"
    save_file({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}, str(wf))
    n = [int((d["gender"][keep] == g).sum()) for g in (0, 1)]
    manifest = {"name": SHIPPED, "class": "KSameBank", "groups": ["male", "female"], "low": LOW,
                "components": a.components, "faces": {"male": n[0], "female": n[1]},
                "template": "utkface", "size": 128, "sha256": sha256_file(wf)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps({"bytes": wf.stat().st_size, **manifest}))


if __name__ == "__main__":
    main()
