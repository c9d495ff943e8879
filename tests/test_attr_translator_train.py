"""The attribute translator's trainer end to end on a tiny synthetic cache: classifier, steps,
checkpoint, exact resume, grey classifier input."""
import json

import numpy as np
import torch

from facegan.train import attr_translator as at


def _cache(path, n=24, size=32):
    rng = np.random.default_rng(0)
    gender = np.arange(n) % 2
    crops = rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)
    crops[gender == 1, :, :, 0] = 220  # a learnable difference between the domains
    split = np.where(np.arange(n) < n - 8, "train", "test")
    np.savez(path, crops=crops, template=np.array("utkface"), size=np.array(size), age=np.full(n, 30),
             gender=gender, race=np.zeros(n, int), stem=np.array([f"s{i}" for i in range(n)]),
             name=np.array([f"{i}.jpg" for i in range(n)]), split=split, detected=np.ones(n, bool))


def _cfg(tmp_path, steps):
    return at.AttrTranslatorConfig(
        data=str(tmp_path / "c.npz"), out_dir=str(tmp_path / "run"), size=32, batch=4, steps=steps,
        ngf=8, n_blocks=1, ndf=8, cls_size=32, cls_steps=3, lowpass=2, cls_jitter=4, cls_gray=True, cls_robust=0.5, cls_margin=0.1, cls_online=True, cond_init_std=0.1, cond_lr_mult=5.0, cls_decay_start=2, lambda_cls_end=0.1,
        lambda_delta=0.5, ckpt_every=2, sample_every=2, eval_every=10**6, eval_n=4, threads=1)


def test_cls_gray_input_has_equal_channels():
    cfg = at.AttrTranslatorConfig(cls_size=16, cls_gray=True)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = at._cls_input(x, cfg)
    assert y.shape == (2, 3, 16, 16)
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])
    cfg.cls_gray = False
    assert not torch.equal(at._cls_input(x, cfg)[:, 0], at._cls_input(x, cfg)[:, 1])


