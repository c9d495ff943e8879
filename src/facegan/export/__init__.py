"""Exporting generators for deployment (ONNX)."""
from .onnx import OnnxGenerator, export_onnx, verify_onnx

__all__ = ["OnnxGenerator", "export_onnx", "verify_onnx"]
