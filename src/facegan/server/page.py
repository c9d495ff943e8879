"""The web page: a Gradio app mounted at ``/`` of the API server, built from the operation registry.

Privacy: Gradio stores uploads in its cache folder. Here that folder is a private 0700 folder (in RAM
when /dev/shm exists); each upload is read into memory and deleted at once, a sweep removes any
upload no handler consumed, and the folder is removed at shutdown. Previews and results are not
handed to Gradio (which would cache them as files): the page shows them from the in-memory store
through ``/api/results/{token}``; the download is the exact encoded bytes with provenance metadata.
Gradio's analytics, run history, MCP server and server-side rendering are off, and the theme uses
system fonts, so the page makes no requests to other hosts.
"""
from __future__ import annotations

import html
import logging
import os
from pathlib import Path

from ..errors import ConfigError, FaceganError
from .core import ACCEPTED_TEXT, MAX_KEEP, ServerContext, fmt_bytes
from .privacy import empty_dir, private_temp_dir, remove_upload

log = logging.getLogger("facegan.server")

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

CSS = """
.fg-pair {display: flex; gap: 12px; flex-wrap: wrap;}
.fg-pair figure {flex: 1 1 280px; margin: 0; text-align: center;}
.fg-pair img {max-width: 100%; max-height: 520px; border-radius: 6px; background: #f4f4f4;}
.fg-pair figcaption {font-weight: 600; margin-top: 4px;}
.fg-empty {color: #777; padding: 48px 8px; text-align: center; border: 1px dashed #bbb; border-radius: 6px;}
#fg-status .ok {color: #11733b;} #fg-status .err {color: #b00020;} #fg-status .warn {color: #9a5b00;}
.fg-download a {font-weight: 600;}
"""

_PREFERRED = ("swap-gender", "anonymize", "blur", "pixelate")


def _status(kind: str, text: str) -> str:
    icon = {"ok": "&#10003;", "err": "&#10007;", "info": "&#8505;", "warn": "&#9888;"}[kind]
    return f'<div id="fg-status-msg" class="{kind}" data-kind="{kind}">{icon} {text}</div>'


def _take_upload(payload, root: Path) -> tuple[bytes, str]:
    """(bytes, file name) of one of Gradio's raw upload payloads, its temp file deleted at once; b"" for a path
    outside our private upload folder."""
    payload = payload.model_dump() if hasattr(payload, "model_dump") else payload
    path = (payload or {}).get("path")
    if not path:
        return b"", ""
    name = Path((payload or {}).get("orig_name") or path).name
    try:
        if Path(root).resolve() not in Path(path).resolve().parents:
            raise OSError("not an upload")
        data = Path(path).read_bytes()
    except OSError:
        data = b""
    finally:
        remove_upload(path, root)
    return data, name


def _done(op, res) -> tuple[str, str]:
    """The status line after a run: (kind, text). ``anonymize`` says when an identity model still matches a face."""
    n = len(res.faces)
    synth = "contains generated pixels - marked synthetic in its metadata" if res.synthetic else "no generated pixels"
    msg = f"Done: {op.title}, {n} face{'s' if n != 1 else ''}, {res.time_s:.1f} s ({synth})."
    still = [r for r in res.faces if r.get("same_person") is True or r.get("same_person_2") is True]
    if op.name == "anonymize" and still:  # the promise not kept for these faces: said, not buried in the table
        return "warn", (msg + f" Identity models still match {len(still)} of the faces (rows 'same person'): not "
                        "anonymous; run again with fallback 'blur' to blur such faces.")
    return "ok", msg


def _pair(before: str | None, after: str | None, after_caption: str = "After") -> str:
    def fig(url, cap, eid):
        if not url:
            return f'<figure><div class="fg-empty">{cap}</div></figure>'
        return f'<figure><img id="{eid}" src="{url}" alt="{cap}"><figcaption>{cap}</figcaption></figure>'

    return ('<div class="fg-pair">' + fig(before, "Before", "fg-before")
            + fig(after, html.escape(after_caption), "fg-after") + "</div>")


