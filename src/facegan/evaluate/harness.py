"""``facegan evaluate``: flip rate, identity similarity, re-identification, landmark shift and time
per face, for any registered op, on a labelled folder (UTKFace file names), through the full-photo
pipeline users run. Baselines (blur, pixelate) go through the same code so every number has a
comparison."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..errors import FaceganError


EVAL_N_PER_GENDER = 100  # the evaluation's selection (README): the photos ``test-rest`` leaves out


def select_images(folder: str | Path, n_per_gender: int = 100, split: str = "test", min_age: int = 16,
                  max_age: int = 75, seed: int = 0) -> list:
    """``n_per_gender`` photos a gender (``seed``), ages ``min_age``-``max_age``, from ``split``: ``test``
    / ``train`` (the DATETIME-stem hash split), ``all``, or ``test-rest`` — the ``test`` photos the
    evaluation (its 100 a gender, seed 0) does not use, for choosing a setting on held-out photos
    without touching the ones it is then measured on."""
    from ..train.utkface import scan

    if split == "test-rest":
        used = {lab.path.name for lab in select_images(folder, EVAL_N_PER_GENDER, "test", min_age, max_age)}
        labs = [lab for lab in scan(folder, min_age, max_age) if lab.split == "test" and lab.path.name not in used]
    else:
        labs = [lab for lab in scan(folder, min_age, max_age) if split == "all" or lab.split == split]
    rng = np.random.default_rng(seed)
    out = []
    for g in (0, 1):
        group = [lab for lab in labs if lab.gender == g]
        idx = rng.permutation(len(group))[:n_per_gender]
        out += [group[i] for i in sorted(idx)]
    return out


def kid(a: np.ndarray, b: np.ndarray) -> float:
    """Kernel distance (KID's unbiased MMD^2 with the cubic polynomial kernel, Binkowski et al. 2018)
    between two sets of feature vectors (rows). 0 when both come from the same distribution; unbiased,
    so small samples (100 a side) are fine, and a value can come out slightly below 0."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    m, n, d = len(a), len(b), a.shape[1]
    if m < 2 or n < 2:
        return float("nan")
    kaa, kbb, kab = ((a @ a.T) / d + 1) ** 3, ((b @ b.T) / d + 1) ** 3, ((a @ b.T) / d + 1) ** 3
    return float((kaa.sum() - np.trace(kaa)) / (m * (m - 1)) + (kbb.sum() - np.trace(kbb)) / (n * (n - 1))
                 - 2 * kab.mean())


def _on_sphere(e: np.ndarray) -> np.ndarray:
    """Descriptors scaled to length sqrt(dim): KID's kernel (x.y / dim + 1)^3 then runs on the cosine
    similarity, the quantity identity models are built to compare."""
    e = np.asarray(e, np.float64)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12) * np.sqrt(e.shape[1])


def _realism(descriptors: list, ref: np.ndarray | None, sphere: bool = True) -> float | None:
    """KID of face descriptors against the reference faces (already on the sphere when ``sphere``; raw
    features otherwise, as KID uses a classifier's); None where either side has fewer than two faces
    (KID is undefined there)."""
    if ref is None or len(ref) < 2 or len(descriptors) < 2:
        return None
    x = np.stack(descriptors)
    return kid(_on_sphere(x) if sphere else x, ref)


def _landmark_shift(rgb_out: np.ndarray, face, d5_before: np.ndarray) -> float:
    """Mean 5-point landmark displacement after the edit, as a fraction of the eye distance."""
    import dlib

    from ..faces.detect import dlib_shapes, shape_upright

    if "upright" in face.extra:  # a rolled face: dlib's points fitted where it is upright
        d5_after = shape_upright(rgb_out, face, 5)
    else:
        b = face.box
        d5_after = dlib_shapes().five(rgb_out, dlib.rectangle(int(b[0]), int(b[1]), int(b[2]), int(b[3])))
    eye = np.linalg.norm(d5_before[0:2].mean(0) - d5_before[2:4].mean(0))
    return float(np.linalg.norm(d5_after - d5_before, axis=1).mean() / max(eye, 1e-6))


DETAIL_SIGMA = 1.0  # px of the photo: the finest detail, what "as sharp as the rest of the photo" is about


