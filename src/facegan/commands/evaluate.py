from __future__ import annotations

import json

import click


@click.command("evaluate")
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--ops", "ops", default="swap-gender,blur,pixelate", show_default=True,
              help="comma-separated operations to measure (baselines included); NAME@FOLDER runs "
                   "swap-gender with a translator checkpoint, NAME:key=value sets an option "
                   "(e.g. swap-gender:strength=2)")
@click.option("-o", "--out", default="reports/evaluate", show_default=True, help="report folder")
@click.option("--n-per-gender", type=int, default=100, show_default=True)
@click.option("--split", type=click.Choice(["test", "train", "all", "test-rest"]), default="test", show_default=True,
              help="UTKFace split by DATETIME-stem hash; 'test' is never used for training; 'test-rest': the "
                   "test photos the default evaluation (100 a gender) leaves out, to choose settings on")
@click.option("--rebuild", is_flag=True,
              help="FOLDER is a report folder: recompute its summaries from its rows_*.jsonl and rewrite "
                   "report.md / metrics.json in the current format (no op is run)")
@click.option("--unlabelled", is_flag=True,
              help="FOLDER holds any photos, unlabelled (e.g. large portraits): per op, whether each changed face reads "
                   "as the target the op chose (judges 2 and 1), whether the identity models still match it, how much "
                   "fine detail it kept, time; --n-per-gender and --split do not apply")
@click.option("--turn", type=click.Choice(["0", "90", "180", "270"]), default="0", show_default=True,
              help="give the ops each photo turned by this many degrees counter-clockwise (a phone photo without its "
                   "EXIF turn) and turn the outputs back before measuring them")
@click.option("-q", "--quiet", is_flag=True)
def command(folder, ops, out, n_per_gender, split, rebuild, unlabelled, turn, quiet):
    """Measure ops on a labelled folder (UTKFace names AGE_GENDER_RACE_DATE.jpg): gender flip rate per
    direction (independent judges), identity similarity, re-identification rate, landmark shift,
    time per face; writes report.md, metrics.json and a before/after grid.

    \b
    Examples:
      facegan evaluate ../shared/datasets/utkface-200 -o reports/gender-eval --n-per-gender 100
      facegan evaluate ../shared/datasets/portraits --unlabelled -o reports/portraits --ops anonymize,swap-gender,blur
    """
    from ..evaluate.harness import evaluate_ops, rebuild_report, split_ops

    if turn != "0" and (unlabelled or rebuild):
        raise click.UsageError("--turn applies to a labelled evaluation only")
    if unlabelled:
        from ..evaluate.unlabelled import review_ops

        res = review_ops(folder, split_ops(ops), out, progress=not quiet)
        click.echo(json.dumps(res["ops"], indent=1))
        return

    if rebuild:
        res = rebuild_report(folder)
        click.echo(json.dumps({"rebuilt": str(folder), "ops": list(res["ops"])}))
        return
    res = evaluate_ops(folder, split_ops(ops), out, n_per_gender, split,
                       progress=not quiet, turns=int(turn) // 90)
    click.echo(json.dumps(res["ops"], indent=1))
