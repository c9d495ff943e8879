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
