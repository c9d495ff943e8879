"""REST API of ``facegan serve``: endpoints, formats, limits, privacy.

Most runs use the ``blur`` baseline (no model needed); ``swap-gender`` is exercised when its model is
installed. Concurrency tests drive the ASGI app with httpx.AsyncClient so that requests overlap.
"""
from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
import tempfile
import threading
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from facegan.io import read_image, read_metadata
from facegan.ops import Operation, OpOption, OpResult, list_ops, register_op
from facegan.ops import base as ops_base
from facegan.server import ServerConfig, create_app

FAST = dict(rate_limit=0)  # most tests must not trip the rate limiter


def encode(rgb: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo(fixtures_dir) -> bytes:
    return (fixtures_dir / "happy.jpg").read_bytes()  # 256x256, one face


@pytest.fixture(scope="module")
def photo_rgb(fixtures_dir) -> np.ndarray:
    return read_image(fixtures_dir / "happy.jpg")


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(ServerConfig(**FAST), page=False)) as c:
        yield c


@pytest.fixture
def fake_ops():
    """Registers test-only ops: 'test-echo' (returns the input), 'test-slow' (waits on an event)."""
    started, release = threading.Event(), threading.Event()

    def slow(rgb, seconds=30.0):
        started.set()
        release.wait(seconds)
        return OpResult(image=rgb, faces=[{"face": 0}], synthetic=False)

    ops = [
        Operation("test-echo", "Echo", "returns the photo", lambda rgb: OpResult(image=rgb, synthetic=False)),
        Operation("test-slow", "Slow", "waits", slow, options=(OpOption("seconds", "float", 30.0),)),
    ]
    for op in ops:
        register_op(op)
    yield started, release
    release.set()
    for op in ops:
        ops_base._REGISTRY.pop(op.name, None)


def post(c, op, data, name="photo.jpg", **fields):
    return c.post(f"/api/run/{op}", files={"file": (name, data, "application/octet-stream")},
                  data={k: str(v) for k, v in fields.items()})


# --- endpoints ------------------------------------------------------------------------------------

def test_health(client, monkeypatch):
    monkeypatch.setenv("FACEGAN_DETECT_SIDE", "")  # the default small-face pass
    r = client.get("/api/health")
    assert r.status_code == 200
    j = r.json()
    assert j["status"] == "ok" and j["operations"] >= 2
    assert j["limits"]["max_upload_bytes"] == ServerConfig().max_upload_bytes
    assert j["running_or_waiting"] == 0
    assert j["detect_side"] == 3072
    monkeypatch.setenv("FACEGAN_DETECT_SIDE", "full")  # the operator's setting, read per request
    assert client.get("/api/health").json()["detect_side"] == "full"


def test_operations_come_from_the_registry(client, fake_ops):
    j = client.get("/api/operations").json()
    names = [o["name"] for o in j["operations"]]
    assert names == [o.name for o in list_ops()]  # the registry, not a hard-coded list
    assert {"blur", "pixelate", "test-echo", "test-slow"} <= set(names)
    blur = next(o for o in j["operations"] if o["name"] == "blur")
    assert blur["options"][0]["name"] == "strength" and blur["options"][0]["type"] == "float"
    slow = next(o for o in j["operations"] if o["name"] == "test-slow")
    assert slow["options"] == [{"name": "seconds", "type": "float", "default": 30.0, "choices": None, "help": ""}]
    assert j["accepted_formats"] == ["JPEG", "PNG", "WEBP"]
    if "swap-gender" in names:
        sg = next(o for o in j["operations"] if o["name"] == "swap-gender")
        to = next(o for o in sg["options"] if o["name"] == "to")
        assert set(to["choices"]) == {"opposite", "male", "female"}


