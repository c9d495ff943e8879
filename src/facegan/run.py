"""Applies an operation to a photo, a folder (tree kept) or a list of photos.

- outputs never overwrite inputs; a folder's tree is mirrored under the output folder;
- resumable: a photo whose output already exists (and is recorded in the report) is skipped;
- ``report.json`` and ``report.csv`` hold one row per face (and one per failed photo), rewritten
  atomically after every photo, so an interrupted job loses nothing already done.
"""
from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FaceganError, InputNotFoundError, OutputExistsError
from .ops.base import Operation, photo_seed

REPORT_FIELDS = ["file", "output", "status", "error", "face", "box", "score", "gender_before", "p_female_before",
                 "p_female_before_1", "p_female_before_3", "age_before", "target", "gender_after", "p_female_after", "reads_as_target", "gender_judge",
                 "resnet_judge", "resnet_p_female_before", "resnet_p_female_after", "resnet_reads_as_target",
                 "judges_disagree_before", "unsure_source",
                 "identity_similarity", "identity_distance", "same_person", "identity_judge",
                 "identity_similarity_2", "same_person_2", "identity_judge_2", "model", "strength",
                 "strengths_tried", "reshape", "reshape_draws", "id_margin", "ksame", "chroma", "keep_hair", "fallback", "too_small", "time_s"]


@dataclass
class JobSummary:
    processed: int = 0
    skipped: int = 0
    failed: int = 0
    faces: int = 0
    report: Path | None = None
    errors: list = field(default_factory=list)


def output_path_for(src: Path, root: Path | None, out_dir: Path, suffix: str) -> Path:
    rel = src.relative_to(root) if root is not None else Path(src.name)
    ext = src.suffix.lower() if src.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp") else ".png"
    return out_dir / rel.parent / f"{rel.stem}{suffix}{ext}"


def _write_reports(out_dir: Path, rows: list[dict], meta: dict) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    jp = out_dir / "report.json"
    tmp = jp.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"meta": meta, "faces": rows}, indent=1, default=str))
    os.replace(tmp, jp)
    cp = out_dir / "report.csv"
    tmp = cp.with_suffix(".csv.tmp")
    extra = sorted({k for r in rows for k in r} - set(REPORT_FIELDS))
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=REPORT_FIELDS + extra, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in r.items()})
    os.replace(tmp, cp)
    return jp


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def run_op(op: Operation, inputs: list[str | Path], out_dir: str | Path, options: dict | None = None,
           suffix: str = "", overwrite: bool = False, progress: bool = True, max_pixels: int | None = None,
           fmt: str | None = None) -> JobSummary:
    from tqdm import tqdm

    from .io import iter_images, read_photo, stored_like, write_image

    opts = op.parse_options(options)
    out_dir = Path(out_dir)
    jobs: list[tuple[Path, Path]] = []
    for inp in inputs:
        p = Path(inp)
        if not p.exists():
            raise InputNotFoundError(f"input not found: {p}")
        root = p if p.is_dir() else None
        for f in iter_images(p):
            dst = output_path_for(f, root, out_dir, suffix)
            if fmt:
                dst = dst.with_suffix("." + fmt.lower().lstrip("."))
            jobs.append((f, dst))
    in_set = {f.resolve() for f, _ in jobs}
    for f, dst in jobs:
        if dst.resolve() in in_set:
            raise OutputExistsError(f"output {dst} would overwrite an input photo; choose another output folder")

    # resume: keep rows of photos whose outputs exist
    rows: list[dict] = []
    rp = out_dir / "report.json"
    done_outputs: set[str] = set()
    if rp.exists() and not overwrite:
        try:
            prev = json.loads(rp.read_text())["faces"]
            for r in prev:
                if r.get("output") and Path(r["output"]).exists():
                    rows.append(r)
                    done_outputs.add(r["output"])
        except (json.JSONDecodeError, KeyError, TypeError):
            rows = []
    meta = {"operation": op.name, "options": opts, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "inputs": [str(i) for i in inputs]}
    s = JobSummary()
    bar = tqdm(jobs, disable=not progress, desc=op.name, unit="photo")
    for src, dst in bar:
        if str(dst) in done_outputs and dst.exists():
            s.skipped += 1
            continue
        rows = [r for r in rows if r.get("file") != str(src)]
        t0 = time.perf_counter()
        try:
            photo = read_photo(src, max_pixels=max_pixels)
            seeded = {"seed": photo_seed(opts["seed"], _rel(dst, out_dir))} if opts.get("seed") is not None else {}
            res = op.run(photo.rgb, **{**opts, **seeded})
            dst.parent.mkdir(parents=True, exist_ok=True)
            # the input's transparency and grey mode come back (the operation works on RGB over white)
            write_image(dst, stored_like(photo, res.image, dst.suffix), synthetic=res.synthetic, overwrite=True,
                        protect=[src],
                        info={"operation": op.name, "options": json.dumps(opts),
                              "faces": json.dumps(res.faces, default=str)[:4000]})
            for r in res.faces:
                rows.append({"file": str(src), "output": str(dst), **r})
            s.processed += 1
            s.faces += len(res.faces)
        except FaceganError as e:
            s.failed += 1
            s.errors.append((str(src), e.code, str(e)))
            rows.append({"file": str(src), "output": None, "status": "failed", "error": f"{e.code}: {e}",
                         "time_s": round(time.perf_counter() - t0, 3)})
        s.report = _write_reports(out_dir, rows, meta)
        bar.set_postfix(faces=s.faces, failed=s.failed)
    if s.report is None:
        s.report = _write_reports(out_dir, rows, meta)
    return s
