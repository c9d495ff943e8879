"""The REST API (FastAPI) and the app factory that mounts the web page next to it.

Endpoints (documented at ``/docs``, schema at ``/openapi.json``):

- ``GET  /api/health`` — liveness, version, limits and load.
- ``GET  /api/operations`` — the operations in the registry with their options.
- ``POST /api/run/{op}`` — run an operation on one photo; JSON with the result image (base64) and
  the per-face report.
- ``POST /api/run/{op}/image`` — the same, answering with the image bytes; the report is in the
  ``X-Facegan-Report`` header (JSON).
- ``GET  /api/results/{token}`` — images the web page shows and offers for download (in memory,
  kept ``result_ttl_s``).

Uploads are read into memory (never spooled to disk); only method, path, status, duration and
sizes are logged.
"""
from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import ConfigError, FaceganError
from .config import ServerConfig
from .core import ACCEPTED_TEXT, MAX_KEEP, OUTPUT_FORMATS, SERVER_FORMATS, ServerContext, fmt_bytes, output_format
from .limits import UploadTooLargeError

log = logging.getLogger("facegan.server")
access_log = logging.getLogger("facegan.server.access")

RESERVED_FIELDS = ("file", "keep", "only", "options", "output_format")
_FORM_OVERHEAD = 64 * 1024  # multipart headers and option fields on top of the photo itself
REPORT_HEADER_MAX = 8 * 1024
_TOKEN_PATH = re.compile(r"^(/api/results/)[^/]+")


# --- response models (for the OpenAPI document) ------------------------------------------------
class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable code, e.g. unsupported_format, no_face, busy")
    message: str = Field(description="what went wrong, for a person")


class OptionInfo(BaseModel):
    name: str
    type: str = Field(description="str | int | float | bool")
    default: Any = None
    choices: list | None = None
    help: str = ""


class OperationInfo(BaseModel):
    name: str
    title: str
    description: str
    options: list[OptionInfo]
    available: bool = Field(description="false when the operation's model is not installed")


class OperationsBody(BaseModel):
    operations: list[OperationInfo]
    accepted_formats: list[str]
    output_formats: list[str]


class ImageInfo(BaseModel):
    format: str
    media_type: str
    width: int
    height: int
    bytes: int
    base64: str | None = Field(None, description="the encoded image (with facegan's provenance metadata)")


class InputInfo(BaseModel):
    format: str
    width: int
    height: int
    bytes: int


class RunBody(BaseModel):
    operation: str
    options: dict[str, Any]
    synthetic: bool = Field(description="the image contains generated pixels (and is marked so in its metadata)")
    faces: list[dict[str, Any]] = Field(description="one row per face; keys depend on the operation")
    info: dict[str, Any]
    input: InputInfo
    image: ImageInfo
    time_s: float


def _detect_side():
    from ..faces.centerface import detect_side_label

    return detect_side_label()


class HealthBody(BaseModel):
    status: str
    version: str
    operations: int
    running_or_waiting: int
    limits: dict[str, Any]
    detect_side: int | str  # the detector's small-face pass on photos over 1024 px (FACEGAN_DETECT_SIDE)


_ERR = {"model": ErrorBody}
RUN_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {**_ERR, "description": "bad option, bad form, missing file"},
    404: {**_ERR, "description": "unknown operation"},
    413: {**_ERR, "description": "upload larger than max_upload_bytes, or image larger than max_pixels"},
    415: {**_ERR, "description": f"not a {ACCEPTED_TEXT} file (checked by content: GIF, SVG, BMP, TIFF, "
                                  "HEIC, text ... are refused)"},
    422: {**_ERR, "description": "damaged/truncated/empty image, or no face found (error=no_face)"},
    429: {**_ERR, "description": "too many requests from this client (see Retry-After)"},
    503: {**_ERR, "description": "server busy: all workers and the queue are full (see Retry-After), "
                                 "or the operation's model is not installed"},
    504: {**_ERR, "description": "the request took longer than timeout_s"},
}