def test_openapi_documents_the_run_endpoints(client):
    doc = client.get("/openapi.json").json()
    for path in ("/api/health", "/api/operations", "/api/run/{op}", "/api/run/{op}/image"):
        assert path in doc["paths"]
    run = doc["paths"]["/api/run/{op}"]["post"]
    form = run["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["file"]["format"] == "binary" and form["required"] == ["file"]
    assert {"413", "415", "422", "429", "503", "504"} <= set(run["responses"])
    assert "X-Facegan-Report" in doc["paths"]["/api/run/{op}/image"]["post"]["responses"]["200"]["description"]
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_run_blur_accepts_jpg_png_webp(client, photo_rgb, fmt):
    data = encode(photo_rgb, fmt, **({"quality": 95} if fmt != "PNG" else {}))
    r = post(client, "blur", data, name=f"photo.{fmt.lower()}", strength=2)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["operation"] == "blur" and j["options"] == {"strength": 2.0}
    assert j["input"] == {"format": fmt, "width": 256, "height": 256, "bytes": len(data)}
    assert j["synthetic"] is False and len(j["faces"]) == 1
    face = j["faces"][0]
    assert face["status"] == "blurred" and len(face["box"]) == 4
    png = base64.b64decode(j["image"]["base64"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) == j["image"]["bytes"]
    meta = read_metadata(png)
    assert meta["software"].startswith("facegan") and meta["facegan"]["operation"] == "blur"
    assert meta["synthetic"] is False
    out = read_image(png).astype(int)
    x0, y0, x1, y1 = (int(v) for v in face["box"])
    src = read_image(data).astype(int)
    # the face is blurred (its detail drops) and a corner far from it is untouched
    assert np.abs(np.diff(out[y0:y1, x0:x1], axis=1)).mean() < 0.6 * np.abs(np.diff(src[y0:y1, x0:x1], axis=1)).mean()
    assert np.abs(out[:20, :20] - src[:20, :20]).max() <= 1


def test_transparent_upload_keeps_its_alpha(client, photo_rgb):
    from PIL import Image

    rgba = np.dstack([photo_rgb, np.full(photo_rgb.shape[:2], 255, np.uint8)])
    rgba[:12, :, 3] = 0  # a cut-out: transparent along the top
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    r = client.post("/api/run/blur/image?strength=2", content=buf.getvalue(), headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    out = Image.open(io.BytesIO(r.content))
    assert out.mode == "RGBA"
    a = np.asarray(out)
    assert (a[..., 3] == rgba[..., 3]).all() and a[:12].tolist() == rgba[:12].tolist()
    assert (a[..., :3] != rgba[..., :3]).any()  # the face was blurred
    # JPEG out: flattened over white, as before
    r = client.post("/api/run/blur/image?strength=2&output_format=jpg", content=buf.getvalue(),
                    headers={"content-type": "image/png"})
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).mode == "RGB"


def test_run_image_endpoint_raw_body_and_report_header(client, photo):
    r = client.post("/api/run/pixelate/image?blocks=6&output_format=jpg", content=photo,
                    headers={"content-type": "image/jpeg"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg" and r.content[:3] == b"\xff\xd8\xff"
    report = json.loads(r.headers["x-facegan-report"])
    assert report["operation"] == "pixelate" and report["options"] == {"blocks": 6}
    assert report["faces"][0]["status"] == "pixelated"
    assert r.headers["x-facegan-synthetic"] == "false" and r.headers["x-facegan-faces"] == "1"
    assert "base64" not in report["image"]
    assert read_metadata(r.content)["facegan"]["operation"] == "pixelate"


def test_options_as_json_string_and_output_format(client, photo):
    r = post(client, "pixelate", photo, options=json.dumps({"blocks": 4}), output_format="webp")
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["options"] == {"blocks": 4} and j["image"]["media_type"] == "image/webp"
    assert base64.b64decode(j["image"]["base64"])[8:12] == b"WEBP"


@pytest.mark.parametrize("fields,code", [
    ({"nonsense": "1"}, "config_error"),  # unknown option
    ({"strength": "strong"}, "config_error"),  # wrong type
    ({"options": "{not json"}, "config_error"),
    ({"output_format": "gif"}, "config_error"),
])
def test_bad_options_are_400(client, photo, fields, code):
    r = post(client, "blur", photo, **fields)
    assert r.status_code == 400 and r.json()["error"] == code


def test_unknown_operation_is_404_and_missing_file_is_400(client, photo):
    r = post(client, "no-such-op", photo)
    assert r.status_code == 404 and r.json()["error"] == "unknown_operation"
    assert "blur" in r.json()["message"]
    r = client.post("/api/run/blur", data={"strength": "1"}, files={"other": ("x", b"abc")})
    assert r.status_code == 400 and "file" in r.json()["message"]


def test_no_face_is_422(client):
    grey = np.full((200, 240, 3), 128, np.uint8)
    r = post(client, "blur", encode(grey, "PNG"), name="wall.png")
    assert r.status_code == 422
    assert r.json() == {"error": "no_face", "message": "no face found in the image"}


# --- refused inputs -------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["gif", "gif_named_png", "animated_webp", "svg", "heic", "pdf", "text",
                                  "random", "ico"])
def test_refused_formats_are_415(client, bad_inputs, case):
    bad = bad_inputs[case]
    r = post(client, "blur", bad.path.read_bytes(), name=bad.path.name)
    assert r.status_code == 415, (case, r.text)
    j = r.json()
    assert j["error"] == "unsupported_format"
    assert "JPG, PNG or WEBP" in j["message"] or "JPEG, PNG, WEBP" in j["message"]


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_bmp_and_tiff_are_refused_by_the_web_service(client, photo_rgb, fmt):
    # the CLI reads them; the web service accepts only what every browser shows
    r = post(client, "blur", encode(photo_rgb, fmt), name=f"photo.{fmt.lower()}")
    assert r.status_code == 415
    assert f"{fmt} files are not accepted" in r.json()["message"] and "JPG, PNG or WEBP" in r.json()["message"]


def test_gif_renamed_jpg_is_named_in_the_message(client, bad_inputs):
    r = post(client, "blur", bad_inputs["gif"].path.read_bytes(), name="holiday.jpg")
    assert r.status_code == 415
    assert "named .jpg, but its content is GIF" in r.json()["message"]


@pytest.mark.parametrize("case,status,code", [("truncated_jpeg", 422, "corrupt_image"),
                                              ("corrupt_png", 422, "corrupt_image"),
                                              ("empty", 422, "empty_file"),
                                              ("bomb", 413, "image_too_large")])
def test_damaged_empty_and_bomb(client, bad_inputs, case, status, code):
    bad = bad_inputs[case]
    r = post(client, "blur", bad.path.read_bytes(), name=bad.path.name)
    assert (r.status_code, r.json()["error"]) == (status, code), r.text


# --- limits ---------------------------------------------------------------------------------------

def test_upload_bytes_limit_is_413(photo):
    with TestClient(create_app(ServerConfig(max_upload_bytes=10_000, **FAST), page=False)) as c:
        r = post(c, "blur", photo)  # 17.9 KB photo, Content-Length known
        assert r.status_code == 413 and r.json()["error"] == "upload_too_large"
        assert "limit of 10 KB" in r.json()["message"]

        def chunks():  # no Content-Length: the body is counted while it streams
            for i in range(0, len(photo), 4096):
                yield photo[i:i + 4096]

        r = c.post("/api/run/blur", content=chunks(), headers={"content-type": "image/jpeg"})
        assert r.status_code == 413 and r.json()["error"] == "upload_too_large"
        r = post(c, "blur", photo[:9000])  # under the limit: reaches the decoder (truncated JPEG)
        assert r.status_code == 422


def test_pixel_limit_is_413(photo):
    with TestClient(create_app(ServerConfig(max_pixels=256 * 255, **FAST), page=False)) as c:
        r = post(c, "blur", photo)  # 256 x 256
        assert r.status_code == 413 and r.json()["error"] == "image_too_large"
        assert "megapixels" in r.json()["message"]


def _async_client(app):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def test_busy_is_503_at_once_with_retry_after(photo, fake_ops):
    started, release = fake_ops
    app = create_app(ServerConfig(concurrency=1, queue_size=1, **FAST), page=False)

    async def scenario():
        async with _async_client(app) as c:
            files = {"file": ("p.jpg", photo)}
            first = asyncio.create_task(c.post("/api/run/test-slow", files=files))
            await asyncio.to_thread(started.wait, 10)
            second = asyncio.create_task(c.post("/api/run/test-slow", files=files))  # waits in the queue
            await asyncio.sleep(0.2)
            health = (await c.get("/api/health")).json()
            t0 = time.perf_counter()
            third = await c.post("/api/run/test-echo", files=files)
            dt = time.perf_counter() - t0
            release.set()
            return (await first), (await second), third, dt, health

    first, second, third, dt, health = asyncio.run(scenario())
    assert health["running_or_waiting"] == 2
    assert third.status_code == 503 and third.json()["error"] == "busy"
    assert int(third.headers["retry-after"]) >= 1
    assert dt < 1.0  # refused immediately, not after waiting
    assert first.status_code == 200 and second.status_code == 200


def test_timeout_is_504_and_the_slot_is_freed_when_the_job_ends(photo, fake_ops):
    started, release = fake_ops
    app = create_app(ServerConfig(concurrency=1, queue_size=0, timeout_s=0.5, **FAST), page=False)
    ctx = app.state.ctx

    async def scenario():
        async with _async_client(app) as c:
            t0 = time.perf_counter()
            r = await c.post("/api/run/test-slow", files={"file": ("p.jpg", photo)})
            dt = time.perf_counter() - t0
            busy_meanwhile = (await c.post("/api/run/test-echo", files={"file": ("p.jpg", photo)})).status_code
            release.set()
            for _ in range(100):
                if ctx.runner.admitted == 0:
                    break
                await asyncio.sleep(0.02)
            after = await c.post("/api/run/test-echo", files={"file": ("p.jpg", photo)})
            return r, dt, busy_meanwhile, after

    r, dt, busy_meanwhile, after = asyncio.run(scenario())
    assert r.status_code == 504 and r.json()["error"] == "timeout"
    assert 0.4 < dt < 5
    assert busy_meanwhile == 503  # the timed-out job still holds the only worker
    assert after.status_code == 200


def test_rate_limit_is_429_per_client(photo, fake_ops):
    with TestClient(create_app(ServerConfig(rate_limit=6, rate_burst=3), page=False)) as c:
        codes = [post(c, "test-echo", photo).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = post(c, "test-echo", photo)
        assert r.status_code == 429 and r.json()["error"] == "rate_limited"
        assert 1 <= int(r.headers["retry-after"]) <= 10  # 6/min: one token every 10 s
        assert c.get("/api/health").status_code == 200  # only runs are limited


def test_config_from_env_and_overrides():
    cfg = ServerConfig.from_env({"FACEGAN_SERVE_CONCURRENCY": "3", "FACEGAN_SERVE_RATE_LIMIT": "0",
                                 "FACEGAN_SERVE_PAGE": "false"}, port=9999)
    assert (cfg.concurrency, cfg.rate_limit, cfg.page, cfg.port, cfg.host) == (3, 0.0, False, 9999, "127.0.0.1")
    from facegan.errors import ConfigError

    with pytest.raises(ConfigError):
        ServerConfig.from_env({"FACEGAN_SERVE_CONCURRENCY": "many"})
    with pytest.raises(ConfigError):
        ServerConfig(concurrency=0)


def test_serve_command_binds_loopback_by_default(monkeypatch):
    from click.testing import CliRunner

    import uvicorn
    from facegan.cli import main

    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw, app=app))
    r = CliRunner().invoke(main, ["serve", "--no-page", "--concurrency", "2", "--max-upload-mb", "5"])
    assert r.exit_code == 0, r.output
    assert (seen["host"], seen["port"], seen["access_log"]) == ("127.0.0.1", 7860, False)
    ctx = seen["app"].state.ctx
    assert ctx.config.concurrency == 2 and ctx.config.max_upload_bytes == 5 * 1024 * 1024


# --- swap-gender (when its model is installed) ------------------------------------------------------

def test_swap_gender_when_available(client, photo):
    ops = {o.name: o for o in list_ops()}
    if "swap-gender" not in ops or not ops["swap-gender"].available():
        r = post(client, "swap-gender", photo)
        assert r.status_code in (404, 503)  # unknown here, or its model is not installed
        pytest.skip("swap-gender is not installed here (no model)")
    r = post(client, "swap-gender", photo, to="opposite")
    assert r.status_code == 200, r.text
    j = r.json()
    row = j["faces"][0]
    assert {"gender_before", "gender_after", "status"} <= set(row)
    png = base64.b64decode(j["image"]["base64"])
    assert read_metadata(png)["synthetic"] is j["synthetic"]
    if row["status"] == "changed":
        assert j["synthetic"] is True
        assert row["strength"] == row["strengths_tried"][-1] and row["strength"] <= 1.5  # the shipped range
    # a combination the op refuses is a 400 before any work, like a single bad value
    r = post(client, "swap-gender", photo, strength="1", max_strength="0.5")
    assert r.status_code == 400 and "below strength" in r.text, r.text


# --- privacy --------------------------------------------------------------------------------------

class TempRecorder:
    """Records every temporary file created through the tempfile module (including the unnamed
    O_TMPFILE kind a SpooledTemporaryFile rolls over to, which never shows in a folder listing)."""

    def __init__(self, monkeypatch):
        self.calls = []
        for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp", "mkdtemp"):
            orig = getattr(tempfile, name)

            def wrapped(*a, _orig=orig, _name=name, **k):
                self.calls.append(_name)
                return _orig(*a, **k)

            monkeypatch.setattr(tempfile, name, wrapped)


def _big_photo(photo_rgb) -> bytes:
    # > 1 MB: larger than Starlette's default in-memory spool, so a default parser would hit the disk
    rng = np.random.default_rng(1)
    big = np.tile(photo_rgb, (4, 4, 1))
    big = np.clip(big.astype(int) + rng.integers(-12, 13, big.shape), 0, 255).astype(np.uint8)
    data = encode(big, "PNG")
    assert len(data) > 1_500_000
    return data


def test_the_recorder_sees_starlettes_default_spooling(monkeypatch, photo_rgb):
    """Sanity check of the privacy test below: a default Starlette form parse of the same upload
    does create a temporary file."""
    from starlette.datastructures import Headers
    from starlette.formparsers import MultiPartParser

    data = _big_photo(photo_rgb)
    req = httpx.Request("POST", "http://x/", files={"file": ("p.png", data)})
    body = req.read()

    async def parse():
        async def stream():
            yield body

        form = await MultiPartParser(Headers(dict(req.headers)), stream()).parse()
        await form.close()

    rec = TempRecorder(monkeypatch)
    asyncio.run(parse())
    assert "TemporaryFile" in rec.calls


def test_uploads_never_touch_disk_and_logs_hold_no_image_data(monkeypatch, caplog, tmp_path, photo, photo_rgb):
    sys_tmp = tmp_path / "system-tmp"
    sys_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(sys_tmp))
    app = create_app(ServerConfig(**FAST))  # with the page, so Gradio's upload folder exists too
    upload_dir = app.state.upload_dir
    assert str(upload_dir).startswith(("/dev/shm/", tempfile.gettempdir()))
    assert (upload_dir.stat().st_mode & 0o777) == 0o700
    big = _big_photo(photo_rgb)
    rec = TempRecorder(monkeypatch)
    caplog.set_level(logging.DEBUG)  # every logger, uvicorn's and gradio's included
    with TestClient(app) as c:
        assert post(c, "blur", photo).status_code == 200
        r = post(c, "blur", big, name="big.png")
        assert r.status_code == 200, r.text
        assert c.post("/api/run/blur/image", content=photo, headers={"content-type": "image/jpeg"}).status_code == 200
        assert post(c, "blur", b"GIF89a" + bytes(100), name="x.gif").status_code == 415
        assert c.get("/").status_code == 200
        assert rec.calls == []  # no temporary file of any kind
        # (Gradio makes an empty folder of its own, gradio/vibe_edit_history, when the app is built)
        assert [p for p in sys_tmp.rglob("*") if not p.is_dir()] == []
        assert list(upload_dir.rglob("*")) == []
        # an upload to the page that no handler consumed is swept once it is old
        r = c.post("/gradio_api/upload", files={"files": ("p.jpg", photo)})
        assert r.status_code == 200
        left = [p for p in upload_dir.rglob("*") if p.is_file()]
        assert len(left) == 1
        import os

        os.utime(left[0], (time.time() - 3600, time.time() - 3600))
        from facegan.server import api as api_mod

        api_mod._last_sweep[0] = 0.0
        c.get("/api/health")
        assert [p for p in upload_dir.rglob("*") if p.is_file()] == []
    assert not upload_dir.exists()  # removed at shutdown

    text = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    access = [r.getMessage() for r in caplog.records if r.name == "facegan.server.access"]
    assert any(m.startswith("POST /api/run/blur 200 ") and "in=" in m and "out=" in m for m in access)
    assert all(len(m) < 200 for m in access)
    assert not re.search(r"[A-Za-z0-9+/=]{120,}", text), "base64-like blob in the logs"
    for magic in ("iVBORw0KGgo", "/9j/", "UklGR", "\\xff\\xd8", "\\x89PNG", "\xff\xd8", "\x89PNG", "JFIF"):
        assert magic not in text
    assert "happy" not in text and "big.png" not in text  # no file names either


