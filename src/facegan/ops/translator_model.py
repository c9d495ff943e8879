"""Loads the attribute translator that swap-gender/anonymize apply: the shipped fp16 weights, or a
user's checkpoint (a facegan training folder such as ``runs/gender-translator/last``)."""
from __future__ import annotations

import json
import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ModelError

SHIPPED = "gender-translator"
ENV = "FACEGAN_GENDER_MODEL"  # a checkpoint folder that replaces the shipped model


class AttrTranslator:
    def __init__(self, state_dict: dict, spec: dict, source: str):
        import torch

        from ..nets.translator import ResidualTranslator

        self.domains = list(spec["domains"])
        self.template = spec.get("template", "utkface")
        self.size = int(spec.get("size", 128))
        self.name = spec.get("name", SHIPPED)
        self.source = source
        self.net = ResidualTranslator(len(self.domains), int(spec.get("ngf", 32)), int(spec.get("n_blocks", 6)),
                                     lowpass=int(spec.get("lowpass", 1)))
        try:
            missing, unexpected = self.net.load_state_dict(state_dict, strict=False)
            # checkpoints from before conditional norm (facegan 0.1 dev) have no per-domain affines
            # and have conv biases that the following InstanceNorm cancels: defaults (scale 1, bias 0)
            # and dropping those biases reproduce that model exactly (it ignores its target)
            if (missing or unexpected) and not (self._only_norm(missing) and self._only_normed_bias(unexpected)):
                raise RuntimeError(f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}")
            self.conditioned = not missing
        except RuntimeError as e:
            raise ModelError(f"translator weights do not match the architecture ({source}): {e}") from e
        self.net.eval()
        self._torch = torch
        self._lock = threading.Lock()

    def _only_norm(self, keys) -> bool:
        from ..nets.blocks import DomainNorm2d

        norms = {n for n, m in self.net.named_modules() if isinstance(m, DomainNorm2d)}
        return all(k.rsplit(".", 1)[0] in norms for k in keys)

    def _only_normed_bias(self, keys) -> bool:
        mods = dict(self.net.named_modules())
        return all(k.endswith(".bias") and getattr(mods.get(k.rsplit(".", 1)[0]), "bias", 1) is None for k in keys)

    def translate(self, crops: np.ndarray, targets: list[str], strength: float = 1.0) -> np.ndarray:
        """crops (N, S, S, 3) uint8 at this model's size/template -> translated crops, uint8."""
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div(127.5).sub(1)
        t = torch.tensor([self.domains.index(d) for d in targets])
        with torch.inference_mode(), self._lock:
            delta = self.net.delta(x, t) * strength
            y = (x + delta).clamp(-1, 1)
        return ((y + 1) * 127.5 + 0.5).clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def _from_checkpoint(folder: Path) -> AttrTranslator:
    from safetensors.torch import load_file

    meta = json.loads((folder / "meta.json").read_text())
    cfg = meta.get("config", {})
    wf = folder / "G_ema.safetensors"
    if not wf.exists():
        wf = folder / "G.safetensors"
    sd = {k: v.float() for k, v in load_file(str(wf)).items()}
    spec = {"domains": cfg.get("domains", ["male", "female"]), "ngf": cfg.get("ngf", 32),
            "n_blocks": cfg.get("n_blocks", 6), "lowpass": cfg.get("lowpass", 1), "size": cfg.get("size", 128), "template": "utkface",
            "name": f"checkpoint:{folder}"}
    return AttrTranslator(sd, spec, str(folder))


def get_translator(path: str | None = None) -> AttrTranslator:
    """The translator at ``path`` (a checkpoint folder), else $FACEGAN_GENDER_MODEL, else the shipped one."""
    return _get_translator(path or os.environ.get(ENV) or None)


@lru_cache(maxsize=4)
def _get_translator(path: str | None) -> AttrTranslator:
    if path:
        p = Path(path)
        if not (p / "meta.json").exists():
            raise ModelError(f"{p} is not a facegan translator checkpoint folder (no meta.json)")
        return _from_checkpoint(p)
    from ..weights import load_shipped

    sd, manifest = load_shipped(SHIPPED)
    return AttrTranslator(sd, manifest, f"shipped:{SHIPPED}")


def translator_available() -> bool:
    from ..weights import available

    return bool(os.environ.get(ENV)) or available(SHIPPED)
