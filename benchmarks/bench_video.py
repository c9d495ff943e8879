#!/usr/bin/env python
"""Videos through the ops: time per frame, and how much the edit flickers — tracked and pinned (what
``facegan anonymize video.mp4`` does) against every frame edited as an independent photo.

    nice -n 10 python benchmarks/bench_video.py [--videos DIR] [--frames 100] [--out benchmarks/results/video]

Videos: the two talking-head clips of ``../shared/datasets/talking/video`` (512x512, 25 fps, one face
each), their first ``--frames`` frames. Per op and video:

- ``s_per_frame``: wall time of the whole job over its frames (three decodes, tracking, the keyframe
  decision and its check on 4 more frames, verification every second, H.264 encoding);
- ``flicker``: how much more the output changes from one frame to the next than the input does (mean
  absolute difference of consecutive frames inside the face box, grey levels, output minus input): about
  0 for an edit that moves with the face, more for one that shakes or switches between looks;
- ``looks``: for the per-frame photo path, how many distinct decisions its frames got (target, strength,
  k-Same factor, reshape size); the tracked path has one per face by construction;
- the tracked path's report: re-identified share of its verified frames (dlib / faceres), reads as target.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_pipeline import machine  # noqa: E402


def cut(src: Path, dst: Path, frames: int) -> Path:
    """The first ``frames`` frames of ``src`` re-encoded (no audio): the clip both paths start from."""
    import av

    with av.open(str(src)) as c, av.open(str(dst), "w") as o:
        s = c.streams.video[0]
        v = o.add_stream("libx264", rate=s.average_rate)
        v.width, v.height, v.pix_fmt = s.codec_context.width, s.codec_context.height, "yuv420p"
        v.options = {"crf": "16"}
        for i, fr in enumerate(c.decode(s)):
            if i >= frames:
                break
            for p in v.encode(av.VideoFrame.from_ndarray(fr.to_ndarray(format="rgb24"), format="rgb24")):
                o.mux(p)
        for p in v.encode():
            o.mux(p)
    return dst


def frames_of(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def flicker(inp: list[np.ndarray], out: list[np.ndarray], box) -> float:
    """How much more the output changes from one frame to the next than the input does, inside the face
    box (mean absolute grey-level difference of consecutive frames, output minus input): ~0 for an edit that
    moves with the face, larger for one that shakes or switches looks."""
    x0, y0, x1, y1 = (int(v) for v in box)

    def motion(fs):
        g = [f[y0:y1, x0:x1].astype(np.float32).mean(-1) for f in fs]
        return float(np.mean([np.abs(b - a).mean() for a, b in zip(g, g[1:])]))

    return round(motion(out) - motion(inp), 2)


def per_frame(op, clip: Path, out: Path) -> tuple[float, int, list[np.ndarray]]:
    """Every frame as an independent photo (the photo path): seconds, distinct looks, frames."""
    from facegan.errors import NoFaceError
    from facegan.io.video import VideoWriter, probe_video

    info = probe_video(clip)
    looks = set()
    t = time.perf_counter()
    with VideoWriter(out, info.fps, synthetic=True, operation=op.name) as w:
        for fr in frames_of(clip):
            try:
                res = op(fr)
                img = res.image
                for r in res.faces:
                    looks.add((r.get("target"), r.get("strength"), r.get("ksame"), r.get("reshape")))
            except NoFaceError:
                img = fr
            w.write(img)
        w.close()
    return time.perf_counter() - t, len(looks), frames_of(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", default=str(ROOT.parent / "shared" / "datasets" / "talking" / "video"))
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--ops", default="anonymize,swap-gender,blur")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "video"))
    a = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    from facegan.ops import get_op
    from facegan.run import run_op

    results = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-video-"))
    for src in sorted(Path(a.videos).glob("*.mp4")):
        clip = cut(src, tmp / src.name, a.frames)
        inp = frames_of(clip)
        for name in a.ops.split(","):
            op = get_op(name)
            try:
                op(inp[0])
            except Exception:  # noqa: BLE001 - a warm-up only
                pass
            od = tmp / f"{name}-{src.stem}"
            t = time.perf_counter()
            run_op(op, [clip], od, {"seed": 1} if name == "anonymize" else {}, progress=False)
            tracked_s = time.perf_counter() - t
            rows = json.loads((od / "report.json").read_text())["faces"]
            out = frames_of(od / src.name)
            box = rows[0]["box"]
            row = {"video": src.name, "op": name, "frames": len(inp), "tracks": len(rows),
                   "tracked_s_per_frame": round(tracked_s / len(inp), 3), "tracked_flicker": flicker(inp, out, box)}
            r0 = rows[0]
            for k in ("strength", "ksame", "check", "check_stronger_steps", "same_person_share", "same_person_2_share",
                      "reads_as_target_share", "resnet_reads_as_target_share"):
                if k in r0:
                    row[f"tracked_{k}"] = r0[k]
            if name != "blur":
                s, looks, pf = per_frame(op, clip, tmp / f"pf-{name}-{src.name}")
                row.update({"per_frame_s_per_frame": round(s / len(inp), 3), "per_frame_flicker": flicker(inp, pf, box),
                            "per_frame_looks": looks})
            print(json.dumps(row), flush=True)
            results.append(row)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"machine": machine(), "frames": a.frames, "results": results},
                                                   indent=1) + "\n")
    lines = ["| video | op | tracked s/frame | tracked flicker | per-frame s/frame | per-frame flicker | per-frame looks |"
             " re-id dlib / faceres (tracked, verified frames) |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        reid = (f"{r['tracked_same_person_share']:.0%} / {r.get('tracked_same_person_2_share', float('nan')):.0%}"
                if "tracked_same_person_share" in r else "-")
        lines.append(f"| {r['video']} | {r['op']} | {r['tracked_s_per_frame']} | {r['tracked_flicker']} | "
                     f"{r.get('per_frame_s_per_frame', '-')} | {r.get('per_frame_flicker', '-')} | "
                     f"{r.get('per_frame_looks', '-')} | {reid} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
