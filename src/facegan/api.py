"""The Python API: one call per job, through the same pipeline as the CLI (load -> detect / align -> transform ->
paste back -> verify -> write).

    import facegan

    result = facegan.anonymize("photo.jpg")           # a path, encoded bytes, a PIL image or an RGB uint8 array
    result.faces                                       # per face: box, gender before / after and the judge, identity proof
    result.save("out/photo.jpg")                       # marked synthetic like the CLI's outputs; never over the input
    facegan.swap_gender("photo.jpg", to="female").save("out/photo-f.png")
    job = facegan.process_folder("anonymize", "photos/", "anon/")   # tree mirrored, resumable, report.json / .csv
    faces = facegan.analyze("photo.jpg")               # boxes, landmarks, gender, age, expression

Options are the operations' own (``facegan.operations()`` lists them with their defaults; the CLI's
``--max-strength`` is ``max_strength=``). Errors are :mod:`facegan.errors` exceptions, as on the CLI.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

Image = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, np.ndarray, Any]  # Any: a PIL image


@dataclass
class Result:
    """What one operation did to one photo. ``image``: RGB uint8, the photo's size; ``faces``: the report rows
    (as in the CLI's ``report.json``); ``info``: the operation's extra results (e.g. the model used)."""

    operation: str
    options: dict
    image: np.ndarray
    faces: list[dict] = field(default_factory=list)
    synthetic: bool = True
    info: dict = field(default_factory=dict)
    source: Path | None = None  # the input file, when a path was given (never written over)
    _photo: Any = None  # the decoded input (its alpha channel and grey mode come back on save)

    def encode(self, fmt: str = "png", quality: int = 95) -> bytes:
        """The output as PNG / JPEG / WEBP bytes, with the metadata :meth:`save` writes."""
        from .io import encode_image

        return encode_image(self._stored(fmt), fmt, synthetic=self.synthetic, info=self._metadata(), quality=quality)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False, quality: int = 95) -> Path:
        """Writes the output (format from the extension: .png, .jpg, .webp) atomically, marked as AI-edited when
        it holds generated pixels, with the operation, its options (never the seed) and the per-face rows (never
        what the judges read on the original face); the input's transparency (PNG / WEBP) and grey mode come
        back. Refuses to replace an existing file unless ``overwrite``, and the input file always."""
        from .io import write_image

        path = Path(path)
        return write_image(path, self._stored(path.suffix), synthetic=self.synthetic, info=self._metadata(),
                           overwrite=overwrite, quality=quality, protect=[self.source] if self.source else [])

    def to_pil(self):
        from PIL import Image as PILImage

        return PILImage.fromarray(self.image)

    def _stored(self, fmt: str) -> np.ndarray:
        from .io import stored_like

        return stored_like(self._photo, self.image, fmt) if self._photo is not None else self.image

    def _metadata(self) -> dict:
        from .ops.base import embeddable

        return {"operation": self.operation, "options": json.dumps(embeddable(self.options)),
                "faces": json.dumps(embeddable(self.options, self.faces)["faces"], default=str)[:4000]}


def load(image: Image, *, max_pixels: int | None = None):
    """(decoded photo, source path or None) for anything the API takes. Paths and bytes go through the same
    checks as the CLI's inputs (formats, pixel limit, EXIF turn, colour profiles, 16-bit, transparency)."""
    from .errors import ConfigError
    from .io import read_photo
    from .io.read import Photo, _oriented, _to_photo

    if isinstance(image, (str, os.PathLike)):
        return read_photo(image, max_pixels=max_pixels), Path(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return read_photo(image, max_pixels=max_pixels), None
    if isinstance(image, np.ndarray):
        a = image
        if a.dtype != np.uint8:
            raise ConfigError(f"expected a uint8 image array, got {a.dtype} (scale it to 0-255 first)")
        if a.ndim == 2:
            return Photo(rgb=np.ascontiguousarray(np.repeat(a[..., None], 3, 2)), grey=True), None
        if a.ndim != 3 or a.shape[2] not in (3, 4):
            raise ConfigError(f"expected an RGB (H, W, 3), RGBA (H, W, 4) or grey (H, W) array, got shape {a.shape}")
        if a.shape[2] == 3:
            return Photo(rgb=np.ascontiguousarray(a)), None
        from PIL import Image as PILImage

        return _to_photo(PILImage.fromarray(np.ascontiguousarray(a), "RGBA"), "array"), None
    if hasattr(image, "mode") and hasattr(image, "size") and hasattr(image, "convert"):  # a PIL image
        from .errors import ImageTooLargeError
        from .io import default_max_pixels

        pixels = image.size[0] * image.size[1]
        limit = max_pixels if max_pixels is not None else default_max_pixels()
        if pixels > limit:
            raise ImageTooLargeError(f"image: {pixels:,} pixels is more than the limit of {limit:,}")
        im = image.copy()
        im.load()
        return _to_photo(_oriented(im), "image"), None
    raise TypeError(f"expected a path, bytes, a PIL image or a numpy array, got {type(image).__name__}")


def keep_list(keep, only=None):
    """``keep`` or ``only`` as a :class:`~facegan.faces.keep.KeepList`: None, one, or reference photo path(s) / a
    folder (``only``: the references' people are the ones changed)."""
    from .errors import ConfigError
    from .faces.keep import KeepList

    if keep is not None and only is not None:
        raise ConfigError("keep and only exclude each other")
    refs = keep if keep is not None else only
    if refs is None or isinstance(refs, KeepList):
        return refs
    return KeepList.from_paths(refs, only=only is not None)


def process(operation: str, image: Image, *, max_pixels: int | None = None, keep=None, only=None,
            **options) -> Result:
    """Runs the registered ``operation`` (``facegan.operations()``) on one photo. ``keep``: photos of people to
    leave as they are (a path, a list, a folder, or a ``KeepList`` made once for many calls) — their faces are not
    changed and their rows say ``kept``. ``only``: the other way round — only those people's faces are changed."""
    from .errors import ModelError
    from .ops import get_op

    op = get_op(operation)
    opts = op.parse_options(options)
    if not op.available():
        raise ModelError(f"{op.name}: its model is not installed")
    from .faces.keep import run_keeping
    from .io.video import is_video_path

    if isinstance(image, (str, os.PathLike)) and is_video_path(Path(image)):
        from .errors import UnsupportedFormatError

        raise UnsupportedFormatError(f"{image}: a video — process_folder({operation!r}, {str(image)!r}, OUT_DIR) "
                                     "writes it (faces tracked, one decision per face)")
    photo, source = load(image, max_pixels=max_pixels)
    res = run_keeping(op, photo.rgb, opts, keep_list(keep, only))
    return Result(operation=op.name, options=opts, image=res.image, faces=res.faces, synthetic=bool(res.synthetic),
                  info=res.info, source=source, _photo=photo)


def swap_gender(image: Image, **options) -> Result:
    """Each face to the opposite gender (``to="female"`` / ``"male"``: only towards that one); see ``process``."""
    return process("swap-gender", image, **options)


def anonymize(image: Image, **options) -> Result:
    """Every face changed until the identity models no longer match it, with per-face proof; see ``process``."""
    return process("anonymize", image, **options)


def blur(image: Image, **options) -> Result:
    return process("blur", image, **options)


def pixelate(image: Image, **options) -> Result:
    return process("pixelate", image, **options)


def process_folder(operation: str, inputs, out_dir: str | os.PathLike, *, overwrite: bool = False, suffix: str = "",
                   fmt: str | None = None, workers: int = 1, progress: bool = True, max_pixels: int | None = None,
                   shard: str | None = None, keep=None, only=None, dry_run: bool = False, **options):
    """The CLI's batch job: every photo (and, for ops that take them, video) under ``inputs`` (a path or a list)
    into ``out_dir`` with the tree mirrored, ``report.json`` / ``report.csv`` / the journal written as it goes, a
    re-run skipping what is done; ``keep`` and ``only`` as for :func:`process`. Returns the job's summary (processed, skipped,
    failed, faces, errors, report); ``dry_run``: the job's plan as a dict, nothing written."""
    from .ops import get_op
    from .run import run_op

    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    return run_op(get_op(operation), paths, out_dir, options, suffix=suffix, overwrite=overwrite, progress=progress,
                  max_pixels=max_pixels, fmt=fmt, workers=workers, shard=shard, keep=keep_list(keep, only),
                  dry_run=dry_run)


def detect(image: Image, detector: str = "centerface", *, max_pixels: int | None = None) -> list:
    """The faces in a photo (``facegan.faces.Face``: box, score, 5 landmarks), left to right."""
    from .faces.detect import detect_faces

    photo, _ = load(image, max_pixels=max_pixels)
    return sorted(detect_faces(photo.rgb, detector=detector), key=lambda f: (f.box[0], f.box[1]))


def analyze(image: Image, detector: str = "centerface", *, landmarks: int = 5, embedding: bool = False,
            reference=None, max_pixels: int | None = None) -> list[dict]:
    """What ``facegan analyze`` prints for a photo: per face its box, landmarks, gender, age, expression (and
    identity embedding); ``reference`` (photo path(s), a folder or a ``KeepList``): each face's dlib distance to the
    nearest reference person (``reference_distance``, what ``keep=`` / ``only=`` compare with 0.5)."""
    from .commands.analyze import analyze_image

    photo, _ = load(image, max_pixels=max_pixels)
    return analyze_image(photo.rgb, detector=detector, landmarks=landmarks, embedding=embedding,
                         references=keep_list(reference))


def operations(available_only: bool = False) -> list[dict]:
    """The registered operations, each with its options and their defaults."""
    from .ops import list_ops

    return [op.describe() for op in list_ops(available_only)]
