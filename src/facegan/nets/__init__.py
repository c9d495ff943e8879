"""Network building blocks and architectures. Knows nothing of faces/ or ops/."""
from __future__ import annotations

from .autoencoder import FaceSwapAutoencoder
from .cyclegan import NLayerDiscriminator, ResnetGenerator
from .pix2pixhd import GlobalGenerator, LocalEnhancer
from .progressive import ProgressivePatchDiscriminator, ProgressiveResnetGenerator
from .translator import ResidualTranslator
from .twingan import TwinGenerator
from .unet import UnetGenerator
from .unit import UNITGenerator

# name -> class: a checkpoint's meta.json names its generator here ({"class": name, "kwargs": {...}})
GENERATORS = {cls.__name__: cls for cls in [
    ResnetGenerator, ResidualTranslator, UnetGenerator, ProgressiveResnetGenerator, UNITGenerator,
    GlobalGenerator, LocalEnhancer, FaceSwapAutoencoder, TwinGenerator,
]}

DISCRIMINATORS = {cls.__name__: cls for cls in [NLayerDiscriminator, ProgressivePatchDiscriminator]}


def build_generator(name: str, kwargs: dict | None = None):
    """Instantiates ``GENERATORS[name](**kwargs)``; raises KeyError naming the known classes."""
    if name not in GENERATORS:
        raise KeyError(f"unknown generator class {name!r}; known: {', '.join(sorted(GENERATORS))}")
    return GENERATORS[name](**(kwargs or {}))


__all__ = ["GENERATORS", "DISCRIMINATORS", "build_generator", *GENERATORS, *DISCRIMINATORS]
