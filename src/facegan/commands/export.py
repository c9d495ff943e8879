"""``facegan export --onnx CKPT -o model.onnx``: export a generator and check it with ONNX Runtime."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import ModelError, OutputExistsError


@click.command("export")
@click.option("--onnx", "onnx_src", required=True, type=click.Path(path_type=Path),
              help="Checkpoint to export as ONNX (folder, .safetensors or reference .pth).")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="The .onnx file to write.")
@click.option("--size", type=int, default=None, help="Input size in px (default: the model's, else 256).")
@click.option("--target", default=None,
              help="Bake this target domain into a conditioned model (without it the ONNX model takes a "
                   "second input 'target').")
@click.option("--dynamic", is_flag=True, help="Symbolic batch/height/width axes.")
@click.option("--opset", type=int, default=17, show_default=True)
@click.option("--exporter", type=click.Choice(["legacy", "dynamo"]), default="legacy", show_default=True,
              help="legacy: TorchScript exporter (no extra dependency); dynamo: torch.export (needs onnxscript).")
@click.option("--tolerance", type=float, default=1e-4, show_default=True,
              help="Largest accepted |onnxruntime - pytorch| on the check inputs.")
@click.option("--sha256", default=None, help="Expected sha256 of the weights file.")
@click.option("--no-ema", is_flag=True, help="Export G instead of G_ema from a facegan checkpoint.")
@click.option("--overwrite", is_flag=True)
def command(onnx_src, output, size, target, dynamic, opset, exporter, tolerance, sha256, no_ema, overwrite):
    """Export a generator checkpoint to ONNX and verify it against PyTorch with ONNX Runtime.

    \b
    Examples:
      facegan export --onnx runs/gender-translator/last -o gender.onnx --target female --dynamic
      facegan export --onnx latest_net_G_A.pth -o cyclegan.onnx --size 256
    """
    from ..export.onnx import export_onnx, verify_onnx
    from ..nets.loading import load_generator

    if not output.suffix:
        output = output.with_suffix(".onnx")
    if output.exists() and not overwrite:
        raise OutputExistsError(f"{output}: already exists; pass --overwrite to replace it")
    net, meta = load_generator(onnx_src, target=target, sha256=sha256, prefer_ema=not no_ema)
    size = int(size or (meta.get("io") or {}).get("size") or 256)
    gen = meta["generator"]
    click.echo(f"loaded {gen['class']} from {meta['weights']} ({meta['source']})"
               + (f", target {meta.get('target')}" if meta.get("target") is not None else "")
               + (f", domains {meta.get('domains')} as input 'target'" if meta.get("conditioned")
                  and meta.get("target") is None else ""))
    tmp = output.with_name(output.name + ".partial.onnx")
    export_onnx(net, tmp, size=size, dynamic=dynamic, opset=opset, exporter=exporter, meta=meta)
    res = verify_onnx(net, tmp, size=size, dynamic=dynamic)
    for c in res["checks"]:
        click.echo(f"check batch {c['batch']} {c['size']}x{c['size']}: max |onnxruntime - pytorch| = "
                   f"{c['max_abs_diff']:.2e}")
    if not res["max_abs_diff"] <= tolerance:
        tmp.unlink(missing_ok=True)
        raise ModelError(f"ONNX output differs from PyTorch by {res['max_abs_diff']:.2e} > {tolerance:g}; "
                         f"nothing written")
    tmp.replace(output)
    import onnx

    opset = onnx.load(str(output), load_external_data=False).opset_import[0].version
    mb = output.stat().st_size / 2 ** 20
    click.echo(f"wrote {output} ({mb:.1f} MiB, exporter {exporter}, opset {opset}"
               f"{', dynamic axes' if dynamic else ''}); verified max abs diff {res['max_abs_diff']:.2e} "
               f"<= {tolerance:g}")
