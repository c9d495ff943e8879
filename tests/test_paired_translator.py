"""swap-gender with a folder of per-direction generators (the pix2pix students distilled from the
attribute translator): engine checkpoints load, each face goes to its direction's generator, the
change is low-passed and scaled, and the CLI runs them like the shipped model."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from facegan.cli import main
from facegan.errors import ModelError


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    from facegan.train.config import load_config
    from facegan.train.trainer import train

    root = tmp_path_factory.mktemp("paired")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    names = np.array([f"f{i}" for i in range(6)])
    np.savez(root / "A.npz", crops=a, name=names)
    for tag, shift in (("male-to-female", 60), ("female-to-male", -60)):
        np.savez(root / f"{tag}_B.npz", crops=np.clip(a.astype(int) + shift, 0, 255).astype(np.uint8), name=names)
        cfg = load_config("pix2pix", [
            "size=32", "template=utkface", f"data.a.npz={root / 'A.npz'}", f"data.b.npz={root / f'{tag}_B.npz'}",
            "data.source=null", "data.degrade=null", "data.load_size=32", "model.ngf=4", "model.ndf=4",
            "train.steps=1", "train.batch=2", "threads=1", "train.sample_every=0"], out_dir=str(root / "m" / tag))
        train(cfg, progress=False)
    return root / "m"


def test_paired_translator_routes_each_face_to_its_direction(paired):
    from facegan.ops.translator_model import PairedTranslator, get_translator

    tr = get_translator(str(paired), backend="torch")
    assert isinstance(tr, PairedTranslator) and (tr.template, tr.size) == ("utkface", 32)
    crops = np.random.default_rng(1).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    out = tr.translate(crops, ["female", "male", "female"]).astype(int)
    # the same face to the same target gives the same result, whatever else is in the batch
    alone = tr.translate(crops[2:3], ["female"]).astype(int)
    assert np.array_equal(out[2], alone[0])
    assert np.abs(out - crops).mean() > 0.5  # the generators did change the crops
    none = tr.translate(crops, ["female", "male", "female"], strength=0.0).astype(int)
    assert np.abs(none - crops).max() <= 1
    # the change is low-passed: constant over each 2x2 cell before the bilinear upsampling smooths it
    d = out[0] - crops[0]
    assert np.abs(np.diff(d, axis=0)).mean() < np.abs(np.diff(crops[0].astype(int), axis=0)).mean()
    onnx = get_translator(str(paired), backend="onnx")
    assert np.abs(onnx.translate(crops, ["female", "male", "female"]).astype(int) - out).max() <= 1


def test_paired_folder_missing_a_direction_is_a_model_error(paired, tmp_path):
    shutil.copytree(paired / "male-to-female", tmp_path / "m" / "male-to-female")
    from facegan.ops.translator_model import get_translator

    with pytest.raises(ModelError, match="female-to-male"):
        get_translator(str(tmp_path / "m"))


def test_swap_gender_cli_with_paired_model(paired, fixtures_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGAN_GENDER_MODEL", str(paired))
    src = tmp_path / "happy1.jpg"
    shutil.copy(fixtures_dir / "happy1.jpg", src)
    r = CliRunner().invoke(main, ["swap-gender", str(src), "-o", str(tmp_path / "out"), "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    face = rep["faces"][0]
    assert face["model"] == f"paired:{paired}" and face["status"] == "changed"
