"""``facegan data``: data preparation (aligned UTKFace caches for training and evaluation)."""
from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("data", context_settings={"help_option_names": ["-h", "--help"]})
def command():
    """Prepare training / evaluation data.

    \b
    Examples:
      facegan data utkface-cache ../shared/datasets/utkface-200 cache/utk200_utkface128.npz --size 128
      facegan data utkface-cache ../shared/datasets/utkface-64 cache/utk64_utkface64.npz --size 64
      facegan data info cache/utk64_utkface64.npz
      facegan data preview cache/utk64_utkface64.npz grid.png --n 48
      facegan data ksame-bank my-faces/ my-bank/      # then FACEGAN_KSAME_BANK=my-bank facegan anonymize ...
    """


@command.command("utkface-cache")
@click.argument("src", type=click.Path())
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--size", type=click.IntRange(16, 1024), default=128, show_default=True, help="crop side in px")
@click.option("--template", type=click.Choice(["utkface", "ffhq", "arcface"]), default="utkface",
              show_default=True, help="crop template (faces/templates.json)")
@click.option("--min-age", type=int, default=0, show_default=True)
@click.option("--max-age", type=int, default=200, show_default=True)
@click.option("--overwrite", is_flag=True, help="replace OUT if it exists")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
def utkface_cache(src, out, size, template, min_age, max_age, overwrite, quiet):
    """Detect, align and store every labelled face of the UTKFace folder SRC in OUT (.npz).

    Keys: crops (N, size, size, 3) uint8, age, gender (0 male, 1 female), race, stem, name,
    split ("train"/"test" by a hash of the DATETIME stem), detected (False: landmarks were fitted
    on a whole-image box because the detector missed). Prints a JSON summary.
    """
    from ..errors import ConfigError, InputNotFoundError, OutputExistsError
    from ..train.utkface import build_aligned_cache, scan

    srcp, outp = Path(src), Path(out)
    if not srcp.is_dir():
        raise InputNotFoundError(f"{src} is not a folder")
    if outp.suffix != ".npz":
        raise ConfigError(f"OUT must end in .npz, got {out}")
    if outp.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists (use --overwrite to replace it)")
    if not scan(srcp, min_age, max_age):
        raise InputNotFoundError(f"no UTKFace-named images (AGE_GENDER_RACE_DATETIME.jpg) in {src}")
    # write next to OUT and rename, so an interrupted run never leaves a truncated cache behind
    tmp = outp.with_name(outp.stem + ".partial.npz")
    res = build_aligned_cache(srcp, tmp, template=template, size=size, min_age=min_age, max_age=max_age,
                              progress=not quiet)
    tmp.replace(outp)
    res["path"] = str(outp)
    click.echo(json.dumps(res))


def _summary(path: str) -> dict:
    import numpy as np

    from ..errors import InputNotFoundError
    from ..train.utkface import load_cache

    if not Path(path).exists():
        raise InputNotFoundError(f"{path} not found")
    d = load_cache(path)
    out = {"path": path, "n": int(len(d["gender"])), "size": int(d["crops"].shape[1]),
           "template": str(d.get("template", "")), "detected": int(d["detected"].sum())}
    for sp in ("train", "test"):
        m = d["split"] == sp
        out[sp] = {"n": int(m.sum()), "male": int((m & (d["gender"] == 0)).sum()),
                   "female": int((m & (d["gender"] == 1)).sum()),
                   "age_13_plus": int((m & (d["age"] >= 13)).sum()),
                   "race": {str(int(r)): int((m & (d["race"] == r)).sum()) for r in np.unique(d["race"])}}
    return out


@command.command("info")
@click.argument("cache", type=click.Path())
def info(cache):
    """Counts of an aligned cache: split, gender, ages 13+, race (-1 = unlabelled), detected."""
    click.echo(json.dumps(_summary(cache), indent=2))


