"""What the REST API and the web page share: the limits, the in-memory result store and the one
function that turns uploaded bytes into a result (decode -> operation -> encode with metadata)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, EmptyFileError, UnsupportedFormatError
from ..ops import Operation, get_op, list_ops
from ..ops.base import embeddable
from .config import ServerConfig
from .limits import (OperationUnavailableError, RateLimiter, Runner, UnknownOperationError,
                     UploadTooLargeError)
from .store import ResultStore

log = logging.getLogger("facegan.server")

# the web service accepts the formats every browser shows; the CLI reads BMP/TIFF too
SERVER_FORMATS = ("JPEG", "PNG", "WEBP")
ACCEPTED_TEXT = "JPG, PNG or WEBP"
OUTPUT_FORMATS = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
_OUT_ALIASES = {"jpeg": "jpg", "png": "png", "jpg": "jpg", "webp": "webp"}
_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
MAX_KEEP = 4  # photos of people to leave alone per request (REST `keep` files, the page's widget; one upload limit)
# what an op's result info holds that a response must not: anonymize's decisions for a video's other frames
# (its reshape's random-generator state and k-Same's neighbours — with them the change could be partly undone)
PRIVATE_INFO = ("pins",)


@dataclass
class Processed:
    operation: str
    options: dict
    input_format: str
    input_size: tuple[int, int]  # width, height
    input_bytes: int
    data: bytes  # encoded result (with facegan metadata)
    media_type: str
    output_format: str
    size: tuple[int, int]
    synthetic: bool
    faces: list[dict]
    info: dict
    time_s: float

    def report(self, with_image: bool = False) -> dict:
        import base64

        d = {"operation": self.operation, "options": self.options, "synthetic": self.synthetic,
             "faces": jsonable(self.faces), "info": jsonable(self.info),
             "input": {"format": self.input_format, "width": self.input_size[0],
                       "height": self.input_size[1], "bytes": self.input_bytes},
             "image": {"format": self.output_format, "media_type": self.media_type, "width": self.size[0],
                       "height": self.size[1], "bytes": len(self.data)},
             "time_s": round(self.time_s, 3)}
        if with_image:
            d["image"]["base64"] = base64.b64encode(self.data).decode("ascii")
        return d


def fmt_bytes(n: int) -> str:
    """Sizes for people: 17 KB, 1.5 MB, 20 MB (binary units)."""
    return f"{n / 1024:.0f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.3g} MB"


def jsonable(obj):
    """Plain-JSON copy of a report (numpy scalars/arrays, tuples, paths)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def output_format(name: str | None) -> str:
    key = _OUT_ALIASES.get((name or "png").strip().lower().lstrip("."))
    if key is None:
        raise ConfigError(f"output format {name!r} is not one of png, jpg, webp")
    return key


def check_format(data: bytes, name: str = "upload") -> str:
    """Cheap content check (first bytes) before any decoding; returns the Pillow format name."""
    from ..io import sniff_format

    if not data:
        raise EmptyFileError(f"{name}: the file is empty (0 bytes)")
    fmt = sniff_format(data)
    if fmt not in SERVER_FORMATS:
        what = f"{fmt} files are not accepted" if fmt else "this is not a recognised image file"
        suffix = Path(name).suffix.lower()
        if fmt and suffix in (".jpg", ".jpeg", ".png", ".webp"):
            what += f" (the file is named {suffix}, but its content is {fmt})"
        raise UnsupportedFormatError(f"{name}: {what}. Accepted formats: {ACCEPTED_TEXT}.")
    return fmt


@dataclass
class ServerContext:
    config: ServerConfig
    runner: Runner = field(init=False)
    limiter: RateLimiter = field(init=False)
    store: ResultStore = field(init=False)
    upload_dir: Path | None = None  # the page framework's private upload folder (None: no page)

    def __post_init__(self):
        c = self.config
        self.runner = Runner(c.concurrency, c.queue_size, c.timeout_s)
        self.limiter = RateLimiter(c.rate_limit, c.rate_burst)
        self.store = ResultStore(c.result_ttl_s, c.result_store_bytes)

    # --- operations -------------------------------------------------------------------------
    @staticmethod
    def operations() -> list[Operation]:
        return list_ops()

    @staticmethod
    def get_operation(name: str) -> Operation:
        try:
            op = get_op(name)
        except ConfigError:
            known = ", ".join(o.name for o in list_ops())
            raise UnknownOperationError(f"unknown operation {name!r}; known: {known}") from None
        if not op.available():
            raise OperationUnavailableError(f"{name}: its model is not installed on this server")
        return op

    # --- validation and processing ---------------------------------------------------------
    def check_upload(self, data: bytes, name: str = "upload") -> str:
        if len(data) > self.config.max_upload_bytes:
            raise UploadTooLargeError(
                f"{name}: {fmt_bytes(len(data))} is more than the limit of {fmt_bytes(self.config.max_upload_bytes)}")
        return check_format(data, name)

    def process(self, op: Operation, data: bytes, options: dict, out_fmt: str = "png", name: str = "upload",
                progress=None, keep: list[tuple[bytes, str]] = (), only: bool = False) -> Processed:
        """Blocking: decode, run, encode. Call it through ``self.runner``. ``keep``: (bytes, name) of photos of
        people to leave as they are (the form's ``keep`` files; ``only``: of the only people to change, the form's
        ``only`` files); only their descriptors are computed, nothing is kept."""
        from ..faces.keep import KeepList, run_keeping
        from ..io import encode_image, read_photo, stored_like

        t0 = time.perf_counter()
        in_fmt = self.check_upload(data, name)
        if progress:
            progress(0.1, "decoding the photo")
        photo = read_photo(data, max_pixels=self.config.max_pixels, name=name)
        rgb = photo.rgb
        if progress:
            progress(0.25, f"running {op.title}")
        people = None
        if keep:
            refs = []
            for kdata, kname in keep:
                self.check_upload(kdata, kname)
                refs.append((read_photo(kdata, max_pixels=self.config.max_pixels, name=kname).rgb, kname))
            people = KeepList.from_photos(refs, only=only)
            del refs
        result = run_keeping(op, rgb, options, people)
        if progress:
            progress(0.85, "encoding the result")
        meta = {"operation": op.name, "options": embeddable(options)}  # the file travels on: no seed in it
        for k in ("model", "model_source"):
            if k in result.info:
                meta[k] = result.info[k]
        # the upload's transparency (PNG / WEBP out) and grey mode come back
        data_out = encode_image(stored_like(photo, result.image, out_fmt), out_fmt,
                                synthetic=bool(result.synthetic), info=meta)
        h, w = result.image.shape[:2]
        return Processed(operation=op.name, options=options, input_format=in_fmt,
                         input_size=(rgb.shape[1], rgb.shape[0]), input_bytes=len(data), data=data_out,
                         media_type=OUTPUT_FORMATS[out_fmt], output_format=out_fmt, size=(w, h),
                         synthetic=bool(result.synthetic), faces=result.faces,
                         info={k: v for k, v in result.info.items() if k not in PRIVATE_INFO},
                         time_s=time.perf_counter() - t0)

    def shutdown(self):
        self.runner.shutdown()
        self.store.clear()
