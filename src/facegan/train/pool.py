"""Image history buffer (Shrivastava et al.; CycleGAN): the discriminator sees a mix of the newest
fakes and fakes from earlier steps. Randomness comes from torch's global RNG, so a resumed run that
restores the RNG state and :meth:`state_tensor` continues exactly."""
from __future__ import annotations

import torch


class ImagePool:
    def __init__(self, size: int = 50):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size <= 0:
            return images
        if self.images and self.images[0].shape[1:] != images.shape[1:]:
            self.images = []  # resolution changed (progressive growth)
        out = []
        for img in images.detach():
            img = img.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif float(torch.rand(())) > 0.5:
                i = int(torch.randint(0, self.size, ()))
                out.append(self.images[i].clone())
                self.images[i] = img.clone()
            else:
                out.append(img)
        return torch.cat(out, 0)

    def state_tensor(self) -> torch.Tensor | None:
        return torch.cat(self.images, 0).cpu() if self.images else None

    def load_state_tensor(self, t: torch.Tensor | None, device=None) -> None:
        self.images = [] if t is None else [x.unsqueeze(0).to(device) for x in t]
