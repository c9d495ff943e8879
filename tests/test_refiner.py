"""The realism refiner: its trainer on tiny synthetic data (steps, checkpoint, resume, samples), the
export to a model folder, loading it with FACEGAN_REFINER, and anonymize --refine end to end."""
import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from facegan.cli import main
from facegan.errors import ModelError
from facegan.io import read_image
from facegan.ops import refiner_model as rm
from facegan.weights import load_shipped
from facegan.train import refiner as tr


def _data(tmp_path, size=32):
    rng = np.random.default_rng(0)
    n = 16
    np.savez(tmp_path / "syn.npz", crops=rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8),
             target=np.arange(n) % 2, stem=np.array([f"{i}.jpg" for i in range(n)]), attempt=np.zeros(n, int))
    m = 24
    gender = np.arange(m) % 2
    np.savez(tmp_path / "real.npz", crops=rng.integers(0, 255, (m, size, size, 3), dtype=np.uint8),
             template=np.array("utkface"), size=np.array(size), age=np.full(m, 30), gender=gender,
             race=np.zeros(m, int), stem=np.array([f"s{i}" for i in range(m)]),
             name=np.array([f"{i}.jpg" for i in range(m)]),
             split=np.where(np.arange(m) < m - 4, "train", "test"), detected=np.ones(m, bool))


def _cfg(tmp_path, steps, size=32):
    return tr.RefinerConfig(inputs=str(tmp_path / "syn.npz"), real=str(tmp_path / "real.npz"),
                            out_dir=str(tmp_path / "run"), size=size, batch=4, steps=steps, ngf=8, n_blocks=1,
                            ndf=8, n_layers_D=2, pool_size=8, ckpt_every=2, snapshot_every=0, sample_every=2,
                            threads=1, lambda_teacher=0.0, lambda_keep_id=0.0)  # faceres terms: their own test


def test_refiner_starts_as_the_identity():
    G = tr.build_refiner(tr.RefinerConfig(ngf=8, n_blocks=1))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(G(x, torch.tensor([0, 1])), x)


def test_resize_upsampling_refiner_has_no_transposed_convolution():
    from facegan.nets.cyclegan import ResnetGenerator

    G = tr.build_refiner(tr.RefinerConfig(ngf=8, n_blocks=1, n_downsampling=2, upsample="resize"))
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in G.modules())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(G(x, torch.tensor([0, 1])), x)
    with pytest.raises(ValueError, match="upsample"):
        ResnetGenerator(3, 3, ngf=8, n_blocks=1, upsample="bilinear")


def test_train_checkpoints_samples_resumes_and_moves(tmp_path):
    _data(tmp_path)
    assert tr.train(_cfg(tmp_path, 4))["step"] == 4
    run = tmp_path / "run"
    meta = json.loads((run / "last" / "meta.json").read_text())
    assert meta["step"] == 4 and meta["config"]["lambda_low"] == 0.5  # the whole config is kept
    assert (run / "samples" / "step000004.png").exists()
    res = tr.train(_cfg(tmp_path, 6))
    assert res["step"] == 6 and "resumed at step 4" in (run / "train.log").read_text()
    assert json.loads((run / "model" / "manifest.json").read_text())["step"] == 6  # finished: exported
    G = tr.build_refiner(_cfg(tmp_path, 6))
    from facegan.train.checkpoint import load_checkpoint

    load_checkpoint(run / "last", {"G": G})
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert not torch.equal(G(x, torch.tensor([0, 1])), x)  # training moved it off the identity


def test_faceres_terms_run_in_training(tmp_path, monkeypatch):
    from facegan.judges import faceres
    from tests.test_faceres import _StandIn

    monkeypatch.setattr(faceres, "FaceResIdentity", _StandIn)
    _StandIn.calls = 0
    _data(tmp_path)
    cfg = _cfg(tmp_path, 2)
    cfg.lambda_teacher, cfg.lambda_keep_id, cfg.d_blur = 1.0, 1.0, 1.5
    tr.train(cfg)
    log = (tmp_path / "run" / "train.log").read_text()
    assert "gender teacher 1.0" in log and "keep identity 1.0" in log
    assert _StandIn.calls == 4  # refined + input crops, each step


def test_wrong_crop_size_is_a_config_error(tmp_path):
    from facegan.errors import ConfigError

    _data(tmp_path)
    with pytest.raises(ConfigError, match="crops are"):
        tr.train(_cfg(tmp_path, 1, size=64))


