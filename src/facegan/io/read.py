"""Reading images: the one place where untrusted image files are opened.

Every entry point (CLI, web API, trainers' data checks) calls :func:`read_image`, which returns RGB
uint8 pixels or raises a typed :mod:`facegan.errors` error with a message fit for a user.

Decisions, in one place:
- the format is found from the content (:func:`sniff_format`), never from the file name; a
  ``.jpg`` holding a PNG is read as the PNG it is, a ``.png`` holding a GIF is refused;
- the pixel count is checked from the header, before any pixel is decoded
  (``max_pixels``, default 40 megapixels or ``$FACEGAN_MAX_PIXELS``); Pillow's own decompression-bomb
  limit (2 x ``PIL.Image.MAX_IMAGE_PIXELS``) still applies on top;
- EXIF orientation is applied; an embedded ICC profile (Display P3, Adobe RGB, CMYK ...) is
  converted to sRGB; transparency is composited over white; 16-bit images are scaled to 8 bits;
  :func:`read_photo` also keeps what that drops and a writer can put back: the alpha channel with the
  colours before compositing, and whether the file was stored in grey (see ``write.stored_like``);
- a bilevel (1-bit, dithered) photo — mode "1", or grey with only black and white pixels — is descreened
  (a Gaussian of ``DESCREEN_SIGMA`` px) into the continuous tones the detectors, judges and models read;
  :func:`read_photo` keeps its own pixels, and the writer dithers only the faces an operation changed back
  into them (``write.stored_like``): the dots of the original face no longer stay under the change;
- animated PNG/WEBP are refused (a still photo is expected); a multi-page TIFF gives its first page.
"""
from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from ..errors import (ConfigError, CorruptImageError, EmptyFileError, FaceganError,
                      ImageTooLargeError, InputNotFoundError, UnsupportedFormatError)
from .formats import ACCEPTED_EXTENSIONS, ACCEPTED_FORMATS, ACCEPTED_TEXT, sniff_format

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]

DEFAULT_MAX_PIXELS = 40_000_000
MAX_PIXELS_ENV = "FACEGAN_MAX_PIXELS"

# what Pillow raises on damaged data
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_SRGB = ImageCms.createProfile("sRGB")


def default_max_pixels() -> int:
    """The pixel limit used when ``max_pixels`` is None: ``$FACEGAN_MAX_PIXELS`` or 40 megapixels."""
    value = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_PIXELS
    try:
        limit = int(float(value))
    except ValueError:
        raise ConfigError(f"{MAX_PIXELS_ENV}={value!r} is not a number of pixels") from None
    if limit <= 0:
        raise ConfigError(f"{MAX_PIXELS_ENV} must be positive, got {value!r}")
    return limit


_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
# px: the Gaussian that turns a dithered 1-bit photo into the grey tones it prints (a face read on the dots was
# misjudged and, anonymized, still matched by both identity models: the dots of its features stayed under the change)
DESCREEN_SIGMA = 1.2


