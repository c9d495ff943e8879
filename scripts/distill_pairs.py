"""Paired training data distilled from a trained gender translator (the "teacher"): for every
training-split face of the UTKFace crop cache, the aligned crop (A) and the teacher's translation of
it to the other gender at a chosen strength (B). A paired model (pix2pix) trained on these is the
second method family compared against the teacher in `facegan evaluate`.

    python scripts/distill_pairs.py --teacher shipped --strength 2 -o cache/distill

Writes OUT/{male-to-female,female-to-male}_{A,B}.npz (``crops`` + ``name``, the engine's ``npz``
data source). Only the cache's *train* split is used (ages 16-75, as the teacher was trained), so
the held-out faces of the evaluation stay unseen.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facegan.ops.translator_model import get_translator
from facegan.train.utkface import load_cache


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher", default="shipped", help="'shipped' or a translator checkpoint folder")
    ap.add_argument("--strength", type=float, default=1.0, help="scale of the teacher's change")
    ap.add_argument("--cache", default="cache/utk200_utkface128.npz")
    ap.add_argument("--min-age", type=int, default=16)
    ap.add_argument("--max-age", type=int, default=75)
    ap.add_argument("--limit", type=int, default=0, help="at most this many faces per direction (0: all)")
    ap.add_argument("-o", "--out", type=Path, default=Path("cache/distill"))
    a = ap.parse_args(argv)
    tr = get_translator(None if a.teacher == "shipped" else a.teacher)
    d = load_cache(a.cache)
    keep = (d["split"] == "train") & (d["age"] >= a.min_age) & (d["age"] <= a.max_age)
    names = np.array([str(s) for s in d["stem"]])
    a.out.mkdir(parents=True, exist_ok=True)
    for src, tgt in (("male", "female"), ("female", "male")):
        ix = np.where(keep & (d["gender"] == tr.domains.index(src)))[0]
        if a.limit:
            ix = ix[: a.limit]
        crops = d["crops"][ix]
        outs = [tr.translate(crops[i:i + 64], [tgt] * len(crops[i:i + 64]), a.strength)
                for i in tqdm(range(0, len(crops), 64), desc=f"{src}->{tgt}")]
        tag = f"{src}-to-{tgt}"
        np.savez(a.out / f"{tag}_A.npz", crops=crops, name=names[ix])
        np.savez(a.out / f"{tag}_B.npz", crops=np.concatenate(outs), name=names[ix])
        print(f"{tag}: {len(ix)} pairs -> {a.out}/{tag}_{{A,B}}.npz (teacher {tr.name}, strength {a.strength})")


if __name__ == "__main__":
    main()