def test_train_command_dry_run_lists_networks(tmp_path):
    cfg = tmp_path / "r.yaml"
    cfg.write_text("method: refiner\nngf: 8\nn_blocks: 1\n")
    r = CliRunner().invoke(main, ["train", str(cfg), "--dry-run"], catch_exceptions=False)
    assert r.exit_code == 0 and "method: refiner" in r.output and "DomainPatchDiscriminator" in r.output
    cfg.write_text("method: refiner\nbogus: 1\n")
    r = CliRunner().invoke(main, ["train", str(cfg), "--dry-run"])
    assert r.exit_code != 0 and "bogus" in r.output


@pytest.fixture
def tiny_refiner(tmp_path_factory):
    """A refiner trained 2 steps at 128 px (the crop size the op uses), exported as a model folder."""
    d = tmp_path_factory.mktemp("refiner")
    _data(d, size=128)
    cfg = _cfg(d, 2, size=128)
    cfg.lr, cfg.ema_decay = 0.01, 0.0  # two steps that visibly move it (the export is the EMA)
    cfg.n_downsampling, cfg.upsample = 1, "resize"  # the manifest must rebuild this network
    tr.train(cfg)
    return rm.export_refiner(d / "run" / "last", d / "model")


def test_export_loads_and_refines_inside_the_face_ellipse(tiny_refiner, monkeypatch):
    man = json.loads((tiny_refiner / "manifest.json").read_text())
    assert man["class"] == "ResidualTranslator" and man["sha256"] and man["size"] == 128
    assert man["upsample"] == "resize" and man["n_downsampling"] == 1
    monkeypatch.setenv(rm.ENV, str(tiny_refiner))
    rm._load.cache_clear()
    ref = rm.get_refiner()
    crops = np.random.default_rng(1).integers(0, 255, (2, 128, 128, 3), dtype=np.uint8)
    out = ref.refine(crops, ["male", "female"], 1.0)
    assert out.shape == crops.shape and out.dtype == np.uint8
    assert np.array_equal(ref.refine(crops, ["male", "female"], 0.0), crops)  # amount 0: nothing
    diff = np.abs(out.astype(int) - crops).sum(-1)
    assert diff[:, 40:90, 40:90].mean() > 1  # it acts on the face
    assert diff[:, :6, :6].max() == 0 and diff[:, -6:, -6:].max() == 0  # and not outside the ellipse
    with pytest.raises(ValueError, match="square crops a multiple of 4"):
        ref.refine(crops[:, :62, :62], ["male", "male"])
    with pytest.raises(ValueError, match="square crops"):
        ref.refine(crops[:, :64, :60], ["male", "male"])
    # another square size runs (fully convolutional, on PyTorch: the large-face redraw uses 256 and 512 px)
    other = ref.refine(crops[:, :64, :64], ["male", "female"], 1.0)
    assert other.shape == (2, 64, 64, 3) and other.dtype == np.uint8
    assert np.abs(other.astype(int) - crops[:, :64, :64]).sum(-1)[:, :3, :3].max() == 0  # its own ellipse
    rm._load.cache_clear()


def test_the_shipped_refiner_loads_and_keeps_the_gender_translators_crop(monkeypatch, fixtures_dir):
    """The package's refiner (fp16, sha256-checked) on a real aligned crop: a small change, inside the ellipse."""
    from facegan.faces.align import align_face
    from facegan.faces.detect import detect_faces

    monkeypatch.delenv(rm.ENV, raising=False)
    rm._load.cache_clear()
    ref = rm.get_refiner()
    assert ref.name == "facegan-anonymize-refiner-v5" and ref.source == "shipped"
    rgb = read_image(fixtures_dir / "happy1.jpg")
    face = max(detect_faces(rgb, "centerface"), key=lambda f: f.width)
    crop = align_face(rgb, face, "utkface", 128).crop
    out = ref.refine(crop[None], ["male"], 0.5)[0]
    diff = np.abs(out.astype(int) - crop).mean(-1)
    assert 0.5 < diff[40:100, 30:98].mean() < 20  # it changes the face, a little
    assert diff[:4, :4].max() == 0  # and nothing outside the face ellipse
    # ONNX Runtime (the default backend) and eager PyTorch give the same crop, to rounding
    sd, man = load_shipped("anonymize-refiner")
    backends = {b: rm.Refiner(sd, man, "x", "shipped", backend=b) for b in ("torch", "onnx")}
    assert backends["onnx"].backend == "onnx"
    both = [r.refine(crop[None], ["male"], 0.5)[0].astype(int) for r in backends.values()]
    assert np.abs(both[0] - both[1]).max() <= 1
    with pytest.raises(ModelError, match="backend"):
        rm.Refiner(sd, man, "x", "shipped", backend="cuda-please")
    rm._load.cache_clear()


