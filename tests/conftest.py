"""Shared test fixtures: real photos (tests/fixtures/, see SOURCES.md) and bad inputs made on the fly.

- ``fixtures_dir`` -> Path of tests/fixtures
- ``portrait_path`` -> a small real photo with one face (221x226); ``portrait_rgb`` -> its pixels
- ``portrait_paths`` -> every one-face fixture photo (6 files)
- ``same_person_pair`` -> (happy.jpg, sad.jpg): two photos of one person
- ``two_faces_path`` -> a 487x226 JPEG with two faces
- ``photo_copy`` -> a copy of ``portrait_path`` in tmp_path (for tests that write next to inputs)
- ``bad_inputs`` -> {case: BadInput(path, error)}: files that facegan.io must refuse, with the error
  class expected (``error.exit_code`` for the CLI, ``error.http_status`` for the API)
"""
from __future__ import annotations

import io
import os
import shutil
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")  # share the 2 CPU cores with the training

FIXTURES = Path(__file__).parent / "fixtures"
ONE_FACE = ["happy1.jpg", "art_18.jpg", "happy.jpg", "sad.jpg", "people_0.jpg", "full4.jpg"]


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def portrait_path() -> Path:
    return FIXTURES / "happy1.jpg"


@pytest.fixture(scope="session")
def portrait_paths() -> list[Path]:
    return [FIXTURES / n for n in ONE_FACE]


@pytest.fixture(scope="session")
def same_person_pair() -> tuple[Path, Path]:
    return FIXTURES / "happy.jpg", FIXTURES / "sad.jpg"


@pytest.fixture(scope="session")
def two_faces_path() -> Path:
    return FIXTURES / "two_faces.jpg"


@pytest.fixture
def portrait_rgb(portrait_path) -> np.ndarray:
    from facegan.io import read_image

    return read_image(portrait_path)


@pytest.fixture
def photo_copy(tmp_path, portrait_path) -> Path:
    dst = tmp_path / "input" / portrait_path.name
    dst.parent.mkdir()
    shutil.copy(portrait_path, dst)
    return dst


# ---- bad inputs -------------------------------------------------------------------------------

def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_with_size(png: bytes, width: int, height: int) -> bytes:
    """A copy of a PNG whose IHDR claims another size (CRC fixed): a decompression-bomb header."""
    assert png[12:16] == b"IHDR"
    ihdr = struct.pack(">II", width, height) + png[24:29]
    return png[:8] + png_chunk(b"IHDR", ihdr) + png[33:]


def small_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


@dataclass
class BadInput:
    path: Path
    error: type


def make_bad_inputs(folder: Path) -> dict[str, BadInput]:
    """Write one file per kind of bad input into ``folder``; return them with the expected error."""
    from PIL import Image, features

    from facegan.errors import (CorruptImageError, EmptyFileError, ImageTooLargeError,
                                InputNotFoundError, UnsupportedFormatError)

    folder.mkdir(parents=True, exist_ok=True)
    frames = [Image.new("RGB", (24, 24), c) for c in ((255, 0, 0), (0, 0, 255))]

    def encoded(fmt, **kw):
        buf = io.BytesIO()
        frames[0].save(buf, fmt, **kw)
        return buf.getvalue()

    photo = (FIXTURES / "happy1.jpg").read_bytes()
    rng = np.random.default_rng(0)
    avif = encoded("AVIF") if features.check("avif") else \
        b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(64)
    content = {  # case: (file name, bytes, expected error)
        "empty": ("empty.jpg", b"", EmptyFileError),
        "gif": ("anim.gif", encoded("GIF", save_all=True, append_images=frames[1:]),
                UnsupportedFormatError),
        "gif_named_png": ("really_a_gif.png", encoded("GIF"), UnsupportedFormatError),
        "animated_webp": ("animated.webp", encoded("WEBP", save_all=True, append_images=frames[1:]),
                          UnsupportedFormatError),
        "svg": ("drawing.svg", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
                b'width="10" height="10"><rect width="10" height="10"/></svg>\n', UnsupportedFormatError),
        "heic": ("phone.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64),
                 UnsupportedFormatError),
        "avif": ("image.avif", avif, UnsupportedFormatError),
        "pdf": ("scan.pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n%%EOF\n",
                UnsupportedFormatError),
        "ico": ("favicon.ico", encoded("ICO"), UnsupportedFormatError),
        "text": ("notes.jpg", b"this is a text file, not a photo\n", UnsupportedFormatError),
        "random": ("random.jpg", b"\x01" + rng.bytes(4095), UnsupportedFormatError),
        "truncated_jpeg": ("truncated.jpg", photo[: len(photo) * 2 // 5], CorruptImageError),
        "corrupt_png": ("garbage.png", b"\x89PNG\r\n\x1a\n" + rng.bytes(200), CorruptImageError),
        "bomb": ("bomb.png", png_with_size(small_png(), 30_000, 30_000), ImageTooLargeError),  # 900 MP
        "too_large": ("too_large.png", png_with_size(small_png(), 8_000, 6_000), ImageTooLargeError),
    }
    cases = {}
    for case, (name, data, error) in content.items():
        (folder / name).write_bytes(data)
        cases[case] = BadInput(folder / name, error)
    cases["missing"] = BadInput(folder / "missing.jpg", InputNotFoundError)
    return cases


@pytest.fixture
def bad_inputs(tmp_path) -> dict[str, BadInput]:
    return make_bad_inputs(tmp_path / "bad")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A real attr-translator checkpoint folder (tiny, random weights, non-zero domain affines), for
    tests of the swap-gender plumbing that must not depend on the shipped model's quality."""
    import torch

    from facegan.nets.translator import ResidualTranslator
    from facegan.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    G = ResidualTranslator(2, ngf=8, n_blocks=1)
    with torch.no_grad():
        for n, p in G.named_parameters():
            if p.dim() == 2:  # DomainNorm2d (n_domains, C) affines: make the domains differ
                p.add_(torch.randn_like(p) * 0.3)
    d = tmp_path_factory.mktemp("tiny") / "last"
    save_checkpoint(d, {"G": G, "G_ema": G}, {}, {"step": 1, "config": {
        "domains": ["male", "female"], "ngf": 8, "n_blocks": 1, "size": 128}})
    return d
