"""``facegan translate``: any generator through detect -> align -> translate -> paste back -> write."""
from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from facegan.cli import main
from facegan.io import is_synthetic, read_image, read_metadata
from facegan.nets.cyclegan import ResnetGenerator
from facegan.nets.translator import ResidualTranslator
from facegan.train.checkpoint import save_checkpoint


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def _randomize(net, seed=0):
    g = torch.Generator().manual_seed(seed)
    for p in net.parameters():
        p.data.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return net.eval()


@pytest.fixture
def resnet_ckpt(tmp_path):
    """A tiny random ResNet generator saved as a facegan checkpoint (engine meta schema)."""
    kw = {"ngf": 4, "n_blocks": 1}
    folder = tmp_path / "ckpt"
    save_checkpoint(folder, {"G_ema": _randomize(ResnetGenerator(**kw))}, meta={
        "method": "cyclegan", "step": 1, "domains": ["A", "B"],
        "generator": {"class": "ResnetGenerator", "kwargs": kw, "file": "G_ema.safetensors", "direction": "A->B"},
        "io": {"size": 64, "template": "utkface", "range": "-1,1"}})
    return folder


@pytest.fixture
def translator_ckpt(tmp_path):
    folder = tmp_path / "gender"
    save_checkpoint(folder, {"G_ema": _randomize(ResidualTranslator(2, ngf=4, n_blocks=1), seed=3)},
                    meta={"step": 1, "config": {"domains": ["male", "female"], "ngf": 4, "n_blocks": 1, "size": 64}})
    return folder


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _run(*args):
    return CliRunner().invoke(main, ["translate", *map(str, args)])


def test_single_photo_replace(resnet_ckpt, photo_copy, tmp_path):
    before = _sha(photo_copy)
    out = tmp_path / "out.png"
    r = _run("-m", resnet_ckpt, photo_copy, "-o", out)
    assert r.exit_code == 0, r.output
    assert "template utkface size 64 paste replace" in r.output and "(1 face)" in r.output
    assert _sha(photo_copy) == before  # the input is untouched
    src, dst = read_image(photo_copy), read_image(out)
    assert dst.shape == src.shape
    diff = np.abs(dst.astype(int) - src.astype(int)).max(axis=2)
    h, w = diff.shape
    # the random generator changed the face area a lot, the photo's corners not at all
    assert diff[h // 4: 3 * h // 4, w // 4: 3 * w // 4].mean() > 20
    assert diff[:10, :10].max() == 0 and diff[-10:, -10:].max() == 0
    meta = read_metadata(out)
    assert meta["synthetic"] is True
    assert meta["facegan"]["operation"] == "translate"
    # a second run refuses to overwrite the output
    r2 = _run("-m", resnet_ckpt, photo_copy, "-o", out)
    assert r2.exit_code == 18


def test_folder_keeps_tree_and_reports(resnet_ckpt, portrait_path, two_faces_path, tmp_path):
    from PIL import Image

    src = tmp_path / "photos"
    (src / "sub" / "deeper").mkdir(parents=True)
    shutil.copy(portrait_path, src / "a.jpg")
    shutil.copy(two_faces_path, src / "sub" / "deeper" / "two.jpg")
    Image.new("RGB", (160, 120), (128, 128, 128)).save(src / "sub" / "blank.bmp")  # no face; BMP in
    hashes = {p: _sha(p) for p in src.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    r = _run("-m", resnet_ckpt, src, "-o", out, "--paste", "residual")
    assert r.exit_code == 0, r.output
    assert (out / "a.jpg").exists() and (out / "sub" / "deeper" / "two.jpg").exists()
    assert not (out / "sub" / "blank.png").exists()
    assert "(2 faces)" in r.output and "2/3 photos translated" in r.output
    assert all(_sha(p) == h for p, h in hashes.items())
    assert is_synthetic(out / "sub" / "deeper" / "two.jpg")
    import json

    rep = json.loads((out / "translate_report.json").read_text())
    status = {row["input"].split("photos/")[1]: row for row in rep["files"]}
    assert status["sub/blank.bmp"]["error"] == "NoFaceError"
    assert len(status["sub/deeper/two.jpg"]["faces"]) == 2
    # re-running skips what exists (resumable)
    r2 = _run("-m", resnet_ckpt, src, "-o", out)
    assert r2.exit_code == 0 and "0/3 photos translated" in r2.output


def test_single_photo_without_face_exits_14(resnet_ckpt, tmp_path):
    from PIL import Image

    p = tmp_path / "blank.png"
    Image.new("RGB", (120, 120), (90, 90, 90)).save(p)
    r = _run("-m", resnet_ckpt, p, "-o", tmp_path / "o.png")
    assert r.exit_code == 14


def test_conditioned_needs_target_and_onnx_matches(translator_ckpt, portrait_path, tmp_path):
    r = _run("-m", translator_ckpt, portrait_path, "-o", tmp_path / "x.png")
    assert r.exit_code == 17 and "--target" in r.output
    a, b = tmp_path / "torch.png", tmp_path / "onnx.png"
    r1 = _run("-m", translator_ckpt, portrait_path, "-o", a, "--target", "female")
    assert r1.exit_code == 0, r1.output
    assert "paste residual" in r1.output and "target female" in r1.output  # residual translator default
    r2 = _run("-m", translator_ckpt, portrait_path, "-o", b, "--target", "female", "--onnx")
    assert r2.exit_code == 0, r2.output
    assert "onnxruntime" in r2.output
    pa, pb, src = read_image(a), read_image(b), read_image(portrait_path)
    assert np.abs(pa.astype(int) - src.astype(int)).max() > 10  # something changed
    assert np.abs(pa.astype(int) - pb.astype(int)).max() <= 1  # same pixels through ONNX Runtime


def test_exported_onnx_model_runs_directly(resnet_ckpt, portrait_path, tmp_path):
    onnx_path = tmp_path / "g.onnx"
    r = CliRunner().invoke(main, ["export", "--onnx", str(resnet_ckpt), "-o", str(onnx_path), "--dynamic"])
    assert r.exit_code == 0, r.output
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert _run("-m", resnet_ckpt, portrait_path, "-o", a).exit_code == 0
    r2 = _run("-m", onnx_path, portrait_path, "-o", b)
    assert r2.exit_code == 0, r2.output
    assert "template utkface size 64" in r2.output  # the io meta travels inside the .onnx file
    assert np.abs(read_image(a).astype(int) - read_image(b).astype(int)).max() <= 1
