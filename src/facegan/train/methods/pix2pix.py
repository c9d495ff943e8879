"""Paired translation: pix2pix (Isola et al. 2017) and pix2pixHD (Wang et al. 2018).

pix2pix: U-Net (or ResNet) G, conditional 70x70 PatchGAN on concat(input, output), GAN + L1
(lambda_L1 = 100). pix2pixHD: global generator, optionally wrapped by a local enhancer,
conditional multi-scale discriminators, LSGAN + discriminator feature matching (lambda_feat = 10).
The VGG perceptual term of pix2pixHD is not included (no VGG weights are available offline).
``train.fix_global_steps``: for the local enhancer, train only the local branches for that many
steps first (the global branch can be initialised from a trained global generator with
``model.global_from: runs/x/last``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...nets.blocks import MultiscaleDiscriminator
from ...nets.cyclegan import NLayerDiscriminator
from ..losses import GANLoss, feature_matching
from .base import Method, register_method
from .cyclegan import generator_spec


@register_method
class Pix2Pix(Method):
    name = "pix2pix"
    data_kind = "paired"
    defaults = {
        "model": {"netG": "unet", "ngf": 32, "unet_downs": None, "n_blocks": 6, "n_downsampling": 2,
                  "norm": "instance", "dropout": True, "ndf": 32, "n_layers_D": 3, "norm_D": "instance"},
        "loss": {"gan": "vanilla", "lambda_L1": 100.0},
    }

    def build(self):
        m = self.cfg.model
        cls, kw = generator_spec(m, int(self.cfg.size))
        self.add_generator("G", cls, kw)
        self.add_net("D", NLayerDiscriminator(6, int(m.ndf), int(m.n_layers_D), m.norm_D))
        self.gan = GANLoss(self.cfg.loss.gan)

    def generator_info(self):
        return {"direction": "A->B"}

    def train_step(self, batch):
        G, D = self.nets["G"], self.nets["D"]
        a, b = batch["A"], batch["B"]
        with self.autocast():
            fake = G(a)
        self.requires_grad(D, True)
        with self.autocast():
            loss_D = 0.5 * (self.gan(D(torch.cat([a, fake.detach()], 1)), False)
                            + self.gan(D(torch.cat([a, b], 1)), True))
        self.step(loss_D, "D")
        self.requires_grad(D, False)
        with self.autocast():
            adv = self.gan(D(torch.cat([a, fake], 1)), True, for_discriminator=False)
            l1 = F.l1_loss(fake, b)
            loss_G = adv + self.cfg.loss.lambda_L1 * l1
        self.step(loss_G, "G")
        self.requires_grad(D, True)
        return {"G": loss_G.item(), "adv": adv.item(), "L1": l1.item(), "D": loss_D.item()}

    @torch.no_grad()
    def sample_rows(self, batch, nets):
        return [("input A", batch["A"]), ("G(A)", nets["G"](batch["A"])), ("target B", batch["B"])]


@register_method
class Pix2PixHD(Method):
    name = "pix2pixhd"
    data_kind = "paired"
    defaults = {
        "model": {"netG": "local", "ngf": 16, "n_downsample_global": 3, "n_blocks_global": 6,
                  "n_local_enhancers": 1, "n_blocks_local": 3, "norm": "instance", "ndf": 32, "n_layers_D": 3,
                  "num_D": 2, "norm_D": "instance", "global_from": None},
        "loss": {"gan": "lsgan", "lambda_feat": 10.0, "lambda_L1": 0.0},
        "train": {"fix_global_steps": 0},
    }

    def build(self):
        m = self.cfg.model
        if m.netG == "global":
            self.add_generator("G", "GlobalGenerator", dict(input_nc=3, output_nc=3, ngf=int(m.ngf),
                                                            n_downsampling=int(m.n_downsample_global),
                                                            n_blocks=int(m.n_blocks_global), norm=m.norm))
        elif m.netG == "local":
            g = self.add_generator("G", "LocalEnhancer", dict(
                input_nc=3, output_nc=3, ngf=int(m.ngf), n_downsample_global=int(m.n_downsample_global),
                n_blocks_global=int(m.n_blocks_global), n_local_enhancers=int(m.n_local_enhancers),
                n_blocks_local=int(m.n_blocks_local), norm=m.norm))
            if m.global_from:
                from safetensors.torch import load_file
                from pathlib import Path

                p = Path(m.global_from)
                p = p if p.suffix == ".safetensors" else (p / "G_ema.safetensors" if (p / "G_ema.safetensors").exists()
                                                          else p / "G.safetensors")
                g.load_global(load_file(str(p)))
        else:
            from ...errors import ConfigError

            raise ConfigError(f"pix2pixhd model.netG must be global or local, not {m.netG!r}")
        self.add_net("D", MultiscaleDiscriminator(6, int(m.ndf), int(m.n_layers_D), int(m.num_D), m.norm_D))
        self.gan = GANLoss(self.cfg.loss.gan)

    def generator_info(self):
        return {"direction": "A->B"}

    def train_step(self, batch):
        G, D = self.nets["G"], self.nets["D"]
        L = self.cfg.loss
        a, b = batch["A"], batch["B"]
        with self.autocast():
            fake = G(a)
        self.requires_grad(D, True)
        with self.autocast():
            loss_D = 0.5 * (self.gan(D(torch.cat([a, fake.detach()], 1)), False)
                            + self.gan(D(torch.cat([a, b], 1)), True))
        self.step(loss_D, "D")
        self.requires_grad(D, False)
        with self.autocast():
            pf = D(torch.cat([a, fake], 1), features=True)
            with torch.no_grad():
                pr = D(torch.cat([a, b], 1), features=True)
            adv = self.gan(pf, True, for_discriminator=False)
            fm = feature_matching(pf, pr)
            l1 = F.l1_loss(fake, b)
            loss_G = adv + L.lambda_feat * fm + L.lambda_L1 * l1
        fix = self.step_num < int(self.cfg.train.fix_global_steps) and hasattr(G, "global_parameters")
        self.step(loss_G, "G", frozen=list(G.global_parameters()) if fix else ())
        self.requires_grad(D, True)
        return {"G": loss_G.item(), "adv": adv.item(), "feat": fm.item(), "L1": l1.item(), "D": loss_D.item()}

    @torch.no_grad()
    def sample_rows(self, batch, nets):
        return [("input A", batch["A"]), ("G(A)", nets["G"](batch["A"])), ("target B", batch["B"])]
