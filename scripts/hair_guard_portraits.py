"""The hair-guard comparison: `anonymize --no-keep-hair` and `anonymize` (hair kept, the default; seed 0)
on the example photo and five test fixtures; columns: original, hair not kept, hair kept.

    python scripts/hair_guard_portraits.py   # writes reports/gender-eval/realism-test-rest/hair-guard-default/portraits.jpg
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

import facegan.ops.swap_gender as sg
from facegan.faces.detect import detect_faces
from facegan.io import read_image

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ["examples/portrait.jpg", "tests/fixtures/sad.jpg", "tests/fixtures/happy.jpg",
          "tests/fixtures/people_0.jpg", "tests/fixtures/full4.jpg", "tests/fixtures/happy1.jpg"]
OUT = ROOT / "reports/gender-eval/realism-test-rest/hair-guard-default/portraits.jpg"
WIDTH = 220


def main() -> None:
    rows = []
    for name in PHOTOS:
        rgb = read_image(ROOT / name)
        x0, y0, x1, y1 = (int(v) for v in max(detect_faces(rgb, "centerface"), key=lambda f: f.width).box)
        w, h = x1 - x0, y1 - y0
        ys = slice(max(0, y0 - h // 3), min(rgb.shape[0], y1 + h // 6))
        xs = slice(max(0, x0 - w // 4), min(rgb.shape[1], x1 + w // 4))
        tiles = [rgb[ys, xs]]
        for keep in (False, True):
            tiles.append(sg.transform_genders(rgb, op="anonymize", seed=0, verify=False, keep_hair=keep).image[ys, xs])
        tiles = [np.asarray(Image.fromarray(t).resize((WIDTH, round(WIDTH * t.shape[0] / t.shape[1])), Image.LANCZOS))
                 for t in tiles]
        hh = min(t.shape[0] for t in tiles)
        rows.append(np.concatenate([t[:hh] for t in tiles], 1))
    Image.fromarray(np.concatenate(rows, 0)).save(OUT, quality=88)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