def _given(v):
    """A form value as an op option: an empty text field means "not given" (the op's default)."""
    return None if isinstance(v, str) and not v.strip() else v


def _cell(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(f"{x:.0f}" if isinstance(x, float) else str(x) for x in v)
    return "" if v is None else str(v)


def _table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """Per-face table, one column per face and one row per key the op's report rows have
    (first-seen order, the most telling first): reports have many keys and few faces."""
    keys: list[str] = []
    for r in rows:
        for k in r:
            if k not in keys and k != "face":
                keys.append(k)
    first = [k for k in ("status", "gender_before", "gender_after", "target", "reads_as_target",
                         "identity_similarity", "same_person") if k in keys]
    keys = first + [k for k in keys if k not in first]
    headers = [""] + [f"face {r.get('face', i)}" for i, r in enumerate(rows)]
    return headers, [[k.replace("_", " ")] + [_cell(r.get(k)) for r in rows] for k in keys]


def build_page(ctx: ServerContext):
    import gradio as gr

    ops = ctx.operations()
    available = [o for o in ops if o.available()]
    unavailable = [o for o in ops if not o.available()]
    default = next((n for n in _PREFERRED if any(o.name == n for o in available)),
                   available[0].name if available else None)
    store = ctx.store
    cfg = ctx.config

    with gr.Blocks(title="facegan", analytics_enabled=False) as demo:
        gr.Markdown(
            "# facegan\nTransform the faces in a photo. Upload a **JPG, PNG or WEBP** photo (click or drag "
            "and drop), pick an operation, press **Run**. Results that contain generated pixels carry "
            "synthetic-image metadata. Photos are processed in memory and not stored; a result stays "
            f"downloadable for {cfg.result_ttl_s / 60:g} minutes. REST API: [/docs](/docs).")
        photo = gr.State(None, time_to_live=cfg.result_ttl_s)
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                upload = gr.File(label=f"Photo ({ACCEPTED_TEXT}, up to {fmt_bytes(cfg.max_upload_bytes)}) "
                                       "- click or drop", file_count="single", type="filepath",
                                 elem_id="fg-upload", height=140)
                status = gr.HTML(_status("info", "No photo yet."), elem_id="fg-status")
                keep_up = gr.File(label=f"Optional: up to {MAX_KEEP} photos of people (one face each)",
                                  file_count="multiple", type="filepath", elem_id="fg-keep", height=110)
                keep_mode = gr.Radio(choices=[("leave them as they are", "keep"), ("change only them", "only")],
                                     value="keep", label="Those people", elem_id="fg-keep-mode")
                keep = gr.State([], time_to_live=cfg.result_ttl_s)
                op_dd = gr.Dropdown(choices=[(o.title, o.name) for o in available], value=default,
                                    label="Operation", elem_id="fg-op", interactive=bool(available))
                if unavailable:
                    gr.Markdown("Not installed here (model missing): "
                                + ", ".join(f"`{o.name}`" for o in unavailable))
                op_desc = gr.Markdown(next((o.description for o in available if o.name == default), ""))
                groups, widgets = {}, []  # widgets: (op name, OpOption, component)
                for o in available:
                    with gr.Group(visible=(o.name == default)) as grp:
                        for opt in o.options:
                            eid = f"fg-opt-{o.name}-{opt.name}"
                            label = opt.name.replace("_", " ")
                            if opt.choices:
                                w = gr.Radio(choices=[str(c) for c in opt.choices], value=str(opt.default),
                                             label=label, info=opt.help, elem_id=eid)
                            elif opt.type == "bool":
                                w = gr.Checkbox(value=bool(opt.default), label=label, info=opt.help, elem_id=eid)
                            elif opt.type in ("int", "float") and opt.default is None:
                                # "the model's own": a Number would show and send 0, so an empty text
                                # field stands for "not given" (parsed like the CLI's flag)
                                w = gr.Textbox(value="", label=label, info=opt.help, elem_id=eid,
                                               placeholder="empty = default")
                            elif opt.type in ("int", "float"):
                                w = gr.Number(value=opt.default, label=label, info=opt.help, elem_id=eid,
                                              precision=0 if opt.type == "int" else None)
                            else:
                                w = gr.Textbox(value=opt.default or "", label=label, info=opt.help, elem_id=eid)
                            widgets.append((o.name, opt, w))
                    groups[o.name] = grp
                out_fmt = gr.Radio(choices=["png", "jpg", "webp"], value="png", label="Result format",
                                   elem_id="fg-format")
                run_btn = gr.Button("Run", variant="primary", elem_id="fg-run", interactive=bool(available))
            with gr.Column(scale=2, min_width=400):
                pair = gr.HTML(_pair(None, None), elem_id="fg-pair")
                download = gr.HTML("", elem_id="fg-download", elem_classes="fg-download")
                faces = gr.Dataframe(headers=["", "face 0"], value=None, label="Per face", elem_id="fg-faces",
                                     interactive=False, wrap=True, max_height=700)

        def _no_faces():
            return gr.update(value=[["", ""]], headers=["", "face 0"])

        # --- events -----------------------------------------------------------------------------
        def on_op(name):
            desc = next((o.description for o in available if o.name == name), "")
            return [desc] + [gr.update(visible=(n == name)) for n in groups]

        op_dd.change(on_op, inputs=op_dd, outputs=[op_desc, *groups.values()], api_visibility="private",
                     queue=False)

        async def on_upload(payload, old):
            # preprocess=False: Gradio's File.preprocess would leave an empty temp file per upload;
            # the raw payload gives the cached path, which must lie in our private upload folder
            if old and old.get("preview"):
                store.drop(old["preview"])
            if isinstance(payload, list):
                payload = payload[0] if payload else None
            data, name = _take_upload(payload, Path(ctx.upload_dir))
            if not name:
                return None, _status("info", "No photo yet."), _pair(None, None), "", None, _no_faces()
            try:
                fmt = ctx.check_upload(data, name)
                size = await ctx.runner.run(_decoded_size, ctx, data, name)
            except FaceganError as e:
                gr.Warning(str(e))
                return (None, _status("err", html.escape(str(e))), _pair(None, None), "", None, _no_faces())
            preview = store.put(data, f"image/{fmt.lower()}", name)
            state = {"data": data, "name": name, "format": fmt, "size": size, "preview": preview}
            msg = (f"Received <b>{html.escape(name)}</b>: {fmt}, {size[0]}&times;{size[1]} px, "
                   f"{fmt_bytes(len(data))}. Choose an operation and press <b>Run</b>.")
            return state, _status("ok", msg), _pair(f"/api/results/{preview}", None), "", None, _no_faces()

        upload.upload(on_upload, inputs=[upload, photo], outputs=[photo, status, pair, download, upload, faces],
                      api_visibility="private", preprocess=False)

        async def on_keep(payload):
            # the reference photos' bytes held for the next runs (their temp files deleted at once); a bad one said now
            items = payload if isinstance(payload, list) else ([payload] if payload else [])
            refs = [_take_upload(x, Path(ctx.upload_dir)) for x in items]
            refs = [(d, n) for d, n in refs if n]
            try:
                if len(refs) > MAX_KEEP:
                    raise ConfigError(f"at most {MAX_KEEP} photos of people to leave as they are, not {len(refs)}")
                for d, n in refs:
                    ctx.check_upload(d, n)
            except FaceganError as e:
                gr.Warning(str(e))
                return [], _status("err", html.escape(str(e))), None
            names = ", ".join(html.escape(n) for _, n in refs)
            msg = (f"People photos: {names} (upload others to replace them, or reload the page to drop them)."
                   if refs else "No people photos.")
            return refs, _status("info", msg), None

        keep_up.upload(on_keep, inputs=keep_up, outputs=[keep, status, keep_up], api_visibility="private",
                       preprocess=False)

        async def on_run(values, progress=gr.Progress()):
            state = values[photo]
            name = values[op_dd]
            if not state:
                return {status: _status("err", "Upload a photo first.")}
            try:
                op = ctx.get_operation(name)
                raw = {opt.name: _given(values[w]) for (n, opt, w) in widgets if n == name}
                options = op.parse_options(raw)
                fmt = values[out_fmt] or "png"
                progress(0.02, desc="waiting for a free worker")

                def prog(frac, desc):
                    progress(frac, desc=desc)

                res = await ctx.runner.run(ctx.process, op, state["data"], options, fmt, state["name"], prog,
                                           values[keep], values[keep_mode] == "only")
            except FaceganError as e:
                gr.Warning(str(e))
                return {status: _status("err", html.escape(str(e))),
                        pair: _pair(f"/api/results/{state['preview']}", None), download: "",
                        faces: _no_faces()}
            stem = Path(state["name"]).stem or "photo"
            fname = f"{stem}-{op.name}.{res.output_format}"
            token = store.put(res.data, res.media_type, fname)
            headers, rows = _table(res.faces)
            kind, msg = _done(op, res)
            link = (f'<a id="fg-download-link" href="/api/results/{token}?download=1" download="{html.escape(fname)}">'
                    f"Download the result ({res.output_format.upper()}, {fmt_bytes(len(res.data))})</a>")
            return {status: _status(kind, msg),
                    pair: _pair(f"/api/results/{state['preview']}", f"/api/results/{token}", f"After: {op.title}"),
                    download: link, faces: gr.update(value=rows, headers=headers)}

        run_btn.click(on_run, inputs={photo, keep, keep_mode, op_dd, out_fmt, *[w for _, _, w in widgets]},
                      outputs=[status, pair, download, faces], api_visibility="private", show_progress_on=[pair],
                      concurrency_limit=cfg.concurrency + cfg.queue_size)

    demo.queue(max_size=cfg.queue_size + cfg.concurrency + 8)  # room for the cheap upload events
    return demo


def _decoded_size(ctx: ServerContext, data: bytes, name: str) -> tuple[int, int]:
    """Decodes fully (so a truncated photo is refused on upload, not later); returns (width, height)."""
    from ..io import read_image

    rgb = read_image(data, max_pixels=ctx.config.max_pixels, name=name)
    return rgb.shape[1], rgb.shape[0]


def mount_page(app, ctx: ServerContext, path: str = "/"):
    import gradio as gr

    tmp = private_temp_dir()
    ctx.upload_dir = tmp
    old = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(tmp)  # read by Blocks() and the mounted App
    try:
        demo = build_page(ctx)
        theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                                  font_mono=["ui-monospace", "monospace"])
        gr.mount_gradio_app(app, demo, path=path, max_file_size=ctx.config.max_upload_bytes,
                            footer_links=[], run_history=False, mcp_server=False, ssr_mode=False,
                            enable_monitoring=False, pwa=False, theme=theme, css=CSS,
                            allowed_paths=[], show_error=True)
    finally:
        if old is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = old
    # every place Gradio writes uploads must be the private folder
    demo.GRADIO_CACHE = str(tmp)
    gradio_app = next(r.app for r in app.routes if getattr(r, "app", None) is not None
                      and hasattr(r.app, "uploaded_file_dir"))
    gradio_app.uploaded_file_dir = str(tmp)

    def cleanup():
        import shutil

        empty_dir(tmp)
        shutil.rmtree(tmp, ignore_errors=True)

    app.state.cleanup["cleanup"] = cleanup
    app.state.page = demo
    app.state.upload_dir = tmp
    return demo
