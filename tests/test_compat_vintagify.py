"""Compatibility of ``facegan.nets.loading.load_generator`` with reference checkpoints.

* A real public checkpoint: ``vintagify==0.1.2`` (MIT, PyPI) ships ``resources/G_A2B_epoch33.pth``, a
  ResNet-9 CycleGAN generator saved as a plain state_dict by its own ``ResnetGenerator`` class. Our
  loader must reproduce that class's output exactly. vintagify's package ``__init__`` imports
  torchvision (not installable here), so its ``generator.py`` (torch only) is loaded by file path.
  Install for these tests: ``pip install --no-deps vintagify==0.1.2`` (its declared deps are unpinned
  torch/torchvision/matplotlib, none needed for this).
* Reference pytorch-CycleGAN-and-pix2pix layouts (``resnet_9blocks``/``resnet_6blocks``/``unet_*``,
  batch/instance norm, dropout, DataParallel ``module.`` prefixes, pre-0.4 InstanceNorm buffers)
  written as ``.pth`` state_dicts, and facegan's own checkpoints.
* Pickles that ``torch.load(weights_only=True)`` refuses are refused, without running them.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from facegan.errors import ConfigError, ModelError
from facegan.nets.cyclegan import ResnetGenerator
from facegan.nets.loading import ConditionedGenerator, load_generator, sha256_of


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def _vintagify_root() -> Path:
    spec = importlib.util.find_spec("vintagify")
    if spec is None or spec.origin is None:
        pytest.skip("vintagify is not installed (pip install --no-deps vintagify==0.1.2)")
    return Path(spec.origin).parent


def _vintagify_generator_class():
    """vintagify's own ResnetGenerator, imported from its generator.py without running the package
    __init__ (which needs torchvision)."""
    path = _vintagify_root() / "generator.py"
    spec = importlib.util.spec_from_file_location("_vintagify_generator", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.ResnetGenerator


def _rand(n=1, size=64, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=g) * 2 - 1


# ------------------------------------------------------------------------------ vintagify
def test_vintagify_checkpoint_matches_its_own_generator():
    root = _vintagify_root()
    pth = root / "resources" / "G_A2B_epoch33.pth"
    assert pth.exists(), "vintagify 0.1.2 ships resources/G_A2B_epoch33.pth"
    Ref = _vintagify_generator_class()
    ref = Ref()
    ref.load_state_dict(torch.load(pth, map_location="cpu", weights_only=True))
    ref.eval()

    gen, meta = load_generator(pth)
    assert isinstance(gen, ResnetGenerator)
    assert not gen.training
    kw = meta["generator"]["kwargs"]
    assert (kw["ngf"], kw["n_blocks"], kw["n_downsampling"], kw["norm"]) == (64, 9, 2, "instance-affine")
    assert meta["source"] == "reference-pth"
    assert meta["sha256"] == sha256_of(pth)
    x = _rand(2, 64, seed=1)
    with torch.no_grad():
        diff = (gen(x) - ref(x)).abs().max().item()
    assert diff < 1e-5
    # and it actually computes something (not an identity / constant map)
    with torch.no_grad():
        y = gen(x)
    assert y.shape == x.shape and y.std() > 0.05 and (y - x).abs().mean() > 0.01


def test_vintagify_loader_uses_weights_only(monkeypatch):
    pth = _vintagify_root() / "resources" / "G_A2B_epoch33.pth"
    calls = []
    real = torch.load

    def spy(*a, **k):
        calls.append(k)
        return real(*a, **k)

    monkeypatch.setattr(torch, "load", spy)
    load_generator(pth)
    assert calls and all(k.get("weights_only") is True for k in calls)


def test_vintagify_sha256_checked(tmp_path):
    pth = _vintagify_root() / "resources" / "G_A2B_epoch33.pth"
    load_generator(pth, sha256=sha256_of(pth))
    with pytest.raises(ModelError, match="sha256"):
        load_generator(pth, sha256="0" * 64)


# --------------------------------------------------------------- reference layouts (.pth)
@pytest.mark.parametrize("kw", [
    dict(ngf=8, n_blocks=9, norm="instance"),  # resnet_9blocks, the reference default
    dict(ngf=8, n_blocks=6, norm="batch", use_dropout=True),  # resnet_6blocks --norm batch --dropout
    dict(ngf=4, n_blocks=2, norm="instance", padding_type="zero", n_downsampling=3, input_nc=1, output_nc=3),
    dict(ngf=4, n_blocks=3, norm="none"),
])
def test_reference_resnet_variants(tmp_path, kw):
    torch.manual_seed(0)
    net = ResnetGenerator(**kw)
    for p in net.parameters():
        p.data.normal_(0, 0.1)
    for b in net.buffers():
        if b.is_floating_point():
            b.data.uniform_(0.5, 1.5)
    net.eval()
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(net.state_dict(), path)
    gen, meta = load_generator(path)
    got = meta["generator"]["kwargs"]
    for k, v in kw.items():
        assert got[k] == v, k
    x = _rand(1, 32, c=kw.get("input_nc", 3))
    with torch.no_grad():
        assert (gen(x) - net(x)).abs().max().item() < 1e-6


def test_reference_dataparallel_prefix_and_old_instancenorm_buffers(tmp_path):
    torch.manual_seed(0)
    net = ResnetGenerator(ngf=8, n_blocks=2).eval()
    sd = {f"module.{k}": v for k, v in net.state_dict().items()}
    # pre-0.4 PyTorch saved InstanceNorm running stats; the reference code deletes them on load
    sd["module.model.2.running_mean"] = torch.zeros(8)
    sd["module.model.2.running_var"] = torch.ones(8)
    path = tmp_path / "old.pth"
    torch.save(sd, path)
    gen, _ = load_generator(path)
    x = _rand(1, 32)
    with torch.no_grad():
        assert (gen(x) - net(x)).abs().max().item() < 1e-6


def test_reference_nested_state_dict(tmp_path):
    net = ResnetGenerator(ngf=4, n_blocks=1).eval()
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": net.state_dict()}, path)
    gen, meta = load_generator(path)
    assert meta["generator"]["kwargs"]["n_blocks"] == 1


@pytest.mark.parametrize("num_downs,norm", [(7, "batch"), (8, "instance")])
def test_reference_unet(tmp_path, num_downs, norm):
    from facegan.nets.unet import UnetGenerator

    torch.manual_seed(0)
    net = UnetGenerator(3, 3, num_downs=num_downs, ngf=4, norm=norm)
    for b in net.buffers():
        if b.is_floating_point():
            b.data.uniform_(0.5, 1.5)
    net.eval()
    path = tmp_path / f"unet_{2 ** num_downs}.pth"
    torch.save(net.state_dict(), path)
    gen, meta = load_generator(path)
    assert meta["generator"]["class"] == "UnetGenerator"
    assert meta["generator"]["kwargs"]["num_downs"] == num_downs
    assert meta["generator"]["kwargs"]["norm"] == norm
    x = _rand(1, 2 ** num_downs)
    with torch.no_grad():
        assert (gen(x) - net(x)).abs().max().item() < 1e-6


# ------------------------------------------------------------------------- refused files
class _Evil:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {_Evil.marker}",))


def test_refuses_arbitrary_pickles_without_running_them(tmp_path):
    _Evil.marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model.1.weight": _Evil()}, path)
    with pytest.raises(ModelError, match="weights_only"):
        load_generator(path)
    assert not _Evil.marker.exists()


def test_refuses_junk_and_unknown_layouts(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file at all")
    with pytest.raises(ModelError):
        load_generator(junk)
    other = tmp_path / "classifier.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), other)
    with pytest.raises(ModelError, match="unrecognised"):
        load_generator(other)
    npz = tmp_path / "weights.npz"
    npz.write_bytes(b"PK")
    with pytest.raises(ModelError, match="unknown model format"):
        load_generator(npz)


# ------------------------------------------------------------------- facegan checkpoints
def _attr_translator_ckpt(folder: Path, fp16: bool = False):
    """A checkpoint as the lead's attr-translator trainer writes it: meta.json with "config" only."""
    from facegan.nets.translator import ResidualTranslator
    from facegan.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    G = ResidualTranslator(2, ngf=8, n_blocks=2)
    E = ResidualTranslator(2, ngf=8, n_blocks=2)
    for p in E.parameters():
        p.data.normal_(0, 0.05)
    if fp16:
        E = E.half()
    save_checkpoint(folder, {"G": G, "G_ema": E}, meta={
        "step": 10, "config": {"domains": ["male", "female"], "ngf": 8, "n_blocks": 2, "size": 64}})
    return G, E.float()