_IMAGE_SCHEMA = {"type": "string", "format": "binary"}
RUN_REQUEST = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {
            "file": {**_IMAGE_SCHEMA, "description": f"the photo ({ACCEPTED_TEXT}; format checked by content)"},
            "options": {"type": "string", "description": 'operation options as a JSON object, e.g. {"to": "female"}'},
            "output_format": {"type": "string", "enum": list(OUTPUT_FORMATS), "default": "png"},
            "keep": {"type": "array", "items": _IMAGE_SCHEMA, "maxItems": MAX_KEEP,
                     "description": "photos of people to leave as they are (up to 4, in the upload's size limit): "
                                    "a face within dlib distance 0.5 of one is not changed, its row says 'kept'"},
            "only": {"type": "array", "items": _IMAGE_SCHEMA, "maxItems": MAX_KEEP,
                     "description": "instead of keep: photos of the only people to change; every other face is left"},
        },
        "additionalProperties": {"type": "string",
                                 "description": "any operation option as its own field, e.g. strength=2"},
    }},
    "image/jpeg": {"schema": _IMAGE_SCHEMA},
    "image/png": {"schema": _IMAGE_SCHEMA},
    "image/webp": {"schema": _IMAGE_SCHEMA},
    "application/octet-stream": {"schema": _IMAGE_SCHEMA},
}}}
RUN_DOC = f"""Run operation `op` (see `GET /api/operations`) on one photo.

Send either a multipart form with the photo in `file` (options as form fields and/or as a JSON
object in `options`), or the raw image bytes as the body with options as query parameters
(`?strength=2&output_format=jpg`). Accepted: {ACCEPTED_TEXT}, checked by content, not by name.

The result is encoded with facegan's provenance metadata (PNG text chunks / EXIF + XMP; marked
synthetic when it contains generated pixels). Nothing is written to disk."""


class AccessLogMiddleware:
    """Logs one line per HTTP request: method, path (no query string), status, duration, sizes."""

    def __init__(self, app, ctx: ServerContext):
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        sizes = {"in": 0, "out": 0}
        status = {"code": 0}

        async def recv():
            msg = await receive()
            if msg["type"] == "http.request":
                sizes["in"] += len(msg.get("body", b""))
            return msg

        async def snd(msg):
            if msg["type"] == "http.response.start":
                status["code"] = msg["status"]
            elif msg["type"] == "http.response.body":
                sizes["out"] += len(msg.get("body", b""))
            await send(msg)

        try:
            await self.app(scope, recv, snd)
        finally:
            path = _TOKEN_PATH.sub(r"\1<token>", scope.get("path", "?"))  # a token would grant the image
            access_log.info("%s %s %d %.1fms in=%dB out=%dB", scope.get("method", "?"), path,
                            status["code"], (time.perf_counter() - t0) * 1000, sizes["in"], sizes["out"])
            if self.ctx.upload_dir is not None:
                _sweep(self.ctx)


_last_sweep = [0.0]


def _sweep(ctx: ServerContext, older_than_s: float = 60.0, every_s: float = 5.0):
    """Backstop: delete page uploads that no handler consumed (e.g. the browser went away)."""
    now = time.time()
    if now - _last_sweep[0] < every_s:
        return
    _last_sweep[0] = now
    from .privacy import files_in, remove_upload

    for p in files_in(ctx.upload_dir):
        try:
            if now - p.stat().st_mtime > older_than_s:
                remove_upload(p, ctx.upload_dir)
        except OSError:
            pass


