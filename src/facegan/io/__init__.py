"""Image input/output for every facegan entry point (CLI, web API, scripts).

- :func:`read_image` — path or bytes -> RGB uint8 (H, W, 3) (:func:`read_photo`: with the alpha
  channel and grey mode kept, for :func:`stored_like` to put back); accepted formats JPEG, PNG, WEBP, BMP,
  TIFF found by content; typed errors (facegan.errors) for everything else. See ``read.py`` for the
  decisions (pixel limit, EXIF orientation, ICC -> sRGB, alpha over white, 16-bit, animation).
- :func:`write_image` / :func:`encode_image` — PNG/JPEG/WEBP, atomic, never over an input, with
  synthetic-content metadata; :func:`read_metadata` / :func:`is_synthetic` read it back.
- :func:`iter_images` — the image files of a folder (or a single file).

Videos: :mod:`facegan.io.video` (PyAV: frames in, H.264 MP4 with the source's audio out, tagged synthetic);
``facegan.video`` runs an op over one. :func:`read_image` refuses a video with UnsupportedFormatError.
"""
from .formats import (ACCEPTED_EXTENSIONS, ACCEPTED_FORMATS, WRITE_FORMATS, format_for_extension,
                      sniff_format)
from .read import (DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, Photo, default_max_pixels, iter_images, load_bytes,
                   open_checked, read_image, read_photo)
from .write import (AI_SOURCE_TYPES, COMPOSITE, GENERATED, SOFTWARE, encode_image, is_synthetic,
                    read_metadata, stored_like, write_image)

__all__ = [
    "ACCEPTED_EXTENSIONS", "ACCEPTED_FORMATS", "WRITE_FORMATS", "format_for_extension", "sniff_format",
    "DEFAULT_MAX_PIXELS", "MAX_PIXELS_ENV", "default_max_pixels", "iter_images", "load_bytes",
    "open_checked", "read_image", "read_photo", "Photo",
    "AI_SOURCE_TYPES", "COMPOSITE", "GENERATED", "SOFTWARE", "encode_image", "is_synthetic",
    "read_metadata", "stored_like", "write_image",
]