def test_refine_without_a_refiner_says_how_to_train_one(monkeypatch):
    monkeypatch.delenv(rm.ENV, raising=False)
    monkeypatch.setattr(rm, "SHIPPED", "no-such-refiner")
    with pytest.raises(ModelError, match="configs/anonymize-refiner.yaml"):
        rm.get_refiner()


def test_a_corrupt_refiner_is_a_model_error(tiny_refiner, tmp_path, monkeypatch):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_refiner, bad)
    (bad / "model.safetensors").write_bytes(b"not weights")
    monkeypatch.setenv(rm.ENV, str(bad))
    rm._load.cache_clear()
    with pytest.raises(ModelError, match="sha256"):
        rm.get_refiner()
    rm._load.cache_clear()


def _anonymize(src, out, *args):
    """``facegan anonymize SRC -o OUT --seed 3 --strength 1 ARGS``: the written photo and its report rows."""
    r = CliRunner().invoke(main, ["anonymize", str(src), "-o", str(out), *args, "--seed", "3", "--strength", "1",
                                  "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return read_image(out / "in.jpg"), json.loads((out / "report.json").read_text())["faces"]


def test_anonymize_refine_end_to_end(tiny_model, tiny_refiner, fixtures_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGAN_GENDER_MODEL", str(tiny_model))
    monkeypatch.setenv(rm.ENV, str(tiny_refiner))
    rm._load.cache_clear()
    src = tmp_path / "in.jpg"
    shutil.copy(fixtures_dir / "happy1.jpg", src)
    outs = {amount: _anonymize(src, tmp_path / f"out{amount}", "--refine", amount) for amount in ("0", "1")}
    assert not np.array_equal(outs["0"][0], outs["1"][0])  # the refiner's change reached the photo
    row = outs["1"][1][0]
    assert row["refine"] == 1.0 and row["refiner"]
    assert "refine" not in outs["0"][1][0]
    # --refine-male: the amount for faces changed towards male only
    for male_amount in ("0", "1"):
        img, rows = _anonymize(src, tmp_path / f"male{male_amount}", "--refine", "1", "--refine-male", male_amount)
        refined = row["target"] == "female" or male_amount == "1"
        assert np.array_equal(img, outs["1" if refined else "0"][0])
        assert ("refine" in rows[0]) == refined
    # the default: faces changed towards female refined at 0.5, those towards male not
    rows = _anonymize(src, tmp_path / "default")[1]
    assert rows[0].get("refine") == (0.5 if rows[0]["target"] == "female" else None)
    rm._load.cache_clear()


def test_refine_amounts_default_per_op_and_direction():
    from facegan.errors import ConfigError
    from facegan.ops.swap_gender import refine_amounts

    assert refine_amounts("anonymize") == {"female": 0.5, "male": 0.0}
    assert refine_amounts("swap-gender") == {"female": 0.0, "male": 0.0}
    assert refine_amounts("anonymize", 1.0) == {"female": 1.0, "male": 1.0}  # a number sets both
    assert refine_amounts("anonymize", None, 0.25) == {"female": 0.5, "male": 0.25}
    assert refine_amounts("swap-gender", 0.5, 0) == {"female": 0.5, "male": 0.0}
    with pytest.raises(ConfigError, match="refine_male"):
        refine_amounts("anonymize", 0.5, 3)


def test_restore_sigmas_default_per_op_and_direction():
    from facegan.errors import ConfigError
    from facegan.ops.swap_gender import restore_sigmas

    assert restore_sigmas("anonymize") == {"female": 2.5, "male": 0.0}
    assert restore_sigmas("swap-gender") == {"female": 0.0, "male": 0.0}
    assert restore_sigmas("anonymize", 0) == {"female": 0.0, "male": 0.0}
    assert restore_sigmas("swap-gender", 1.5, 2) == {"female": 1.5, "male": 2.0}
    with pytest.raises(ConfigError, match="restore_male"):
        restore_sigmas("anonymize", None, 9)


def test_the_shipped_restorer_loads_and_redraws_a_real_crop(monkeypatch, fixtures_dir):
    """The package's restorer on a real aligned crop at the default blur: it differs from the plain blur (the
    network drew detail back) and stays close to the crop (it restores, it does not invent another face)."""
    import cv2

    from facegan.faces.align import align_face
    from facegan.faces.detect import detect_faces

    monkeypatch.delenv(rm.ENV_RESTORER, raising=False)
    rm._load_restorer.cache_clear()
    res = rm.get_restorer()
    assert res.name == "facegan-anonymize-restorer-v1" and res.source == "shipped"
    rgb = read_image(fixtures_dir / "happy1.jpg")
    face = max(detect_faces(rgb, "centerface"), key=lambda f: f.width)
    crop = align_face(rgb, face, "utkface", 128).crop
    out = res.restore(crop[None], ["female"], 2.5)[0].astype(int)
    blurred = cv2.GaussianBlur(crop, (15, 15), 2.5, borderType=cv2.BORDER_REFLECT_101).astype(int)
    inner = (slice(40, 100), slice(30, 98))
    err_out, err_blur = (np.abs(a - crop)[inner].mean() for a in (out, blurred))
    assert err_out < err_blur < 20  # closer to the sharp crop than the blur it was given
    assert np.abs(out - crop)[:4, :4].max() == 0  # nothing outside the face ellipse
    rm._load_restorer.cache_clear()


def test_teacher_term_weights_and_margins_the_male_side_apart():
    from facegan.train.attr_translator import teacher_loss

    p_male = torch.tensor([0.6, 0.6, 0.3, 0.99])
    t = torch.tensor([0, 1, 1, 0])  # targets: male, female, female, male
    cfg = tr.RefinerConfig()
    assert torch.allclose(tr._teacher(p_male, t, cfg), teacher_loss(p_male, t, cfg.teacher_margin))
    cfg.teacher_male_weight, cfg.teacher_margin_male = 3.0, 0.0
    per = torch.relu(-torch.log(torch.tensor([0.6, 0.4, 0.7, 0.99])) - torch.tensor([0.0, 0.1, 0.1, 0.0]))
    want = (torch.tensor([3.0, 1.0, 1.0, 3.0]) * per).mean()
    assert torch.allclose(tr._teacher(p_male, t, cfg), want)


def test_blur_batch_blurs_each_image_by_its_own_sigma():
    x = torch.zeros(2, 3, 33, 33)
    x[:, :, 16, 16] = 1.0
    y = tr.blur_batch(x, torch.tensor([0.5, 3.0]))
    assert torch.allclose(y.sum((2, 3)), torch.ones(2, 3), atol=1e-4)  # reflect border, normalised kernel
    assert y[0, 0, 16, 16] > 0.5 > y[1, 0, 16, 16] > 0  # the first barely blurred, the second spread out
    assert torch.allclose(y[1, 0, 16, 10], y[1, 0, 10, 16]) and y[1, 0, 16, 10] > 1e-3  # isotropic


def _restore_cfg(tmp_path, steps, size=32):
    cfg = _cfg(tmp_path, steps, size)
    cfg.mode, cfg.inputs, cfg.d_blur, cfg.d_pool = "restore", str(tmp_path / "missing.npz"), 0.0, 1
    return cfg


def test_restore_mode_trains_on_blurred_real_faces_only(tmp_path):
    _data(tmp_path)
    cfg = _restore_cfg(tmp_path, 3)
    assert tr.train(cfg)["step"] == 3  # no composite crops needed: the inputs file does not exist
    run = tmp_path / "run"
    assert "inputs 0" in (run / "train.log").read_text() and (run / "samples" / "step000002.png").exists()
    man = json.loads((run / "model" / "manifest.json").read_text())
    assert man["mode"] == "restore" and man["name"] == rm.SHIPPED_RESTORER and man["restore_sigma"] == [1.0, 3.5]


@pytest.fixture
def tiny_restorer(tmp_path_factory):
    """A detail restorer trained 2 steps at 128 px, exported as a model folder."""
    d = tmp_path_factory.mktemp("restorer")
    _data(d, size=128)
    cfg = _restore_cfg(d, 2, size=128)
    cfg.lr, cfg.ema_decay = 0.01, 0.0
    tr.train(cfg)
    return rm.export_refiner(d / "run" / "last", d / "model")


def test_restorer_loads_and_restores_inside_the_face_ellipse(tiny_restorer, tiny_refiner, monkeypatch):
    monkeypatch.setenv(rm.ENV_RESTORER, str(tiny_restorer))
    rm._load_restorer.cache_clear()
    res = rm.get_restorer()
    crops = np.random.default_rng(2).integers(0, 255, (2, 128, 128, 3), dtype=np.uint8)
    out = res.restore(crops, ["male", "female"], 2.0)
    assert out.shape == crops.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - crops).sum(-1)
    assert diff[:, 40:90, 40:90].mean() > 10  # noise crops blurred and re-drawn: far from the input
    assert diff[:, :6, :6].max() == 0  # outside the ellipse the crop is kept, not blurred
    assert np.array_equal(res.restore(crops, ["male", "female"], 2.0, amount=0.0), crops)
    monkeypatch.setenv(rm.ENV_RESTORER, str(tiny_refiner))  # a refiner is not a restorer
    rm._load_restorer.cache_clear()
    with pytest.raises(ModelError, match="not a detail restorer"):
        rm.get_restorer()
    rm._load_restorer.cache_clear()


def test_restore_without_a_restorer_says_how_to_train_one(monkeypatch, fixtures_dir, tmp_path):
    monkeypatch.delenv(rm.ENV_RESTORER, raising=False)
    monkeypatch.setattr("facegan.weights.available", lambda name: name != rm.SHIPPED_RESTORER)
    rm._load_restorer.cache_clear()
    src = tmp_path / "in.jpg"
    shutil.copy(fixtures_dir / "happy1.jpg", src)
    r = CliRunner().invoke(main, ["anonymize", str(src), "-o", str(tmp_path / "o"), "--restore", "2", "-q"])
    assert r.exit_code != 0 and "anonymize-restorer.yaml" in r.output
    assert not (tmp_path / "o" / "in.jpg").exists()  # refused before any photo was read


def test_anonymize_restore_end_to_end(tiny_model, tiny_restorer, fixtures_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGAN_GENDER_MODEL", str(tiny_model))
    monkeypatch.setenv(rm.ENV_RESTORER, str(tiny_restorer))
    rm._load_restorer.cache_clear()
    src = tmp_path / "in.jpg"
    shutil.copy(fixtures_dir / "happy1.jpg", src)
    outs = {sigma: _anonymize(src, tmp_path / f"out{sigma}", "--restore", sigma, "--refine", "0")
            for sigma in ("0", "2")}
    assert not np.array_equal(outs["0"][0], outs["2"][0])  # the restorer's change reached the photo
    row = outs["2"][1][0]
    assert row["restore"] == 2.0 and row["restorer"] == rm.SHIPPED_RESTORER
    assert "restore" not in outs["0"][1][0]
    target = row["target"]
    for male_sigma in ("0", "2"):  # --restore-male: the blur for faces changed towards male only
        img, rows = _anonymize(src, tmp_path / f"male{male_sigma}", "--restore", "2", "--restore-male", male_sigma,
                               "--refine", "0")
        restored = target == "female" or male_sigma == "2"
        assert np.array_equal(img, outs["2" if restored else "0"][0])
        assert ("restore" in rows[0]) == restored
    rows = _anonymize(src, tmp_path / "default", "--refine", "0")[1]  # the default: towards female 2.5, male off
    assert rows[0].get("restore") == (2.5 if target == "female" else None)
    r = CliRunner().invoke(main, ["anonymize", str(src), "-o", str(tmp_path / "bad"), "--restore", "9", "-q"])
    assert r.exit_code != 0 and "restore" in r.output
    rm._load_restorer.cache_clear()


def test_restore_mix_puts_another_faces_detail_on_the_input_and_init_from_starts_there(tmp_path):
    _data(tmp_path)
    cfg = _restore_cfg(tmp_path, 2)
    data = tr._Data(cfg)
    torch.manual_seed(0)
    x0, sharp0, t0 = data.real_pairs(4, (2.0, 2.0))
    data.rng = np.random.default_rng(0)
    x1, sharp1, t1 = data.real_pairs(4, (2.0, 2.0), (1.0, 1.0))
    assert torch.equal(sharp0, sharp1) and torch.equal(t0, t1)  # the same faces drawn
    hp = lambda a: a - tr.blur_batch(a, torch.full((len(a),), 2.0))  # noqa: E731
    assert hp(x1).abs().mean() > 2 * hp(x0).abs().mean()  # the blurred input got detail back: another face's
    tr.train(cfg)
    cfg2 = _restore_cfg(tmp_path, 3)
    cfg2.out_dir, cfg2.init_from = str(tmp_path / "stage2"), str(tmp_path / "run" / "last")
    cfg2.restore_mix = (0.0, 1.0)
    assert tr.train(cfg2)["step"] == 3  # one step on top of the first run's two
    assert "resumed at step 2 from" in (tmp_path / "stage2" / "train.log").read_text()
