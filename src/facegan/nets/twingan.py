"""Twin-GAN-style shared generator: one encoder and one decoder serve both domains.

The only domain-specific parameters are the affine parameters of every normalization layer
(:class:`~facegan.nets.blocks.DomainNorm2d`): the encoder runs with the *source* domain's
parameters, the decoder with the *target* domain's. The U-Net skips connect the deepest
``n_skips`` encoder levels to the decoder (shallow skips would copy source-domain texture).

``embed(x, domain)`` returns the shared embedding (the flattened bottleneck map, L2-normalised)
used for nearest-neighbour search across domains, e.g. "which anime face is closest to this selfie".
(Global average pooling was measured to be useless here: every pooled code had cosine ~0.996 to
every other, the map's channel means dominate; the flattened map keeps layout and spread.)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DomainNorm2d, set_domain


class _DResBlock(nn.Module):
    def __init__(self, ch, n_domains):
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect")
        self.n1 = DomainNorm2d(ch, n_domains)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect")
        self.n2 = DomainNorm2d(ch, n_domains)

    def forward(self, x):
        return x + self.n2(self.c2(F.relu(self.n1(self.c1(x)))))


class TwinGenerator(nn.Module):
    def __init__(self, ngf: int = 32, n_down: int = 4, n_res: int = 2, n_skips: int = 2, n_domains: int = 2,
                 input_nc: int = 3):
        super().__init__()
        self.n_down = n_down
        self.n_domains = n_domains
        self.n_skips = max(0, min(n_skips, n_down - 1))
        ch = [min(ngf * 2 ** i, ngf * 8) for i in range(n_down + 1)]
        self.inc = nn.Sequential(nn.Conv2d(input_nc, ch[0], 7, padding=3, padding_mode="reflect"),
                                 DomainNorm2d(ch[0], n_domains), nn.ReLU(True))
        self.downs = nn.ModuleList([
            nn.Sequential(nn.Conv2d(ch[i], ch[i + 1], 4, stride=2, padding=1),
                          DomainNorm2d(ch[i + 1], n_domains), nn.LeakyReLU(0.2, True))
            for i in range(n_down)])
        self.bottleneck = nn.Sequential(*[_DResBlock(ch[n_down], n_domains) for _ in range(n_res)])
        ups = []
        for i in range(n_down, 0, -1):  # from level i to level i-1
            cin = ch[i] + (ch[i] if self._skip(i) else 0)
            ups.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                     nn.Conv2d(cin, ch[i - 1], 3, padding=1, padding_mode="reflect"),
                                     DomainNorm2d(ch[i - 1], n_domains), nn.ReLU(True)))
        self.ups = nn.ModuleList(ups)
        self.out = nn.Sequential(nn.Conv2d(ch[0], input_nc, 7, padding=3, padding_mode="reflect"), nn.Tanh())

    def _skip(self, level: int) -> bool:
        """Skip connection into the decoder at encoder ``level`` (1..n_down-1; deepest first)."""
        return level < self.n_down and level >= self.n_down - self.n_skips

    def _encoder_modules(self):
        return [self.inc, self.downs, self.bottleneck]

    def encode(self, x: torch.Tensor, domain) -> tuple[torch.Tensor, list[torch.Tensor]]:
        for m in self._encoder_modules():
            set_domain(m, domain)
        h = self.inc(x)
        feats = [h]
        for d in self.downs:
            h = d(h)
            feats.append(h)
        return self.bottleneck(h), feats

    def decode(self, z: torch.Tensor, feats: list[torch.Tensor], domain) -> torch.Tensor:
        set_domain(self.ups, domain)
        h = z
        for j, up in enumerate(self.ups):
            level = self.n_down - j
            if self._skip(level):
                h = torch.cat([h, feats[level]], 1)
            h = up(h)
        return self.out(h)

    def embed(self, x: torch.Tensor, domain) -> torch.Tensor:
        """Shared embedding (B, C*h*w) of unit length, comparable across domains."""
        z, _ = self.encode(x, domain)
        return F.normalize(z.flatten(1), dim=1)

    def translate(self, x: torch.Tensor, source, target) -> torch.Tensor:
        z, feats = self.encode(x, source)
        return self.decode(z, feats, target)

    def forward(self, x: torch.Tensor, target: int = 1, source: int | None = None) -> torch.Tensor:
        if source is None:
            source = 1 - target if self.n_domains == 2 else 0
        return self.translate(x, source, target)
