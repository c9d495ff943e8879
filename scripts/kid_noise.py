"""How much KID moves by sampling alone, in the evaluation's two realism spaces (dlib descriptors on
the sphere; judge 2's pooled features), at the evaluation's sizes (~100 faces a side).

    python scripts/kid_noise.py ../shared/datasets/utkface-200

Reads the held-out `test` photos (the evaluation's 200 and `test-rest`'s 196), then prints the spread
of KID between random halves of one gender (a null: same distribution) and between random ~100-face
draws of men and of women (a large distance), 200 draws each.
"""
from __future__ import annotations

import argparse

import numpy as np

from facegan.evaluate.harness import _on_sphere, kid, select_images
from facegan.faces.align import align_face
from facegan.faces.detect import detect_faces
from facegan.io import read_image
from facegan.judges.identity import get_identity
from facegan.ops.swap_gender import _resnet_judge


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--draws", type=int, default=200)
    a = ap.parse_args()
    ident, rj = get_identity(), _resnet_judge()
    labs = select_images(a.folder, 100, "test") + select_images(a.folder, 100, "test-rest")
    feats: dict = {("dlib", 0): [], ("dlib", 1): [], ("judge2", 0): [], ("judge2", 1): []}
    for lab in labs:
        rgb = read_image(lab.path)
        faces = detect_faces(rgb)
        if not faces:
            continue
        f = max(faces, key=lambda f: f.width * f.height)
        feats[("dlib", lab.gender)].append(ident.embed(rgb, f))
        feats[("judge2", lab.gender)].append(rj.features_crops(align_face(rgb, f, "utkface", 128).crop[None])[0])
    rng = np.random.default_rng(0)
    for space in ("dlib", "judge2"):
        x = {g: np.stack(feats[(space, g)]) for g in (0, 1)}
        if space == "dlib":
            x = {g: _on_sphere(v) for g, v in x.items()}
        for g in (0, 1):
            ks = []
            for _ in range(a.draws):
                p = rng.permutation(len(x[g]))
                h = len(p) // 2
                ks.append(kid(x[g][p[:h]], x[g][p[h:2 * h]]))
            print(f"{space} {'men' if g == 0 else 'women'} (n={len(x[g])}), halves: KID x1000 mean "
                  f"{1000 * np.mean(ks):.1f}, sd {1000 * np.std(ks):.1f}")
        ks = [kid(x[0][rng.permutation(len(x[0]))[:98]], x[1][rng.permutation(len(x[1]))[:100]]) for _ in range(a.draws)]
        print(f"{space} men vs women, 98 vs 100 drawn: KID x1000 mean {1000 * np.mean(ks):.1f}, sd {1000 * np.std(ks):.1f}")


if __name__ == "__main__":
    main()
