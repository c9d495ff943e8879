"""One CLI test per registered op: photo in, photo + report out, input untouched (facefusion-style:
every processor honours the same contract; see docs/ops.md)."""
from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from facegan.cli import main
from facegan.ops import get_op, list_ops


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", [o.name for o in list_ops()])
def test_every_op_from_the_cli_on_a_photo(tmp_path, portrait_path, name):
    op = get_op(name)
    if not op.available():
        pytest.skip(f"{name}: model not installed")
    before = sha(portrait_path)
    r = CliRunner().invoke(main, [name, str(portrait_path), "-o", str(tmp_path / "out"), "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["processed"] == 1
    assert (tmp_path / "out" / portrait_path.name).exists() and sha(portrait_path) == before
    rows = json.loads((tmp_path / "out" / "report.json").read_text())["faces"]
    assert rows and all(r["status"] != "failed" for r in rows)
    # the video contract (docs/ops.md): a "tracked" op must be able to re-decide a track
    assert op.video in (None, "frames", "tracked") and (op.video != "tracked" or op.repin is not None)


def test_a_failed_photo_is_named_once_with_its_reason(tmp_path, portrait_path):
    import shutil

    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(portrait_path, d / "ok.jpg")
    (d / "empty.jpg").write_bytes(b"")
    r = CliRunner().invoke(main, ["blur", str(d), "-o", str(tmp_path / "out"), "-q"])
    assert r.exit_code != 0
    errors = [line for line in r.output.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {d / 'empty.jpg'}: the file is empty (0 bytes)"]


def test_an_output_that_is_a_file_or_cannot_be_made_is_one_clear_line(tmp_path, portrait_path):
    """-o naming an existing file, or a folder under one, used to end in a Python traceback."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    r = CliRunner().invoke(main, ["blur", str(portrait_path), "-o", str(afile), "-q"])
    assert r.exit_code == 18 and r.output.strip() == f"error: {afile}: exists and is not a folder; give an output folder"
    r = CliRunner().invoke(main, ["blur", str(portrait_path), "-o", str(afile / "sub"), "-q"])
    assert r.exit_code == 1 and r.output.strip() == f"error: {afile / 'sub'}: Not a directory"
    assert afile.read_text() == "x"


def test_anonymize_warns_when_identity_models_still_match_a_face(tmp_path, portrait_path):
    """A weak setting (exactly 0.25, no k-Same, no reshape) leaves the face recognised: the job says so on stderr,
    with where to look and how to blur such faces; a face that is no longer matched gets no warning."""
    if not get_op("anonymize").available():
        pytest.skip("translator not installed")
    out = tmp_path / "weak"
    r = CliRunner().invoke(main, ["anonymize", str(portrait_path), "-o", str(out), "-q", "--strength", "0.25",
                                  "--ksame", "0", "--reshape", "0"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.splitlines()[-1])  # the summary stays the last line
    assert summary["still_same_person"] == 1
    (warning,) = [line for line in r.output.splitlines() if line.startswith("warning: ")]
    assert "dlib 1" in warning and f"report sheet {out} --flagged" in warning and "--fallback blur" in warning
    r = CliRunner().invoke(main, ["anonymize", str(portrait_path), "-o", str(tmp_path / "default"), "-q",
                                  "--seed", "1"])
    summary = json.loads(r.output.splitlines()[-1])
    assert summary["still_same_person"] == 0 and "warning:" not in r.output