def test_page_results_are_served_from_memory(photo):
    app = create_app(ServerConfig(**FAST), page=False)
    store = app.state.ctx.store
    token = store.put(photo, "image/jpeg", "photo-blur.jpg")
    with TestClient(app) as c:
        r = c.get(f"/api/results/{token}?download=1")
        assert r.status_code == 200 and r.content == photo
        assert r.headers["content-disposition"] == 'attachment; filename="photo-blur.jpg"'
        assert "no-store" in r.headers["cache-control"]
        r = c.get("/api/results/not-a-token")
        assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_anonymize_answers_keep_its_random_draws_secret(client, photo):
    """anonymize's reshape draws and k-Same neighbours (its result's info["pins"], which videos reuse across frames)
    would let a receiver undo part of the change: neither the JSON answer nor the image answer's report has them."""
    from facegan.ops import get_op

    if not get_op("anonymize").available():
        pytest.skip("translator not installed")
    r = post(client, "anonymize", photo)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["faces"][0]["status"] == "changed" and "model" in body["info"]
    for text in (r.text, client.post("/api/run/anonymize/image", content=photo,
                                     headers={"content-type": "image/jpeg"}).headers["X-Facegan-Report"]):
        assert "pins" not in text and "reshape_state" not in text and "neighbours" not in text


