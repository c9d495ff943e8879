"""``facegan analyze`` on bad inputs: a one-line message on stderr, the error's exit code, no traceback.

The bad files come from the ``bad_inputs`` fixture (tests/conftest.py); each knows its error class,
whose ``exit_code`` the CLI must return.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from facegan.cli import main
from facegan.errors import EmptyFileError, InputNotFoundError
from facegan.io import ACCEPTED_EXTENSIONS, ACCEPTED_FORMATS

if "analyze" not in main.commands:  # the command lands with src/facegan/commands/analyze.py
    pytest.skip("`facegan analyze` is not available (facegan.commands.analyze missing)",
                allow_module_level=True)

CASES = ["empty", "gif", "gif_named_png", "animated_webp", "svg", "heic", "avif", "pdf", "ico",
         "text", "random", "truncated_jpeg", "corrupt_png", "bomb", "too_large", "missing"]


def run_cli(*args):
    return CliRunner().invoke(main, list(args))


def assert_clean_failure(result, exit_code):
    assert result.exit_code == exit_code, (result.exit_code, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


@pytest.mark.parametrize("case", CASES)
def test_single_bad_photo_exit_code(bad_inputs, case):
    bad = bad_inputs[case]
    result = run_cli("analyze", str(bad.path))
    assert_clean_failure(result, bad.error.exit_code)
    assert result.stdout == ""
    err = result.stderr.strip()
    assert err.startswith("error: ") and bad.path.name in err and "\n" not in err
    if bad.error.code == "unsupported_format":
        assert all(f in err for f in ACCEPTED_FORMATS)


def test_exit_codes_are_distinct(bad_inputs):
    codes = {b.error.__name__: b.error.exit_code for b in bad_inputs.values()}
    assert len(set(codes.values())) == len(codes) == 5, codes  # 5 error kinds, 5 codes
    assert 0 not in codes.values() and 1 not in codes.values()


def test_pixel_limit_option(portrait_path):
    result = run_cli("analyze", str(portrait_path), "--max-pixels", "1000")
    assert_clean_failure(result, 13)
    assert "megapixels" in result.stderr


def test_folder_of_bad_photos_reports_each_and_exits_with_first_code(bad_inputs):
    folder = bad_inputs["empty"].path.parent
    result = run_cli("analyze", str(folder), "-q")
    listed = [b for b in bad_inputs.values()
              if b.path.exists() and b.path.suffix.lower() in ACCEPTED_EXTENSIONS]
    records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(records) == len(listed)
    by_name = {r["file"].rsplit("/", 1)[-1]: r for r in records}
    for bad in listed:
        assert by_name[bad.path.name]["error"]["exit_code"] == bad.error.exit_code
    assert_clean_failure(result, records[0]["error"]["exit_code"])


def test_missing_folder(tmp_path):
    result = run_cli("analyze", str(tmp_path / "no-such-folder"))
    assert_clean_failure(result, InputNotFoundError.exit_code)


def test_real_process_stderr_and_exit_code(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "facegan.cli", "analyze", str(empty)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == EmptyFileError.exit_code
    assert proc.stdout == ""
    assert proc.stderr.strip() == f"error: {empty}: the file is empty (0 bytes)"
