"""``facegan train CONFIG``: train (or resume) any method from a YAML config or a named preset."""
from __future__ import annotations

import json

import click

from ..errors import ConfigError


def _dataclass_config(raw: dict, cls, method: str):
    """A trainer's dataclass config from the YAML keys (``method`` / ``name`` aside); unknown keys refused."""
    import dataclasses

    kw = {k: v for k, v in raw.items() if k not in ("method", "name")}
    unknown = sorted(set(kw) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ConfigError(f"unknown {method} config keys: {', '.join(unknown)}")
    return cls(**kw)


def _dry_run(method: str, cfg, nets: dict) -> None:
    """--dry-run of a dataclass-config method: the resolved config and its networks' sizes."""
    import dataclasses

    import yaml

    from ..nets.blocks import count_params

    click.echo(yaml.safe_dump({"method": method, **dataclasses.asdict(cfg)}, sort_keys=False).rstrip())
    click.echo(f"\n# networks ({method})")
    for n, m in nets.items():
        click.echo(f"#   {n:<6} {type(m).__name__:<28} {count_params(m):>12,d} params")


def _no_max_steps(method: str, max_steps: int | None) -> None:
    if max_steps is not None:
        raise ConfigError(f"--max-steps is not supported for method {method} (use --max-minutes)")


def _attr_translator(raw: dict, dry_run: bool, max_minutes: float | None, max_steps: int | None):
    """``method: attr-translator`` configs go to the lead's trainer unchanged."""
    from ..train.attr_translator import AttrTranslatorConfig, train

    cfg = _dataclass_config(raw, AttrTranslatorConfig, "attr-translator")
    if dry_run:
        from ..nets.classifier import SmallCNN
        from ..nets.translator import DomainPatchDiscriminator, ResidualTranslator

        nd = len(cfg.domains)
        return _dry_run("attr-translator", cfg, {"G": ResidualTranslator(nd, cfg.ngf, cfg.n_blocks),
                                                 "D": DomainPatchDiscriminator(nd, cfg.ndf), "C": SmallCNN(nd)})
    _no_max_steps("attr-translator", max_steps)
    click.echo(json.dumps(train(cfg, max_minutes=max_minutes)))


def _refiner(raw: dict, dry_run: bool, max_minutes: float | None, max_steps: int | None):
    """``method: refiner`` configs (the realism refiner for ``anonymize``, facegan.train.refiner)."""
    from ..train.refiner import RefinerConfig, build_refiner, train

    cfg = _dataclass_config(raw, RefinerConfig, "refiner")
    if dry_run:
        from ..nets.translator import DomainPatchDiscriminator

        return _dry_run("refiner", cfg, {"G": build_refiner(cfg),
                                         "D": DomainPatchDiscriminator(2, cfg.ndf, cfg.n_layers_D)})
    _no_max_steps("refiner", max_steps)
    click.echo(json.dumps(train(cfg, max_minutes=max_minutes)))


@click.command("train", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("config", required=False)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value (dotted key, YAML value); repeatable.")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and parameter counts, then exit.")
@click.option("--max-minutes", type=float, default=None, help="Stop (and checkpoint) after this many minutes.")
@click.option("--max-steps", type=int, default=None, help="Stop (and checkpoint) after this many steps this run.")
@click.option("--out", "out_dir", default=None, help="Output folder (default runs/<config name>).")
@click.option("--list-presets", is_flag=True, help="List the built-in presets and exit.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def command(config, overrides, dry_run, max_minutes, max_steps, out_dir, list_presets, no_progress):
    """Train or resume a model. CONFIG is a YAML file or a preset name.

    \b
    Examples:
      facegan train --list-presets
      facegan train cyclegan --dry-run
      facegan train cyclegan --set train.steps=300 --set model.ngf=16 --max-minutes 5
      facegan train my.yaml --out runs/try1          (my.yaml may say `base: cyclegan`)
      torchrun --nproc_per_node 4 -m facegan.cli train cyclegan-large   (multi-GPU)
    Runs resume from OUT/last automatically; methods: cyclegan (+progressive), unit, pix2pix,
    pix2pixhd, faceswap, twingan, attr-translator, refiner, gender-classifier.
    """
    from ..train.config import apply_set, list_presets as presets, load_raw, resolve

    if list_presets:
        for p in presets():
            click.echo(p)
        return
    if not config:
        raise ConfigError("missing CONFIG (a YAML file or a preset name; see --list-presets)")
    raw = apply_set(load_raw(config), overrides)
    if out_dir:
        raw["out_dir"] = out_dir
    if raw.get("method") == "attr-translator":
        return _attr_translator(raw, dry_run, max_minutes, max_steps)
    if raw.get("method") == "refiner":
        return _refiner(raw, dry_run, max_minutes, max_steps)
    if raw.get("method") == "gender-classifier":
        from ..train.gender_classifier import train_gender_classifier

        if dry_run:
            import yaml

            click.echo(yaml.safe_dump(raw, sort_keys=False).rstrip())
            return
        click.echo(json.dumps(train_gender_classifier(raw, max_minutes=max_minutes, max_steps=max_steps)))
        return
    cfg = resolve(raw)
    from ..train.trainer import describe, train

    if dry_run:
        click.echo(describe(cfg))
        return
    res = train(cfg, max_minutes=max_minutes, max_steps=max_steps, progress=not no_progress,
                log=lambda m: click.echo(m, err=True))
    click.echo(json.dumps(res))
