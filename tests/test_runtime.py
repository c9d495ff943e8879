"""Where inference runs ($FACEGAN_DEVICE): every ONNX Runtime session facegan opens asks facegan.runtime for its
providers, CUDA first where ONNX Runtime has it (onnxruntime-gpu), else the CPU. This machine has no GPU: the
CUDA branch is checked with ONNX Runtime's provider list faked."""
from __future__ import annotations

import json

import onnxruntime as ort
import pytest
from click.testing import CliRunner

from facegan import runtime
from facegan.errors import ConfigError


def test_cpu_here_and_cuda_first_where_onnxruntime_has_it(monkeypatch):
    monkeypatch.delenv(runtime.DEVICE_ENV, raising=False)
    assert runtime.ort_providers() == ["CPUExecutionProvider"]  # the CPU-only onnxruntime package
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert runtime.ort_providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setenv(runtime.DEVICE_ENV, "cpu")
    assert runtime.ort_providers() == ["CPUExecutionProvider"]
    monkeypatch.setenv(runtime.DEVICE_ENV, "CUDA")
    assert runtime.ort_providers()[0] == "CUDAExecutionProvider"


def test_cuda_asked_for_where_there_is_none_and_a_bad_value_are_errors(monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    monkeypatch.setenv(runtime.DEVICE_ENV, "cuda")
    with pytest.raises(ConfigError, match="onnxruntime-gpu"):
        runtime.ort_providers()
    monkeypatch.setenv(runtime.DEVICE_ENV, "tpu")
    with pytest.raises(ConfigError, match="auto, cpu, cuda"):
        runtime.ort_providers()


def test_the_models_sessions_take_the_chosen_providers(monkeypatch, portrait_path):
    """The detector's session (a fresh one) is opened with what runtime chooses; models list says it."""
    from facegan.faces import centerface
    from facegan.io import read_image

    seen = []
    real = ort.InferenceSession

    def spy(*a, providers=None, **k):
        seen.append(providers)
        return real(*a, providers=["CPUExecutionProvider"], **k)  # no GPU here: run it on the CPU

    monkeypatch.setattr(ort, "InferenceSession", spy)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.delenv(runtime.DEVICE_ENV, raising=False)
    fresh = centerface.CenterFaceDetector()
    assert seen and seen[-1] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert fresh.detect(read_image(portrait_path))
    from facegan.cli import main

    rows = [json.loads(x) for x in CliRunner().invoke(main, ["models", "list"]).output.splitlines()]
    assert rows[-1]["kind"] == "runtime" and rows[-1]["providers"][0] == "CUDAExecutionProvider"
