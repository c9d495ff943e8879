"""A copy of UTKFace's ``test`` photos enlarged (Lanczos) so the faces are as large as in a portrait or a selfie,
names (and so labels and split) unchanged: `facegan evaluate` on it runs the evaluation's 200 at that size.

    python scripts/upscale_folder.py ../shared/datasets/utkface-200 /tmp/utk-500 --size 500
    facegan evaluate /tmp/utk-500 -o reports/gender-eval/upscaled-500 --n-per-gender 100 --ops anonymize,swap-gender
"""
from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from facegan.train.utkface import scan


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=500)
    ap.add_argument("--split", default="test")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for lab in scan(a.src):
        if lab.split != a.split:
            continue
        Image.open(lab.path).convert("RGB").resize((a.size, a.size), Image.LANCZOS).save(out / lab.path.name, quality=95)
        n += 1
    print(f"{n} photos -> {out}")


if __name__ == "__main__":
    main()
