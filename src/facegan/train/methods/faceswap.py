"""Autoencoder face swap: one shared encoder, one decoder per identity (deepfakes-style).

Each identity is reconstructed from randomly warped crops (:class:`~facegan.train.datasets.SwapDataset`)
with L1 (``lambda_l1``) and optionally SSIM (``lambda_ssim``); ``lambda_adv`` > 0 adds an LSGAN term
from a per-identity PatchGAN on the reconstructions. The swap A->B is ``decode_B(encode(A))``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...nets.translator import DomainPatchDiscriminator
from ..losses import GANLoss, ssim_loss
from .base import Method, register_method


@register_method
class FaceSwap(Method):
    name = "faceswap"
    data_kind = "swap"
    defaults = {
        "model": {"ngf": 32, "latent": 256, "dec_res": True, "ndf": 32, "n_layers_D": 3, "init": "kaiming"},
        "loss": {"lambda_l1": 1.0, "lambda_ssim": 0.0, "lambda_adv": 0.0, "gan": "lsgan"},
        "train": {"lr": 1e-4, "lr_policy": "constant"},
    }

    def build(self):
        m = self.cfg.model
        self.add_generator("G", "FaceSwapAutoencoder", dict(size=int(self.cfg.size), ngf=int(m.ngf),
                                                            latent=int(m.latent), n_identities=2,
                                                            dec_res=bool(m.dec_res)))
        self.use_adv = float(self.cfg.loss.lambda_adv) > 0
        if self.use_adv:
            self.add_net("D", DomainPatchDiscriminator(2, int(m.ndf), int(m.n_layers_D)))
            self.gan = GANLoss(self.cfg.loss.gan)

    def generator_info(self):
        return {"direction": "A->B", "call": {"identity": 1}}

    def _rec_loss(self, x, y):
        L = self.cfg.loss
        loss = L.lambda_l1 * F.l1_loss(x, y)
        if L.lambda_ssim > 0:
            loss = loss + L.lambda_ssim * ssim_loss(x, y)
        return loss

    def train_step(self, batch):
        G = self.nets["G"]
        n = batch["A"].shape[0]
        dom = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)]).to(self.device)
        if self.use_adv:
            self.requires_grad(self.nets["D"], False)
        with self.autocast():
            code_a, code_b = G.encode(batch["A_in"]), G.encode(batch["B_in"])
            rec_a, rec_b = G.decode(code_a, 0), G.decode(code_b, 1)
            rec_A = self._rec_loss(rec_a, batch["A"])
            rec_B = self._rec_loss(rec_b, batch["B"])
            loss_G = rec_A + rec_B
            out = {}
            if self.use_adv:
                fake = torch.cat([rec_a, rec_b])
                adv = self.gan(self.nets["D"](fake, dom), True, for_discriminator=False)
                loss_G = loss_G + self.cfg.loss.lambda_adv * adv
                out["adv"] = adv.item()
        self.step(loss_G, "G")
        out.update(G=loss_G.item(), rec_A=rec_A.item(), rec_B=rec_B.item())
        if self.use_adv:
            D = self.nets["D"]
            self.requires_grad(D, True)
            with self.autocast():
                real = torch.cat([batch["A"], batch["B"]])
                loss_D = 0.5 * (self.gan(D(real, dom), True) + self.gan(D(fake.detach(), dom), False))
            self.step(loss_D, "D")
            out["D"] = loss_D.item()
        with torch.no_grad():
            out["l1_A"] = F.l1_loss(rec_a, batch["A"]).item()
            out["l1_B"] = F.l1_loss(rec_b, batch["B"]).item()
        return out

    @torch.no_grad()
    def sample_rows(self, batch, nets):
        G = nets["G"]
        a, b = batch["A"], batch["B"]
        ca, cb = G.encode(a), G.encode(b)
        return [("A", a), ("rec A", G.decode(ca, 0)), ("A as B (swap)", G.decode(ca, 1)),
                ("B", b), ("rec B", G.decode(cb, 1)), ("B as A (swap)", G.decode(cb, 0))]
