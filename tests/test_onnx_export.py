"""ONNX export (``facegan export --onnx``) of tiny generators, checked with ONNX Runtime."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from facegan.cli import main
from facegan.export.onnx import OnnxGenerator, export_onnx, verify_onnx
from facegan.nets.cyclegan import ResnetGenerator
from facegan.nets.loading import load_generator
from facegan.nets.translator import ResidualTranslator
from facegan.train.checkpoint import save_checkpoint


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def _randomize(net, seed=0):
    g = torch.Generator().manual_seed(seed)
    for p in net.parameters():
        p.data.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return net.eval()


@pytest.fixture
def resnet_pth(tmp_path):
    net = _randomize(ResnetGenerator(ngf=4, n_blocks=2))
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(net.state_dict(), path)
    return path, net


@pytest.fixture
def translator_ckpt(tmp_path):
    net = _randomize(ResidualTranslator(2, ngf=4, n_blocks=1), seed=1)
    folder = tmp_path / "last"
    save_checkpoint(folder, {"G_ema": net}, meta={"step": 1, "config": {"domains": ["male", "female"], "ngf": 4,
                                                                         "n_blocks": 1, "size": 64}})
    return folder, net


def _x(n, size, seed=5):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def test_cli_export_resnet_dynamic(resnet_pth, tmp_path):
    pth, net = resnet_pth
    out = tmp_path / "model.onnx"
    r = CliRunner().invoke(main, ["export", "--onnx", str(pth), "-o", str(out), "--size", "64", "--dynamic"])
    assert r.exit_code == 0, r.output
    assert "max |onnxruntime - pytorch|" in r.output and "verified" in r.output
    og = OnnxGenerator(out, threads=1)
    assert og.meta["generator"]["class"] == "ResnetGenerator" and og.meta["dynamic"] is True
    # dynamic axes: another batch and size than the one exported
    x = _x(3, 96)
    with torch.no_grad():
        ref = net(x)
    got = og(x)
    assert got.shape == ref.shape
    assert (got - ref).abs().max().item() < 1e-4


def test_cli_export_refuses_existing_and_failed_checks(resnet_pth, tmp_path):
    pth, _ = resnet_pth
    out = tmp_path / "m.onnx"
    out.write_bytes(b"keep me")
    r = CliRunner().invoke(main, ["export", "--onnx", str(pth), "-o", str(out), "--size", "32"])
    assert r.exit_code == 18 and out.read_bytes() == b"keep me"
    out2 = tmp_path / "m2.onnx"
    r = CliRunner().invoke(main, ["export", "--onnx", str(pth), "-o", str(out2), "--size", "32",
                                  "--tolerance", "-1"])
    assert r.exit_code == 16, r.output
    assert not out2.exists() and not list(tmp_path.glob("m2*"))


def test_cli_export_translator_with_fixed_target(translator_ckpt, tmp_path):
    folder, net = translator_ckpt
    out = tmp_path / "female.onnx"
    r = CliRunner().invoke(main, ["export", "--onnx", str(folder), "-o", str(out), "--target", "female"])
    assert r.exit_code == 0, r.output
    og = OnnxGenerator(out)
    assert og.inputs == ["input"] and og.meta["target"] == "female"
    assert og.meta["size"] == 64  # from the checkpoint's config
    x = _x(1, 64)
    with torch.no_grad():
        ref = net(x, torch.tensor([1]))
    got = og(x)
    assert (got - ref).abs().max().item() < 1e-4


class _ScaleByTarget(torch.nn.Module):
    """A conditioned toy whose output visibly depends on the target: x * (target + 1) / 2."""

    n_domains = 2

    def forward(self, x, target):
        return x * (target.view(-1, 1, 1, 1).float() + 1) / 2


def test_baked_target_is_the_requested_one(tmp_path):
    from facegan.nets.loading import ConditionedGenerator

    x = _x(1, 16)
    for name, factor in (("a", 0.5), ("b", 1.0)):
        gen = ConditionedGenerator(_ScaleByTarget(), ["a", "b"], target=name).eval()
        og = OnnxGenerator(export_onnx(gen, tmp_path / f"{name}.onnx", size=16, meta={"domains": ["a", "b"]}))
        assert og.inputs == ["input"]
        assert torch.allclose(og(x), x * factor, atol=1e-6)


def test_translator_target_as_input(translator_ckpt, tmp_path):
    folder, net = translator_ckpt
    gen, meta = load_generator(folder)  # no target: the ONNX model takes one
    path = export_onnx(gen, tmp_path / "both.onnx", size=32, dynamic=True, meta=meta)
    res = verify_onnx(gen, path, size=32, dynamic=True)
    assert res["max_abs_diff"] < 1e-4 and len(res["checks"]) == 3
    og = OnnxGenerator(path)
    assert og.inputs == ["input", "target"] and og.domains == ["male", "female"]
    x = _x(2, 48)
    with torch.no_grad():
        for name, idx in (("male", 0), ("female", 1)):
            ref = net(x, torch.full((2,), idx))
            assert (og(x, name) - ref).abs().max().item() < 1e-4
    meta_json = json.loads(og.session.get_modelmeta().custom_metadata_map["facegan"])
    assert meta_json["target_input"] is True


def test_onnx_generator_matches_numpy_api(resnet_pth, tmp_path):
    pth, net = resnet_pth
    gen, meta = load_generator(pth)
    path = export_onnx(gen, tmp_path / "a.onnx", size=32, meta=meta)
    og = OnnxGenerator(path)
    x = _x(1, 32).numpy()
    y = og.run(x)
    assert isinstance(y, np.ndarray) and y.shape == (1, 3, 32, 32) and y.dtype == np.float32
