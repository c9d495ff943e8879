"""Where facegan's models run at inference: ONNX Runtime's execution providers.

Every ONNX Runtime session facegan opens (the detector, judge 1, faceres' export, the translator's change, a
user's exported generator) asks :func:`ort_providers` for its providers. ``$FACEGAN_DEVICE``:

- ``auto`` (the default): CUDA where ONNX Runtime has it — the ``onnxruntime-gpu`` package on a machine with an
  NVIDIA GPU (``pip install onnxruntime-gpu`` in place of ``onnxruntime``) — else the CPU;
- ``cpu``: the CPU only (results bit for bit as on a machine without a GPU);
- ``cuda``: CUDA, and an error where ONNX Runtime cannot use it.

ONNX Runtime runs on the CPU any node its CUDA provider lacks. The PyTorch parts of inference (dlib's network,
the refiner's fallback path, ``--redraw-large``) stay on the CPU: they are a small share of a face's time.
Training picks its device itself (``facegan train``: CUDA, AMP and DDP when there are GPUs).
"""
from __future__ import annotations

import os

DEVICE_ENV = "FACEGAN_DEVICE"
DEVICES = ("auto", "cpu", "cuda")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def device() -> str:
    """``$FACEGAN_DEVICE`` checked: auto, cpu or cuda."""
    from .errors import ConfigError

    value = os.environ.get(DEVICE_ENV, "auto").strip().lower() or "auto"
    if value not in DEVICES:
        raise ConfigError(f"{DEVICE_ENV}={value!r}: use one of {', '.join(DEVICES)}")
    return value


def ort_providers() -> list[str]:
    """The execution providers for a new ONNX Runtime session, best first."""
    import onnxruntime as ort

    from .errors import ConfigError

    want = device()
    if want == "cpu":
        return [CPU]
    has_cuda = CUDA in ort.get_available_providers()
    if want == "cuda" and not has_cuda:
        raise ConfigError(f"{DEVICE_ENV}=cuda but ONNX Runtime has no CUDA provider here (install onnxruntime-gpu, "
                          f"on a machine with an NVIDIA GPU and its driver); providers: {ort.get_available_providers()}")
    return [CUDA, CPU] if has_cuda else [CPU]


def describe() -> dict:
    """What ``facegan models list`` shows about the device."""
    import onnxruntime as ort

    try:
        chosen = ort_providers()
    except Exception as e:  # a bad $FACEGAN_DEVICE: said, not raised, in a listing
        chosen = [f"error: {e}"]
    return {"device": os.environ.get(DEVICE_ENV, "auto"), "onnxruntime": ort.__version__,
            "available_providers": ort.get_available_providers(), "providers": chosen}
