"""Applies an operation to a photo, a folder (tree kept) or a list of photos.

- outputs never overwrite inputs; a folder's tree is mirrored under the output folder;
- resumable: a photo whose output already exists (and is recorded in the report) is skipped;
- ``report.json`` and ``report.csv`` hold one row per face (and one per failed photo). Every finished
  photo is appended to the journal ``report.jsonl`` (one line per photo, flushed), so an interrupted
  job — even a killed one — loses nothing already done and resumes from it; the two reports are
  rewritten atomically as the job goes (after every photo while that is cheap, then often enough to
  spend at most ~10% of the time on it: a 50,000-face report takes seconds to write) and when it ends
  or is interrupted.
"""
from __future__ import annotations

import csv
import json
import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, FaceganError, InputNotFoundError, OutputExistsError
from .ops.base import Operation, embeddable, photo_seed

REPORT_FIELDS = ["file", "output", "status", "error", "face", "box", "score", "gender_before", "p_female_before",
                 "p_female_before_1", "p_female_before_3", "p_female_before_probe", "source_judge", "age_before", "target", "gender_after", "p_female_after", "reads_as_target", "gender_judge",
                 "resnet_judge", "resnet_p_female_before", "resnet_p_female_after", "resnet_reads_as_target",
                 "judges_disagree_before", "unsure_source",
                 "identity_similarity", "identity_distance", "same_person", "identity_judge",
                 "identity_similarity_2", "same_person_2", "identity_judge_2", "model", "strength",
                 "strengths_tried", "reshape", "reshape_draws", "id_margin", "id_check", "ksame", "ksame_bank", "chroma", "eye_chroma", "keep_hair", "fallback", "too_small", "time_s"]


@dataclass
class JobSummary:
    processed: int = 0
    skipped: int = 0
    failed: int = 0
    faces: int = 0
    report: Path | None = None
    errors: list = field(default_factory=list)


def output_path_for(src: Path, root: Path | None, out_dir: Path, suffix: str) -> Path:
    from .io.video import is_video_path

    rel = src.relative_to(root) if root is not None else Path(src.name)
    ext = src.suffix.lower() if src.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp") else ".png"
    if is_video_path(src):
        ext = ".mp4"
    return out_dir / rel.parent / f"{rel.stem}{suffix}{ext}"


def _write_reports(out_dir: Path, rows: list[dict], meta: dict, stem: str = "report") -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    jp = out_dir / f"{stem}.json"
    tmp = jp.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"meta": meta, "faces": rows}, indent=1, default=str))
    os.replace(tmp, jp)
    cp = out_dir / f"{stem}.csv"
    tmp = cp.with_suffix(".csv.tmp")
    extra = sorted({k for r in rows for k in r} - set(REPORT_FIELDS))
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=REPORT_FIELDS + extra, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in r.items()})
    os.replace(tmp, cp)
    return jp


JOURNAL = "report.jsonl"
REPORT_SHARE = 0.1  # at most this share of a job's time goes to rewriting report.json / report.csv


def _finished(rows: list[dict]) -> bool:
    """A photo's rows say it is done: it has rows and every output they name exists."""
    return bool(rows) and all(r.get("output") and Path(r["output"]).exists() for r in rows)


