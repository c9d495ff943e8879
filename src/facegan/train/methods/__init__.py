"""Training methods (GAN recipes), found by name: ``METHODS[name]`` after :func:`_load_builtin`.

Each module registers its classes with :func:`register_method`; ``attr-translator`` is the lead's
separate trainer (:mod:`facegan.train.attr_translator`), dispatched by the ``facegan train`` command.
"""
from __future__ import annotations

import importlib

from .base import METHODS, Method, get_method, register_method

_BUILTIN = ["cyclegan", "unit", "pix2pix", "faceswap", "twingan"]
_loaded = False


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    for m in _BUILTIN:
        importlib.import_module(f"{__name__}.{m}")
    _loaded = True


def list_methods() -> list[str]:
    _load_builtin()
    return sorted(METHODS)


__all__ = ["METHODS", "Method", "get_method", "register_method", "list_methods"]