def detail_kept(rgb_in: np.ndarray, rgb_out: np.ndarray, face, sigma: float = DETAIL_SIGMA) -> float | None:
    """Fine detail of the output face over the original's, at the photo's own resolution: the RMS of the grey
    levels above a ``sigma``-px Gaussian blur, weighted by the face ellipse (the ``utkface`` template's, as the
    ops paste back), output / original. 1: as much fine detail as the original face; a blur far below 1; above
    1: more (new edges or noise). None when the face's crop lies (nearly) outside the photo or the original face
    has no detail to compare with (a flat region)."""
    import cv2

    from ..faces.align import align_face, crop_region

    region = crop_region(align_face(rgb_in, face, "utkface", 128), rgb_in.shape, "ellipse", pad=0)
    if region is None or min(region[0][2] - region[0][0], region[0][3] - region[0][1]) < 4:
        return None
    (x0, y0, x1, y1), _, m = region

    def energy(rgb):
        g = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY).astype(np.float32)
        hp = g - cv2.GaussianBlur(g, (0, 0), sigma)
        return float(np.sqrt((m * hp * hp).sum() / max(m.sum(), 1e-6)))

    e0 = energy(rgb_in)
    return energy(rgb_out) / e0 if e0 > 1e-3 else None


def turned_box(box, shape: tuple, turns: int) -> list[float]:
    """``box`` (x0, y0, x1, y1) of a photo of ``shape`` (h, w, ...) where it lies in ``np.rot90(photo, turns)``."""
    x0, y0, x1, y1 = (float(v) for v in box)
    h, w = shape[:2]
    for _ in range(turns % 4):  # a quarter turn counter-clockwise: (x, y) -> (y, w - x)
        x0, y0, x1, y1, h, w = y0, w - x1, y1, w - x0, w, h
    return [x0, y0, x1, y1]


