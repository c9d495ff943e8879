from __future__ import annotations

import copy

import torch


class EMA:
    """Exponential moving average of a model's parameters (buffers are copied)."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.999):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module):
        for e, p in zip(self.model.parameters(), model.parameters()):
            # lerp: e + (1 - decay) * (p - e), exact where p == e (frozen weights cannot drift by rounding)
            e.lerp_(p.detach(), 1 - self.decay)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)
