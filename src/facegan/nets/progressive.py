"""Progressively grown ResNet generator and PatchGAN discriminator (ProGAN-style growth applied to
image-to-image translation, used by the progressive CycleGAN option).

Stage ``s`` (0 = coarsest) works on images of ``base * 2**s`` px. Growing from stage s-1 to s adds a
``from_rgb``+``down`` pair in front and an ``up``+``to_rgb`` pair at the end; while ``alpha`` < 1
the new layers are faded in: their output is blended with the previous stage's path run on the
2x-downsampled input (and 2x-upsampled output). At the last stage with alpha = 1 the generator has the
layers of a plain ResNet generator with ``n_stages - 1`` downsamplings. ``stage`` and ``alpha`` are buffers,
so checkpoints remember them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .cyclegan import ResnetBlock, get_norm_layer
from .blocks import norm2d


class _Progressive(nn.Module):
    n_stages: int

    def _init_state(self, n_stages):
        self.n_stages = n_stages
        self.register_buffer("stage", torch.tensor(n_stages - 1, dtype=torch.long))
        self.register_buffer("alpha", torch.tensor(1.0))

    def set_stage(self, stage: int, alpha: float = 1.0) -> None:
        if not 0 <= stage < self.n_stages:
            raise ValueError(f"stage {stage} out of range 0..{self.n_stages - 1}")
        self.stage.fill_(int(stage))
        self.alpha.fill_(float(alpha) if stage > 0 else 1.0)

    def stage_parameters(self, stage: int):
        """Parameters used at ``stage`` (the previous stage's rgb head is used while fading)."""
        return [p for n, p in self.named_parameters() if self._used(n, stage)]


class ProgressiveResnetGenerator(_Progressive):
    def __init__(self, input_nc=3, output_nc=3, ngf=32, n_blocks=6, n_stages=3, max_mult=4, norm="instance"):
        super().__init__()
        self._init_state(n_stages)
        norm_layer = get_norm_layer(norm)
        S = n_stages
        C = [ngf * min(2 ** (S - 1 - s), max_mult) for s in range(S)]
        self.from_rgb = nn.ModuleList([
            nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(input_nc, C[s], 7), norm_layer(C[s]), nn.ReLU(True))
            for s in range(S)])
        self.down = nn.ModuleList([nn.Identity()] + [
            nn.Sequential(nn.Conv2d(C[s], C[s - 1], 3, stride=2, padding=1), norm_layer(C[s - 1]), nn.ReLU(True))
            for s in range(1, S)])
        self.core = nn.Sequential(*[ResnetBlock(C[0], norm_layer=norm_layer) for _ in range(n_blocks)])
        self.up = nn.ModuleList([nn.Identity()] + [
            nn.Sequential(nn.ConvTranspose2d(C[s - 1], C[s], 3, stride=2, padding=1, output_padding=1),
                          norm_layer(C[s]), nn.ReLU(True))
            for s in range(1, S)])
        # to_rgb[0] follows the residual core directly: normalise first, or the un-normalised residual
        # stream saturates the tanh (the other stages follow an up-block that ends in norm + ReLU)
        self.to_rgb = nn.ModuleList([
            nn.Sequential(*([norm_layer(C[0]), nn.ReLU(True)] if s == 0 else []),
                          nn.ReflectionPad2d(3), nn.Conv2d(C[s], output_nc, 7), nn.Tanh()) for s in range(S)])

    @staticmethod
    def _used(name: str, stage: int) -> bool:
        part, _, rest = name.partition(".")
        if part == "core":
            return True
        idx = int(rest.split(".")[0])
        if part in ("from_rgb", "to_rgb"):
            return idx in (stage, stage - 1)
        return idx <= stage

    def forward(self, x):
        s, a = int(self.stage), float(self.alpha)
        h = self.from_rgb[s](x)
        if s > 0:
            h = self.down[s](h)
            if a < 1.0:
                h = a * h + (1 - a) * self.from_rgb[s - 1](F.avg_pool2d(x, 2))
            for j in range(s - 1, 0, -1):
                h = self.down[j](h)
        h = self.core(h)
        for j in range(1, s):
            h = self.up[j](h)
        if s == 0:
            return self.to_rgb[0](h)
        out = self.to_rgb[s](self.up[s](h))
        if a < 1.0:
            out = a * out + (1 - a) * F.interpolate(self.to_rgb[s - 1](h), scale_factor=2, mode="nearest")
        return out


class ProgressivePatchDiscriminator(_Progressive):
    def __init__(self, input_nc=3, ndf=32, n_stages=3, max_mult=4, norm="instance"):
        super().__init__()
        self._init_state(n_stages)
        S = n_stages
        D = [ndf * min(2 ** (S - 1 - s), max_mult) for s in range(S)]
        self.from_rgb = nn.ModuleList([nn.Sequential(nn.Conv2d(input_nc, D[s], 1), nn.LeakyReLU(0.2, True))
                                       for s in range(S)])
        self.down = nn.ModuleList([nn.Identity()] + [
            nn.Sequential(nn.Conv2d(D[s], D[s - 1], 4, stride=2, padding=1), norm2d(norm, D[s - 1]),
                          nn.LeakyReLU(0.2, True))
            for s in range(1, S)])
        self.head = nn.Sequential(nn.Conv2d(D[0], D[0] * 2, 4, padding=1), norm2d(norm, D[0] * 2),
                                  nn.LeakyReLU(0.2, True), nn.Conv2d(D[0] * 2, 1, 4, padding=1))

    @staticmethod
    def _used(name: str, stage: int) -> bool:
        part, _, rest = name.partition(".")
        if part == "head":
            return True
        idx = int(rest.split(".")[0])
        if part == "from_rgb":
            return idx in (stage, stage - 1)
        return idx <= stage

    def forward(self, x):
        s, a = int(self.stage), float(self.alpha)
        h = self.from_rgb[s](x)
        if s > 0:
            h = self.down[s](h)
            if a < 1.0:
                h = a * h + (1 - a) * self.from_rgb[s - 1](F.avg_pool2d(x, 2))
            for j in range(s - 1, 0, -1):
                h = self.down[j](h)
        return self.head(h)
