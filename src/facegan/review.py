"""Review sheets for a batch job: every changed face's original and output side by side, with the proof
the report holds for it, the faces that need a look first — so a person can check an anonymized
data set by eye (``facegan report sheet OUT``).

A face is flagged when the report says a check failed or could not be made: the identity model
(dlib) or the second one (faceres) still calls it the same person, a gender judge does not read it as
the target, the two judges read the original differently (the direction may be wrong), it was
blurred as a fallback or for being too small. Failed photos have no output and are only counted.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FLAGS = (  # (row field, value that flags the face, label)
    ("same_person", True, "dlib: same"),
    ("same_person_2", True, "faceres: same"),
    ("reads_as_target", False, "judge: not target"),
    ("resnet_reads_as_target", False, "judge 2: not target"),
    ("judges_disagree_before", True, "judges disagree"),
    ("fallback", "blur", "fallback blur"),
    ("too_small", True, "too small"),
)


def _drawable(text: str) -> str:
    """``text`` in the characters Pillow's built-in font draws: accents dropped (é -> e), anything else '?'
    (it draws a box for them; the file names stay exact in the report)."""
    import unicodedata

    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return plain.encode("ascii", "replace").decode("ascii")


def _report_path(out_dir: Path, name: str = "report.json") -> Path:
    """``out_dir/name``, or an error that says what to do: run a job there, or merge its shards first."""
    from .errors import InputNotFoundError

    rp = Path(out_dir) / name
    if not rp.is_file():
        if any(Path(out_dir).glob("report.shard-*.jsonl")):
            raise InputNotFoundError(f"{rp}: only shard reports in {out_dir}; join them first: facegan report merge {out_dir}")
        raise InputNotFoundError(f"{rp}: no report (run an op with -o {out_dir} first)")
    return rp


def flags_of(row: dict) -> list[str]:
    return [label for key, bad, label in FLAGS if key in row and row[key] == bad]


def _crop(rgb: np.ndarray, box, grow: float = 0.25) -> np.ndarray:
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    x0, x1 = int(max(0, x0 - grow * w)), int(min(rgb.shape[1], x1 + grow * w))
    y0, y1 = int(max(0, y0 - grow * h)), int(min(rgb.shape[0], y1 + grow * h))
    return rgb[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else rgb


def review_sheets(out_dir: str | Path, dest: str | Path | None = None, flagged_only: bool = False,
                  per_page: int = 40, size: int = 128, report: str = "report.json") -> dict:
    """Writes ``review-NNN.jpg`` pages into ``dest`` (default ``OUT/review``): per face the original
    and the output (the face's box grown by a quarter), under them the file, the identity similarities
    and the flags; flagged faces first. Returns counts and the pages written."""
    from PIL import Image, ImageDraw

    from .io import read_image

    out_dir = Path(out_dir)
    rp = _report_path(out_dir, report)
    rows = json.loads(rp.read_text())["faces"]
    faces = [r for r in rows if r.get("output") and r.get("box")]
    failed = sum(r.get("status") == "failed" for r in rows)
    items = sorted(((flags_of(r), i, r) for i, r in enumerate(faces)), key=lambda t: (not t[0], t[1]))
    if flagged_only:
        items = [t for t in items if t[0]]
    dest = Path(dest) if dest else out_dir / "review"
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("review-*.jpg"):
        old.unlink()
    cols, cap = 4, 60  # faces per row; caption height in px
    tw, th = 2 * size + 6, size + cap
    pages, cache = [], {}

    def photo(path, frame=None):  # a video row: its keyframe (the frame the face was decided on)
        if (path, frame) not in cache:
            cache.clear()  # one original / output pair held at a time (rows of a photo are adjacent)
            cache[(path, frame)] = read_image(path) if frame is None else _video_frame(path, int(frame))
        return cache[(path, frame)]

    for p0 in range(0, len(items), per_page):
        chunk = items[p0:p0 + per_page]
        rows_n = (len(chunk) + cols - 1) // cols
        sheet = Image.new("RGB", (cols * tw, rows_n * th), (24, 24, 24))
        draw = ImageDraw.Draw(sheet)
        for k, (flags, _, r) in enumerate(chunk):
            x, y = (k % cols) * tw, (k // cols) * th
            try:
                kf = r.get("keyframe")
                a, b = _crop(photo(r["file"], kf), r["box"]), _crop(photo(r["output"], kf), r["box"])
            except Exception as e:  # an input moved or unreadable since: say so in the tile
                draw.text((x + 4, y + 4), f"unreadable: {type(e).__name__}", fill=(255, 120, 120))
                continue
            for j, c in enumerate((a, b)):
                im = Image.fromarray(c).resize((size, size))
                sheet.paste(im, (x + j * (size + 2), y))
            sim = r.get("identity_similarity")
            sim2 = r.get("identity_similarity_2")
            line1 = f"{_drawable(Path(r['file']).name)[:30]} #{r.get('face', 0)}"
            line2 = " ".join(s for s in (f"dlib {sim:.2f}" if isinstance(sim, (int, float)) else "",
                                         f"faceres {sim2:.2f}" if isinstance(sim2, (int, float)) else "",
                                         f"-> {r.get('gender_after', '?')}") if s)
            draw.text((x + 4, y + size + 2), line1, fill=(230, 230, 230))
            draw.text((x + 4, y + size + 15), line2, fill=(200, 200, 200))
            if flags:
                lines, cur = [], ""
                for f in flags:  # wrapped to the tile's width (~6 px a character)
                    if cur and len(cur) + 2 + len(f) > (tw - 8) // 6:
                        lines.append(cur)
                        cur = f
                    else:
                        cur = f"{cur}; {f}" if cur else f
                lines.append(cur)
                for j, text in enumerate(lines[:2]):
                    draw.text((x + 4, y + size + 28 + 13 * j), text, fill=(255, 110, 90))
                draw.rectangle((x, y, x + tw - 3, y + size - 1), outline=(255, 80, 60), width=2)
        path = dest / f"review-{p0 // per_page + 1:03d}.jpg"
        sheet.save(path, quality=88)
        pages.append(str(path))
    return {"faces": len(faces), "flagged": sum(bool(t[0]) for t in items) if not flagged_only else len(items),
            "failed_photos": failed, "pages": pages}


def _video_frame(path, index: int) -> np.ndarray:
    from .io.video import iter_frames, probe_video

    for t, frame in enumerate(iter_frames(probe_video(path))):
        if t == index:
            return frame
    raise IndexError(f"{path}: no frame {index}")


RATES = (  # (row field, name in the summary): the checks a job's rows carry, as rates over the faces that have them
    ("reads_as_target", "reads_as_target"),
    ("resnet_reads_as_target", "reads_as_target_second_judge"),
    ("same_person", "still_same_person"),
    ("same_person_2", "still_same_person_second_model"),
)


def summarize_job(out_dir: str | Path) -> dict:
    """A finished (or stopped) job's report in numbers: photos, faces by status, and each check's rate with its
    95% Wilson interval, over all faces and per direction (``facegan report summary OUT``) — the data set's proof
    in one place. Rates count the faces whose row has the check (changed faces; kept, too-small and unchanged
    faces have none)."""
    from .evaluate.harness import wilson

    rp = _report_path(Path(out_dir))
    rows = json.loads(rp.read_text())["faces"]
    failed = [r for r in rows if r.get("status") == "failed"]
    faces = [r for r in rows if r.get("status") != "failed"]
    status: dict[str, int] = {}
    for r in faces:
        key = str(r.get("status") or "unknown").split(" (")[0]
        status[key] = status.get(key, 0) + 1

    def rates(group: list[dict]) -> dict:
        out = {}
        for field, name in RATES:
            vals = [bool(r[field]) for r in group if isinstance(r.get(field), bool)]
            if vals:
                p = float(np.mean(vals))
                lo, hi = wilson(p, len(vals))
                out[name] = {"n": len(vals), "count": int(sum(vals)), "rate": round(p, 4),
                             "interval_95": [round(lo, 4), round(hi, 4)]}
        sims = [float(r["identity_similarity"]) for r in group if isinstance(r.get("identity_similarity"), (int, float))]
        if sims:
            out["identity_similarity_mean"] = round(float(np.mean(sims)), 4)
        return out

    by_target = {}
    for t in sorted({r.get("target") for r in faces if r.get("target") in ("male", "female")}):
        group = [r for r in faces if r.get("target") == t]
        by_target[f"towards {t}"] = {"faces": len(group), **rates(group)}
    return {"report": str(rp), "photos": len({r.get("file") for r in rows}), "failed_photos": len(failed),
            "faces": len(faces), "by_status": status, **rates(faces), **({"by_direction": by_target} if by_target else {})}