def _error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def _client_key(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _read_body(request: Request, limit: int, photo_limit: int) -> bytes:
    """Reads the request body into memory, refusing (413) as soon as it passes ``limit``
    (``photo_limit`` is the limit named in the message)."""
    cl = request.headers.get("content-length")
    if cl is not None:
        try:
            n = int(cl)
        except ValueError:
            raise ConfigError("bad Content-Length header") from None
        if n > limit:
            raise UploadTooLargeError(f"the upload ({fmt_bytes(n)}) is larger than the limit of "
                                      f"{fmt_bytes(photo_limit)}")
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise UploadTooLargeError(f"the upload is larger than the limit of {fmt_bytes(photo_limit)}")
    return bytes(buf)


async def _parse_multipart(request: Request, body: bytes) -> tuple[bytes | None, str, dict[str, str], dict]:
    """Parse a multipart body held in memory; Starlette's spooled files are sized so they never
    roll over to disk. Returns (photo, its name, fields, {"keep" | "only": [(reference photo, its name)]})."""
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream():
        yield body
        yield b""

    parser = MultiPartParser(request.headers, stream(), max_files=1 + MAX_KEEP, max_fields=64, max_part_size=64 * 1024)
    parser.spool_max_size = len(body) + 1  # the spooled "temporary file" stays in memory
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise ConfigError(f"bad multipart form: {e.message}") from None
    data, name, fields, refs = None, "upload", {}, {}
    try:
        for key, value in form.multi_items():
            if hasattr(value, "read"):
                if key in ("keep", "only"):
                    refs.setdefault(key, []).append((await value.read(), value.filename or key))
                    continue
                if key != "file":
                    raise ConfigError(f"the photo must be sent in the form field 'file' (people to leave alone in "
                                      f"'keep', or the only people to change in 'only'), not {key!r}")
                if data is not None:
                    raise ConfigError("one photo per request in 'file'")
                data = await value.read()
                name = value.filename or "upload"
            else:
                fields[key] = value
    finally:
        await form.close()
    if len(refs) > 1:
        raise ConfigError("'keep' and 'only' exclude each other")
    return data, name, fields, refs


def _gather_options(fields: dict[str, str]) -> tuple[dict, str]:
    raw: dict[str, Any] = {}
    if fields.get("options"):
        try:
            parsed = json.loads(fields["options"])
        except ValueError as e:
            raise ConfigError(f"'options' is not valid JSON ({e})") from None
        if not isinstance(parsed, dict):
            raise ConfigError("'options' must be a JSON object")
        raw.update(parsed)
    raw.update({k: v for k, v in fields.items() if k not in RESERVED_FIELDS})
    return raw, output_format(fields.get("output_format"))


def _add_docs(app: FastAPI):
    """Swagger UI at /docs, served from the swagger-ui-py package (no CDN: works offline and the
    page asks no other host); FastAPI's CDN-based page only when that package is missing."""
    from fastapi.openapi.docs import get_swagger_ui_html

    try:
        import swagger_ui
        from starlette.staticfiles import StaticFiles

        static = Path(swagger_ui.__file__).parent / "static"
        if not (static / "swagger-ui-bundle.js").is_file():
            raise ImportError("swagger-ui-py without its static files")
        app.mount("/docs-assets", StaticFiles(directory=static), name="docs-assets")
        assets = {"swagger_js_url": "/docs-assets/swagger-ui-bundle.js",
                  "swagger_css_url": "/docs-assets/swagger-ui.css",
                  "swagger_favicon_url": "/docs-assets/favicon-32x32.png"}
    except ImportError:
        log.warning("swagger-ui-py is not installed: /docs loads Swagger UI from a CDN")
        assets = {}

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="facegan REST API", **assets)


