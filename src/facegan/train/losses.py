"""GAN objectives and reconstruction losses used by the engine's methods."""
from __future__ import annotations

import torch
import torch.nn.functional as F

GAN_MODES = ("lsgan", "vanilla", "hinge")


class GANLoss:
    """``loss(pred, real: bool, for_discriminator=True)``.

    ``pred`` is a tensor or a multi-scale list of lists (each inner list ends with the prediction
    map, as returned by :class:`~facegan.nets.blocks.MultiscaleDiscriminator`); scales are averaged.
    lsgan = least squares (CycleGAN), vanilla = BCE with logits (pix2pix), hinge.
    """

    def __init__(self, mode: str = "lsgan"):
        if mode not in GAN_MODES:
            raise ValueError(f"unknown gan mode {mode!r}; one of {GAN_MODES}")
        self.mode = mode

    def _one(self, p: torch.Tensor, real: bool, for_discriminator: bool) -> torch.Tensor:
        p = p.float()
        if self.mode == "lsgan":
            return F.mse_loss(p, torch.full_like(p, 1.0 if real else 0.0))
        if self.mode == "vanilla":
            return F.binary_cross_entropy_with_logits(p, torch.full_like(p, 1.0 if real else 0.0))
        if for_discriminator:
            return F.relu(1.0 - p).mean() if real else F.relu(1.0 + p).mean()
        return -p.mean()

    def __call__(self, pred, real: bool, for_discriminator: bool = True) -> torch.Tensor:
        if isinstance(pred, (list, tuple)):
            preds = [s[-1] if isinstance(s, (list, tuple)) else s for s in pred]
            return sum(self._one(p, real, for_discriminator) for p in preds) / len(preds)
        return self._one(pred, real, for_discriminator)


def feature_matching(fake_feats: list[list[torch.Tensor]], real_feats: list[list[torch.Tensor]]) -> torch.Tensor:
    """pix2pixHD feature-matching loss: L1 between discriminator features of fake and real (detached),
    over every scale and every layer but the last, weighted 4/(n_layers+1) / num_D."""
    num_d = len(fake_feats)
    loss = fake_feats[0][0].new_zeros(())
    for ff, rf in zip(fake_feats, real_feats):
        w = 4.0 / (len(ff) - 1) / num_d  # len(ff) - 1 == n_layers + 1
        for a, b in zip(ff[:-1], rf[:-1]):
            loss = loss + w * F.l1_loss(a.float(), b.detach().float())
    return loss


def kl_unit(mu: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, I) || N(0, I)) up to constants and scale, as in the UNIT code: mean(mu^2)."""
    return mu.float().pow(2).mean()


def _gauss(size: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of two image batches in [-1, 1] (Gaussian window, per channel)."""
    x = (x.float() + 1) / 2
    y = (y.float() + 1) / 2
    c = x.shape[1]
    window = min(window, x.shape[-1], x.shape[-2])
    g = _gauss(window, sigma, x.device, x.dtype)
    k = (g[:, None] * g[None, :]).expand(c, 1, window, window).contiguous()

    def filt(t):
        return F.conv2d(t, k, groups=c)

    mx, my = filt(x), filt(y)
    sxx = filt(x * x) - mx * mx
    syy = filt(y * y) - my * my
    sxy = filt(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean()


def ssim_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 1.0 - ssim(x, y)
