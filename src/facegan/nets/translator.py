"""Conditioned residual translator (StarGAN-style): one generator for every target domain.

out = clamp(x + scale * G(x | target), -1, 1). Predicting a residual keeps identity and detail; the
residual is what gets pasted back onto full-resolution photos.

The target is injected by conditional instance norm (a per-domain scale and bias after every
norm, ``DomainNorm2d``). Concatenating a constant one-hot map to the input alone does *not*
work: reflection padding keeps it constant and the first InstanceNorm subtracts it away, so the
network would never see its target. The one-hot channels are kept as input for layout
compatibility only. ``lowpass=k`` averages the change over k x k pixels and upsamples it
(bilinear): the edit can only be low-frequency, which stops a classifier loss from being satisfied
by high-frequency stripes, and matches how the change is pasted onto full-resolution photos.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DomainNorm2d, set_domain
from .cyclegan import NLayerDiscriminator, ResnetGenerator


def lowpass_change(d: torch.Tensor, k: int) -> torch.Tensor:
    """A change (N, C, H, W) averaged over k x k pixels and brought back to H x W (bilinear)."""
    if k <= 1:
        return d
    return F.interpolate(F.avg_pool2d(d, k), size=d.shape[-2:], mode="bilinear", align_corners=False)


class ResidualTranslator(nn.Module):
    def __init__(self, n_domains: int = 2, ngf: int = 32, n_blocks: int = 6, n_downsampling: int = 2,
                 residual_scale: float = 1.0, lowpass: int = 1, upsample: str = "transpose"):
        super().__init__()
        self.n_domains = n_domains
        self.residual_scale = residual_scale
        self.lowpass = int(lowpass)
        self.net = ResnetGenerator(3 + n_domains, 3, ngf=ngf, n_blocks=n_blocks,
                                   n_downsampling=n_downsampling, upsample=upsample,
                                   norm=lambda ch: DomainNorm2d(ch, n_domains))

    def delta(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        onehot = torch.zeros(x.shape[0], self.n_domains, 1, 1, dtype=x.dtype, device=x.device)
        onehot.scatter_(1, target.view(-1, 1, 1, 1).long(), 1.0)
        cond = onehot.expand(-1, -1, x.shape[2], x.shape[3])
        set_domain(self.net, target)
        d = self.net(torch.cat([x, cond], 1))
        # the change is low-frequency by construction: no stripes, no checkerboard
        return self.residual_scale * lowpass_change(d, self.lowpass)

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x + self.delta(x, target), -1.0, 1.0)


class DomainPatchDiscriminator(NLayerDiscriminator):
    """PatchGAN with one real/fake map per domain; the map of the image's domain is used."""

    def __init__(self, n_domains: int = 2, ndf: int = 32, n_layers: int = 3):
        super().__init__(3, ndf=ndf, n_layers=n_layers, out_channels=n_domains)

    def forward(self, x: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = self.model(x)
        idx = domain.view(-1, 1, 1, 1).long().expand(-1, 1, out.shape[2], out.shape[3])
        return out.gather(1, idx)
