"""``facegan evaluate FOLDER --unlabelled``: the ops on photos nobody labelled (e.g. high-resolution
portraits, where UTKFace's 200 px faces say little about how a large face looks), through the same judges
as the labelled harness.

With no labels there is no flip rate against the truth: each face's target is the one the op chose (its
row's ``target``), and the numbers say whether the output reads as *that* — by judge 2 (facegan's ResNet-18,
which steers nothing) and judge 1 (which the ops' checks steer) —, whether the identity models still match
it to the original (dlib; faceres when fetched, which steers nothing), how much fine detail the face kept
(:func:`facegan.evaluate.harness.detail_kept`, at the photo's own resolution), and the time a face took.
Every face each op changed counts, each photo's faces found once with the ops' detector (CenterFace).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..errors import FaceganError

LARGE = 256  # px: faces whose 128 px crop covers at least this many photo pixels are summarised apart too


def review_ops(folder: str | Path, ops: list[str], out_dir: str | Path, tile: int = 192,
               progress: bool = True) -> dict:
    from PIL import Image
    from tqdm import tqdm

    from ..faces import align_face
    from ..faces.detect import detect_faces
    from ..io import iter_images, read_image
    from ..judges.agegender import get_age_gender
    from ..judges.identity import get_identity
    from ..ops.base import photo_seed
    from ..ops.hires import crop_scale
    from ..ops.swap_gender import _resnet_judge, dlib5_of
    from .harness import _faceres, _label, _resolve, detail_kept, nearest_box, seed_of

    folder, out_dir = Path(folder), Path(out_dir)
    files = iter_images(folder)
    if not files:
        raise FaceganError(f"{folder}: no images")
    out_dir.mkdir(parents=True, exist_ok=True)
    judge, rj, ident, fr = get_age_gender(), _resnet_judge(), get_identity(), _faceres()
    items = []
    for p in tqdm(files, desc="prepare", disable=not progress):
        try:
            rgb = read_image(p)
        except FaceganError:
            continue
        faces = detect_faces(rgb, "centerface")
        if faces:
            items.append((p, rgb, faces))
    res: dict = {"data": {"folder": str(folder), "n_images": len(files), "n_with_face": len(items)},
                 "judges": {"gender": judge.name, "gender_2": rj.name if rj else None, "identity": ident.name,
                            "faceres": fr.name if fr is not None else None}, "ops": {}}
    grid: dict = {}  # (photo, face index) -> {column: tile}
    labels = [_label(o) for o in ops]
    for op_name, label in zip(ops, labels):
        op, run_op = _resolve(op_name)
        rows = []
        for p, rgb, faces in tqdm(items, desc=op_name, disable=not progress):
            opts = {}
            if any(o.name == "seed" for o in op.options):
                opts["seed"] = photo_seed(seed_of(op_name), p.name)
            t0 = time.perf_counter()
            try:
                r = run_op(rgb, faces=faces, **opts) if op.name in ("swap-gender", "anonymize") else run_op(rgb, **opts)
            except FaceganError as e:
                rows.append({"file": p.name, "error": str(e)})
                continue
            dt = time.perf_counter() - t0
            out = r.image
            changed = [x for x in r.faces if not str(x.get("status", "")).startswith(("unchanged", "skipped"))
                       and not x.get("too_small")]
            for k, x in enumerate(changed):
                f = nearest_box(faces, x.get("box"), lambda face: face.box)
                if f is None:
                    continue
                d5 = dlib5_of(rgb, f)
                al = align_face(rgb, f, "utkface", 128)
                row = {"file": p.name, "face": k, "crop_px": round(128 * crop_scale(al), 1),
                       "detail_kept": detail_kept(rgb, out, f), "time_s": dt / max(len(changed), 1),
                       "same_person": bool(ident.same_person(ident.embed(rgb, f), ident.embed(out, f)))}
                target = x.get("target")
                if target in ("male", "female"):
                    row["target"] = target
                    row["reads_as_target"] = (judge.predict(out, d5)["p_female"] >= 0.5) == (target == "female")
                crop = align_face(out, f, "utkface", 128).crop[None]
                if rj is not None and "target" in row:
                    row["reads_as_target_2"] = bool((float(rj.predict_crops(crop, "utkface")["p_female"][0]) >= 0.5)
                                                    == (target == "female"))
                if fr is not None:
                    e0, _ = fr.predict_crops(al.crop[None])
                    e1, _ = fr.predict_crops(crop)
                    row["same_person_2"] = bool(fr.compare(e0[0], e1[0])[1])
                for key in ("strength", "redraw_size", "fallback"):
                    if key in x:
                        row[key] = x[key]
                rows.append(row)
                c = max(f.width, f.height) * 1.2
                cx, cy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
                box = (int(cx - c / 2), int(cy - c / 2), int(cx + c / 2), int(cy + c / 2))
                cell = grid.setdefault((p.name, round(cx), round(cy)), {})
                cell.setdefault("original", Image.fromarray(rgb).crop(box).resize((tile, tile), Image.LANCZOS))
                cell[label] = Image.fromarray(out).crop(box).resize((tile, tile), Image.LANCZOS)
        res["ops"][label] = summarize_unlabelled(rows)
        (out_dir / f"rows_{label}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    cols = ["original"] + labels
    keys = sorted(grid)
    if keys:
        sheet = Image.new("RGB", (tile * len(cols), tile * len(keys)), "white")
        for i, k in enumerate(keys):
            for j, c in enumerate(cols):
                if c in grid[k]:
                    sheet.paste(grid[k][c], (j * tile, i * tile))
        sheet.save(out_dir / "grid.jpg", quality=88)
    res["grid_columns"] = cols
    (out_dir / "metrics.json").write_text(json.dumps(res, indent=2))
    (out_dir / "report.md").write_text(markdown_unlabelled(res))
    return res


def summarize_unlabelled(rows: list[dict]) -> dict:
    ok = [r for r in rows if "error" not in r]
    s: dict = {"faces": len(ok), "errors": len(rows) - len(ok)}
    if not ok:
        return s

    def rate(key, rs):
        v = [r[key] for r in rs if key in r]
        return float(np.mean(v)) if v else None

    for name, rs in (("", ok), ("large_", [r for r in ok if r["crop_px"] >= LARGE])):
        if not rs:
            continue
        s[f"{name}faces"] = len(rs)
        for key in ("reads_as_target", "reads_as_target_2", "same_person", "same_person_2"):
            v = rate(key, rs)
            if v is not None:
                s[f"{name}{key}"] = v
        dk = np.array([r["detail_kept"] for r in rs if r.get("detail_kept") is not None])
        if len(dk):
            s[f"{name}detail_kept_median"] = float(np.median(dk))
            s[f"{name}detail_kept_pct"] = {str(q): float(np.percentile(dk, q)) for q in (10, 90)}
    s["time_per_face_s_median"] = float(np.median([r["time_s"] for r in ok]))
    return s


def markdown_unlabelled(res: dict) -> str:
    j = res["judges"]

    def f(v, pct=True):
        return "—" if v is None else (f"{100 * v:.1f}%" if pct else f"{v:.2f}")

    lines = [f"# facegan evaluate --unlabelled — {res['data']['folder']}", "",
             f"{res['data']['n_with_face']} photos with a face (of {res['data']['n_images']}). No labels: each face's "
             "target is the one the op chose. Reads as target: judge 2 (`" + str(j.get("gender_2")) + "`, steers "
             "nothing) and judge 1 (`" + j["gender"] + "`, which the ops' checks steer). Same person: `" + j["identity"]
             + "` (steers anonymize's retries)" + (f" and `{j['faceres']}` (steers nothing)" if j.get("faceres") else "")
             + ". Detail kept: the output face's fine detail over the original's at the photo's own resolution "
             f"(1 = as sharp; median and 10th-90th percentile). Large: faces whose 128 px crop covers >= {LARGE} px.", "",
             "| op | faces (large) | reads as target (judge 2 / 1) | same person (dlib / faceres) | detail kept | "
             "detail kept, large faces | large: same person (dlib / faceres) | s/face |",
             "|---|---|---|---|---|---|---|---|"]
    for name, s in res["ops"].items():
        if not s.get("faces"):
            lines.append(f"| {name} | 0 | — | — | — | — | — | — |")
            continue
        pc, lp = s.get("detail_kept_pct"), s.get("large_detail_kept_pct")
        large = (f"{s['large_detail_kept_median']:.2f} ({lp['10']:.2f}-{lp['90']:.2f})" if lp else "—")
        allf = (f"{s['detail_kept_median']:.2f} ({pc['10']:.2f}-{pc['90']:.2f})" if pc else "—")
        lines.append(
            f"| {name} | {s['faces']} ({s.get('large_faces', 0)}) | {f(s.get('reads_as_target_2'))} / "
            f"{f(s.get('reads_as_target'))} | {f(s.get('same_person'))} / {f(s.get('same_person_2'))} | "
            f"{allf} | {large} | "
            f"{f(s.get('large_same_person'))} / {f(s.get('large_same_person_2'))} | "
            f"{f(s.get('time_per_face_s_median'), False)} |")
    lines += ["", "Grid (columns: " + ", ".join(res.get("grid_columns", [])) + "; one row per changed face):", "",
              "![grid](grid.jpg)", ""]
    return "\n".join(lines)
