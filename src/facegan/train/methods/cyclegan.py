"""CycleGAN (Zhu et al. 2017), with the progressive-growth option.

G: A -> B and F: B -> A (ResNet or U-Net generators), 70x70 PatchGANs D_B (judges G's outputs) and
D_A (judges F's), LSGAN, cycle L1 (lambda_A, lambda_B) + identity L1 (lambda_idt, relative to the
cycle weights, as in the reference code), image history pools of 50 fakes.

``model.progressive.enabled``: generators/discriminators start at 1/2**(stages-1) of the image size
and grow one stage every ``grow_every`` steps; each new stage is faded in over ``fade_steps`` (alpha
ramp). Defaults spread growth over the first half of training.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...nets.cyclegan import NLayerDiscriminator
from ...nets.progressive import ProgressivePatchDiscriminator
from ..losses import GANLoss
from ..pool import ImagePool
from .base import Method, register_method


def generator_spec(m, size: int) -> tuple[str, dict]:
    """(class name, kwargs) of the A->B / B->A generator chosen by ``model.netG``."""
    if m.netG == "resnet":
        return "ResnetGenerator", dict(input_nc=3, output_nc=3, ngf=int(m.ngf), norm=m.norm,
                                       use_dropout=bool(m.dropout), n_blocks=int(m.n_blocks),
                                       n_downsampling=int(m.n_downsampling))
    if m.netG == "unet":
        downs = int(m.unet_downs or round(math.log2(size)))
        return "UnetGenerator", dict(input_nc=3, output_nc=3, num_downs=downs, ngf=int(m.ngf), norm=m.norm,
                                     use_dropout=bool(m.dropout))
    from ...errors import ConfigError

    raise ConfigError(f"model.netG must be resnet or unet, not {m.netG!r}")


@register_method
class CycleGAN(Method):
    name = "cyclegan"
    data_kind = "unpaired"
    ema_nets = ("G", "F")
    defaults = {
        "model": {"netG": "resnet", "ngf": 32, "n_blocks": 6, "n_downsampling": 2, "unet_downs": None,
                  "norm": "instance", "dropout": False, "ndf": 32, "n_layers_D": 3, "norm_D": "instance",
                  "progressive": {"enabled": False, "stages": 3, "grow_every": None, "fade_steps": None}},
        "loss": {"gan": "lsgan", "lambda_A": 10.0, "lambda_B": 10.0, "lambda_idt": 0.5},
        "train": {"pool_size": 50},
    }

    @property
    def progressive(self) -> bool:
        return bool(self.cfg.model.progressive.enabled)

    def build(self):
        m = self.cfg.model
        if self.progressive:
            S = int(m.progressive.stages)
            if int(self.cfg.size) % (2 ** (S - 1)):
                from ...errors import ConfigError

                raise ConfigError(f"size {self.cfg.size} is not divisible by 2**(stages-1) = {2 ** (S - 1)}")
            cls, kw = "ProgressiveResnetGenerator", dict(ngf=int(m.ngf), n_blocks=int(m.n_blocks), n_stages=S,
                                                         norm=m.norm)
            make_d = lambda: ProgressivePatchDiscriminator(3, int(m.ndf), S, norm=m.norm_D)  # noqa: E731
        else:
            cls, kw = generator_spec(m, int(self.cfg.size))
            make_d = lambda: NLayerDiscriminator(3, int(m.ndf), int(m.n_layers_D), m.norm_D)  # noqa: E731
        self.add_generator("G", cls, kw)
        self.add_generator("F", cls, kw)
        self.add_net("D_A", make_d())
        self.add_net("D_B", make_d())
        self.gan = GANLoss(self.cfg.loss.gan)
        self.pool_A = ImagePool(int(self.cfg.train.pool_size))
        self.pool_B = ImagePool(int(self.cfg.train.pool_size))
        self.stage, self.alpha = (0, 1.0) if self.progressive else (None, 1.0)
        if self.progressive:
            self._apply_stage(self.nets.values())

    def generator_info(self):
        return {"direction": "A->B", "reverse": {**self.gen_specs["F"], "file": "F_ema.safetensors"}}

    # ------------------------------------------------------------- progressive schedule
    def stage_at(self, step: int) -> tuple[int, float]:
        p = self.cfg.model.progressive
        S = int(p.stages)
        if S <= 1:
            return 0, 1.0
        every = int(p.grow_every or max(1, int(self.cfg.train.steps) // (2 * (S - 1))))
        fade = int(p.fade_steps if p.fade_steps is not None else every // 2)
        s = min(step // every, S - 1)
        if s == 0:
            return 0, 1.0
        alpha = 1.0 if fade <= 0 else min(1.0, (step - s * every) / fade)
        return s, alpha

    def _apply_stage(self, nets):
        for n in nets:
            if hasattr(n, "set_stage"):
                n.set_stage(self.stage, self.alpha)

    def set_step(self, step):
        super().set_step(step)
        if self.progressive:
            self.stage, self.alpha = self.stage_at(step)
            self._apply_stage(self.nets.values())

    def resolution(self) -> int:
        if not self.progressive:
            return int(self.cfg.size)
        return int(self.cfg.size) // 2 ** (int(self.cfg.model.progressive.stages) - 1 - self.stage)

    def _fit(self, x):
        r = self.resolution()
        return x if x.shape[-1] == r else F.interpolate(x, size=(r, r), mode="area")

    # ------------------------------------------------------------- step
    def train_step(self, batch):
        G, Fn, D_A, D_B = (self.nets[k] for k in ("G", "F", "D_A", "D_B"))
        L = self.cfg.loss
        real_A, real_B = self._fit(batch["A"]), self._fit(batch["B"])
        self.requires_grad([D_A, D_B], False)
        with self.autocast():
            fake_B = G(real_A)
            rec_A = Fn(fake_B)
            fake_A = Fn(real_B)
            rec_B = G(fake_A)
            loss_G_A = self.gan(D_B(fake_B), True, for_discriminator=False)
            loss_G_B = self.gan(D_A(fake_A), True, for_discriminator=False)
            loss_cyc_A = F.l1_loss(rec_A, real_A) * L.lambda_A
            loss_cyc_B = F.l1_loss(rec_B, real_B) * L.lambda_B
            loss_idt = real_A.new_zeros(())
            if L.lambda_idt > 0:
                loss_idt = (F.l1_loss(G(real_B), real_B) * L.lambda_B
                            + F.l1_loss(Fn(real_A), real_A) * L.lambda_A) * L.lambda_idt
            loss_G = loss_G_A + loss_G_B + loss_cyc_A + loss_cyc_B + loss_idt
        self.step(loss_G, "G")
        self.requires_grad([D_A, D_B], True)
        with self.autocast():
            fb = self.pool_B.query(fake_B.detach())
            fa = self.pool_A.query(fake_A.detach())
            loss_D_B = 0.5 * (self.gan(D_B(real_B), True) + self.gan(D_B(fb), False))
            loss_D_A = 0.5 * (self.gan(D_A(real_A), True) + self.gan(D_A(fa), False))
        self.step(loss_D_A + loss_D_B, "D")
        out = {"G": loss_G.item(), "G_A": loss_G_A.item(), "G_B": loss_G_B.item(), "cyc_A": loss_cyc_A.item(),
               "cyc_B": loss_cyc_B.item(), "idt": loss_idt.item(), "D_A": loss_D_A.item(), "D_B": loss_D_B.item()}
        if self.progressive:
            out.update(stage=float(self.stage), alpha=float(self.alpha))
        return out

    @torch.no_grad()
    def sample_rows(self, batch, nets):
        G, Fn = nets["G"], nets["F"]
        self._apply_stage([G, Fn])
        a, b = self._fit(batch["A"]), self._fit(batch["B"])
        ab, ba = G(a), Fn(b)
        up = lambda x: F.interpolate(x, size=batch["A"].shape[-2:], mode="nearest")  # noqa: E731
        return [("A", up(a)), ("G(A)", up(ab)), ("F(G(A))", up(Fn(ab))),
                ("B", up(b)), ("F(B)", up(ba)), ("G(F(B))", up(G(ba)))]

    def extra_state(self):
        st = {}
        for k, pool in (("pool_A", self.pool_A), ("pool_B", self.pool_B)):
            t = pool.state_tensor()
            if t is not None:
                st[k] = t
        return st

    def load_extra_state(self, state):
        self.pool_A.load_state_tensor(state.get("pool_A"), self.device)
        self.pool_B.load_state_tensor(state.get("pool_B"), self.device)