@dataclass
class Photo:
    """A decoded photo: ``rgb`` is what every operation works on (as :func:`read_image` returns);
    ``alpha`` (H, W) uint8 and ``straight`` (the colours before compositing over white) are set when
    the file had transparency that is not fully opaque; ``grey``: the file was stored in a grey mode."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    straight: np.ndarray | None = None
    grey: bool = False
    bilevel: np.ndarray | None = None  # a 1-bit photo's own pixels (H, W) uint8, 0 / 255; ``rgb`` is descreened


def read_image(source: Source, *, max_pixels: int | None = None, name: str | None = None) -> np.ndarray:
    """Decode an image file (path) or encoded bytes to an RGB uint8 array of shape (H, W, 3).

    ``name`` labels the input in error messages (e.g. an upload's file name); it defaults to the
    path, or "input" for bytes. Raises InputNotFoundError, EmptyFileError, UnsupportedFormatError,
    ImageTooLargeError or CorruptImageError.
    """
    return read_photo(source, max_pixels=max_pixels, name=name).rgb


def read_photo(source: Source, *, max_pixels: int | None = None, name: str | None = None) -> Photo:
    """As :func:`read_image` (same checks and errors), keeping the alpha channel and the grey mode."""
    data, label = load_bytes(source, name)
    im = open_checked(data, label, max_pixels=max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's warnings about odd EXIF/TIFF tags are not errors
            im.load()
            im = _oriented(im)
            return _to_photo(im, label)
    except FaceganError:
        raise
    except MemoryError:
        raise ImageTooLargeError(f"{label}: not enough memory to decode this image") from None
    except _DECODE_ERRORS as e:
        raise CorruptImageError(f"{label}: the {im.format} data is damaged or truncated ({e})") from None


def load_bytes(source: Source, name: str | None = None) -> tuple[bytes, str]:
    """Return (encoded bytes, label for messages) for a path or bytes; checks existence and emptiness."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = bytes(source), name or "input"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = name or str(path)
        if path.is_dir():
            raise InputNotFoundError(f"{label}: is a folder, not an image file")
        if not path.exists():
            raise InputNotFoundError(f"{label}: no such file")
        if not path.is_file():
            raise InputNotFoundError(f"{label}: not a regular file")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise InputNotFoundError(f"{label}: cannot read it ({e.strerror or e})") from None
    else:
        raise TypeError(f"expected a path or bytes, got {type(source).__name__}")
    if not data:
        raise EmptyFileError(f"{label}: the file is empty (0 bytes)")
    return data, label


def open_checked(data: bytes, label: str, *, max_pixels: int | None = None) -> Image.Image:
    """Open (without decoding pixels) an image of an accepted format within the pixel limit."""
    fmt = sniff_format(data)
    if fmt not in ACCEPTED_FORMATS:
        raise UnsupportedFormatError(_unsupported_message(label, fmt))
    limit = default_max_pixels() if max_pixels is None else int(max_pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides below
        try:
            im = Image.open(io.BytesIO(data), formats=[fmt])
        except Image.DecompressionBombError:
            raise ImageTooLargeError(
                f"{label}: the header claims more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels "
                f"(a possible decompression bomb); the limit is {limit / 1e6:g} megapixels") from None
        except (UnidentifiedImageError, *_DECODE_ERRORS) as e:
            detail = "cannot parse its header" if isinstance(e, UnidentifiedImageError) else e
            raise CorruptImageError(f"{label}: not a valid {fmt} file ({detail})") from None
    width, height = im.size
    if width <= 0 or height <= 0:
        raise CorruptImageError(f"{label}: the {fmt} header gives an empty size {width}x{height}")
    if width * height > limit:
        raise ImageTooLargeError(
            f"{label}: {width}x{height} is {width * height / 1e6:.1f} megapixels, more than the limit "
            f"of {limit / 1e6:g} megapixels (raise it with {MAX_PIXELS_ENV} or max_pixels)")
    if fmt in ("PNG", "WEBP") and getattr(im, "is_animated", False):
        raise UnsupportedFormatError(f"{label}: animated {fmt} is not supported; give a still image "
                                     f"(accepted formats: {ACCEPTED_TEXT})")
    return im


def _unsupported_message(label: str, fmt: str | None) -> str:
    what = f"{fmt} files are not supported" if fmt else "not a recognised image file"
    hint = ""
    suffix = Path(label).suffix.lower()
    if fmt and suffix in ACCEPTED_EXTENSIONS:
        hint = f" (named {suffix}, but the content is {fmt})"
    if fmt in ("HEIF", "AVIF"):
        hint += "; convert it to JPEG or PNG first"
    if fmt == "MP4/MOV video":
        what, hint = ("video files are not read as photos",
                      "; the CLI's anonymize, swap-gender, blur and pixelate take videos (facegan anonymize clip.mp4 -o out/), "
                      "or extract a frame as PNG or JPEG")
    return f"{label}: {what}{hint}. Accepted formats: {ACCEPTED_TEXT}"


def _oriented(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a damaged EXIF block leaves the image as stored."""
    try:
        return ImageOps.exif_transpose(im)
    except (*_DECODE_ERRORS, KeyError, TypeError):
        return im


def _to_photo(im: Image.Image, label: str) -> Photo:
    grey = im.mode in _GREY_MODES
    alpha = straight = None
    if im.mode.startswith("I") or im.mode == "F":  # 16/32-bit grey, float
        a = np.asarray(im, dtype=np.float64)
        peak = float(a.max()) if a.size else 0.0
        if im.mode.startswith("I;16") or 255 < peak <= 65535:
            a = a / 257.0
        elif peak > 65535:
            a = a * (255.0 / peak)
        elif im.mode == "F" and peak <= 1.0:
            a = a * 255.0
        im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    im = _to_srgb(im)
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        a = np.array(rgba.getchannel("A"), dtype=np.uint8)
        if (a < 255).any():
            alpha, straight = a, np.array(rgba.convert("RGB"), dtype=np.uint8)
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), rgba)
    bilevel = None
    if alpha is None and im.mode in ("1", "L"):
        g = np.array(im.convert("L"), dtype=np.uint8)
        if g.size and ((g == 0) | (g == 255)).all() and (g == 0).any() and (g == 255).any():
            import cv2

            bilevel = g
            soft = cv2.GaussianBlur(g.astype(np.float32), (0, 0), DESCREEN_SIGMA)
            im = Image.fromarray(np.clip(np.rint(soft), 0, 255).astype(np.uint8), "L")
    if im.mode != "RGB":
        try:
            im = im.convert("RGB")
        except ValueError:
            raise UnsupportedFormatError(f"{label}: colour mode {im.mode} is not supported") from None
    return Photo(np.array(im, dtype=np.uint8), alpha, straight, grey, bilevel)


def _to_srgb(im: Image.Image) -> Image.Image:
    """Convert colours with an embedded ICC profile to sRGB (skipped for sRGB or a bad profile)."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK"):
        return im
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(profile).lower().replace(" ", ""):
            return im
        out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
        return ImageCms.profileToProfile(im, profile, _SRGB, outputMode=out_mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return im


def iter_images(path: str | os.PathLike) -> list[Path]:
    """A file gives [file] (its content is checked when read); a folder gives every file with an
    accepted extension under it, recursively, sorted, skipping hidden files and folders.
    An empty list means the folder holds no images."""
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InputNotFoundError(f"{root}: no such file or folder")
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(folder, f) for f in files
                  if not f.startswith(".") and Path(f).suffix.lower() in ACCEPTED_EXTENSIONS]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())