def evaluate_ops(folder: str | Path, ops: list[str], out_dir: str | Path, n_per_gender: int = 100,
                 split: str = "test", grid_n: int = 6, progress: bool = True, turns: int = 0) -> dict:
    """``turns``: each photo goes to the ops turned by that many quarter turns counter-clockwise (a phone photo
    without its EXIF turn) and its output is turned back, so the judges, the identity models and the grid see it
    upright, as they see the upright original."""
    from PIL import Image
    from tqdm import tqdm

    from ..faces import align_face
    from ..faces.detect import detect_faces
    from ..io import read_image
    from ..judges.agegender import get_age_gender
    from ..judges.identity import get_identity
    from ..ops import get_op
    from ..ops.base import photo_seed
    from ..ops.swap_gender import _resnet_judge, dlib5_of

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labs = select_images(folder, n_per_gender, split)
    judge = get_age_gender()
    rj = _resnet_judge()
    ident = get_identity()
    fr = _faceres()
    turns = int(turns) % 4
    results: dict = {"data": {"folder": str(folder), "split": split, "n_images": len(labs),
                              **({"turns": turns} if turns else {})},
                     "judges": {"gender": judge.name, "gender_2": rj.name if rj else None, "identity": ident.name,
                                "faceres": fr.name if fr is not None else None},
                     "ops": {}}
    grid_rows: dict = {}
    # originals, detected once and shared by every op (so each op sees the same faces)
    items = []
    acc: dict = {}
    feats0: dict = {}  # id(item) -> judge 2's appearance features of the original face
    for lab in tqdm(labs, desc="prepare", disable=not progress):
        rgb = read_image(lab.path)
        faces = detect_faces(rgb)
        if not faces:
            continue
        h, w = rgb.shape[:2]
        f = max(faces, key=lambda f: f.width * f.height)
        d5 = dlib5_of(rgb, f)
        fr0 = None
        crop0 = align_face(rgb, f, "utkface", 128).crop[None]  # the crop judges 2 and 3 read
        if fr is not None:
            e, pm = fr.predict_crops(crop0)
            fr0 = e[0]
            acc.setdefault(("judge_3", "male" if lab.gender == 0 else "female"), []).append(
                (pm[0] >= 0.5) == (lab.gender == 0))
        items.append((lab, rgb, f, d5, ident.embed(rgb, f), fr0))
        # how well each judge reads the untouched originals (the ceiling of any flip rate)
        src = "male" if lab.gender == 0 else "female"
        acc.setdefault(("judge", src), []).append((judge.predict(rgb, d5)["p_female"] >= 0.5) == (src == "female"))
        if rj is not None:
            p2 = float(rj.predict_crops(crop0, "utkface")["p_female"][0])
            acc.setdefault(("judge_2", src), []).append((p2 >= 0.5) == (src == "female"))
            feats0[id(items[-1])] = rj.features_crops(crop0)[0]
    results["data"]["n_with_face"] = len(items)
    # realism: how close the outputs' face descriptors (dlib) lie to real held-out faces of the target
    # gender (KID); "unchanged" = the untouched source faces against the same reference
    by_gender: dict = {}
    for it in items:
        by_gender.setdefault("male" if it[0].gender == 0 else "female", []).append(it[4])
    real = {g: _on_sphere(np.stack(e)) for g, e in by_gender.items()}
    results["kid_unchanged"] = {}
    for d in ("male->female", "female->male"):
        v = _realism(by_gender.get(d.split("->")[0], []), real.get(d.split("->")[1]))
        if v is not None:
            results["kid_unchanged"][d] = v
    # the same in judge 2's appearance features (a gender classifier's, not an identity model's: averaging
    # identities does not move it the way it moves the identity space)
    by_gender2: dict = {}
    for it in items:
        if id(it) in feats0:
            by_gender2.setdefault("male" if it[0].gender == 0 else "female", []).append(feats0[id(it)])
    real2 = {g: np.stack(e) for g, e in by_gender2.items()}
    for d in ("male->female", "female->male"):
        v = _realism(by_gender2.get(d.split("->")[0], []), real2.get(d.split("->")[1]), sphere=False)
        if v is not None:
            results["kid_unchanged"][f"j2_{d}"] = v
    results["judge_accuracy_on_originals"] = {f"{j} {g}": float(np.mean(v)) for (j, g), v in acc.items()}
    labels = [_label(o) for o in ops]
    for op_name, label in zip(ops, labels):
        op, run_op = _resolve(op_name)
        rows = []
        outs: dict = {}  # direction -> output descriptors
        outs2: dict = {}  # direction -> judge 2's appearance features of the outputs
        for k, (lab, rgb, f, d5, e0, fr0) in enumerate(tqdm(items, desc=op_name, disable=not progress)):
            src = "male" if lab.gender == 0 else "female"
            target = "female" if src == "male" else "male"
            opts = {"to": target} if any(o.name == "to" for o in op.options) else {}
            if any(o.name == "seed" for o in op.options):  # random draws (anonymize's reshape): each photo
                opts["seed"] = photo_seed(seed_of(op_name), lab.path.name)  # its own, reproducibly
            t0 = time.perf_counter()
            try:
                res = run_op(np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb, **opts)
            except FaceganError as e:
                rows.append({"file": lab.path.name, "error": str(e)})
                continue
            dt = time.perf_counter() - t0
            out = np.ascontiguousarray(np.rot90(res.image, -turns)) if turns else res.image
            pf = judge.predict(out, d5)["p_female"]
            e1 = ident.embed(out, f)
            outs.setdefault(f"{src}->{target}", []).append(e1)
            row = {"file": lab.path.name, "source": src, "target": target, "p_female_after": pf,
                   "flipped": (pf >= 0.5) == (target == "female"),
                   "identity_similarity": float(ident.similarity(e0, e1)),
                   "same_person": bool(ident.same_person(e0, e1)),
                   "landmark_shift": _landmark_shift(out, f, d5), "detail_kept": detail_kept(rgb, out, f),
                   "time_s": dt,
                   "n_faces": len([x for x in res.faces if not x.get("too_small")])}
            if op.name in ("swap-gender", "anonymize") and res.faces:
                # the op's own gender judge read the face as the target already and left it alone:
                # such a face counts as "flipped" if the evaluation judge agrees, so say how many
                row["left_unchanged"] = all(str(x.get("status", "")).startswith("unchanged") for x in res.faces)
                mine = _matching_row(res.faces, turned_box(f.box, rgb.shape, turns))  # the op's row for this face
                if mine is not None and mine.get("target") in ("male", "female"):
                    # anonymize (and --to opposite) flips whatever its judge reads: a misread face goes the wrong way
                    row["op_target"] = mine["target"]
                if mine is not None and mine.get("gender_judge"):
                    row["op_gender_judge"] = mine["gender_judge"]
                if mine is not None and mine.get("source_judge"):  # the direction: the judge + the gender probe
                    row["op_source_judge"] = mine["source_judge"]
                if any(x.get("fallback") for x in res.faces):  # anonymize --fallback: blurred, not translated only
                    row["fallback"] = True
                changed = [x for x in res.faces if x.get("status") == "changed"]
                if changed:  # the strength each face ended at, and whether verification made it retry
                    row["strength"] = float(np.mean([x["strength"] for x in changed]))
                    row["escalated"] = any(len(x.get("strengths_tried", ())) > 1 for x in changed)
            crop = align_face(out, f, "utkface", 128).crop[None] if rj is not None or fr is not None else None
            if rj is not None:
                p2 = float(rj.predict_crops(crop, "utkface")["p_female"][0])
                outs2.setdefault(f"{src}->{target}", []).append(rj.features_crops(crop)[0])
                row["flipped_2"] = (p2 >= 0.5) == (target == "female")
                if "op_target" in row:
                    row["reads_as_op_target_2"] = (p2 >= 0.5) == (row["op_target"] == "female")
            if fr is not None:
                e, pm = fr.predict_crops(crop)
                row["identity_similarity_2"], row["same_person_2"] = fr.compare(fr0, e[0])
                row["flipped_3"] = bool((pm[0] >= 0.5) == (target == "male"))
            rows.append(row)
            if k < grid_n or (len(items) // 2 <= k < len(items) // 2 + grid_n):
                grid_rows.setdefault("original", {})[k] = rgb
                grid_rows.setdefault(label, {})[k] = out
        results["ops"][label] = summarize(rows)
        for d, e in outs.items():
            v = _realism(e, real.get(d.split("->")[1]))
            if v is not None:
                results["ops"][label][f"kid_{d}"] = v
        for d, e in outs2.items():
            v = _realism(e, real2.get(d.split("->")[1]), sphere=False)
            if v is not None:
                results["ops"][label][f"kid_j2_{d}"] = v
        name, model, options = _split_spec(op_name)
        if model:
            results["ops"][label]["model"] = model
        if options:
            results["ops"][label]["options"] = options
        (out_dir / f"rows_{label}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    # grid: one column per op (+ original), one row per face
    keys = sorted(grid_rows.get("original", {}))
    cols = ["original"] + labels
    tiles = []
    for k in keys:
        tiles.append(np.concatenate([np.asarray(Image.fromarray(grid_rows[c][k]).resize((160, 160)))
                                     for c in cols if k in grid_rows.get(c, {})], 1))
    if tiles:
        Image.fromarray(np.concatenate(tiles, 0)).save(out_dir / "grid.png")
    results["grid_columns"] = cols
    (out_dir / "metrics.json").write_text(json.dumps(results, indent=2))
    (out_dir / "report.md").write_text(markdown(results))
    return results


def _faceres():
    """The second identity model and third gender judge (faceres), when its files are here
    (``facegan models fetch faceres``); evaluation without it reports dlib and two judges only."""
    import os

    from ..judges import faceres

    if os.environ.get("FACEGAN_EVAL_FACERES", "1") == "0":
        return None
    return faceres.optional(strict=True)


def split_ops(text: str) -> list[str]:
    """``--ops`` text -> op specs. Commas separate ops and also an op's options, so a ``key=value``
    piece belongs to the op before it: ``swap-gender:strength=2,to=x,blur`` -> 2 specs."""
    specs: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        if specs and "=" in piece and not any(c in piece.split("=")[0] for c in ":@") and ":" in specs[-1]:
            specs[-1] += "," + piece
        else:
            specs.append(piece)
    return specs


def _split_spec(op_name: str) -> tuple[str, str, dict]:
    """``NAME[@MODEL][:key=value,...]`` -> (name, model, options). Options are the op's own (e.g.
    ``swap-gender:strength=2``); values are converted to the option's declared type later."""
    head, sep, opts = op_name.partition(":")
    # a Windows drive letter ("C:\\...") is part of the model path, not an option list
    if sep and "=" not in opts:
        head, opts = op_name, ""
    name, _, model = head.partition("@")
    options = {}
    for kv in filter(None, (o.strip() for o in opts.split(","))):
        k, eq, v = kv.partition("=")
        if not eq or not k.strip():
            raise FaceganError(f"{op_name}: options must be key=value (e.g. swap-gender:strength=2)")
        options[k.strip()] = v.strip()
    return name, model, options


def _label(op_name: str) -> str:
    """A file-name-safe label: ``swap-gender@runs/x/last:strength=2`` -> ``swap-gender@x_strength2``."""
    name, model, options = _split_spec(op_name)
    label = name
    if model:
        p = Path(model)
        tag = p.parent.name if p.name == "last" else (
            f"{p.parent.name}-{p.name}" if p.name.startswith("step") and p.parent.name else p.name)
        label += "@" + "".join(c if c.isalnum() or c in "-_." else "_" for c in tag)
    for k, v in options.items():
        label += "_" + "".join(c if c.isalnum() or c in "-." else "_" for c in f"{k}{v}")
    return label


EVAL_SEED = 0  # the run seed of ops with random draws when the --ops spec sets none (per photo: photo_seed)


def seed_of(op_name: str) -> int:
    return int(_split_spec(op_name)[2].get("seed", EVAL_SEED))


def _resolve(op_name: str):
    """``NAME`` -> a registered op; ``swap-gender@FOLDER`` -> swap-gender with the translator checkpoint
    FOLDER (to compare trained models through the same harness); ``:key=value`` sets the op's options."""
    from ..ops import get_op

    name, model, options = _split_spec(op_name)
    op = get_op(name)
    known = {o.name: o for o in op.options}
    bad = [k for k in options if k not in known or k == "to"]
    if bad:
        raise FaceganError(f"{op_name}: {name} has no option {', '.join(bad)} here "
                           f"(it takes: {', '.join(k for k in known if k != 'to') or 'none'})")
    kw = {k: known[k].parse(v) for k, v in options.items()}  # ConfigError on a bad value
    kw.pop("seed", None)  # the run loop gives each photo its own seed from it (seed_of, photo_seed)
    if name not in ("swap-gender", "anonymize"):
        if model:
            raise FaceganError(f"{op_name}: only swap-gender/anonymize take a model (@FOLDER)")
        return op, (lambda rgb, **o: op.run(rgb, **kw, **o)) if kw else op
    from ..ops.swap_gender import transform_genders

    # verify=False: the harness judges outputs itself, so time_s is the transform alone
    # op=name: anonymize and swap-gender apply their own default strength when none is given;
    # the op's other defaults (e.g. anonymize's reshape) as the CLI would apply them
    kw = {**{k: o.default for k, o in known.items() if k != "to" and o.default is not None}, **kw}
    return op, lambda rgb, **o: transform_genders(rgb, model=model or None, verify=False, op=name, **kw, **o)


def nearest_box(items: list, box, box_of):
    """The item whose box (``box_of(item)``, x0 y0 x1 y1; None = no box) has its centre nearest ``box``'s; None
    when no item has a box."""
    def centre(b):
        return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2], float)

    boxed = [x for x in items if box_of(x) is not None]
    if not boxed or box is None:
        return None
    c = centre(box)
    return min(boxed, key=lambda x: float(np.linalg.norm(centre(box_of(x)) - c)))