def test_nuisance_is_seeded_bounded_and_changes_the_image():
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    a = at._nuisance(x, 1.0, torch.Generator().manual_seed(0))
    b = at._nuisance(x, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape
    assert a.min() >= -1 and a.max() <= 1
    assert (a - x).abs().mean() > 0.02
    assert torch.equal(at._nuisance(x, 0.0, torch.Generator().manual_seed(0)), x.clamp(-1, 1))


def test_train_checkpoints_samples_and_resumes(tmp_path):
    _cache(tmp_path / "c.npz")
    assert at.train(_cfg(tmp_path, 4))["step"] == 4
    run = tmp_path / "run"
    assert (run / "aux_classifier.safetensors").exists()
    meta = json.loads((run / "last" / "meta.json").read_text())
    assert meta["step"] == 4 and meta["config"]["cls_gray"] is True
    assert (run / "samples" / "step000004.png").exists()
    ev = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert ev[-1]["step"] == 4 and set(ev[-1]) >= {"male->female", "female->male"}
    # resume continues from step 4 and reaches 6
    assert at.train(_cfg(tmp_path, 6))["step"] == 6
    assert "resumed at step 4" in (run / "train.log").read_text()
    assert (run / "last" / "C.safetensors").exists()  # the online classifier is checkpointed too


def test_init_from_fine_tunes_from_another_run(tmp_path):
    from safetensors.torch import load_file

    _cache(tmp_path / "c.npz")
    at.train(_cfg(tmp_path, 2))
    src = tmp_path / "run"
    cfg = _cfg(tmp_path, 1)
    cfg.out_dir, cfg.init_from, cfg.lr = str(tmp_path / "ft"), str(src / "last"), 0.0  # lr 0: weights stay
    assert at.train(cfg)["step"] == 1  # its own step count and schedule, from 0
    ft = tmp_path / "ft"
    assert "initialised G, D, G_ema, C from" in (ft / "train.log").read_text()
    # the same training classifier, not a new one
    assert (ft / "aux_classifier.safetensors").read_bytes() == (src / "aux_classifier.safetensors").read_bytes()
    a, b = load_file(str(src / "last" / "G.safetensors")), load_file(str(ft / "last" / "G.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a second call resumes the fine-tune itself, not the source run
    cfg.steps = 2
    assert at.train(cfg)["step"] == 2 and "resumed at step 1" in (ft / "train.log").read_text()


def test_init_from_must_be_a_checkpoint(tmp_path):
    import pytest

    _cache(tmp_path / "c.npz")
    cfg = _cfg(tmp_path, 1)
    cfg.init_from = str(tmp_path / "nowhere")
    from facegan.errors import ConfigError

    with pytest.raises(ConfigError, match="not a checkpoint folder"):
        at.train(cfg)


def test_edit_mask_limits_the_change_to_the_pasted_region(tmp_path):
    """edit_mask="ellipse": losses see x + mask * (G(x) - x), the change paste-back keeps."""
    mask = at.edit_mask_tensor("ellipse", 32)
    assert at.edit_mask_tensor("", 32) is None

    class AddOne(torch.nn.Module):
        def forward(self, x, t):
            return x + 1.0

    x = torch.zeros(1, 3, 32, 32)
    y = at.MaskedEdit(AddOne(), mask)(x, torch.zeros(1, dtype=torch.long))
    assert float(y[0, :, 0, 0].abs().max()) == 0.0  # corner: outside the face ellipse, untouched
    assert float(y[0, :, 16, 16].min()) > 0.99  # face centre: the full change
    _cache(tmp_path / "c.npz")
    cfg = _cfg(tmp_path, 2)
    cfg.edit_mask = "ellipse"
    assert at.train(cfg)["step"] == 2


def test_d_mask_hides_everything_outside_the_face_from_the_discriminator(tmp_path, monkeypatch):
    seen = []

    class Recording(at.DomainPatchDiscriminator):
        def forward(self, x, d):
            seen.append(x.detach().clone())
            return super().forward(x, d)

    monkeypatch.setattr(at, "DomainPatchDiscriminator", Recording)
    _cache(tmp_path / "c.npz")
    cfg = _cfg(tmp_path, 2)
    cfg.edit_mask = cfg.d_mask = "ellipse"
    at.train(cfg)
    assert len(seen) == 6  # real, fake (D step) and fake (G step), per step
    for x in seen:
        assert float(x[:, :, 0, 0].abs().max()) == 0.0  # a corner: hair / background, hidden
        assert float(x[:, :, 16, 16].abs().max()) > 0.0  # the face centre: seen


def test_fine_tune_with_a_fresh_larger_discriminator_and_warm_up(tmp_path):
    from safetensors.torch import load_file

    _cache(tmp_path / "c.npz")
    at.train(_cfg(tmp_path, 2))
    src = tmp_path / "run"
    cfg = _cfg(tmp_path, 1)
    cfg.out_dir, cfg.init_from, cfg.lr = str(tmp_path / "ft"), str(src / "last"), 0.0
    cfg.ndf, cfg.init_fresh, cfg.d_warmup = 16, ["D"], 3  # a wider D than the source run's 8
    assert at.train(cfg)["step"] == 1
    log = (tmp_path / "ft" / "train.log").read_text()
    assert "initialised G, G_ema, C from" in log and "D warm-up 3/3" in log
    d = load_file(str(tmp_path / "ft" / "last" / "D.safetensors"))
    assert max(v.shape[0] for v in d.values()) > max(
        v.shape[0] for v in load_file(str(src / "last" / "D.safetensors")).values())
    cfg.steps = 2  # a resume does not warm the checkpointed D up again
    at.train(cfg)
    assert (tmp_path / "ft" / "train.log").read_text().count("D warm-up 3/3") == 1


def test_lambda_idt_keeps_a_face_already_in_the_target_domain(tmp_path):
    """lambda_idt: G(x, x's own domain) is pulled to x (CycleGAN's identity loss), so the same-domain
    change ends far smaller than without it (same seed, same data, same steps)."""
    from facegan.nets.loading import load_generator

    _cache(tmp_path / "c.npz")
    change = {}
    for w in (0.0, 50.0):
        cfg = _cfg(tmp_path, 30)
        cfg.out_dir = str(tmp_path / f"run{w:g}")
        cfg.lr, cfg.ema_decay, cfg.zero_init_out = 2e-3, 0.0, False  # G starts off the identity; EMA = G
        cfg.lambda_idt = w
        at.train(cfg)
        g, _ = load_generator(tmp_path / f"run{w:g}" / "last")
        d = np.load(tmp_path / "c.npz")
        x = at._to_tensor(d["crops"][:8])
        with torch.no_grad():
            same = [g(x[i:i + 1], "female" if d["gender"][i] else "male") for i in range(8)]
        change[w] = float(torch.cat(same).sub(x).abs().mean())
    assert change[50.0] < 0.7 * change[0.0], change


def test_one_direction_adapter_moves_only_that_targets_affines(tmp_path):
    """source_domains [female] + train_only affines:male: after a fine-tune every weight of G is as
    loaded except the "male" rows of the per-domain norm affines (so men -> women is unchanged), those
    rows did move, and D still saw real men (its male map was trained on real faces)."""
    from safetensors.torch import load_file

    _cache(tmp_path / "c.npz")
    at.train(_cfg(tmp_path, 2))
    src = tmp_path / "run"
    cfg = _cfg(tmp_path, 4)
    cfg.out_dir, cfg.init_from, cfg.lr = str(tmp_path / "ad"), str(src / "last"), 1e-2
    cfg.source_domains, cfg.train_only = ["female"], "affines:male"
    seen = []
    orig = at.Data.batch

    def spy(self, n, flip=True, only=None):
        x, y = orig(self, n, flip, only)
        seen.append(set(y.tolist()))
        return x, y

    at.Data.batch = spy
    try:
        at.train(cfg)
    finally:
        at.Data.batch = orig
    assert {1} in seen and {0} in seen  # women for G, real men for D and the classifier
    assert "training only affines:male" in (tmp_path / "ad" / "train.log").read_text()
    # the adapter starts from the loaded EMA weights (what ships) and the EMA of it moves the same rows
    for name in ("G", "G_ema"):
        a = load_file(str(src / "last" / "G_ema.safetensors"))
        b = load_file(str(tmp_path / "ad" / "last" / f"{name}.safetensors"))
        moved = [k for k in a if not torch.equal(a[k], b[k])]
        assert moved and all(k.endswith((".weight", ".bias")) and a[k].dim() == 2 for k in moved), moved
        for k in moved:  # DomainNorm2d rows: 0 male (moves), 1 female (exactly as loaded)
            assert torch.equal(a[k][1], b[k][1]) and not torch.equal(a[k][0], b[k][0])


def test_adapter_and_source_options_are_checked(tmp_path):
    import pytest

    from facegan.errors import ConfigError

    _cache(tmp_path / "c.npz")
    for key, val, msg in (("train_only", "convs:male", "expected 'affines:<domain>'"),
                          ("train_only", "affines:robot", "not one of the domains"),
                          ("source_domains", ["robot"], "not one of the domains")):
        cfg = _cfg(tmp_path, 1)
        cfg.out_dir = str(tmp_path / key)
        setattr(cfg, key, val)
        with pytest.raises(ConfigError, match=msg):
            at.train(cfg)
