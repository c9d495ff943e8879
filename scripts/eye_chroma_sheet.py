"""Eyes of anonymize outputs at --eye-chroma 1 and 0.5 (original | 1 | 0.5), upper 60% of each face, seed 0.

    python scripts/eye_chroma_sheet.py reports/gender-eval/realism-test-rest/eye-chroma-0.5/eyes.jpg \\
        tests/fixtures/sad.jpg tests/fixtures/people_0.jpg tests/fixtures/happy1.jpg \\
        ../shared/datasets/utkface-200/21_1_0_20170109213908912.jpg
"""
import sys, numpy as np
from PIL import Image
import facegan.ops.swap_gender as sg
from facegan.faces.detect import detect_faces
from facegan.io import read_image
out = sys.argv[1]; files = sys.argv[2:]
rows = []
for fn in files:
    rgb = read_image(fn)
    x0,y0,x1,y1 = (int(v) for v in max(detect_faces(rgb,"centerface"),key=lambda f:f.width).box)
    w,h = x1-x0,y1-y0
    ys = slice(max(0,y0),min(rgb.shape[0],y0+int(h*0.6))); xs = slice(max(0,x0),min(rgb.shape[1],x1))
    tiles = [rgb[ys,xs]]
    for ec in (1.0, 0.5):
        r = sg.transform_genders(rgb, op="anonymize", seed=0, eye_chroma=ec)
        tiles.append(r.image[ys,xs])
    W=300
    tiles=[np.asarray(Image.fromarray(t).resize((W,round(W*t.shape[0]/t.shape[1])),Image.LANCZOS)) for t in tiles]
    hh=min(t.shape[0] for t in tiles)
    rows.append(np.concatenate([t[:hh] for t in tiles],1))
Image.fromarray(np.concatenate(rows,0)).save(out)
