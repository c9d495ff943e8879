"""The Python API (facegan/api.py): one call per photo or folder, the same pipeline, checks and metadata as the CLI."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

import facegan
from facegan.errors import ConfigError, FaceganError, OutputExistsError, UnsupportedFormatError
from facegan.io import read_image, read_metadata


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_photo_by_path_saved_like_the_cli_writes_it(tmp_path, portrait_path):
    before = sha(portrait_path)
    r = facegan.blur(portrait_path)
    assert r.operation == "blur" and r.image.shape == read_image(portrait_path).shape
    assert [f["status"] for f in r.faces] == ["blurred"]
    out = r.save(tmp_path / "o" / "p.jpg")
    meta = read_metadata(out)
    assert meta["software"].startswith("facegan") and json.loads(meta["facegan"]["options"]) == r.options
    with pytest.raises(OutputExistsError):
        r.save(out)  # an existing file: only with overwrite
    r.save(out, overwrite=True)
    with pytest.raises(OutputExistsError):
        r.save(portrait_path, overwrite=True)  # never the input
    assert sha(portrait_path) == before


def test_every_kind_of_input_gives_the_same_photo(tmp_path, portrait_path):
    rgb = read_image(portrait_path)
    pil = Image.open(portrait_path)
    for src in (portrait_path, str(portrait_path), portrait_path.read_bytes(), rgb, pil):
        photo, source = facegan.load(src)
        assert np.array_equal(photo.rgb, rgb), type(src)
    # a PIL image of a photo tagged as turned: upright, as read from its file
    turned = tmp_path / "turned.jpg"
    im = Image.fromarray(np.ascontiguousarray(np.rot90(rgb)))
    exif = im.getexif()
    exif[0x0112] = 8  # shown turned back by 90 degrees clockwise
    im.save(turned, exif=exif)
    assert facegan.load(Image.open(turned))[0].rgb.shape == facegan.load(turned)[0].rgb.shape == rgb.shape
    grey = facegan.load(rgb[..., 0])[0]
    assert grey.grey and grey.rgb.shape == rgb.shape
    with pytest.raises(ConfigError, match="uint8"):
        facegan.load(rgb.astype(np.float32) / 255)
    with pytest.raises(ConfigError, match="shape"):
        facegan.load(rgb[..., :2])
    with pytest.raises(UnsupportedFormatError):
        facegan.blur(b"GIF89a" + bytes(64))
    with pytest.raises(TypeError):
        facegan.load(42)


def test_transparency_comes_back_on_save(tmp_path, portrait_path):
    rgb = read_image(portrait_path)
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, : rgb.shape[1] // 4] = 0
    src = tmp_path / "a.png"
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(src)
    for r in (facegan.blur(src), facegan.blur(np.dstack([rgb, alpha]))):
        out = np.asarray(Image.open(r.save(tmp_path / f"o{id(r)}.png")))
        assert out.shape[2] == 4 and np.array_equal(out[..., 3], alpha)


def test_options_are_the_operations_own_and_checked(portrait_path):
    names = {o["name"]: o for o in facegan.operations()}
    assert {"swap-gender", "anonymize", "blur", "pixelate"} <= set(names)
    assert "strength" in {o["name"] for o in names["blur"]["options"]}
    assert facegan.pixelate(portrait_path, blocks=4).options["blocks"] == 4
    with pytest.raises(ConfigError, match="unknown option"):
        facegan.blur(portrait_path, blocks=4)
    with pytest.raises(FaceganError):
        facegan.process("no-such-op", portrait_path)


def test_folder_job_with_resume(tmp_path, portrait_path):
    import shutil

    d = tmp_path / "in" / "sub"
    d.mkdir(parents=True)
    shutil.copy(portrait_path, d / "p.jpg")
    s = facegan.process_folder("blur", tmp_path / "in", tmp_path / "out", progress=False, strength=0.5)
    assert (s.processed, s.failed) == (1, 0) and (tmp_path / "out" / "sub" / "p.jpg").exists()
    rows = json.loads((tmp_path / "out" / "report.json").read_text())["faces"]
    assert rows[0]["status"] == "blurred"
    assert facegan.process_folder("blur", [tmp_path / "in"], tmp_path / "out", progress=False).skipped == 1
    plan = facegan.process_folder("blur", tmp_path / "in", tmp_path / "planned", dry_run=True)
    assert plan["to_do"] == 1 and not (tmp_path / "planned").exists()


def test_detect_and_analyze(portrait_path):
    faces = facegan.detect(portrait_path)
    assert len(faces) == 1 and faces[0].width > 50
    (row,) = facegan.analyze(portrait_path)
    assert row["gender"] in ("male", "female") and 0 < row["age"] < 100 and row["expression"]
    assert "reference_distance" not in row
    (row,) = facegan.analyze(portrait_path, reference=portrait_path)
    assert row["reference_distance"] < 0.05


def test_anonymize_with_its_proof_and_no_secret_in_the_file(tmp_path, portrait_path):
    from facegan.ops import get_op

    if not get_op("anonymize").available():
        pytest.skip("translator not installed")
    r = facegan.anonymize(portrait_path, seed=3)
    (face,) = r.faces
    assert face["status"] == "changed" and face["same_person"] is False and "identity_similarity" in face
    assert r.synthetic and r.options["seed"] == 3
    meta = read_metadata(r.save(tmp_path / "a.png"))
    embedded = json.dumps(meta["facegan"])
    assert meta["synthetic"] and "seed" not in embedded and "_before" not in embedded


def test_no_api_name_is_also_a_submodule():
    """Importing a submodule sets the package attribute of its name: an API function called like one (``run``:
    facegan/run.py) would turn into the module once anything imported it."""
    import importlib.util

    assert [n for n in facegan._API if importlib.util.find_spec(f"facegan.{n}") is not None] == []


def test_a_video_path_points_to_process_folder(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    with pytest.raises(UnsupportedFormatError, match="process_folder"):
        facegan.blur(clip)

