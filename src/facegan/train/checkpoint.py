"""Checkpoints: weights as safetensors, metadata as JSON, optimizer state loaded weights_only."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def _atomic(path: Path, write):
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(folder: str | Path, modules: dict[str, torch.nn.Module], optimizers: dict | None = None,
                    meta: dict | None = None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, m in modules.items():
        sd = {k: v.detach().contiguous().cpu() for k, v in m.state_dict().items()}
        _atomic(folder / f"{name}.safetensors", lambda p, sd=sd: save_file(sd, str(p)))
    for name, opt in (optimizers or {}).items():
        _atomic(folder / f"{name}.optim.pt", lambda p, opt=opt: torch.save(opt.state_dict(), p))
    if meta is not None:
        _atomic(folder / "meta.json", lambda p: p.write_text(json.dumps(meta, indent=2, default=str)))
    return folder


def load_checkpoint(folder: str | Path, modules: dict[str, torch.nn.Module], optimizers: dict | None = None,
                    strict: bool = True) -> dict:
    folder = Path(folder)
    for name, m in modules.items():
        m.load_state_dict(load_file(str(folder / f"{name}.safetensors")), strict=strict)
    for name, opt in (optimizers or {}).items():
        p = folder / f"{name}.optim.pt"
        if p.exists():
            opt.load_state_dict(torch.load(p, map_location="cpu", weights_only=True))
    mp = folder / "meta.json"
    return json.loads(mp.read_text()) if mp.exists() else {}


def export_half(module: torch.nn.Module, path: str | Path, metadata: dict | None = None) -> Path:
    """fp16 safetensors for shipping; metadata values must be strings."""
    sd = {k: v.detach().half().contiguous().cpu() if v.is_floating_point() else v.detach().cpu()
          for k, v in module.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path), metadata={k: str(v) for k, v in (metadata or {}).items()})
    return path
