"""The web page in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by Playwright.

Starts ``facegan serve``'s app with uvicorn on a free 127.0.0.1 port, uploads a real photo, runs an
operation (swap-gender when its model is installed, else the blur baseline), checks the result image,
the per-face table and the download (the exact encoded bytes, with provenance metadata), then
uploads a GIF and checks the refusal. Screenshots go to $FACEGAN_SCREENSHOT_DIR when set.

Needs: apt-get install -y chromium chromium-driver; pip install playwright (never
``playwright install``: the system Chromium is used).
"""
from __future__ import annotations

import io
import logging
import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"{CHROMIUM} is missing (apt-get install -y chromium chromium-driver)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    import uvicorn

    from facegan.server import ServerConfig, create_app

    names = ["facegan", "uvicorn", "uvicorn.error", "uvicorn.access"]
    saved = {n: (list(logging.getLogger(n).handlers), logging.getLogger(n).propagate, logging.getLogger(n).level)
             for n in names}
    port = _free_port()
    app = create_app(ServerConfig(port=port, rate_limit=0))
    # the log configuration `facegan serve` uses (uvicorn's access log off), at debug level
    from facegan.commands.serve import _log_config

    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=_log_config("debug"),
                                        access_log=False, lifespan="on"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.time() + 60
    while not srv.started:
        assert time.time() < deadline and t.is_alive(), "server did not start"
        time.sleep(0.1)
    yield app, f"http://127.0.0.1:{port}"
    srv.should_exit = True
    t.join(15)
    for n, (handlers, propagate, level) in saved.items():  # leave logging as other tests expect it
        lg = logging.getLogger(n)
        lg.handlers[:] = handlers
        lg.propagate, lg.level = propagate, level


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(f"{record.name} {record.getMessage()}")


@pytest.fixture
def all_logs():
    """Every record of facegan's, uvicorn's and gradio's loggers (uvicorn's do not propagate to
    the root logger, so caplog alone would miss them)."""
    h = _Records()
    names = ["", "facegan", "facegan.server", "facegan.server.access", "uvicorn", "uvicorn.error",
             "uvicorn.access", "gradio", "httpx", "starlette", "fastapi"]
    for n in names:
        logging.getLogger(n).addHandler(h)
    yield h.lines
    for n in names:
        logging.getLogger(n).removeHandler(h)