def create_api(ctx: ServerContext) -> FastAPI:
    cfg = ctx.config
    ctx_holder: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        ctx.shutdown()
        if ctx_holder.get("cleanup"):
            ctx_holder["cleanup"]()

    app = FastAPI(
        title="facegan", version=__version__, lifespan=lifespan,
        description=("Transform faces in real photos. Operations come from facegan's registry "
                     "(`GET /api/operations`). Errors are JSON: `{\"error\": code, \"message\": text}`.\n\n"
                     f"Limits: uploads up to {fmt_bytes(cfg.max_upload_bytes)} and {cfg.max_pixels / 1e6:g} "
                     f"megapixels; {cfg.concurrency} operation(s) at once with {cfg.queue_size} waiting; "
                     f"{cfg.timeout_s:g} s per request; "
                     + (f"{cfg.rate_limit:g} runs per minute per client (burst {cfg.rate_burst})."
                        if cfg.rate_limit else "no rate limit.")),
        docs_url=None, redoc_url=None, openapi_url="/openapi.json",
    )
    _add_docs(app)
    app.state.ctx = ctx
    app.state.cleanup = ctx_holder
    app.add_middleware(AccessLogMiddleware, ctx=ctx)

    @app.exception_handler(FaceganError)
    async def _facegan_error(request: Request, exc: FaceganError):
        headers = {}
        if getattr(exc, "retry_after", None):
            headers["Retry-After"] = str(exc.retry_after)
        return _error(exc.http_status, exc.code, str(exc), headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        return _error(400, "bad_request", "; ".join(str(e.get("msg")) for e in exc.errors()))

    @app.get("/api/health", response_model=HealthBody, tags=["service"])
    def health():
        """Liveness, version, limits and current load."""
        return {"status": "ok", "version": __version__, "operations": len(ctx.operations()),
                "running_or_waiting": ctx.runner.admitted,
                "limits": {"max_upload_bytes": cfg.max_upload_bytes, "max_pixels": cfg.max_pixels,
                           "concurrency": cfg.concurrency, "queue_size": cfg.queue_size,
                           "timeout_s": cfg.timeout_s, "rate_limit_per_minute": cfg.rate_limit,
                           "rate_burst": cfg.rate_burst},
                "detect_side": _detect_side()}

    @app.get("/api/operations", response_model=OperationsBody, tags=["operations"])
    def operations():
        """Every operation in the registry with its options (name, type, default, choices, help) and
        whether it is available (its model installed)."""
        return {"operations": [op.describe() for op in ctx.operations()],
                "accepted_formats": list(SERVER_FORMATS), "output_formats": list(OUTPUT_FORMATS)}

    async def _run(request: Request, op_name: str):
        ctx.limiter.check(_client_key(request))  # 429
        op = ctx.get_operation(op_name)  # 404 / 503
        ctx.runner.check_capacity()  # 503 "busy" before reading the upload
        deadline = time.monotonic() + cfg.timeout_s
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            body = await _read_body(request, cfg.max_upload_bytes + _FORM_OVERHEAD, cfg.max_upload_bytes)
            data, name, fields, refs = await _parse_multipart(request, body)
            del body
            if data is None:
                raise ConfigError("no photo: send it in the multipart form field 'file'")
        else:
            data = await _read_body(request, cfg.max_upload_bytes, cfg.max_upload_bytes)
            name, fields, refs = "upload", dict(request.query_params), {}
        fields = {**{k: v for k, v in request.query_params.items() if k not in fields}, **fields}
        raw, fmt = _gather_options(fields)
        options = op.parse_options(raw)  # 400 on unknown/bad options, before any decoding
        ctx.check_upload(data, name)  # 413 / 415 / 422 (empty) from the first bytes
        keep = [x for v in refs.values() for x in v]
        for kdata, kname in keep:
            ctx.check_upload(kdata, kname)
        return await ctx.runner.run(ctx.process, op, data, options, fmt, name, None, keep, "only" in refs,
                                    deadline=deadline)

    @app.post("/api/run/{op}", response_model=RunBody, responses=RUN_RESPONSES, openapi_extra=RUN_REQUEST,
              tags=["operations"], summary="Run an operation (JSON answer, image in base64)", description=RUN_DOC)
    async def run_json(request: Request, op: str):
        res = await _run(request, op)
        return JSONResponse(res.report(with_image=True))

    @app.post("/api/run/{op}/image", responses={
        200: {"content": {t: {"schema": _IMAGE_SCHEMA} for t in OUTPUT_FORMATS.values()},
              "description": "the result image; headers: X-Facegan-Report (JSON report without the image), "
                             "X-Facegan-Synthetic (true/false), X-Facegan-Faces (count)"},
        **RUN_RESPONSES}, openapi_extra=RUN_REQUEST, response_class=Response, tags=["operations"],
        summary="Run an operation (image answer, report in a header)", description=RUN_DOC)
    async def run_image(request: Request, op: str):
        res = await _run(request, op)
        report = json.dumps(res.report(), separators=(",", ":"))  # ASCII: json escapes the rest
        headers = {"X-Facegan-Synthetic": str(res.synthetic).lower(), "X-Facegan-Faces": str(len(res.faces)),
                   "Content-Disposition": f'inline; filename="facegan-{res.operation}.{res.output_format}"'}
        if len(report) > REPORT_HEADER_MAX:
            short = res.report()
            short["faces"] = [{k: f.get(k) for k in ("face", "status") if k in f} for f in short["faces"]]
            report = json.dumps(short, separators=(",", ":"))
            headers["X-Facegan-Report-Truncated"] = "true"
        headers["X-Facegan-Report"] = report
        return Response(res.data, media_type=res.media_type, headers=headers)

    @app.get("/api/results/{token}", tags=["web page"], response_class=Response,
             responses={200: {"content": {t: {"schema": _IMAGE_SCHEMA} for t in OUTPUT_FORMATS.values()}},
                        404: {**_ERR, "description": "unknown or expired"}})
    def result(token: str, download: bool = False):
        """An image shown by the web page (its upload preview or its result), held in memory for
        `result_ttl_s`; `?download=1` serves it as an attachment. These are the exact encoded bytes,
        provenance metadata included."""
        e = ctx.store.get(token)
        if e is None:
            return _error(404, "not_found", "this result is unknown or has expired")
        disp = "attachment" if download else "inline"
        return Response(e.data, media_type=e.media_type, headers={
            "Content-Disposition": f'{disp}; filename="{e.filename}"', "Cache-Control": "private, no-store"})

    return app


def create_app(config: ServerConfig | None = None, *, page: bool | None = None) -> FastAPI:
    """The whole server: REST API under /api, OpenAPI docs at /docs and (unless ``page=False``)
    the web page at /."""
    config = config or ServerConfig()
    ctx = ServerContext(config)
    app = create_api(ctx)
    if config.page if page is None else page:
        from .page import mount_page

        mount_page(app, ctx)
    return app