def _matching_row(faces: list[dict], box) -> dict | None:
    """The op's report row whose box centre lies nearest ``box``'s (None when no row has a box)."""
    return nearest_box(faces, box, lambda r: r.get("box"))


def summarize(rows: list[dict]) -> dict:
    ok = [r for r in rows if "error" not in r]
    s: dict = {"n": len(ok), "errors": len(rows) - len(ok)}
    for d in ("male->female", "female->male"):
        src = d.split("->")[0]
        g = [r for r in ok if r["source"] == src]
        if g:
            s[f"n_{d}"] = len(g)
            s[f"flip_{d}"] = float(np.mean([r["flipped"] for r in g]))
            for k in ("2", "3"):
                if f"flipped_{k}" in g[0]:
                    s[f"flip{k}_{d}"] = float(np.mean([r[f"flipped_{k}"] for r in g]))
            right = [r for r in g if "op_target" in r and r["op_target"] == r.get("target")]
            if any("op_target" in r for r in g):
                s[f"wrong_way_{d}"] = int(sum("op_target" in r and r["op_target"] != r.get("target") for r in g))
                if right and "flipped_2" in right[0]:  # judge 2 on the faces the op's judge read right
                    s[f"flip2_right_way_{d}"] = float(np.mean([r["flipped_2"] for r in right]))
    if ok:
        sim = np.array([r["identity_similarity"] for r in ok])
        s["identity_similarity_mean"] = float(sim.mean())
        s["identity_similarity_pct"] = {str(p): float(np.percentile(sim, p)) for p in (10, 25, 50, 75, 90)}
        s["reid_rate"] = float(np.mean([r["same_person"] for r in ok]))
        if "identity_similarity_2" in ok[0]:
            s["identity_similarity_2_mean"] = float(np.mean([r["identity_similarity_2"] for r in ok]))
            s["reid_rate_2"] = float(np.mean([r["same_person_2"] for r in ok]))
        s["landmark_shift_mean"] = float(np.mean([r["landmark_shift"] for r in ok]))
        dk = np.array([r["detail_kept"] for r in ok if r.get("detail_kept") is not None])
        if all("detail_kept" in r for r in ok) and len(dk):  # rows written before 2026-12-03 lack it
            s["detail_kept_median"] = float(np.median(dk))
            s["detail_kept_pct"] = {str(p): float(np.percentile(dk, p)) for p in (10, 90)}
        s["time_per_face_s_median"] = float(np.median([r["time_s"] / max(r["n_faces"], 1) for r in ok]))
        judges = sorted({r["op_gender_judge"] for r in ok if r.get("op_gender_judge")})
        if judges:
            s["op_gender_judge"] = " / ".join(judges)
        src_judges = sorted({r["op_source_judge"] for r in ok if r.get("op_source_judge")})
        if src_judges:
            s["op_source_judge"] = " / ".join(src_judges)
        if any("left_unchanged" in r for r in ok):
            s["left_unchanged"] = int(sum(bool(r.get("left_unchanged")) for r in ok))
        if any(r.get("fallback") for r in ok):
            s["fallback_share"] = float(np.mean([bool(r.get("fallback")) for r in ok]))
        st = [r for r in ok if "strength" in r]
        if st:
            s["strength_mean"] = float(np.mean([r["strength"] for r in st]))
            s["escalated_share"] = float(np.mean([r["escalated"] for r in st]))
    return s


