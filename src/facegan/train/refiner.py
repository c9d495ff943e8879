"""Trains a realism refiner: a small residual network that makes composite face crops look like real
faces while changing them as little as it can (SimGAN: Shrivastava et al., "Learning from Simulated and
Unsupervised Images through Adversarial Training", CVPR 2017).

Here the "simulated" images are the crops ``anonymize`` pastes back (translated, k-Same blended,
colour scaled; recorded by ``scripts/refiner_data.py`` from UTKFace *train* photos), the real ones are
aligned UTKFace train faces of the same target gender. Losses: a local adversarial loss (PatchGAN,
one real/fake map per target gender, fed from a history of refined crops as in SimGAN) and
self-regularisation (L1 to the input, in full and on the 4x-pooled crop, so the face's
low-frequency appearance, which carries the changed identity, stays). Like paste-back, the change is
multiplied by the face ellipse, and the discriminator sees the ellipse only (hair is kept anyway).

Run: ``facegan train configs/anonymize-refiner.yaml`` (resumes from ``out_dir`` automatically).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..nets.cyclegan import init_weights
from ..nets.translator import DomainPatchDiscriminator, ResidualTranslator
from .attr_translator import MaskedEdit, _to_tensor, _to_uint8, edit_mask_tensor, teacher_loss
from .checkpoint import load_checkpoint, save_checkpoint
from .ema import EMA


@dataclass
class RefinerConfig:
    """Defaults: the shipped refiner's recipe (v5, ``configs/anonymize-refiner.yaml``; its faceres terms need
    ``facegan models fetch faceres``, or set ``lambda_teacher`` / ``lambda_keep_id`` to 0). The failed v3 settings
    were 3000 steps at 1e-4, 4 blocks at full resolution, D depth 2 unblurred, L1 pulls 2 / 10, no faceres terms."""
    inputs: str = "cache/refiner_inputs.npz"  # scripts/refiner_data.py: composite crops + target gender
    real: str = "cache/utk200_utkface128.npz"  # `facegan data utkface-cache`: real faces (train split)
    out_dir: str = "runs/anonymize-refiner"
    min_age: int = 16
    max_age: int = 75
    size: int = 128
    batch: int = 8
    steps: int = 2000
    lr: float = 2e-4
    beta1: float = 0.5
    ngf: int = 32
    n_blocks: int = 6
    ndf: int = 32
    n_layers_D: int = 3  # PatchGAN depth (2 = 34 px patches of D's input: local realism, as SimGAN's local loss)
    n_downsampling: int = 2  # 0: every layer at full resolution (SimGAN's refiner, v3); with 2 and transposed
    #                          convolutions the refiner met D with a checkerboard "texture" within 600 steps
    #                          (upsample "resize" avoids it; the shipped v5 recipe: configs/anonymize-refiner.yaml)
    upsample: str = "resize"  # with n_downsampling > 0: "resize" (nearest x2 + conv) draws no checkerboard
    lowpass: int = 1  # the change is averaged over k x k pixels (ResidualTranslator(lowpass=k))
    d_pool: int = 2  # D sees the crops average-pooled by this factor: it judges the face's structure (ghosted
    #                  contours, smudges), not pixel texture, which paste-back takes from the photo anyway
    d_blur: float = 1.5  # > 0: D sees the crops Gaussian-blurred (sigma in px of size) before d_pool: real photos'
    #                     grain is no cue (with d_pool alone the refiner learnt to add grain, not to fix contours)
    lambda_adv: float = 1.0
    lambda_reg: float = 0.05  # L1(refined, input) per pixel
    lambda_low: float = 0.5  # L1 of the 4x-pooled crops: the low-frequency face (the new identity) stays
    lambda_teacher: float = 1.0  # faceres' gender head must read the refined crop as the target (hinged
    teacher_margin: float = 0.1  # cross-entropy, as attr_translator's): D alone let women -> men drift back
    teacher_male_weight: float = 1.0  # the teacher term's weight on crops refined towards male (v5: 1; at
    teacher_margin_male: float | None = None  # --refine 0.5 they lost 2 flips) and its margin there (None: as above)
    lambda_keep_id: float = 1.0  # faceres: 1 - cosine(refined, input crop): the refined face stays the
    #                              composite's person (not the photo's, whose fine detail it could restore)
    pool_size: int = 64  # history of refined crops shown to D (half of each fake batch)
    edit_mask: str = "ellipse"
    d_mask: str = "ellipse"
    ema_decay: float = 0.999
    ckpt_every: int = 100
    snapshot_every: int = 500
    sample_every: int = 100
    seed: int = 0
    threads: int = 2
    # mode "restore": a detail restorer instead (SDEdit's idea in one paired step: degrade, then re-synthesise).
    # Its input is a real train face Gaussian-blurred by a sigma drawn from restore_sigma (px of size), its
    # target that face: L1 (lambda_rec, inside the edit mask) plus the adversarial loss on the unblurred crops
    # (set d_blur 0, d_pool 1). At inference the op blurs the composite crop the same way and the restorer draws
    # single, sharp contours where the composite had doubled ones, from the blurred face alone (it never sees
    # the photo's own detail). `inputs` is not read; the faceres terms are off.
    mode: str = "refine"
    restore_sigma: tuple = (1.0, 3.5)
    lambda_rec: float = 10.0
    # restore_mix (lo, hi) > 0: the input's detail above the blur is another real face's, weighted by a draw from
    # this range (input = blur(x) + w * (z - blur(z)), target x): the restorer learns to drop detail that does not
    # fit the face's low frequencies and draw what does — the situation of anonymize's composites, whose new low
    # frequencies carry the photo's own detail (doubled contours)
    restore_mix: tuple = (0.0, 0.0)
    init_from: str = ""  # a checkpoint folder to start from when out_dir has none (networks, optimisers and step)


def blur_batch(x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Each image of ``x`` (N, C, H, W) Gaussian-blurred by its own sigma (px; reflect border, separable)."""
    n, c, h, w = x.shape
    r = max(1, int(3 * float(sigmas.max())))
    g = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-(g[None] ** 2) / (2 * sigmas[:, None].to(x.dtype).clamp_min(1e-3) ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (N*C, 2r+1)
    y = F.pad(x.reshape(1, n * c, h, w), (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k[:, None, None, :], groups=n * c)
    y = F.conv2d(y, k[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


def _teacher(p_male: torch.Tensor, t: torch.Tensor, cfg: RefinerConfig) -> torch.Tensor:
    """The hinged gender-teacher term; towards male (t 0) weighted ``teacher_male_weight`` with its own margin."""
    if cfg.teacher_male_weight == 1.0 and cfg.teacher_margin_male is None:
        return teacher_loss(p_male, t, cfg.teacher_margin)
    male = t == 0
    p_target = torch.where(male, p_male, 1 - p_male).clamp_min(1e-6)
    m_male = cfg.teacher_margin if cfg.teacher_margin_male is None else cfg.teacher_margin_male
    margin = torch.where(male, torch.full_like(p_target, m_male), torch.full_like(p_target, cfg.teacher_margin))
    w = torch.where(male, torch.full_like(p_target, cfg.teacher_male_weight), torch.ones_like(p_target))
    return (w * F.relu(-torch.log(p_target) - margin)).mean()


class _Data:
    def __init__(self, cfg: RefinerConfig):
        from .utkface import load_cache

        if cfg.mode == "restore":
            self.syn = np.zeros((0, cfg.size, cfg.size, 3), np.uint8)
            self.syn_t = np.zeros(0, np.int64)
        else:
            s = np.load(cfg.inputs, allow_pickle=False)
            self.syn, self.syn_t = s["crops"], s["target"].astype(np.int64)
        if cfg.mode != "restore" and self.syn.shape[1:] != (cfg.size, cfg.size, 3):
            from ..errors import ConfigError

            raise ConfigError(f"{cfg.inputs}: crops are {self.syn.shape[1:]}, config size {cfg.size}")
        r = load_cache(cfg.real)
        keep = (r["age"] >= cfg.min_age) & (r["age"] <= cfg.max_age) & (r["split"] == "train")
        self.real = r["crops"]
        self.real_idx = [np.where(keep & (r["gender"] == k))[0] for k in (0, 1)]
        self.rng = np.random.default_rng(cfg.seed)

    def _flip(self, x):
        f = self.rng.random(len(x)) < 0.5
        x = x.copy()
        x[f] = x[f, :, ::-1]
        return _to_tensor(np.ascontiguousarray(x))

    def synthetic(self, n):
        i = self.rng.integers(0, len(self.syn), n)
        return self._flip(self.syn[i]), torch.from_numpy(self.syn_t[i])

    def real_pairs(self, n, sigma: tuple, mix: tuple = (0.0, 0.0)):
        """``n`` real train faces: (blurred, sharp, gender), each blurred by a sigma drawn from ``sigma``."""
        t = torch.from_numpy(self.rng.integers(0, 2, n))
        sharp = self.real_like(t)
        s = torch.from_numpy(self.rng.uniform(sigma[0], sigma[1], n)).float()
        x = blur_batch(sharp, s)
        if mix[1] > 0:  # another face's detail on top of this one's low frequencies
            other = self.real_like(torch.from_numpy(self.rng.integers(0, 2, n)))
            w = torch.from_numpy(self.rng.uniform(mix[0], mix[1], n)).float()[:, None, None, None]
            x = (x + w * (other - blur_batch(other, s))).clamp(-1, 1)
        return x, sharp, t

    def real_like(self, t: torch.Tensor):
        i = np.array([self.rng.choice(self.real_idx[int(k)]) for k in t])
        return self._flip(self.real[i])


def build_refiner(cfg: RefinerConfig) -> ResidualTranslator:
    G = init_weights(ResidualTranslator(2, cfg.ngf, cfg.n_blocks, n_downsampling=cfg.n_downsampling,
                                        lowpass=cfg.lowpass, upsample=cfg.upsample))
    last = [m for m in G.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    torch.nn.init.zeros_(last.weight)  # starts as the identity: no change until D asks for one
    if last.bias is not None:
        torch.nn.init.zeros_(last.bias)
    return G


def _save_grid(G, data: _Data, path: Path, n: int = 8):
    from PIL import Image

    rows = []
    with torch.no_grad():
        for k in (0, 1):
            ix = np.where(data.syn_t == k)[0][:: max(1, (data.syn_t == k).sum() // n)][:n]
            if len(ix) == 0:  # restore mode: held-out style preview on train faces blurred at sigma 2.5
                ix = data.real_idx[k][:: max(1, len(data.real_idx[k]) // n)][:n]
                src = data.real[ix]
                x = blur_batch(_to_tensor(src), torch.full((len(ix),), 2.5))
                y = _to_uint8(G(x, torch.full((len(x),), k)))
                rows += [np.concatenate(list(a), 1) for a in (src, _to_uint8(x), y)]
                continue
            x = _to_tensor(data.syn[ix])
            y = _to_uint8(G(x, torch.full((len(x),), k)))
            d = np.clip(128 + 3 * (y.astype(np.int16) - data.syn[ix]), 0, 255).astype(np.uint8)
            rows += [np.concatenate(list(data.syn[ix]), 1), np.concatenate(list(y), 1), np.concatenate(list(d), 1)]
    Image.fromarray(np.concatenate(rows, 0)).save(path)


def train(cfg: RefinerConfig, max_minutes: float | None = None) -> dict:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    logf = open(out / "train.log", "a")

    def log(msg):
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    data = _Data(cfg)
    log(f"inputs {len(data.syn)} (to male {int((data.syn_t == 0).sum())}, to female {int((data.syn_t == 1).sum())}); "
        f"real train faces {[len(i) for i in data.real_idx]}")
    G = build_refiner(cfg)
    D = init_weights(DomainPatchDiscriminator(2, cfg.ndf, cfg.n_layers_D))
    optG = torch.optim.Adam(G.parameters(), cfg.lr, betas=(cfg.beta1, 0.999))
    optD = torch.optim.Adam(D.parameters(), cfg.lr, betas=(cfg.beta1, 0.999))
    ema = EMA(G, cfg.ema_decay)
    mask = edit_mask_tensor(cfg.edit_mask, cfg.size)
    Gm = MaskedEdit(G, mask) if mask is not None else G
    dmask = edit_mask_tensor(cfg.d_mask, cfg.size)

    blur_k = None
    if cfg.d_blur > 0:
        from .losses import _gauss

        w = 2 * int(3 * cfg.d_blur) + 1
        g = _gauss(w, cfg.d_blur, "cpu", torch.float32)
        blur_k = (g[:, None] * g[None, :]).expand(3, 1, w, w).contiguous()

    def Dm(img, t):
        if blur_k is not None:
            p = blur_k.shape[-1] // 2
            img = F.conv2d(F.pad(img, (p, p, p, p), mode="reflect"), blur_k, groups=3)
        img = img * dmask if dmask is not None else img
        return D(F.avg_pool2d(img, cfg.d_pool) if cfg.d_pool > 1 else img, t)

    def view(g):
        return MaskedEdit(g, mask) if mask is not None else g

    mods = {"G": G, "D": D, "G_ema": ema.model}
    opts = {"G": optG, "D": optD}
    step = 0
    ck = out / "last"
    start = ck if (ck / "meta.json").exists() else Path(cfg.init_from) if cfg.init_from else None
    if start is not None:
        step = int(load_checkpoint(start, mods, opts)["step"])
        data.rng = np.random.default_rng(cfg.seed + step)
        torch.manual_seed(cfg.seed + step)
        log(f"resumed at step {step}" + ("" if start == ck else f" from {start}"))
    id_net = None
    restore = cfg.mode == "restore"
    if not restore and (cfg.lambda_teacher > 0 or cfg.lambda_keep_id > 0):
        from ..judges.faceres import FaceResIdentity

        id_net = FaceResIdentity()
        log(f"faceres terms: gender teacher {cfg.lambda_teacher} (margin {cfg.teacher_margin}; towards male x"
            f"{cfg.teacher_male_weight:g}, margin {cfg.teacher_margin if cfg.teacher_margin_male is None else cfg.teacher_margin_male}), "
            f"keep identity {cfg.lambda_keep_id}")
    pool_x = torch.zeros(0, 3, cfg.size, cfg.size)
    pool_t = torch.zeros(0, dtype=torch.long)

    def lr_at(s):  # constant, then linear decay over the last half
        half = cfg.steps // 2
        return cfg.lr if s < half else cfg.lr * max(0.0, (cfg.steps - s) / (cfg.steps - half))

    t0 = t_last = time.time()
    hist: dict = {}
    while step < cfg.steps:
        for o in (optG, optD):
            for g in o.param_groups:
                g["lr"] = lr_at(step)
        if restore:
            x, sharp, t = data.real_pairs(cfg.batch, tuple(cfg.restore_sigma), tuple(cfg.restore_mix))
        else:
            x, t = data.synthetic(cfg.batch)
        fake = Gm(x, t)
        # --- D: real faces of each target gender against refined crops (half from the history)
        xr = data.real_like(t)
        fd, td = fake.detach(), t
        if len(pool_x) >= cfg.batch // 2:
            j = torch.randint(0, len(pool_x), (cfg.batch // 2,))
            fd = torch.cat([fd[: cfg.batch - len(j)], pool_x[j]])
            td = torch.cat([t[: cfg.batch - len(j)], pool_t[j]])
        d_real, d_fake = Dm(xr, t), Dm(fd, td)
        loss_d = 0.5 * (F.mse_loss(d_real, torch.ones_like(d_real)) + F.mse_loss(d_fake, torch.zeros_like(d_fake)))
        optD.zero_grad(set_to_none=True)
        loss_d.backward()
        optD.step()
        pool_x = torch.cat([pool_x, fake.detach()])[-cfg.pool_size:]
        pool_t = torch.cat([pool_t, t])[-cfg.pool_size:]
        # --- G
        d_out = Dm(fake, t)
        loss_adv = F.mse_loss(d_out, torch.ones_like(d_out))
        extra = {}
        if restore:
            w = mask if mask is not None else torch.ones(1, 1, cfg.size, cfg.size)
            loss_reg = ((fake - sharp).abs() * w).sum() / (w.sum() * 3 * len(fake))
            loss_low = F.l1_loss(F.avg_pool2d(fake, 4), F.avg_pool2d(sharp, 4)).detach()
            loss_g = cfg.lambda_adv * loss_adv + cfg.lambda_rec * loss_reg
        else:
            loss_reg = F.l1_loss(fake, x)
            loss_low = F.l1_loss(F.avg_pool2d(fake, 4), F.avg_pool2d(x, 4))
            loss_g = cfg.lambda_adv * loss_adv + cfg.lambda_reg * loss_reg + cfg.lambda_low * loss_low
        if id_net is not None:
            e_fake, p_male = id_net(fake)
            if cfg.lambda_teacher > 0:
                extra["teacher"] = _teacher(p_male, t, cfg)
                loss_g = loss_g + cfg.lambda_teacher * extra["teacher"]
            if cfg.lambda_keep_id > 0:
                with torch.no_grad():
                    e_in = id_net(x)[0]
                extra["keep_id"] = (1 - (e_fake * e_in).sum(1)).mean()
                loss_g = loss_g + cfg.lambda_keep_id * extra["keep_id"]
        optG.zero_grad(set_to_none=True)
        loss_g.backward()
        optG.step()
        ema.update(G)
        step += 1
        vals = dict(d=loss_d.item(), adv=loss_adv.item(), reg=loss_reg.item(), low=loss_low.item(),
                    **{k: v.item() for k, v in extra.items()})
        for k, v in vals.items():
            hist[k] = 0.98 * hist.get(k, v) + 0.02 * v
        if step % 20 == 0:
            el, t_last = time.time() - t_last, time.time()
            log(f"step {step}/{cfg.steps} {el / 20:.2f}s/step lr {lr_at(step):.2e} "
                + " ".join(f"{k} {v:.4f}" for k, v in hist.items()))
        meta = {"step": step, "config": asdict(cfg), "time": time.time()}
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            save_checkpoint(ck, mods, opts, meta)
        if cfg.snapshot_every and step % cfg.snapshot_every == 0:
            save_checkpoint(out / f"step{step:06d}", mods, {}, meta)
        if step % cfg.sample_every == 0:
            _save_grid(view(ema.model), data, out / "samples" / f"step{step:06d}.png")
        if max_minutes is not None and time.time() - t0 > max_minutes * 60:
            save_checkpoint(ck, mods, opts, meta)
            log(f"time budget reached at step {step}")
            break
    res = {"step": step}
    if step >= cfg.steps:  # finished: the EMA generator as a model folder --refine can load
        from ..ops.refiner_model import ENV, ENV_RESTORER, export_refiner

        res["model"] = str(export_refiner(ck, out / "model"))
        log(f"model folder {res['model']} (use it with {ENV_RESTORER if restore else ENV}={res['model']})")
    return res