def test_page_status_warns_when_anonymize_leaves_a_face_recognised():
    from types import SimpleNamespace

    from facegan.server.page import _done, _status

    op = SimpleNamespace(name="anonymize", title="Anonymize")
    ok = SimpleNamespace(faces=[{"same_person": False, "same_person_2": False}], synthetic=True, time_s=1.0)
    kind, msg = _done(op, ok)
    assert kind == "ok" and msg.startswith("Done: Anonymize, 1 face,")
    left = SimpleNamespace(faces=[{"same_person": False, "same_person_2": True}, {"same_person": False}],
                           synthetic=True, time_s=1.0)
    kind, msg = _done(op, left)
    assert kind == "warn" and "still match 1 of the faces" in msg and "blur" in msg
    assert 'class="warn"' in _status(kind, msg)
    assert _done(SimpleNamespace(name="swap-gender", title="Swap"), left)[0] == "ok"  # not its promise


def test_keep_photos_leave_their_people_alone(client, fixtures_dir):
    """The form's `keep` files (up to 4, each checked like the photo): faces of those people are not changed."""
    two = (fixtures_dir / "two_faces.jpg").read_bytes()
    me = (fixtures_dir / "happy1.jpg").read_bytes()
    r = client.post("/api/run/blur", files=[("file", ("two.jpg", two, "image/jpeg")), ("keep", ("me.jpg", me, "image/jpeg"))])
    assert r.status_code == 200, r.text
    assert [(f["face"], f["status"][:4]) for f in r.json()["faces"]] == [(0, "kept"), (1, "blur")]
    r = client.post("/api/run/blur", files=[("file", ("two.jpg", two, "image/jpeg")),
                                            ("keep", ("x.gif", b"GIF89a" + bytes(64), "image/gif"))])
    assert r.status_code == 415 and "x.gif" in r.json()["message"]
    wall = io.BytesIO()
    Image.new("RGB", (100, 100), (128, 128, 128)).save(wall, "PNG")
    r = client.post("/api/run/blur", files=[("file", ("two.jpg", two, "image/jpeg")),
                                            ("keep", ("wall.png", wall.getvalue(), "image/png"))])
    assert r.status_code == 422 and "keep-face reference wall.png" in r.json()["message"]
    r = client.post("/api/run/blur", files=[("file", ("a.jpg", two, "image/jpeg")), ("file", ("b.jpg", two, "image/jpeg"))])
    assert r.status_code == 400 and "one photo per request" in r.json()["message"]
    r = client.post("/api/run/blur", files=[("file", ("two.jpg", two, "image/jpeg"))] + [("keep", ("me.jpg", me, "image/jpeg"))] * 5)
    assert r.status_code == 400
    r = client.post("/api/run/blur", files=[("file", ("two.jpg", two, "image/jpeg")), ("only", ("me.jpg", me, "image/jpeg"))])
    assert r.status_code == 200 and [(f["face"], f["status"][:4]) for f in r.json()["faces"]] == [(0, "blur"), (1, "kept")]
    r = client.post("/api/run/blur", files=[("file", ("two.jpg", two, "image/jpeg")), ("only", ("me.jpg", me, "image/jpeg")),
                                            ("keep", ("me.jpg", me, "image/jpeg"))])
    assert r.status_code == 400 and "exclude each other" in r.json()["message"]

