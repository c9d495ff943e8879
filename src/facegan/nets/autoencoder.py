"""Face-swap autoencoder (the "deepfakes" design): one shared encoder, one decoder per identity.

Trained to reconstruct each identity from randomly warped crops; a swap is
``decode(encode(face_of_A), identity=B)``: the shared code carries pose, expression and lighting,
the decoder paints identity B. The encoder ends in a dense bottleneck (4x4 spatial map flattened),
which is what forces pose/expression into a shared code.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def _conv(cin, cout, k=5, stride=2):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2), nn.LeakyReLU(0.1, True))


class _Upscale(nn.Module):
    """conv3 to 4x channels + pixel shuffle: 2x upsampling without checkerboard transposed convs."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout * 4, 3, padding=1)
        self.act = nn.LeakyReLU(0.1, True)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        return self.shuffle(self.act(self.conv(x)))


class _ResBlock(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.c1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.c2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.act = nn.LeakyReLU(0.2, True)

    def forward(self, x):
        return self.act(x + self.c2(self.act(self.c1(x))))


class FaceSwapAutoencoder(nn.Module):
    def __init__(self, size: int = 64, ngf: int = 32, latent: int = 256, n_identities: int = 2,
                 dec_res: bool = True):
        super().__init__()
        k = int(round(math.log2(size)))
        if 2 ** k != size or size < 16:
            raise ValueError("FaceSwapAutoencoder size must be a power of two >= 16")
        self.size = size
        n_down = k - 2  # down to 4x4
        chs = [min(ngf * 2 ** i, 512) for i in range(n_down)]
        enc, cin = [], 3
        for c in chs:
            enc.append(_conv(cin, c))
            cin = c
        self.encoder = nn.Sequential(*enc)
        self.flat = cin * 16
        self.to_latent = nn.Linear(self.flat, latent)
        self.from_latent = nn.Linear(latent, self.flat)
        self.up0 = _Upscale(cin, cin // 2)  # shared: 4x4 -> 8x8
        self.code_ch = cin // 2
        self.decoders = nn.ModuleList([self._decoder(cin // 2, k - 3, dec_res) for _ in range(n_identities)])

    @staticmethod
    def _decoder(cin, n_up, dec_res):
        layers, c = [], cin
        for _ in range(n_up):
            layers.append(_Upscale(c, max(c // 2, 16)))
            c = max(c // 2, 16)
            if dec_res:
                layers.append(_ResBlock(c))
        layers += [nn.Conv2d(c, 3, 5, padding=2), nn.Tanh()]
        return nn.Sequential(*layers)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x).flatten(1)
        z = self.from_latent(self.to_latent(h))
        return self.up0(z.view(x.shape[0], -1, 4, 4))

    def decode(self, code: torch.Tensor, identity: int) -> torch.Tensor:
        return self.decoders[identity](code)

    def forward(self, x: torch.Tensor, identity: int = 1) -> torch.Tensor:
        """Swap: encode any face, decode it as ``identity`` (default 1 = B)."""
        return self.decode(self.encode(x), identity)