def test_attr_translator_checkpoint_prefers_ema_and_fixed_target(tmp_path):
    G, E = _attr_translator_ckpt(tmp_path / "last")
    gen, meta = load_generator(tmp_path / "last", target="female")
    assert isinstance(gen, ConditionedGenerator)
    assert meta["domains"] == ["male", "female"] and meta["target"] == "female"
    assert meta["weights"].endswith("G_ema.safetensors")
    assert meta["io"] == {"size": 64, "template": "utkface", "range": "-1,1"}
    x = _rand(2, 32)
    with torch.no_grad():
        assert torch.equal(gen(x), E(x, torch.tensor([1, 1])))
        assert torch.equal(gen(x, "male"), E(x, torch.tensor([0, 0])))
    g2, m2 = load_generator(tmp_path / "last", prefer_ema=False)
    assert m2["weights"].endswith("/G.safetensors") and m2["target"] is None
    with pytest.raises(ConfigError):
        g2(x)  # conditioned, no target fixed
    with pytest.raises(ConfigError):
        load_generator(tmp_path / "last", target="cat")


def test_single_safetensors_fp16_with_header_meta(tmp_path):
    from facegan.nets.translator import ResidualTranslator
    from facegan.train.checkpoint import export_half

    torch.manual_seed(0)
    net = ResidualTranslator(2, ngf=8, n_blocks=2).eval()
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    meta = {"method": "attr-translator", "generator": {"class": "ResidualTranslator",
            "kwargs": {"n_domains": 2, "ngf": 8, "n_blocks": 2}}, "domains": ["male", "female"],
            "io": {"size": 128, "template": "utkface", "range": "-1,1"}}
    path = export_half(net, tmp_path / "gender.safetensors", metadata=meta)  # str(dict) values
    gen, m = load_generator(path, target=0)
    assert m["target"] == "male" and m["io"]["size"] == 128
    assert all(p.dtype == torch.float32 for p in gen.parameters())
    x = _rand(1, 32)
    with torch.no_grad():
        ref = net.half().float()(x, torch.tensor([0]))  # same fp16-rounded weights
        assert (gen(x) - ref).abs().max().item() < 1e-5