def wilson(p: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a rate ``p`` measured on ``n`` items (95% for z = 1.96)."""
    if n <= 0:
        return 0.0, 1.0
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def rebuild_report(out_dir: str | Path) -> dict:
    """Recompute every op's summary from the report folder's ``rows_<op>.jsonl`` (keeping its KID,
    model and options) and rewrite ``metrics.json`` and ``report.md`` — for a newer report format
    without running the ops again."""
    out_dir = Path(out_dir)
    res = json.loads((out_dir / "metrics.json").read_text())
    for label, old in res["ops"].items():
        rows_file = out_dir / f"rows_{label}.jsonl"
        if not rows_file.is_file():
            raise FaceganError(f"{rows_file} is missing: cannot rebuild {label}")
        rows = [json.loads(line) for line in rows_file.read_text().splitlines() if line.strip()]
        keep = {k: v for k, v in old.items() if k.startswith("kid_") or k in ("model", "options")}
        res["ops"][label] = {**summarize(rows), **keep}
    (out_dir / "metrics.json").write_text(json.dumps(res, indent=2))
    (out_dir / "report.md").write_text(markdown(res))
    return res


def markdown(res: dict) -> str:
    ops = res["ops"]
    j = res["judges"]
    turned = (f" Each photo went to the ops turned by {90 * res['data']['turns']} degrees counter-clockwise "
              "(no EXIF turn) and its output was turned back: everything below is measured upright."
              if res["data"].get("turns") else "")
    lines = [f"# facegan evaluate — {res['data']['folder']} ({res['data']['split']} split)", "",
             f"{res['data']['n_with_face']} photos with a detected face (of {res['data']['n_images']} selected).{turned} "
             f"Gender judge: `{j['gender']}`" + (f"; second judge: `{j['gender_2']}`" if j.get("gender_2") else "")
             + f". Identity: `{j['identity']}` (re-identified = the model calls it the same person).", "",
             "| op | flip M→F | flip F→M | flip M→F (judge 2) | flip F→M (judge 2) | identity sim. mean | "
             "re-id rate | landmark shift (eye dist.) | s/face |", "|---|---|---|---|---|---|---|---|---|"]

    def f(v, pct=True):
        return "—" if v is None else (f"{100 * v:.1f}%" if pct else f"{v:.3f}")

    for name, s in ops.items():
        lines.append(f"| {name} | {f(s.get('flip_male->female'))} | {f(s.get('flip_female->male'))} | "
                     f"{f(s.get('flip2_male->female'))} | {f(s.get('flip2_female->male'))} | "
                     f"{f(s.get('identity_similarity_mean'), False)} | {f(s.get('reid_rate'))} | "
                     f"{f(s.get('landmark_shift_mean'), False)} | {f(s.get('time_per_face_s_median'), False)} |")
    if j.get("faceres"):
        from ..judges.faceres import THRESHOLD

        lines += ["", f"Second identity model and third gender judge: `{j['faceres']}` (same person when cosine "
                  f">= {THRESHOLD}; its gender head as judge 3). faceres can be a training signal "
                  "(its gender head: `lambda_teacher`, as in the shipped translator's fine-tune; its descriptor: "
                  "`lambda_id`): for such models judges 1-2 and dlib above are the independent numbers.", "",
                  "| op | flip M→F (judge 3) | flip F→M (judge 3) | faceres sim. mean | re-id rate (faceres) |",
                  "|---|---|---|---|---|"]
        for name, s in ops.items():
            lines.append(f"| {name} | {f(s.get('flip3_male->female'))} | {f(s.get('flip3_female->male'))} | "
                         f"{f(s.get('identity_similarity_2_mean'), False)} | {f(s.get('reid_rate_2'))} |")
    ku = res.get("kid_unchanged") or {}
    if any("kid_male->female" in s or "kid_female->male" in s for s in ops.values()):
        def k(v):
            return "—" if v is None else f"{1000 * v:.1f}"

        j2 = any("kid_j2_male->female" in s or "kid_j2_female->male" in s for s in ops.values())
        lines += ["", "Realism: KID (x1000) between the outputs' face descriptors (dlib) and real held-out faces of "
                  "the target gender; lower = closer to real faces of that gender. Doing nothing scores "
                  f"{k(ku.get('male->female'))} (M→F) / {k(ku.get('female->male'))} (F→M); about 0 is "
                  "indistinguishable from real faces of the target in this space (it sees faces as a face "
                  "recogniser does: not every artefact moves it)."]
        if j2:
            lines += ["", "The last two columns: the same KID in judge 2's appearance features (the pooled 512-d "
                      "features of the ResNet-18 gender judge: a classifier's space, not an identity model's, so "
                      "an output that blends identities is not far from real faces for that alone). Doing "
                      f"nothing scores {k(ku.get('j2_male->female'))} / {k(ku.get('j2_female->male'))} there."]
        lines += ["", "| op | KID M→F | KID F→M |" + (" KID M→F (judge 2 features) | KID F→M (judge 2 features) |" if j2 else ""),
                  "|---|---|---|" + ("---|---|" if j2 else "")]
        for name, s in ops.items():
            extra = f" {k(s.get('kid_j2_male->female'))} | {k(s.get('kid_j2_female->male'))} |" if j2 else ""
            lines.append(f"| {name} | {k(s.get('kid_male->female'))} | {k(s.get('kid_female->male'))} |" + extra)
    dk = [(n, s) for n, s in ops.items() if s.get("detail_kept_median") is not None]
    if dk:
        lines += ["", f"Detail kept: the output face's fine detail (grey levels above a {DETAIL_SIGMA:g} px blur, at the "
                  "photo's own resolution, inside the face ellipse) over the original's; 1 = as sharp as the "
                  "original face, below = softer, above = more edges or noise. Median and 10th-90th percentile "
                  "over the faces.", "", "| op | detail kept (median) | 10th-90th percentile |", "|---|---|---|"]
        for name, s in dk:
            pc = s.get("detail_kept_pct") or {}
            lines.append(f"| {name} | {s['detail_kept_median']:.2f} | {pc.get('10', float('nan')):.2f}-"
                         f"{pc.get('90', float('nan')):.2f} |")
    left = {n: s["left_unchanged"] for n, s in ops.items() if s.get("left_unchanged")}
    if left:
        from ..ops.swap_gender import KEEP_P, GenderVote

        lines += ["", f"Left unchanged because the op's judge was sure (judge 1: >= {KEEP_P:g}; the vote of judges 1 "
                  f"and 3: >= {GenderVote.keep_p:g}) the face already read as "
                  "the target (these count as flipped when the evaluation judge agrees): " + ", ".join(f"{n} {k}" for n, k in left.items()) + "."]
    wrong = {n: s for n, s in ops.items() if s.get("wrong_way_male->female") or s.get("wrong_way_female->male")}
    if wrong:
        lines += ["", "Pushed the wrong way because the op's judge misread the original (`--to opposite` and "
                  "anonymize flip the gender the op's judge reads; men / women): " + ", ".join(
                      f"{n} {s.get('wrong_way_male->female', 0)} / {s.get('wrong_way_female->male', 0)} "
                      f"(judge 2 flips on the rest: {f(s.get('flip2_right_way_male->female'))} / "
                      f"{f(s.get('flip2_right_way_female->male'))})" for n, s in wrong.items()) + "."]
    esc = {n: s for n, s in ops.items() if s.get("escalated_share")}
    if esc:
        lines += ["", "Redone stronger because the output failed the op's own check (its gender judge, and for "
                  "anonymize the identity model; so for these ops judge 1 (and judge 3 when the op votes with it) and "
                  "dlib are not independent — judge 2 and faceres' identity model are): " + ", ".join(
                      f"{n} {100 * s['escalated_share']:.1f}% of changed faces (mean strength {s['strength_mean']:.2f})"
                      for n, s in esc.items()) + "."]
    fb = {n: s["fallback_share"] for n, s in ops.items() if s.get("fallback_share")}
    if fb:
        lines += ["", "Blurred by the fallback (still recognised by dlib after the strongest try): " + ", ".join(
            f"{n} {100 * v:.1f}% of faces" for n, v in fb.items()) + "."]
    opj = {n: s["op_gender_judge"] for n, s in ops.items() if s.get("op_gender_judge")}
    if opj:
        lines += ["", "The op's gender judge (it picks each face's direction, which faces to leave alone and which to "
                  "redo; judge 2 decides nothing): " + ", ".join(f"{n} `{j}`" for n, j in opj.items()) + "."]
    osj = {n: s["op_source_judge"] for n, s in ops.items() if s.get("op_source_judge")}
    if osj:
        lines += ["", "The direction (each original's gender) read by the op's judge averaged with the gender probe on "
                  "dlib's descriptor: " + ", ".join(f"{n} `{j}`" for n, j in osj.items()) + "."]
    ci = [(n, s) for n, s in ops.items() if s.get("n")]
    if ci:
        def w(s, key, n):
            if s.get(key) is None or not n:
                return "—"
            lo, hi = wilson(s[key], n)
            return f"{100 * lo:.0f}-{100 * hi:.0f}%"

        lines += ["", "Sampling error: 95% Wilson intervals of the numbers no op steers (judge 2's flips; "
                  "re-identification by faceres, or by dlib where no retry asked it) — two rates whose intervals "
                  "overlap may not differ.", "",
                  "| op | flip M→F (judge 2) | flip F→M (judge 2) | re-id rate (dlib) | re-id rate (faceres) |",
                  "|---|---|---|---|---|"]
        for name, s in ci:
            nm, nf = s.get("n_male->female", s["n"] / 2), s.get("n_female->male", s["n"] / 2)
            lines.append(f"| {name} | {w(s, 'flip2_male->female', nm)} | {w(s, 'flip2_female->male', nf)} | "
                         f"{w(s, 'reid_rate', s['n'])} | {w(s, 'reid_rate_2', s['n'])} |")
    ja = res.get("judge_accuracy_on_originals") or {}
    if ja:
        lines += ["", "Judges on the untouched originals (the ceiling of a flip rate): " + ", ".join(
            f"{k.replace('judge_2', 'judge 2').replace('judge_3', 'judge 3')}: {100 * v:.1f}% right" for k, v in sorted(ja.items())) + "."]
    lines += ["", "Grid (columns: " + ", ".join(res.get("grid_columns", [])) + "):", "", "![grid](grid.png)", ""]
    return "\n".join(lines)
