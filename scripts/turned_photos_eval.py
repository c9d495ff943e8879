"""The evaluation's photos turned by a quarter (a phone photo without its EXIF turn), through ``anonymize`` and
``swap-gender``; each output is turned back and judged upright against the upright original, by the evaluation's
independent judges (judge 2: facegan's ResNet-18 gender judge; faceres' identity model) and dlib.

    python scripts/turned_photos_eval.py ../shared/datasets/utkface-200 [--turns 1] [--upright-only] [-o out.json]

``--upright-only``: the detector without its turned passes (``FACEGAN_TURN_SIDE=0``, as before session 22).
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--turns", type=int, default=1, help="quarter turns, counter-clockwise")
    ap.add_argument("--upright-only", action="store_true")
    ap.add_argument("-o", "--out")
    a = ap.parse_args()
    if a.upright_only:
        os.environ["FACEGAN_TURN_SIDE"] = "0"
    from facegan.evaluate.harness import EVAL_SEED, select_images
    from facegan.faces import align_face
    from facegan.faces.detect import detect_faces
    from facegan.io import read_image
    from facegan.judges.faceres import optional
    from facegan.judges.identity import get_identity
    from facegan.ops.base import photo_seed
    from facegan.ops.swap_gender import _resnet_judge, transform_genders

    rj, ident, fr = _resnet_judge(), get_identity(), optional()
    res: dict = {}
    for lab in select_images(a.folder, 100, "test"):
        rgb = read_image(lab.path)
        faces = detect_faces(rgb, "centerface-upright")
        if not faces:
            continue
        f = max(faces, key=lambda f: f.width * f.height)
        src = "male" if lab.gender == 0 else "female"
        target = "female" if src == "male" else "male"
        c0 = align_face(rgb, f, "utkface", 128).crop
        e0 = ident.embed(rgb, f)
        fr0 = fr.embed_crops(c0[None])[0] if fr is not None else None
        turned = np.ascontiguousarray(np.rot90(rgb, a.turns))
        for op in ("anonymize", "swap-gender"):
            kw = {"seed": photo_seed(EVAL_SEED, lab.path.name)} if op == "anonymize" else {}
            try:
                out = transform_genders(turned, to=target if op == "swap-gender" else "opposite", op=op, verify=False, **kw).image
            except Exception as e:  # noqa: BLE001 - a face not found counts as a failure
                res.setdefault(op, []).append({"file": lab.path.name, "error": str(e)})
                continue
            up = np.ascontiguousarray(np.rot90(out, -a.turns))
            c1 = align_face(up, f, "utkface", 128).crop
            p2 = float(rj.predict_crops(c1[None], "utkface")["p_female"][0])
            row = {"file": lab.path.name, "source": src, "flipped_2": (p2 >= 0.5) == (target == "female"),
                   "same_person": bool(ident.same_person(e0, ident.embed(up, f))),
                   "changed": float(np.abs(c1.astype(float) - c0).mean())}
            if fr is not None:
                row["same_person_2"] = bool(fr.compare(fr0, fr.embed_crops(c1[None])[0])[1])
            res.setdefault(op, []).append(row)
    summary = {}
    for op, rows in res.items():
        ok = [r for r in rows if "error" not in r]
        s = {"n": len(rows), "errors": len(rows) - len(ok)}
        for d in ("male", "female"):
            g = [r for r in ok if r["source"] == d]
            s[f"flip2_{d}"] = float(np.mean([r["flipped_2"] for r in g])) if g else None
        s["reid_dlib"] = float(np.mean([r["same_person"] for r in ok]))
        if ok and "same_person_2" in ok[0]:
            s["reid_faceres"] = float(np.mean([r["same_person_2"] for r in ok]))
        s["mean_change"] = float(np.mean([r["changed"] for r in ok]))
        summary[op] = s
    print(json.dumps(summary, indent=1))
    if a.out:
        with open(a.out, "w") as fh:
            json.dump({"summary": summary, "rows": res, "turns": a.turns, "upright_only": a.upright_only}, fh, indent=1)


if __name__ == "__main__":
    main()