def _shot(page, name):
    folder = os.environ.get("FACEGAN_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def _choose_op():
    from facegan.ops import list_ops

    ops = {o.name: o for o in list_ops()}
    if "swap-gender" in ops and ops["swap-gender"].available():
        return ops["swap-gender"]
    return ops["blur"]


def test_page_upload_run_download_and_refusal(server, browser, fixtures_dir, tmp_path, all_logs):
    from facegan.io import read_image, read_metadata

    app, url = server
    op = _choose_op()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((url, "data:", "blob:")) else None)
    page.goto(url + "/")
    page.wait_for_selector("#fg-run")
    assert "facegan" in page.inner_text("h1")

    # the operation list and the option widgets come from the registry
    page.click("#fg-op input")
    listed = page.locator("ul[role=listbox] li").all_inner_texts()
    assert any(t.strip().endswith("Blur faces (baseline)") for t in listed)
    assert any(t.strip().endswith("Pixelate faces (baseline)") for t in listed)
    page.get_by_role("option", name="Pixelate faces (baseline)", exact=True).click()
    page.wait_for_selector("#fg-opt-pixelate-blocks", state="visible")
    assert not page.is_visible("#fg-opt-blur-strength")
    page.click("#fg-op input")
    page.get_by_role("option", name=op.title, exact=True).click()
    page.wait_for_selector(f"#fg-opt-{op.name}-{op.options[0].name}", state="visible")
    if op.name == "swap-gender":
        page.locator("#fg-opt-swap-gender-to label", has_text="opposite").click()

    # upload (the hidden file input behind the click / drop zone)
    photo = fixtures_dir / "happy.jpg"
    page.set_input_files("#fg-upload input[type=file]", str(photo))
    page.wait_for_selector("#fg-status-msg.ok")
    status = page.inner_text("#fg-status")
    assert "Received" in status and "happy.jpg" in status and "256×256" in status
    page.wait_for_function("document.querySelector('#fg-before') && document.querySelector('#fg-before').naturalWidth > 0")
    _shot(page, "1-uploaded")

    page.click("#fg-run")
    page.wait_for_selector("#fg-after", timeout=180_000)
    page.wait_for_function("document.querySelector('#fg-after').naturalWidth === 256")
    status = page.inner_text("#fg-status")
    assert status.lstrip().startswith("✓ Done") and op.title in status and "1 face" in status
    table = page.inner_text("#fg-faces")
    if op.name == "swap-gender":
        assert "gender before" in table and "gender after" in table
        # options left empty take the model's defaults (regression: a number field sent 0 = no change)
        from facegan.ops.translator_model import get_translator

        tr = get_translator()
        cells = [c.strip() for c in table.splitlines() if c.strip()]  # "name", "value", "name", ...

        def cell(name):
            return cells[cells.index(name) + 1]

        assert float(cell("strength")) >= tr.default_strength("swap-gender") > 0, cells
        assert float(cell("identity similarity")) < 1.0, cells
    else:
        assert "blurred" in table and "sigma px" in table
    _shot(page, "2-result")

    # the download is the exact encoded result, with facegan's metadata
    href = page.get_attribute("#fg-download-link", "href")
    assert page.get_attribute("#fg-download-link", "download") == f"happy-{op.name}.png"
    resp = page.request.get(url + href)
    assert resp.ok and "attachment" in resp.headers["content-disposition"]
    data = resp.body()
    meta = read_metadata(data)
    assert meta["format"] == "PNG" and meta["facegan"]["operation"] == op.name
    assert meta["synthetic"] == (op.name == "swap-gender" and "changed" in table)
    shown = page.request.get(url + page.get_attribute("#fg-after", "src")).body()
    assert shown == data
    assert read_image(data).shape == (256, 256, 3)

    # a photo without a face: received, then "no face found" when run
    from PIL import Image

    wall = tmp_path / "wall.png"
    Image.new("RGB", (200, 160), (128, 128, 128)).save(wall)
    page.set_input_files("#fg-upload input[type=file]", str(wall))
    page.wait_for_function("document.querySelector('#fg-status').innerText.includes('wall.png')")
    page.click("#fg-run")
    page.wait_for_selector("#fg-status-msg.err", timeout=120_000)
    assert "no face found" in page.inner_text("#fg-status")

    # a GIF (even named .jpg) is refused by content, with a clear message

    gif = tmp_path / "animation.jpg"
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 20, 20)).save(buf, "GIF")
    gif.write_bytes(buf.getvalue())
    page.set_input_files("#fg-upload input[type=file]", str(gif))
    page.wait_for_function("document.querySelector('#fg-status').innerText.includes('animation.jpg')")
    assert page.get_attribute("#fg-status-msg", "data-kind") == "err"
    msg = page.inner_text("#fg-status")
    assert "GIF" in msg and "JPG, PNG or WEBP" in msg
    assert not page.is_visible("#fg-after")
    _shot(page, "3-refused")

    # running without a photo says so
    page.click("#fg-run")
    page.wait_for_function("document.querySelector('#fg-status').innerText.includes('Upload a photo first')")
    page.close()

    # privacy: the upload folder is empty, nothing was fetched from other hosts, logs hold no image data
    assert [p for p in Path(app.state.upload_dir).rglob("*") if p.is_file()] == []
    assert outside == []
    text = "\n".join(all_logs)
    assert "facegan.server.access POST /gradio_api/upload 200" in text  # the capture works
    assert not re.search(r"[A-Za-z0-9+/=]{120,}", text)
    assert "happy" not in text and "animation" not in text and "wall" not in text


def test_page_keeps_the_people_in_reference_photos(server, browser, fixtures_dir):
    """The optional 'people to leave as they are' upload: their faces are reported kept, the others changed; the
    reference photos' temp files are gone at once."""
    app, url = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(url + "/")
    page.wait_for_selector("#fg-run")
    page.click("#fg-op input")
    page.get_by_role("option", name="Blur faces (baseline)", exact=True).click()
    page.set_input_files("#fg-upload input[type=file]", str(fixtures_dir / "two_faces.jpg"))
    page.wait_for_selector("#fg-status-msg.ok")
    page.set_input_files("#fg-keep input[type=file]", str(fixtures_dir / "happy1.jpg"))
    page.wait_for_function("document.querySelector('#fg-status').innerText.includes('People photos: happy1.jpg')")
    page.click("#fg-run")
    page.wait_for_selector("#fg-after", timeout=120_000)
    table = page.inner_text("#fg-faces")
    assert "kept (matches a keep-face reference)" in table and "blurred" in table
    # the other way round: only that person changed
    page.locator("#fg-keep-mode label", has_text="change only them").click()
    page.click("#fg-run")
    page.wait_for_function("document.querySelector('#fg-faces').innerText.includes('not an only-face person')",
                           timeout=120_000)
    assert [p for p in Path(app.state.upload_dir).rglob("*") if p.is_file()] == []
    page.close()


def test_api_docs_render_offline(server, browser):
    """/docs is Swagger UI served by this server itself (no CDN) and shows the run endpoints."""
    _, url = server
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    outside = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((url, "data:", "blob:")) else None)
    page.goto(url + "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=60_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any("/api/run/{op}" in p for p in paths) and any("/api/operations" in p for p in paths)
    assert "facegan" in page.inner_text(".info")
    _shot(page, "4-docs")
    page.close()
    assert outside == []
