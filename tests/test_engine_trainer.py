"""The trainer: exact resume (N steps + resume + M steps == N + M straight), checkpoint schema and
loading, sample grids / TensorBoard / loss log, time and step budgets, the CLI."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from facegan.cli import main
from facegan.train.config import resolve
from facegan.train.trainer import train

torch.set_num_threads(1)


def make_faces(folder: Path, n: int, seed: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        low = rng.integers(0, 255, (4, 4, 3)).astype(np.uint8)
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.resize(low, (40, 40), interpolation=cv2.INTER_CUBIC))
    return str(folder)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    return make_faces(root / "a", 6, 0), make_faces(root / "b", 5, 1)


TINY = {
    "cyclegan": {"model": {"ngf": 8, "ndf": 8, "n_blocks": 1}, "train": {"pool_size": 3}},
    "unit": {"model": {"ngf": 8, "ndf": 8, "n_res": 1, "n_layers_D": 2, "num_D": 1}},
    "faceswap": {"model": {"ngf": 8, "latent": 16}, "loss": {"lambda_adv": 0.1}},
    "cyclegan-progressive": {"method": "cyclegan", "model": {"ngf": 8, "ndf": 8, "n_blocks": 1, "progressive": {
        "enabled": True, "stages": 2, "grow_every": 2, "fade_steps": 2}}, "train": {"pool_size": 3}},
}


def cfg_for(key, data, out, **train_kw):
    spec = TINY[key]
    raw = {"method": spec.get("method", key), "size": 32, "threads": 1, "seed": 3,
           "data": {"a": data[0], "b": data[1], "sample_n": 2},
           "model": spec.get("model", {}), "loss": spec.get("loss", {}),
           "train": {"steps": 6, "batch": 2, "ckpt_every": 100, "sample_every": 3, "log_every": 1,
                     **spec.get("train", {}), **train_kw},
           "out_dir": str(out)}
    return resolve(raw)


def quiet(**kw):
    return dict(progress=False, log=lambda m: None, **kw)


@pytest.mark.parametrize("key", sorted(TINY))
def test_resume_is_exact(key, data, tmp_path):
    straight = train(cfg_for(key, data, tmp_path / "s"), **quiet())
    part = train(cfg_for(key, data, tmp_path / "r"), **quiet(max_steps=4))
    assert part["step"] == 4 and json.loads((tmp_path / "r/last/meta.json").read_text())["step"] == 4
    resumed = train(cfg_for(key, data, tmp_path / "r"), **quiet())
    assert resumed["step"] == 6
    assert resumed["last"] == straight["last"]  # the losses of the last step
    for f in sorted((tmp_path / "s/last").glob("*.safetensors")):
        a, b = load_file(str(f)), load_file(str(tmp_path / "r/last" / f.name))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (f.name, k)
    for f in sorted((tmp_path / "s/last").glob("*.optim.pt")):
        a = torch.load(f, weights_only=True)["state"]
        b = torch.load(tmp_path / "r/last" / f.name, weights_only=True)["state"]
        assert all(torch.equal(a[i]["exp_avg"], b[i]["exp_avg"]) for i in a)


def test_resume_differs_from_fresh_start(data, tmp_path):
    """Guard for the test above: a different seed really gives different weights."""
    a = train(cfg_for("cyclegan", data, tmp_path / "a"), **quiet())
    c = cfg_for("cyclegan", data, tmp_path / "b")
    c["seed"] = 4
    b = train(c, **quiet())
    assert a["last"] != b["last"]


def test_checkpoint_schema_outputs_and_loading(data, tmp_path):
    res = train(cfg_for("cyclegan", data, tmp_path), **quiet())
    ck = tmp_path / "last"
    meta = json.loads((ck / "meta.json").read_text())
    assert meta["method"] == "cyclegan" and meta["step"] == 6
    assert meta["generator"]["class"] == "ResnetGenerator"
    assert meta["generator"]["kwargs"]["ngf"] == 8 and meta["generator"]["file"] == "G_ema.safetensors"
    assert meta["generator"]["reverse"]["file"] == "F_ema.safetensors"
    assert meta["io"] == {"size": 32, "template": None, "range": "-1,1"}
    assert meta["config"]["model"]["ngf"] == 8 and meta["domains"] == ["A", "B"]
    for f in ["G", "F", "D_A", "D_B", "G_ema", "F_ema"]:
        assert (ck / f"{f}.safetensors").exists()
    assert (ck / "G.optim.pt").exists() and (ck / "state.safetensors").exists()
    # the generator rebuilds from meta alone
    from facegan.nets import build_generator

    g = build_generator(meta["generator"]["class"], meta["generator"]["kwargs"])
    g.load_state_dict(load_file(str(ck / "G_ema.safetensors")))
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    # and through the project's loader when present
    loading = pytest.importorskip("facegan.nets.loading")
    net, m2 = loading.load_generator(ck)
    with torch.no_grad():
        assert torch.allclose(net(x), g.eval()(x), atol=1e-6)
    # samples (with synthetic-image metadata), losses log and tensorboard events
    samples = sorted((tmp_path / "samples").glob("*.png"))
    assert [p.name for p in samples] == ["step_0000003.png", "step_0000006.png"]
    grid = cv2.imread(str(samples[-1]))
    assert grid.shape[0] == 6 * 32 and grid.shape[1] == 96 + 2 * 32  # 6 rows, label + 2 images
    from facegan.io import is_synthetic

    assert is_synthetic(samples[-1])
    lines = [json.loads(x) for x in (tmp_path / "losses.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4, 5, 6] and "cyc_A" in lines[0]
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert res["last"] == {k: v for k, v in lines[-1].items() if k not in ("step", "lr", "t")}


def test_lr_schedules(data, tmp_path):
    train(cfg_for("cyclegan", data, tmp_path / "lin", steps=8, decay_start=0.5), **quiet())
    lrs = [json.loads(x)["lr"] for x in (tmp_path / "lin/losses.jsonl").read_text().splitlines()]
    # lr logged after step s was used at step s-1: constant for 4 steps, then linear to 0
    assert lrs[:4] == [2e-4] * 4 and lrs[4:] == pytest.approx([2e-4, 1.5e-4, 1e-4, 0.5e-4])
    train(cfg_for("cyclegan", data, tmp_path / "pl", steps=8, lr_policy="plateau", plateau_window=1,
                  plateau_patience=0, plateau_factor=0.5, plateau_monitor="D_A"), **quiet())
    lrs = [json.loads(x)["lr"] for x in (tmp_path / "pl/losses.jsonl").read_text().splitlines()]
    assert lrs[0] == 2e-4 and min(lrs) < 2e-4 and all(b <= a for a, b in zip(lrs, lrs[1:]))


def test_time_budget_stops_and_saves(data, tmp_path):
    res = train(cfg_for("cyclegan", data, tmp_path, steps=1000), **quiet(max_minutes=0.0))
    assert res["step"] == 1
    assert json.loads((tmp_path / "last/meta.json").read_text())["step"] == 1


def test_refuses_to_resume_another_method(data, tmp_path):
    train(cfg_for("cyclegan", data, tmp_path), **quiet(max_steps=1))
    from facegan.errors import ConfigError

    with pytest.raises(ConfigError, match="cyclegan"):
        train(cfg_for("unit", data, tmp_path), **quiet())


def test_cli_train_end_to_end(data, tmp_path):
    cfg = tmp_path / "my.yaml"
    cfg.write_text(f"base: cyclegan\nsize: 32\nthreads: 1\ndata: {{a: {data[0]}, b: {data[1]}}}\n"
                   "model: {ngf: 8, ndf: 8, n_blocks: 1}\ntrain: {steps: 3, batch: 1, sample_every: 3}\n")
    r = CliRunner().invoke(main, ["train", str(cfg), "--out", str(tmp_path / "o"), "--no-progress",
                                  "--set", "train.log_every=1"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output.strip().splitlines()[-1])
    assert res["step"] == 3 and (tmp_path / "o/last/G_ema.safetensors").exists()
    assert (tmp_path / "o/config.yaml").read_text().count("ngf: 8") == 1
    # a second call resumes and has nothing left to do... unless steps grow
    r = CliRunner().invoke(main, ["train", str(cfg), "--out", str(tmp_path / "o"), "--no-progress",
                                  "--set", "train.steps=4"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["step"] == 4
