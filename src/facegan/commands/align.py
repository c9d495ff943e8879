"""``facegan align``: aligned face crops ``<stem>_face<i>.png`` (faces indexed left to right).

A single photo with no face exits with NoFaceError (14); inside a folder such photos (and any
other failure) are reported in the summary and the command exits with the first failure's code.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from .analyze import DEFAULT_DETECTOR, error_record, expand_inputs, out_path, progress


@click.command("align")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="output folder")
@click.option("--size", type=click.IntRange(16, 4096), default=256, show_default=True, help="crop side in px")
@click.option("--template", type=click.Choice(["utkface", "ffhq", "arcface"]), default="ffhq",
              show_default=True, help="crop template (faces/templates.json)")
@click.option("--detector", default=DEFAULT_DETECTOR, show_default=True,
              help="face detector: centerface (faces at any roll), centerface-upright (faster, faces within ~30 degrees of level), dlib-hog, dlib-cnn (slow)")
@click.option("--max-pixels", type=int, default=None, help="refuse larger images")
@click.option("--overwrite", is_flag=True, help="replace existing crops")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
@click.pass_context
def command(ctx, inputs, out, size, template, detector, max_pixels, overwrite, quiet):
    """Write one aligned crop per face: OUT/<stem>_face<i>.png (folders mirrored inside OUT).

    Prints a JSON summary: crops written, per-photo face counts and errors.

    \b
    Examples:
      facegan align photo.jpg -o crops/
      facegan align photos/ -o crops/ --size 256 --template utkface
    """
    from ..errors import NoFaceError
    from ..faces.align import align_face
    from ..faces.detect import detect_faces, get_detector
    from ..io import read_image, write_image

    get_detector(detector)
    items, collect = expand_inputs(inputs)
    outdir = Path(out)
    written, photos, first_fail, used = [], [], None, set()
    for path, rel in progress(items, quiet, "align"):
        rec = {"file": str(path)}
        try:
            rgb = read_image(path, max_pixels=max_pixels)
            faces = sorted(detect_faces(rgb, detector=detector), key=lambda f: (f.box[0], f.box[1]))
            if not faces:
                raise NoFaceError(f"{path}: no face found")
            rec["crops"] = []
            for i, f in enumerate(faces):
                a = align_face(rgb, f, template, size)
                p = out_path(outdir, rel, f"_face{i}", used)
                write_image(p, a.crop, synthetic=False, overwrite=overwrite, protect=[path],
                            info={"facegan_aligned_from": path.name, "template": template,
                                  "matrix": [[round(float(v), 6) for v in r] for r in a.matrix]})
                rec["crops"].append(str(p))
                written.append(str(p))
        except Exception as e:  # noqa: BLE001 - reported per photo
            if not collect:
                raise
            rec["error"] = error_record(e)
            first_fail = first_fail or rec["error"]["exit_code"]
        photos.append(rec)
    click.echo(json.dumps({"crops": len(written), "template": template, "size": size, "out": str(outdir),
                           "failed": sum(1 for r in photos if "error" in r), "photos": photos}))
    if first_fail:
        ctx.exit(first_fail)
