"""Typed errors shared by every entry point. Each has a distinct CLI exit code."""
from __future__ import annotations


class FaceganError(Exception):
    """Base class. ``exit_code`` is what the CLI returns; ``http_status`` what the API answers."""

    exit_code = 1
    http_status = 400
    code = "error"


class UnsupportedFormatError(FaceganError):
    exit_code = 10
    http_status = 415
    code = "unsupported_format"


class CorruptImageError(FaceganError):
    exit_code = 11
    http_status = 422
    code = "corrupt_image"


class EmptyFileError(CorruptImageError):
    exit_code = 12
    code = "empty_file"


class ImageTooLargeError(FaceganError):
    exit_code = 13
    http_status = 413
    code = "image_too_large"


class NoFaceError(FaceganError):
    exit_code = 14
    http_status = 422
    code = "no_face"


class InputNotFoundError(FaceganError):
    exit_code = 15
    http_status = 404
    code = "not_found"


class ModelError(FaceganError):
    """A model file is missing, has the wrong hash, or is of a refused kind (pickle)."""

    exit_code = 16
    http_status = 500
    code = "model_error"


class ConfigError(FaceganError):
    exit_code = 17
    code = "config_error"


class OutputExistsError(FaceganError):
    exit_code = 18
    code = "output_exists"


EXIT_CODES = {cls.__name__: cls.exit_code for cls in
              [FaceganError, UnsupportedFormatError, CorruptImageError, EmptyFileError,
               ImageTooLargeError, NoFaceError, InputNotFoundError, ModelError, ConfigError,
               OutputExistsError]}
