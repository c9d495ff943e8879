"""Shipped model weights. Each model has its own folder with ``model.safetensors`` (fp16),
``MODEL_CARD.md`` and ``manifest.json`` (sha256, architecture, crop). Every shipped model is
loaded through ``load_shipped`` which checks the hash and never unpickles anything."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import ModelError

ROOT = Path(__file__).parent


def model_dir(name: str) -> Path:
    return ROOT / name


def available(name: str) -> bool:
    return (ROOT / name / "manifest.json").exists() and (ROOT / name / "model.safetensors").exists()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_shipped(name: str, check_hash: bool = True) -> tuple[dict, dict]:
    """Returns (fp32 state_dict, manifest) for the shipped model ``name``."""
    d = ROOT / name
    if not (d / "manifest.json").exists() or not (d / "model.safetensors").exists():
        raise ModelError(f"shipped model {name!r} is not installed (expected {d / 'model.safetensors'})")
    return load_model_folder(d, check_hash, label=f"shipped model {name!r}")


def is_model_folder(d: Path) -> bool:
    """A folder in the shipped layout: ``manifest.json`` + ``model.safetensors``."""
    return (Path(d) / "manifest.json").is_file() and (Path(d) / "model.safetensors").is_file()


def load_model_folder(d: Path, check_hash: bool = True, label: str | None = None) -> tuple[dict, dict]:
    """(fp32 state_dict, manifest) of a model folder in the shipped layout (``manifest.json`` +
    ``model.safetensors``, the weights' sha256 checked against the manifest's when it records one)."""
    from safetensors.torch import load_file

    d = Path(d)
    label = label or f"model folder {str(d)!r}"
    mf, wf = d / "manifest.json", d / "model.safetensors"
    try:
        manifest = json.loads(mf.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{label}: cannot read manifest.json ({e})") from e
    if not isinstance(manifest, dict):
        raise ModelError(f"{label}: manifest.json is not a JSON object")
    if check_hash and manifest.get("sha256") and sha256_file(wf) != manifest["sha256"]:
        raise ModelError(f"{label}: sha256 mismatch — the file is corrupt or was replaced")
    try:
        sd = load_file(str(wf))
    except Exception as e:  # safetensors raises its own error types
        raise ModelError(f"{label}: cannot read weights ({e})") from e
    return {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}, manifest
