"""The `test-rest` faces the policy before session 12 translated stronger: original | RESHAPE_GROWTH 0 | 0.5
(the default since), each `anonymize` from seed 0, labelled with the strength, k-Same factor and reshape kept.

    python scripts/reshape_growth_sheet.py reports/gender-eval/realism-test-rest/keep-hair/rows_anonymize.jsonl \
        reports/gender-eval/realism-test-rest/reshape-growth/escalated.jpg
"""
import sys, json, numpy as np
from PIL import Image, ImageDraw
import facegan.ops.swap_gender as sg
from facegan.io import read_image
D = sys.argv[3] if len(sys.argv) > 3 else "../shared/datasets/utkface-200/"
rows_file, out = sys.argv[1], sys.argv[2]
files = [json.loads(l)["file"] for l in open(rows_file) if json.loads(l).get("escalated")]
tiles_rows = []
for fn in files:
    rgb = read_image(D + fn)
    tiles = [rgb]; labels = ["original"]
    for g in (0.0, 0.5):
        sg.RESHAPE_GROWTH = g
        r = sg.transform_genders(rgb, op="anonymize", seed=0)
        f = r.faces[0]
        tiles.append(r.image); labels.append(f"s{f.get('strength')} k{f.get('ksame')} r{f.get('reshape')}")
    ims = []
    for t, lab in zip(tiles, labels):
        im = Image.fromarray(t).resize((160, 160)); d = ImageDraw.Draw(im); d.text((3, 148), lab, fill=(255, 255, 0)); ims.append(np.asarray(im))
    tiles_rows.append(np.concatenate(ims, 1))
    print(fn, labels, flush=True)
half = (len(tiles_rows) + 1) // 2
a, b = tiles_rows[:half], tiles_rows[half:]
while len(b) < len(a): b.append(np.zeros_like(a[0]))
Image.fromarray(np.concatenate([np.concatenate(a, 0), np.concatenate(b, 0)], 1)).save(out, quality=88)
