"""Small building blocks shared by the engine's architectures.

- ``DomainNorm2d``: instance norm whose affine (gamma, beta) is chosen per sample by a domain
  index, the "switch" of shared-generator translators (Twin-GAN style).
- ``ResBlock``: plain residual block with a configurable norm.
- ``MultiscaleDiscriminator``: pix2pixHD-style stack of PatchGANs on an image pyramid that can also
  return every intermediate feature map (for the feature-matching loss).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .cyclegan import NLayerDiscriminator, get_norm_layer


def norm2d(kind: str, ch: int) -> nn.Module:
    """``instance`` | ``batch`` | ``layer`` | ``none``."""
    if kind == "layer":
        return nn.GroupNorm(1, ch)
    return get_norm_layer(kind)(ch)


class DomainNorm2d(nn.Module):
    """Instance norm (no own affine) followed by a per-domain affine: ``gamma[d] * x + beta[d]``.

    The domain is set with :func:`set_domain` before a forward pass; it is a LongTensor of shape
    (B,) (one domain per sample) or an int.
    """

    def __init__(self, num_features: int, n_domains: int = 2):
        super().__init__()
        self.norm = nn.InstanceNorm2d(num_features, affine=False)
        self.weight = nn.Parameter(torch.ones(n_domains, num_features))
        self.bias = nn.Parameter(torch.zeros(n_domains, num_features))
        self.domain: torch.Tensor | int = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.domain
        if isinstance(d, int):
            g = self.weight[d].view(1, -1, 1, 1)
            b = self.bias[d].view(1, -1, 1, 1)
        else:
            g = self.weight[d].unsqueeze(-1).unsqueeze(-1)
            b = self.bias[d].unsqueeze(-1).unsqueeze(-1)
        return self.norm(x) * g + b


def set_domain(module: nn.Module, domain) -> None:
    """Sets the domain index of every :class:`DomainNorm2d` inside ``module``."""
    if isinstance(domain, torch.Tensor):
        domain = domain.long().view(-1)
    for m in module.modules():
        if isinstance(m, DomainNorm2d):
            m.domain = domain


class ResBlock(nn.Module):
    def __init__(self, dim: int, norm: str = "instance", pad: str = "reflect"):
        super().__init__()
        Pad = nn.ReflectionPad2d if pad == "reflect" else nn.ZeroPad2d
        self.block = nn.Sequential(
            Pad(1), nn.Conv2d(dim, dim, 3), norm2d(norm, dim), nn.ReLU(True),
            Pad(1), nn.Conv2d(dim, dim, 3), norm2d(norm, dim))

    def forward(self, x):
        return x + self.block(x)


def discriminator_features(d: NLayerDiscriminator, x: torch.Tensor) -> list[torch.Tensor]:
    """Runs a reference-layout PatchGAN and returns the output of each activation + the final map."""
    feats = []
    h = x
    layers = list(d.model)
    for i, layer in enumerate(layers):
        h = layer(h)
        if isinstance(layer, nn.LeakyReLU) or i == len(layers) - 1:
            feats.append(h)
    return feats


class MultiscaleDiscriminator(nn.Module):
    """``num_D`` PatchGANs, the k-th on the input downsampled k times (pix2pixHD)."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, num_D: int = 3,
                 norm: str = "instance"):
        super().__init__()
        self.num_D = num_D
        self.nets = nn.ModuleList([NLayerDiscriminator(input_nc, ndf, n_layers, norm) for _ in range(num_D)])

    def forward(self, x: torch.Tensor, features: bool = False):
        """List (one per scale) of the final map, or of every feature map when ``features``."""
        out = []
        for i, d in enumerate(self.nets):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out.append(discriminator_features(d, x) if features else [d(x)])
        return out


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
