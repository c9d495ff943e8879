"""``facegan report``: what to do with a batch job's reports — join the shards of a job that ran on
several machines (``--shard I/N``) into one."""
from __future__ import annotations

import json

import click


@click.group("report", context_settings={"help_option_names": ["-h", "--help"]})
def command():
    """Batch-job reports.

    \b
    Examples:
      facegan anonymize photos/ -o anon/ --shard 0/2    # machine 1 (shared output folder)
      facegan anonymize photos/ -o anon/ --shard 1/2    # machine 2
      facegan report merge anon/                         # report.json / .csv / .jsonl of the whole job
      facegan report sheet anon/ --flagged               # review pages: faces whose checks failed
      facegan report summary anon/                       # the proof in numbers: rates with 95% intervals
    """


@command.command("merge")
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False))
def merge(out_dir):
    """Join the shard journals (report.shard-I-of-N.jsonl) in OUT_DIR into report.jsonl, report.json and
    report.csv; a later run without --shard then resumes from them. The shard files are kept."""
    from ..run import merge_reports

    path, photos, rows = merge_reports(out_dir)
    click.echo(json.dumps({"report": str(path), "photos": photos, "rows": rows}))


@command.command("sheet")
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--dest", default=None, help="folder for the pages (default: OUT_DIR/review)")
@click.option("--flagged", is_flag=True, help="only faces whose checks failed or could not be made")
@click.option("--per-page", type=click.IntRange(min=1), default=40, show_default=True)
def sheet(out_dir, dest, flagged, per_page):
    """Review pages (JPEG) of a finished job: each face's original and output side by side with its
    identity similarities and flags (still recognised, not read as the target, judges disagreeing,
    blurred), flagged faces first — to check an anonymized data set by eye."""
    from ..review import review_sheets

    click.echo(json.dumps(review_sheets(out_dir, dest, flagged_only=flagged, per_page=per_page)))


@command.command("summary")
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False))
def summary(out_dir):
    """A job's report in numbers (JSON): photos, faces by status, and for the checks its rows carry — read as the
    target by the op's judge and by the second judge, still the same person to dlib and to faceres — the count, the
    rate and its 95% Wilson interval, over all faces and per direction."""
    from ..review import summarize_job

    click.echo(json.dumps(summarize_job(out_dir), indent=1))

