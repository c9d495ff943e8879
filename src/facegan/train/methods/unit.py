"""UNIT (Liu et al. 2017): shared-latent VAE-GAN for unpaired translation.

Losses per the paper/reference trainer: within-domain VAE reconstruction (L1, ``lambda_rec``) with
KL ``lambda_kl``, translation adversarial terms (multi-scale LSGAN, ``lambda_gan``), and the
cycle-consistency VAE term (``lambda_cyc``, KL ``lambda_kl_cyc``). The latent posterior has unit
variance, so KL reduces to mean(mu^2).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...nets.blocks import MultiscaleDiscriminator
from ..losses import GANLoss, kl_unit
from .base import Method, register_method


@register_method
class UNIT(Method):
    name = "unit"
    data_kind = "unpaired"
    ema_nets = ("G",)
    defaults = {
        "model": {"ngf": 32, "n_down": 2, "n_res": 3, "n_shared": 1, "norm": "instance",
                  "ndf": 32, "n_layers_D": 3, "num_D": 2, "norm_D": "instance", "init": "kaiming"},
        "loss": {"gan": "lsgan", "lambda_gan": 1.0, "lambda_rec": 10.0, "lambda_kl": 0.01, "lambda_cyc": 10.0,
                 "lambda_kl_cyc": 0.01},
        "train": {"lr": 1e-4, "weight_decay": 1e-4},
    }

    def build(self):
        m = self.cfg.model
        self.add_generator("G", "UNITGenerator", dict(input_nc=3, ngf=int(m.ngf), n_down=int(m.n_down),
                                                     n_res=int(m.n_res), n_shared=int(m.n_shared), norm=m.norm))
        for k in ("D_A", "D_B"):
            self.add_net(k, MultiscaleDiscriminator(3, int(m.ndf), int(m.n_layers_D), int(m.num_D), m.norm_D))
        self.gan = GANLoss(self.cfg.loss.gan)

    def generator_info(self):
        return {"direction": "A->B", "call": {"target": 1}}

    def train_step(self, batch):
        G, D_A, D_B = self.nets["G"], self.nets["D_A"], self.nets["D_B"]
        L = self.cfg.loss
        x_a, x_b = batch["A"], batch["B"]
        self.requires_grad([D_A, D_B], False)
        with self.autocast():
            h_a, h_b = G.encode(x_a, 0), G.encode(x_b, 1)
            z_a, z_b = G.sample(h_a), G.sample(h_b)
            x_a_rec, x_b_rec = G.decode(z_a, 0), G.decode(z_b, 1)
            x_ba, x_ab = G.decode(z_b, 0), G.decode(z_a, 1)
            h_b_rec, h_a_rec = G.encode(x_ba, 0), G.encode(x_ab, 1)
            x_aba = G.decode(G.sample(h_a_rec), 0)
            x_bab = G.decode(G.sample(h_b_rec), 1)
            rec = F.l1_loss(x_a_rec, x_a) + F.l1_loss(x_b_rec, x_b)
            kl = kl_unit(h_a) + kl_unit(h_b)
            cyc = F.l1_loss(x_aba, x_a) + F.l1_loss(x_bab, x_b)
            kl_cyc = kl_unit(h_a_rec) + kl_unit(h_b_rec)
            adv = (self.gan(D_A(x_ba), True, for_discriminator=False)
                   + self.gan(D_B(x_ab), True, for_discriminator=False))
            loss_G = (L.lambda_gan * adv + L.lambda_rec * rec + L.lambda_kl * kl + L.lambda_cyc * cyc
                      + L.lambda_kl_cyc * kl_cyc)
        self.step(loss_G, "G")
        self.requires_grad([D_A, D_B], True)
        with self.autocast():
            loss_D = (self.gan(D_A(x_ba.detach()), False) + self.gan(D_A(x_a), True)
                      + self.gan(D_B(x_ab.detach()), False) + self.gan(D_B(x_b), True))
        self.step(loss_D, "D")
        return {"G": loss_G.item(), "adv": adv.item(), "rec": rec.item(), "kl": kl.item(), "cyc": cyc.item(),
                "kl_cyc": kl_cyc.item(), "D": loss_D.item()}

    @torch.no_grad()
    def sample_rows(self, batch, nets):
        G = nets["G"]
        a, b = batch["A"], batch["B"]
        h_a, h_b = G.encode(a, 0), G.encode(b, 1)  # means: deterministic samples
        return [("A", a), ("rec A", G.decode(h_a, 0)), ("A->B", G.decode(h_a, 1)),
                ("B", b), ("rec B", G.decode(h_b, 1)), ("B->A", G.decode(h_b, 0))]