def _read_journal(jl: Path, done: dict[str, list[dict]]) -> None:
    with open(jl, encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
                done[str(rec["file"])] = list(rec["rows"])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue


def _load_previous(out_dir: Path, stem: str = "report") -> dict[str, list[dict]]:
    """file -> its rows, from the journal (later lines win; a line cut short by a crash is ignored)
    or, for an output folder written before the journal existed, from ``report.json``."""
    jl = out_dir / f"{stem}.jsonl"
    done: dict[str, list[dict]] = {}
    if jl.exists():
        _read_journal(jl, done)
        return done
    rp = out_dir / f"{stem}.json"
    if rp.exists():
        try:
            for r in json.loads(rp.read_text())["faces"]:
                done.setdefault(str(r.get("file")), []).append(r)
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            return {}
    return done


def _previous_outputs(out_dir: Path) -> set[Path]:
    """The outputs this output folder's journals and reports record (every shard's), resolved."""
    found: dict[str, list[dict]] = {}
    if out_dir.is_dir():
        for jl in out_dir.glob("report.shard-*.jsonl"):
            _read_journal(jl, found)
        found.update(_load_previous(out_dir, "report"))  # report.jsonl, or an old folder's report.json
    return {Path(r["output"]).resolve() for rows in found.values() for r in rows
            if isinstance(r, dict) and r.get("output")}


def _unique_outputs(jobs: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """``jobs`` with no two writing one output: of the inputs that would (``a.bmp`` and ``a.png`` both give
    ``a.png``; ``x.jpg`` from two folders given one by one), the first already in the output's format keeps the
    name, the others add their own extension (``a.bmp.png``) or, where that is the same, a number (``x-2.jpg``)."""
    by_dst: dict[Path, list[int]] = {}
    for i, (_, dst) in enumerate(jobs):
        by_dst.setdefault(dst, []).append(i)
    taken = set(by_dst)
    out = list(jobs)
    for dst, idx in by_dst.items():
        if len(idx) < 2:
            continue
        keep = next((i for i in idx if jobs[i][0].suffix.lower() == dst.suffix), idx[0])
        for i in idx:
            if i == keep:
                continue
            src = jobs[i][0]
            cand = dst.with_name(f"{dst.stem}{src.suffix}{dst.suffix}") if src.suffix.lower() != dst.suffix else dst
            n = 2
            while cand in taken:
                cand = dst.with_name(f"{dst.stem}-{n}{dst.suffix}")
                n += 1
            taken.add(cand)
            out[i] = (src, cand)
    return out


def _rewrite_journal(out_dir: Path, by_file: dict[str, list[dict]], stem: str = "report") -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    jl = out_dir / f"{stem}.jsonl"
    tmp = jl.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for file, rows in by_file.items():
            f.write(json.dumps({"file": file, "rows": rows}, default=str) + "\n")
    os.replace(tmp, jl)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """"I/N" (0 <= I < N) -> (I, N); None or "" -> None."""
    if not text:
        return None
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ConfigError(f"shard must be I/N, e.g. 0/4, not {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ConfigError(f"shard {text!r}: need 0 <= I < N")
    return i, n


def in_shard(rel: str, shard: tuple[int, int] | None) -> bool:
    """Whether the photo whose output is ``rel`` (relative to the output folder) belongs to ``shard``: by a
    hash of that path, so every machine splits a folder the same way whatever order it lists it in."""
    return shard is None or zlib.crc32(rel.encode("utf-8")) % shard[1] == shard[0]


def report_stem(shard: tuple[int, int] | None) -> str:
    return "report" if shard is None else f"report.shard-{shard[0]}-of-{shard[1]}"


def merge_reports(out_dir: str | Path) -> tuple[Path, int, int]:
    """Joins the journals of a sharded job (``report.shard-I-of-N.jsonl``, and ``report.jsonl`` if any)
    into ``report.jsonl`` / ``report.json`` / ``report.csv``, so the folder reads — and resumes without
    shards — as one job's. A photo in several journals keeps a record whose outputs exist (the latest
    journal's first). The shard files are left in place. Returns (report.json, photos, rows)."""
    out_dir = Path(out_dir)
    journals = sorted(out_dir.glob("report.shard-*-of-*.jsonl"), key=lambda p: p.stat().st_mtime)
    if (out_dir / JOURNAL).exists():
        journals.insert(0, out_dir / JOURNAL)
    if not journals:
        raise InputNotFoundError(f"{out_dir}: no report journal (report.jsonl or report.shard-I-of-N.jsonl)")
    by_file: dict[str, list[dict]] = {}
    for jl in journals:
        recs: dict[str, list[dict]] = {}
        _read_journal(jl, recs)
        for file, rows in recs.items():
            if _finished(rows) or file not in by_file:
                by_file[file] = rows
    _rewrite_journal(out_dir, by_file)
    rows = [r for rs in by_file.values() for r in rs]
    meta = {"merged_from": [j.name for j in journals], "merged": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return _write_reports(out_dir, rows, meta), len(by_file), len(rows)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def _process(op: Operation, opts: dict, src: Path, dst: Path, out_dir: Path,
             max_pixels: int | None, progress: bool = False, keep=None) -> tuple[list[dict], tuple | None]:
    """One photo (or video, for ops that take them: ``facegan.video``): read, run the op, write the output.
    Returns its report rows and, for one that failed with a facegan error, (file, code, message). ``keep``: a
    :class:`~facegan.faces.keep.KeepList` of people whose faces stay as they are."""
    from .faces.keep import run_keeping
    from .io import read_photo, stored_like, write_image
    from .io.video import is_video_path

    t0 = time.perf_counter()
    try:
        if is_video_path(src) and getattr(op, "video", None):
            from .video import process_video

            rows = process_video(op, opts, src, dst, _rel(dst, out_dir), max_pixels=max_pixels, progress=progress,
                                 keep=keep)
            return [{"file": str(src), "output": str(dst), **r} for r in rows], None
        photo = read_photo(src, max_pixels=max_pixels)
        seeded = {"seed": photo_seed(opts["seed"], _rel(dst, out_dir))} if opts.get("seed") is not None else {}
        res = run_keeping(op, photo.rgb, {**opts, **seeded}, keep)
        dst.parent.mkdir(parents=True, exist_ok=True)
        # the input's transparency and grey mode come back (the operation works on RGB over white)
        write_image(dst, stored_like(photo, res.image, dst.suffix), synthetic=res.synthetic, overwrite=True,
                    protect=[src],
                    info={"operation": op.name, "options": json.dumps(embeddable(opts)),
                          "faces": json.dumps(embeddable(opts, res.faces)["faces"], default=str)[:4000]})
        return [{"file": str(src), "output": str(dst), **r} for r in res.faces], None
    except FaceganError as e:
        return ([{"file": str(src), "output": None, "status": "failed", "error": f"{e.code}: {e}",
                  "time_s": round(time.perf_counter() - t0, 3)}], (str(src), e.code, str(e)))


_MAIN_GUARD = ("with workers > 1 each worker is a fresh Python process that imports the calling script, so a script "
               "that calls run_op must do it under `if __name__ == \"__main__\":` (the CLI's --workers needs nothing)")


def _worker_init(threads: int) -> None:
    """A worker process of ``run_op(workers=N)``: its share of the cores (PyTorch and the ONNX
    Runtime sessions, which take PyTorch's thread count when they are made)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _process_by_name(name: str, opts: dict, src: Path, dst: Path, out_dir: Path, max_pixels: int | None, keep=None):
    from .ops import get_op

    return _process(get_op(name), opts, src, dst, out_dir, max_pixels, keep=keep)


def plan_jobs(op: Operation, inputs: list, out_dir: Path, suffix: str = "", fmt: str | None = None,
              shard: tuple[int, int] | None = None, overwrite: bool = False) -> tuple[list[tuple[Path, Path]], dict]:
    """(the (input, output) pairs of a job in order, the finished rows a re-run keeps: file -> rows). Reads the
    output folder's journal; writes nothing."""
    from .io import iter_images

    stem = report_stem(shard)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"{out_dir}: exists and is not a folder; give an output folder")
    out_res = out_dir.resolve()
    ours = _previous_outputs(out_dir)
    jobs: list[tuple[Path, Path]] = []
    for inp in inputs:
        p = Path(inp)
        if not p.exists():
            raise InputNotFoundError(f"input not found: {p}")
        root = p if p.is_dir() else None
        files = iter_images(p)
        if root is not None and getattr(op, "video", None):  # the op takes videos: a folder's too
            from .io.video import iter_videos

            files = sorted(files + iter_videos(p), key=lambda q: q.relative_to(p).as_posix())
        if root is not None:
            # an output folder inside the input folder (photos/ -o photos/anon/), or outputs written next to their
            # inputs (-o photos/ --suffix _anon): what this output folder's jobs wrote is not an input on a re-run
            inside = out_res != p.resolve() and p.resolve() in out_res.parents
            files = [f for f in files if not (inside and out_res in f.resolve().parents) and f.resolve() not in ours]
        for f in files:
            dst = output_path_for(f, root, out_dir, suffix)
            if fmt and dst.suffix != ".mp4":
                dst = dst.with_suffix("." + fmt.lower().lstrip("."))
            jobs.append((f, dst))
    # outputs named alike (a.bmp and a.png both give a.png) each get their own, before the shards split them
    jobs = [(f, dst) for f, dst in _unique_outputs(jobs) if in_shard(_rel(dst, out_dir), shard)]
    in_set = {f.resolve() for f, _ in jobs}
    for f, dst in jobs:
        if dst.resolve() in in_set:
            raise OutputExistsError(f"output {dst} would overwrite an input photo; choose another output folder")

    # resume: keep the rows of photos whose outputs exist (failed photos are tried again)
    by_file: dict[str, list[dict]] = {}
    if not overwrite:
        for file, rows in _load_previous(out_dir, stem).items():
            if _finished(rows):
                by_file[file] = rows
    return jobs, by_file


def run_op(op: Operation, inputs: list[str | Path], out_dir: str | Path, options: dict | None = None,
           suffix: str = "", overwrite: bool = False, progress: bool = True, max_pixels: int | None = None,
           fmt: str | None = None, workers: int = 1, shard: tuple[int, int] | str | None = None,
           keep=None, dry_run: bool = False) -> JobSummary | dict:
    """``workers`` > 1: photos are processed by that many worker processes (each loads the models once,
    a few seconds, and takes its share of the cores), for large folders; outputs and rows are the
    same as with one. Only for registered operations (``facegan.ops.get_op`` finds them by name).

    ``shard`` (I, N) or "I/N": only this machine's share of the photos (:func:`in_shard`: by a hash of
    each output path), with its own journal and reports (``report.shard-I-of-N.*``) so N machines can
    write into one shared output folder; :func:`merge_reports` (``facegan report merge``) joins them.

    ``keep``: a :class:`~facegan.faces.keep.KeepList` (``--keep-face``): its people's faces stay as they are, their
    rows say so; the job's meta names the reference photos.

    ``dry_run``: returns what the job would do (photos and videos to do, to skip as done, outputs renamed so that
    none is written twice, the first few pairs, the resolved options) as a dict, and writes nothing."""
    from tqdm import tqdm

    if int(workers) < 1:
        raise ConfigError(f"workers must be at least 1, not {workers}")
    if workers > 1:
        import multiprocessing

        if getattr(multiprocessing.current_process(), "_inheriting", False):
            # a worker process is starting and re-running the caller's script: stop before it touches the
            # output folder (its journal and reports belong to the job that started it)
            raise ConfigError(_MAIN_GUARD)
        from .ops import get_op

        if get_op(op.name) is not op:  # a worker process finds the op by name
            raise ConfigError(f"workers > 1 needs a registered operation; {op.name!r} is not the registered one")
    if isinstance(shard, str) or shard is None:
        shard = parse_shard(shard)
    else:
        shard = parse_shard(f"{shard[0]}/{shard[1]}")
    stem = report_stem(shard)
    opts = op.parse_options(options)
    out_dir = Path(out_dir)
    jobs, by_file = plan_jobs(op, inputs, out_dir, suffix, fmt, shard, overwrite)
    done_outputs = {r["output"] for rows in by_file.values() for r in rows}
    from .faces.centerface import detect_side_label

    side = detect_side_label()  # the detector's small-face pass on photos over 1024 px (--detect-side)
    if dry_run:  # what the job would do; nothing is written
        todo = [(f, d) for f, d in jobs if not (str(d) in done_outputs and d.exists())]
        renamed = [(f, d) for f, d in jobs if d.stem != f"{f.stem}{suffix}"]
        from .io.video import is_video_path

        return {"operation": op.name, "options": opts, "detect_side": side, "out": str(out_dir),
                "inputs": [str(i) for i in inputs], "photos": sum(not is_video_path(f) for f, _ in jobs), "videos": sum(is_video_path(f) for f, _ in jobs),
                "to_do": len(todo), "skip_done": len(jobs) - len(todo),
                "renamed": [{"file": str(f), "output": str(d)} for f, d in renamed],
                "first": [{"file": str(f), "output": str(d)} for f, d in todo[:5]],
                **({"shard": f"{shard[0]}/{shard[1]}"} if shard else {}),
                **({"only_face" if keep.only else "keep_face": keep.sources} if keep else {}), "dry_run": True}
    _rewrite_journal(out_dir, by_file, stem)  # compacted: what this run starts from
    meta = {"operation": op.name, "options": opts, "detect_side": side, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "inputs": [str(i) for i in inputs], **({"shard": f"{shard[0]}/{shard[1]}"} if shard else {}),
            **({"only_face" if keep.only else "keep_face": keep.sources, "keep_distance": keep.distance} if keep else {})}
    s = JobSummary()
    bar = tqdm(total=len(jobs), disable=not progress, desc=op.name, unit="photo")
    clock = {"last": time.perf_counter(), "cost": 0.0}

    def reports(force: bool = False) -> None:
        now = time.perf_counter()
        if force or clock["cost"] <= REPORT_SHARE * (now - clock["last"]):
            s.report = _write_reports(out_dir, [r for rows in by_file.values() for r in rows], meta, stem)
            clock["last"] = time.perf_counter()
            clock["cost"] = clock["last"] - now

    journal = open(out_dir / f"{stem}.jsonl", "a", encoding="utf-8")

    def record(src: Path, rows: list[dict], error: tuple | None) -> None:
        if error is None:
            s.processed += 1
            s.faces += len(rows)
        else:
            s.failed += 1
            s.errors.append(error)
        by_file[str(src)] = rows
        journal.write(json.dumps({"file": str(src), "rows": rows}, default=str) + "\n")
        journal.flush()
        reports()
        bar.set_postfix(faces=s.faces, failed=s.failed)

    pool = None
    futures: dict = {}
    recorded: set = set()
    try:
        todo = []
        for src, dst in jobs:
            if str(dst) in done_outputs and dst.exists():
                s.skipped += 1
                bar.update(1)
                continue
            by_file.pop(str(src), None)  # its rows from an earlier run (e.g. another output format) go
            todo.append((src, dst))
        if workers == 1 or len(todo) < 2:
            for src, dst in todo:
                record(src, *_process(op, opts, src, dst, out_dir, max_pixels, progress, keep))
                bar.update(1)
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed
            from concurrent.futures.process import BrokenProcessPool

            n = min(int(workers), len(todo))
            threads = max(1, (os.cpu_count() or 1) // n)
            # spawn: fresh interpreters (a forked PyTorch / OpenMP runtime can hang)
            pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_worker_init, initargs=(threads,))
            futures = {pool.submit(_process_by_name, op.name, opts, src, dst, out_dir, max_pixels, keep): src
                       for src, dst in todo}
            for fut in as_completed(futures):
                try:
                    result = fut.result()
                except BrokenProcessPool as e:
                    raise ConfigError("a worker process stopped before it could work (see its message above); "
                                      + _MAIN_GUARD) from e
                record(futures[fut], *result)
                recorded.add(fut)
                bar.update(1)
    finally:  # also when interrupted (Ctrl-C): the reports say what was done
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
            # photos the workers finished while the job was stopping: recorded too, not redone on resume
            for fut, src in futures.items():
                if fut not in recorded and fut.done() and not fut.cancelled() and fut.exception() is None:
                    record(src, *fut.result())
        bar.close()
        journal.close()
        reports(force=True)
    return s
