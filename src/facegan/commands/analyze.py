"""``facegan analyze``: faces, landmarks, gender, age, expression (and identity embeddings) as JSON.

Errors: a single photo given on its own raises its FaceganError (the CLI maps it to an exit code).
With a folder or several inputs each photo's error is reported in its JSON record
(``"error": {"code", "message", "exit_code"}``), the rest go on, and the command exits at the end
with the first failure's exit code. A photo with no face is not an error here (``"faces": []``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

# CenterFace: same hits as dlib-hog on the portraits, 96/96 vs 57/96 faces on multi-face collages
# with small and rotated faces (benchmarks/results/pipeline.md)
DEFAULT_DETECTOR = "centerface"


# -- shared with ``align`` ---------------------------------------------------------------------
def expand_inputs(inputs) -> tuple[list[tuple[Path, Path]], bool]:
    """[(file, path relative to its input root)] and whether per-file errors are collected
    (True for folders or several inputs; False for a single photo, whose error propagates)."""
    from ..io import iter_images

    items: list[tuple[Path, Path]] = []
    collect = len(inputs) > 1
    for inp in inputs:
        p = Path(inp)
        if p.is_dir():
            collect = True
            items += [(f, f.relative_to(p)) for f in iter_images(p)]
        else:  # a missing file raises InputNotFoundError when read
            items.append((p, Path(p.name)))
    return items, collect


def error_record(e: Exception) -> dict:
    from ..errors import FaceganError

    if isinstance(e, FaceganError):
        return {"code": e.code, "message": str(e), "exit_code": e.exit_code}
    return {"code": "error", "message": f"{type(e).__name__}: {e}", "exit_code": 1}


def progress(items, quiet: bool, desc: str):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="photo", file=sys.stderr, disable=quiet or len(items) < 2)


def out_path(folder: Path, rel: Path, suffix: str, used: set) -> Path:
    """``folder/<rel without extension><suffix>.png``, made unique within one run."""
    base = folder / rel.parent / (rel.stem + suffix)
    p, k = base.with_name(base.name + ".png"), 1
    while p in used:
        p, k = base.with_name(f"{base.name}-{k}.png"), k + 1
    used.add(p)
    return p


# -- analysis ------------------------------------------------------------------------------------
def analyze_image(rgb: np.ndarray, *, detector: str = DEFAULT_DETECTOR, landmarks: int = 5,
                  embedding: bool = False, references=None) -> list[dict]:
    """Per face: box, score, detector, landmarks5 (and landmarks68), then every judge's fields; with ``references``
    (a :class:`~facegan.faces.keep.KeepList`) its dlib distance to the nearest one (``reference_distance``)."""
    from ..faces.detect import add_landmarks68, detect_faces
    from ..judges import analyze_face

    faces = detect_faces(rgb, detector=detector)
    faces.sort(key=lambda f: (f.box[0], f.box[1]))  # left to right: stable face indices
    out = []
    for i, f in enumerate(faces):
        if landmarks == 68:
            add_landmarks68(rgb, f)
        d = {"index": i, **f.to_dict()}
        d.update(analyze_face(rgb, f, embedding=embedding))
        if references:
            from ..judges.identity import get_identity

            d["reference_distance"] = round(references.nearest(get_identity().embed(rgb, f)), 4)
        out.append(d)
    return out


def annotate(rgb: np.ndarray, faces: list[dict]) -> np.ndarray:
    """Boxes, landmarks and a label (gender p_female, age, expression) drawn on a copy."""
    import cv2

    img = rgb.copy()
    h, w = img.shape[:2]
    t = max(1, round(max(h, w) / 500))
    for f in faces:
        x0, y0, x1, y1 = (int(round(v)) for v in f["box"])
        fs = float(np.clip((x1 - x0) / 320, 0.35, 1.6))  # label about as wide as the face
        col = (230, 60, 160) if f.get("gender") == "female" else (40, 140, 255)
        cv2.rectangle(img, (x0, y0), (x1, y1), col, t, cv2.LINE_AA)
        for key, r, c in (("landmarks68", t, (255, 255, 0)), ("landmarks5", t + 1, (0, 255, 0))):
            for x, y in f.get(key, []):
                cv2.circle(img, (int(round(x)), int(round(y))), r, c, -1, cv2.LINE_AA)
        label = f"#{f['index']} {f.get('gender', '?')[:1].upper()} {f.get('p_female', 0):.2f} " \
                f"{f.get('age', 0):.0f}y {f.get('expression', '')}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, fs, max(1, t - 1))
        ty = y0 - 4 if y0 - th - base - 4 > 0 else min(y1 + th + 4, h - base)
        tx = min(max(x0, 0), max(w - tw - 2, 0))
        cv2.rectangle(img, (tx, ty - th - 2), (tx + tw + 2, ty + base), (0, 0, 0), -1)
        cv2.putText(img, label, (tx + 1, ty), cv2.FONT_HERSHEY_SIMPLEX, fs, (255, 255, 255),
                    max(1, t - 1), cv2.LINE_AA)
    return img


@click.command("analyze")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--json-out", type=click.Path(dir_okay=False), help="also write all records to this JSON file")
@click.option("--annotate", "annotate_dir", type=click.Path(file_okay=False),
              help="write an annotated PNG per photo into this folder")
@click.option("--detector", default=DEFAULT_DETECTOR, show_default=True,
              help="face detector: centerface (faces at any roll), centerface-upright (faster, faces within ~30 degrees of level), dlib-hog, dlib-cnn (slow)")
@click.option("--landmarks", type=click.Choice(["5", "68"]), default="5", show_default=True,
              help="68 adds dlib's iBUG points (that model's training data excludes commercial use)")
@click.option("--embedding", is_flag=True, help="include the 128-d identity embedding of each face")
@click.option("--reference", "references", multiple=True, type=click.Path(exists=True), metavar="PHOTO",
              help="a photo (or folder) of someone: each face gets its dlib distance to the nearest reference "
                   "(reference_distance) — what --keep-face / --only-face compare with --keep-distance (0.5)")
@click.option("--max-pixels", type=int, default=None, help="refuse larger images")
@click.option("--overwrite", is_flag=True, help="replace existing annotated images / JSON file")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
@click.pass_context
def command(ctx, inputs, json_out, annotate_dir, detector, landmarks, embedding, references, max_pixels, overwrite,
            quiet):
    """Find faces and judge them: box, score, landmarks, gender (p_female), age, expression.

    Prints one JSON object per photo (JSON Lines). PHOTO or DIR (recursive); several allowed.
    Photos that fail inside a folder are reported with an "error" field and the command exits
    with the first failure's code after the others are done.

    \b
    Examples:
      facegan analyze photo.jpg
      facegan analyze photos/ --json-out faces.json --annotate annotated/
      facegan analyze photo.jpg --detector dlib-hog --landmarks 68 --embedding
      facegan analyze group.jpg --reference me.jpg        each face's distance to me (for --keep-face)
    """
    from ..errors import OutputExistsError
    from ..faces.detect import get_detector
    from ..io import read_image, write_image

    get_detector(detector)  # unknown name -> ConfigError before any work
    refs = None
    if references:
        from ..faces.keep import KeepList

        refs = KeepList.from_paths(references)
        for note in refs.notes:
            click.echo(f"warning: {note}", err=True)
    if json_out and Path(json_out).exists() and not overwrite:
        raise OutputExistsError(f"{json_out}: already exists (use --overwrite)")
    items, collect = expand_inputs(inputs)
    records, first_fail, used = [], None, set()
    for path, rel in progress(items, quiet, "analyze"):
        rec = {"file": str(path)}
        try:
            rgb = read_image(path, max_pixels=max_pixels)
            rec.update(width=int(rgb.shape[1]), height=int(rgb.shape[0]), detector=detector)
            rec["faces"] = analyze_image(rgb, detector=detector, landmarks=int(landmarks),
                                         embedding=embedding, references=refs)
            if annotate_dir:
                p = out_path(Path(annotate_dir), rel, "", used)
                write_image(p, annotate(rgb, rec["faces"]), synthetic=False, overwrite=overwrite,
                            protect=[path], info={"facegan_annotated_from": path.name})
                rec["annotated"] = str(p)
        except Exception as e:  # noqa: BLE001 - reported per photo
            if not collect:
                raise
            rec["error"] = error_record(e)
            first_fail = first_fail or rec["error"]["exit_code"]
        records.append(rec)
        click.echo(json.dumps(rec))
    if json_out:
        doc = {"photos": records, "count": len(records),
               "failed": sum(1 for r in records if "error" in r),
               "faces": sum(len(r.get("faces", [])) for r in records)}
        Path(json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(json_out).write_text(json.dumps(doc, indent=1) + "\n")
    if first_fail:
        ctx.exit(first_fail)
