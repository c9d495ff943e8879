"""``facegan translate``: run any generator checkpoint over the faces of photos.

read -> detect every face -> align (template/size from the model's meta, else options) -> generator ->
paste back -> write with synthetic-image metadata. Folders keep their tree; inputs are never
overwritten; existing outputs are skipped (folder) or refused (single file) unless ``--overwrite``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np

from ..errors import ConfigError, FaceganError, NoFaceError

DEFAULT_SIZE = 256
DEFAULT_TEMPLATE = "utkface"


@dataclass
class FaceTranslator:
    """A loaded generator plus the alignment it expects; ``__call__(rgb) -> (rgb, faces)``."""

    model: object  # torch module or OnnxGenerator, called as model(x) -> y (NCHW)
    meta: dict
    template: str
    size: int
    paste: str = "replace"
    mask: str = "ellipse"
    detector: str = "dlib-hog"
    batch: int = 8
    name: str = ""
    info: dict = field(default_factory=dict)

    @classmethod
    def load(cls, model_path: str | Path, *, template: str | None = None, size: int | None = None,
             target: str | None = None, use_onnx: bool = False, paste: str | None = None, mask: str = "ellipse",
             detector: str = "dlib-hog", sha256: str | None = None, prefer_ema: bool = True,
             threads: int | None = None) -> "FaceTranslator":
        model_path = Path(model_path)
        if model_path.suffix.lower() == ".onnx":
            from ..export.onnx import OnnxGenerator

            model = OnnxGenerator(model_path, threads=threads)
            if target is not None or model.takes_target:
                if target is None:
                    raise ConfigError(f"{model_path} is conditioned; pass --target "
                                      f"({', '.join(model.domains) or 'a domain index'})")
                model.set_target(target)
            meta = dict(model.meta)
            if target is not None:
                meta["target"] = target
        else:
            from ..nets.loading import load_generator

            net, meta = load_generator(model_path, target=target, sha256=sha256, prefer_ema=prefer_ema)
            if meta.get("conditioned") and meta.get("target") is None:
                raise ConfigError(f"{model_path} is conditioned on a target domain; pass --target "
                                  f"({', '.join(meta.get('domains') or [])})")
            model = net
            if use_onnx:
                from ..export.onnx import OnnxGenerator, export_to_temp

                io_size = size or (meta.get("io") or {}).get("size") or DEFAULT_SIZE
                tmp = export_to_temp(net, size=int(io_size), meta=meta, dynamic=True)
                try:
                    model = OnnxGenerator(tmp, threads=threads)
                finally:
                    tmp.unlink(missing_ok=True)  # the session holds the graph in memory
        io = meta.get("io") or {}
        tpl = template or io.get("template") or DEFAULT_TEMPLATE
        sz = int(size or io.get("size") or DEFAULT_SIZE)
        if paste is None:  # a residual model's change is best added onto the photo's own pixels
            paste = "residual" if (meta.get("generator") or {}).get("class") == "ResidualTranslator" else "replace"
        from ..faces.templates import get_template

        get_template(tpl)  # ConfigError for an unknown template, before any photo is read
        info = {"operation": "translate", "model": str(model_path), "method": str(meta.get("method", "")),
                "runtime": "onnxruntime" if not hasattr(model, "parameters") else "pytorch"}
        if meta.get("target") is not None:
            info["target"] = str(meta["target"])
        return cls(model=model, meta=meta, template=tpl, size=sz, paste=paste, mask=mask, detector=detector,
                   name=str(model_path), info=info)

    def translate_crops(self, crops: np.ndarray) -> np.ndarray:
        import torch

        from ..nets.loading import to_input, to_uint8

        io = self.meta.get("io") or {}
        outs = []
        for i in range(0, len(crops), self.batch):
            x = to_input(crops[i:i + self.batch], io)
            with torch.inference_mode():
                y = self.model(x)
            if y.shape[-2:] != x.shape[-2:]:
                raise ConfigError(f"the generator returned {tuple(y.shape[-2:])} for a {tuple(x.shape[-2:])} "
                                  f"input; choose a --size it accepts")
            outs.append(to_uint8(y, io))
        return np.concatenate(outs)

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, list[dict]]:
        from ..faces.align import align_face, paste_back
        from ..faces.detect import detect_faces

        faces = detect_faces(rgb, detector=self.detector)
        if not faces:
            raise NoFaceError("no face found")
        aligned = [align_face(rgb, f, self.template, self.size) for f in faces]
        new = self.translate_crops(np.stack([a.crop for a in aligned]))
        out = rgb
        rows = []
        for a, c, f in zip(aligned, new, faces):
            out = paste_back(out, a, c, mask=self.mask, mode=self.paste)
            d = f.to_dict()
            rows.append({"box": d["box"], "score": d["score"],
                         "mean_abs_change": round(float(np.abs(c.astype(np.float32) - a.crop).mean()), 2)})
        return out, rows


def _output_for(src: Path, root: Path | None, out: Path, single: bool) -> Path:
    from ..io import WRITE_FORMATS

    if single and out.suffix.lower() in WRITE_FORMATS:
        return out
    rel = src.relative_to(root) if root is not None else Path(src.name)
    dst = out / rel
    if dst.suffix.lower() not in WRITE_FORMATS:  # BMP/TIFF inputs are written as PNG
        dst = dst.with_suffix(".png")
    return dst


@click.command("translate")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-m", "--model", "model_path", required=True, type=click.Path(path_type=Path),
              help="Checkpoint folder, .safetensors, reference .pth state_dict or exported .onnx.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Output file (single photo) or folder.")
@click.option("--template", default=None, help="Crop template (default: the model's, else utkface).")
@click.option("--size", type=int, default=None, help="Crop size in px (default: the model's, else 256).")
@click.option("--target", default=None, help="Target domain of a conditioned model (e.g. female).")
@click.option("--onnx", "use_onnx", is_flag=True, help="Run the generator with ONNX Runtime.")
@click.option("--paste", type=click.Choice(["replace", "residual"]), default=None,
              help="replace: the generated crop replaces the face; residual: only the change is added "
                   "(default: residual for residual translators, else replace).")
@click.option("--mask", type=click.Choice(["ellipse", "square"]), default="ellipse", show_default=True)
@click.option("--detector", default="dlib-hog", show_default=True)
@click.option("--sha256", default=None, help="Expected sha256 of the weights file.")
@click.option("--no-ema", is_flag=True, help="Use G instead of G_ema from a facegan checkpoint.")
@click.option("--threads", type=int, default=None, help="CPU threads for inference.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (never the inputs).")
def command(source, model_path, output, template, size, target, use_onnx, paste, mask, detector, sha256,
            no_ema, threads, overwrite):
    """Translate every face in PHOTO or a folder of photos with any generator.

    \b
    Examples:
      facegan translate -m runs/gender-translator/last --target female photo.jpg -o out.png
      facegan translate -m latest_net_G_A.pth photos/ -o out/ --size 256
      facegan translate -m model.onnx photos/ -o out/
    """
    from ..io import iter_images, read_image, write_image

    if threads:
        import torch

        torch.set_num_threads(threads)
    files = iter_images(source)
    if not files:
        raise ConfigError(f"{source}: no images found")
    single = source.is_file()
    out_res = output.resolve()
    if not single and out_res.is_relative_to(source.resolve()):  # don't feed our outputs back in
        files = [f for f in files if not f.resolve().is_relative_to(out_res)]
    tr = FaceTranslator.load(model_path, template=template, size=size, target=target, use_onnx=use_onnx,
                             paste=paste, mask=mask, detector=detector, sha256=sha256, prefer_ema=not no_ema,
                             threads=threads)
    click.echo(f"model {model_path} ({tr.meta.get('generator', {}).get('class', 'onnx')}, "
               f"{tr.info['runtime']}) template {tr.template} size {tr.size} paste {tr.paste}"
               + (f" target {tr.meta.get('target')}" if tr.meta.get("target") is not None else ""))
    root = None if single else source
    report = []
    t0 = time.time()
    for f in files:
        dst = _output_for(f, root, output, single)
        row = {"input": str(f), "output": str(dst)}
        if dst.exists() and not overwrite and not single:
            row["status"] = "skipped (output exists)"
            report.append(row)
            continue
        try:
            rgb = read_image(f)
            out, faces = tr(rgb)
            write_image(dst, out, synthetic=True, info={**tr.info, "faces": str(len(faces))},
                        overwrite=overwrite, protect=[f])
            row.update(status="ok", faces=faces)
            click.echo(f"{f} -> {dst} ({len(faces)} face{'s' if len(faces) != 1 else ''})")
        except FaceganError as e:  # one bad photo (no face, corrupt, ...) does not stop a folder
            if single:
                raise
            row.update(status="error", error=type(e).__name__, message=str(e))
            click.echo(f"{f}: {e}", err=True)
        report.append(row)
    n_ok = sum(r["status"] == "ok" for r in report)
    if not single:
        output.mkdir(parents=True, exist_ok=True)
        (output / "translate_report.json").write_text(json.dumps(
            {"model": str(model_path), "meta": {k: tr.meta.get(k) for k in ("method", "generator", "io", "target")},
             "template": tr.template, "size": tr.size, "paste": tr.paste, "files": report}, indent=2, default=str))
        click.echo(f"{n_ok}/{len(report)} photos translated in {time.time() - t0:.1f}s; "
                   f"report: {output / 'translate_report.json'}")