@command.command("preview")
@click.argument("cache", type=click.Path())
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--n", type=click.IntRange(1, 400), default=48, show_default=True)
@click.option("--undetected", is_flag=True, help="only faces the detector missed")
@click.option("--seed", type=int, default=0)
@click.option("--overwrite", is_flag=True)
def preview(cache, out, n, undetected, seed, overwrite):
    """Write a PNG grid of N random crops from CACHE (to look at the alignment)."""
    import numpy as np
    from PIL import Image

    from ..errors import InputNotFoundError, OutputExistsError
    from ..train.utkface import load_cache

    if not Path(cache).exists():
        raise InputNotFoundError(f"{cache} not found")
    if Path(out).exists() and not overwrite:
        raise OutputExistsError(f"{out} exists (use --overwrite to replace it)")
    d = load_cache(cache)
    pool = np.where(~d["detected"])[0] if undetected else np.arange(len(d["gender"]))
    if len(pool) == 0:
        raise InputNotFoundError("no crops to show")
    idx = np.random.default_rng(seed).choice(pool, min(n, len(pool)), replace=False)
    cols = min(12, len(idx))
    rows = -(-len(idx) // cols)
    s = d["crops"].shape[1]
    grid = np.zeros((rows * s, cols * s, 3), np.uint8)
    for k, i in enumerate(idx):
        r, c = divmod(k, cols)
        grid[r * s:(r + 1) * s, c * s:(c + 1) * s] = d["crops"][i]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(out)
    click.echo(json.dumps({"path": out, "n": int(len(idx))}))


@command.command("ksame-bank")
@click.argument("src", type=click.Path())
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--name", default=None, help="the bank's name in reports (default: OUT's folder name)")
@click.option("--components", type=click.IntRange(8, 512), default=128, show_default=True,
              help="PCA components (at most the number of faces)")
@click.option("--overwrite", is_flag=True, help="replace OUT's bank if there is one")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
def ksame_bank(src, out, name, components, overwrite, quiet):
    """Build a k-Same bank for `anonymize` from your own faces: SRC holds male/ and female/ folders of
    photos (the largest face of each is used), or is a cache from `facegan data utkface-cache` (every
    face, its gender label). Only a PCA basis and each face's coordinates are stored, no photo. Use it
    with FACEGAN_KSAME_BANK=OUT (the shipped bank is UTKFace's: non-commercial terms)."""
    import numpy as np

    from ..errors import ConfigError, InputNotFoundError, OutputExistsError
    from ..faces.ksame import K, build_bank, crops_from_folder, save_bank

    srcp, outp = Path(src), Path(out)
    if (outp / "model.safetensors").exists() and not overwrite:
        raise OutputExistsError(f"{out} already holds a bank (use --overwrite to replace it)")
    missed = 0
    if srcp.is_file() and srcp.suffix == ".npz":
        d = np.load(srcp, allow_pickle=False)
        if int(d["size"]) != 128 or str(d["template"]) != "utkface":
            raise ConfigError("the cache must hold 128 px crops on the utkface template (--size 128)")
        crops, labels = d["crops"], d["gender"].astype(np.int64)
    elif srcp.is_dir():
        crops, labels, missed = crops_from_folder(srcp, progress=not quiet)
    else:
        raise InputNotFoundError(f"{src}: not a folder with male/ and female/, nor an .npz cache")
    counts = [int((labels == g).sum()) for g in (0, 1)]
    if min(counts) < 1:
        raise ConfigError(f"{src}: faces found per group (male, female): {counts}; each needs some")
    manifest = save_bank(build_bank(crops, labels, components), outp, name or outp.name,
                         extra={"source": str(srcp), "images_without_face": missed})
    if min(counts) < K:
        click.echo(f"warning: fewer than {K} faces in a group ({counts}): k-Same then averages all of "
                   "them, which identifies less", err=True)
    click.echo(json.dumps(manifest))
