"""Crop templates are data (``templates.json``), not constants buried in code."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class CropTemplate:
    name: str
    points: np.ndarray  # (5, 2) fractions of the crop side
    fit: tuple[int, ...]  # which points the similarity transform is fitted on
    mask: tuple[float, float, float, float]  # ellipse cx, cy, rx, ry (fractions)
    feather: float
    description: str = ""

    def points_px(self, size: int) -> np.ndarray:
        return self.points * float(size)


@lru_cache(maxsize=None)
def _load() -> dict:
    return json.loads((Path(__file__).with_name("templates.json")).read_text())


def list_templates() -> list[str]:
    return [k for k in _load() if not k.startswith("_")]


def get_template(name: str | CropTemplate) -> CropTemplate:
    if isinstance(name, CropTemplate):
        return name
    data = _load()
    if name not in data or name.startswith("_"):
        raise ConfigError(f"unknown crop template {name!r}; known: {', '.join(list_templates())}")
    d = data[name]
    return CropTemplate(name=name, points=np.asarray(d["points"], dtype=np.float64),
                        fit=tuple(d.get("fit", range(5))), mask=tuple(d["mask"]),
                        feather=float(d["feather"]), description=d.get("description", ""))