def test_engine_cyclegan_checkpoint_reverse_direction(tmp_path):
    from facegan.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    kw = dict(ngf=4, n_blocks=1)
    G, F = ResnetGenerator(**kw).eval(), ResnetGenerator(**kw).eval()
    meta = {"method": "cyclegan", "step": 1, "domains": ["selfie", "anime"],
            "generator": {"class": "ResnetGenerator", "kwargs": kw, "file": "G_ema.safetensors", "direction": "A->B",
                          "reverse": {"class": "ResnetGenerator", "kwargs": kw, "file": "F_ema.safetensors"}},
            "io": {"size": 128, "template": None, "range": "-1,1"}}
    save_checkpoint(tmp_path, {"G_ema": G, "F_ema": F}, meta=meta)
    x = _rand(1, 32)
    g, m = load_generator(tmp_path)
    f, mf = load_generator(tmp_path, target="selfie")
    with torch.no_grad():
        assert torch.equal(g(x), G(x)) and torch.equal(f(x), F(x))
    assert m["target"] == "anime" and mf["target"] == "selfie" and mf["weights"].endswith("F_ema.safetensors")


def test_registry_only_no_arbitrary_classes(tmp_path):
    from facegan.train.checkpoint import save_checkpoint

    net = ResnetGenerator(ngf=4, n_blocks=1)
    save_checkpoint(tmp_path, {"G": net}, meta={"generator": {"class": "os.system", "kwargs": {}}})
    with pytest.raises(ModelError, match="registry"):
        load_generator(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"generator": {"class": "ResnetGenerator",
                                                                  "kwargs": {"ngf": 8, "n_blocks": 1}}}))
    with pytest.raises(ModelError, match="do not fit"):
        load_generator(tmp_path)
