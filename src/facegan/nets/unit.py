"""UNIT (Liu, Breuel, Kautz 2017): coupled VAE-GANs with a shared latent space.

Each domain has its own encoder front (E_A, E_B) followed by *shared* high-level residual blocks;
the latent code z is Gaussian with unit variance around the encoder output ``mu``; decoding starts
with *shared* residual blocks followed by a domain decoder (G_A, G_B). Translation A->B is
``decode_B(encode_A(x))``.
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import ResBlock, norm2d


class _EncoderFront(nn.Module):
    def __init__(self, input_nc, ngf, n_down, n_res, norm):
        super().__init__()
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7), norm2d(norm, ngf), nn.ReLU(True)]
        ch = ngf
        for _ in range(n_down):
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(ch, ch * 2, 4, stride=2), norm2d(norm, ch * 2), nn.ReLU(True)]
            ch *= 2
        layers += [ResBlock(ch, norm) for _ in range(n_res)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class _DecoderBack(nn.Module):
    def __init__(self, output_nc, ngf, n_down, n_res, norm):
        super().__init__()
        ch = ngf * 2 ** n_down
        layers = [ResBlock(ch, norm) for _ in range(n_res)]
        for _ in range(n_down):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(2),
                       nn.Conv2d(ch, ch // 2, 5), norm2d("layer", ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class UNITGenerator(nn.Module):
    """Both domains' encoders and decoders with shared latent layers. ``forward(x)`` translates A->B."""

    def __init__(self, input_nc=3, ngf=32, n_down=2, n_res=3, n_shared=1, norm="instance"):
        super().__init__()
        ch = ngf * 2 ** n_down
        self.enc = nn.ModuleList([_EncoderFront(input_nc, ngf, n_down, n_res, norm) for _ in range(2)])
        self.enc_shared = nn.Sequential(*[ResBlock(ch, norm) for _ in range(n_shared)])
        self.dec_shared = nn.Sequential(*[ResBlock(ch, norm) for _ in range(n_shared)])
        self.dec = nn.ModuleList([_DecoderBack(input_nc, ngf, n_down, n_res, norm) for _ in range(2)])

    def encode(self, x: torch.Tensor, domain: int) -> torch.Tensor:
        """Mean of the shared latent code (the posterior has unit variance)."""
        return self.enc_shared(self.enc[domain](x))

    def decode(self, z: torch.Tensor, domain: int) -> torch.Tensor:
        return self.dec[domain](self.dec_shared(z))

    @staticmethod
    def sample(mu: torch.Tensor) -> torch.Tensor:
        return mu + torch.randn_like(mu)

    def translate(self, x: torch.Tensor, source: int = 0, target: int = 1) -> torch.Tensor:
        return self.decode(self.encode(x, source), target)

    def forward(self, x: torch.Tensor, target: int = 1) -> torch.Tensor:
        return self.translate(x, 1 - target, target)
