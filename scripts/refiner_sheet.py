"""Faces through `anonymize` without and with the realism refiner (original | --refine 0 | --refine R ...),
seed 0, each face's box with a margin, so the refiner's effect can be looked at.

    FACEGAN_REFINER=DIR python scripts/refiner_sheet.py OUT.png R1[,R2] PHOTO...
"""
import sys

import numpy as np
from PIL import Image

import facegan.ops.swap_gender as sg
from facegan.faces.detect import detect_faces
from facegan.io import read_image

out, amounts, files = sys.argv[1], [float(a) for a in sys.argv[2].split(",")], sys.argv[3:]
rows = []
for fn in files:
    rgb = read_image(fn)
    x0, y0, x1, y1 = (int(v) for v in max(detect_faces(rgb, "centerface"), key=lambda f: f.width).box)
    m = int(0.15 * (x1 - x0))
    ys = slice(max(0, y0 - m), min(rgb.shape[0], y1 + m))
    xs = slice(max(0, x0 - m), min(rgb.shape[1], x1 + m))
    tiles = [rgb[ys, xs]] + [sg.transform_genders(rgb, op="anonymize", seed=0, refine=a).image[ys, xs]
                             for a in [0.0] + amounts]
    W = 200
    tiles = [np.asarray(Image.fromarray(t).resize((W, round(W * t.shape[0] / t.shape[1])), Image.LANCZOS)) for t in tiles]
    hh = min(t.shape[0] for t in tiles)
    rows.append(np.concatenate([t[:hh] for t in tiles], 1))
Image.fromarray(np.concatenate(rows, 0)).save(out)
