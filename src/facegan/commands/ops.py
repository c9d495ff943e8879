"""One CLI command per registered operation (swap-gender, anonymize, blur, pixelate, ...)."""
from __future__ import annotations

import json
import sys

import click

from ..ops import list_ops

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _make(op):
    @click.pass_context
    def cb(ctx, inputs, out, suffix, overwrite, quiet, max_pixels, fmt, workers, shard, keep_face, only_face,
           keep_distance, dry_run, detect_side, **kw):
        import os

        from ..errors import ModelError
        from ..faces.keep import KeepList
        from ..run import run_op

        if not op.available():
            raise ModelError(f"{op.name}: its model is not installed")
        if detect_side is not None:  # for this process and the workers it starts
            from ..faces.centerface import DETECT_SIDE_ENV, detect_side as parse_side

            os.environ[DETECT_SIDE_ENV] = detect_side
            parse_side(None)  # a bad value: refused before any photo is read
        if keep_face and only_face:
            raise click.UsageError("--keep-face and --only-face exclude each other")
        people = (KeepList.from_paths(keep_face or only_face, keep_distance, only=bool(only_face))
                  if keep_face or only_face else None)
        for note in people.notes if people else ():
            click.echo(f"warning: {note}", err=True)
        s = run_op(op, list(inputs), out, kw,
                   suffix=suffix, overwrite=overwrite, progress=not quiet, max_pixels=max_pixels, fmt=fmt,
                   workers=workers, shard=shard, dry_run=dry_run, keep=people)
        if dry_run:  # the plan, nothing written
            click.echo(json.dumps(s, default=str))
            return
        summary = {"operation": op.name, "processed": s.processed, "skipped": s.skipped, "failed": s.failed,
                   "faces": s.faces, "report": str(s.report)}
        summary.update(_proof_counts(s.report))
        still = (summary.get("still_same_person", 0), summary.get("still_same_person_second_model", 0))
        if op.name == "anonymize" and max(still) > 0:  # the job's promise not kept for some faces: said
            # before the summary, so the summary stays the last line
            click.echo(f"warning: identity models still match faces of this job's report (dlib {still[0]}, faceres "
                       f"{still[1] if 'still_same_person_second_model' in summary else 'not fetched'}, of "
                       f"{summary.get('report_faces', '?')}; their rows say same_person / same_person_2): check them "
                       f"with `facegan report sheet {out} --flagged`, or run with --fallback blur to blur such faces",
                       err=True)
        click.echo(json.dumps(summary))
        if s.failed:
            for f, code, msg in s.errors:  # the file named once (a read error's message starts with it)
                click.echo(f"error: {f}: {msg[len(f) + 2:] if msg.startswith(f'{f}: ') else msg}", err=True)
            # exit with the first failure's code (one photo: its own error's code)
            ctx.exit(_exit_code(s.errors[0][1]))

    params = [click.Argument(["inputs"], nargs=-1, required=True, type=click.Path()),
              click.Option(["-o", "--out"], default="facegan-out", show_default=True,
                           help="output folder (the input tree is mirrored inside)"),
              click.Option(["--suffix"], default="", help="suffix added to output file names"),
              click.Option(["--overwrite"], is_flag=True, help="redo photos already done (resume is the default)"),
              click.Option(["-q", "--quiet"], is_flag=True, help="no progress bar"),
              click.Option(["--max-pixels"], type=int, default=None, help="refuse larger images"),
              click.Option(["--format", "fmt"], type=click.Choice(["png", "jpg", "webp"]), default=None,
                           help="output format (default: same as input)"),
              click.Option(["--workers"], type=click.IntRange(min=1), default=1, show_default=True,
                           help="worker processes for a folder (each loads the models once, a few seconds, and "
                                "takes its share of the cores; on 2 cores, 30 portraits through anonymize: 14.8 s with 2 workers, 17.6 s with 1)"),
              click.Option(["--keep-face", "keep_face"], multiple=True, type=click.Path(exists=True), metavar="PHOTO",
                           help="a photo (or folder of photos) of someone to leave as they are: faces dlib finds closer "
                                "than 0.5 to one of them are not changed and reported as kept (repeatable)"),
              click.Option(["--only-face", "only_face"], multiple=True, type=click.Path(exists=True), metavar="PHOTO",
                           help="the other way round: change only the faces of the people in these photos (someone who "
                                "withdrew consent from a data set; the one face a filter is for); everyone else is "
                                "left as they are (repeatable; not with --keep-face)"),
              click.Option(["--keep-distance"], type=click.FloatRange(0.01, 0.6), default=0.5, show_default=True,
                           help="with --keep-face / --only-face: the dlib distance under which a face is one of the "
                                "references' people "
                                "(lower keeps fewer bystanders by mistake: 0.100% of other people per reference at "
                                "0.5, 0.021% at 0.45 on held-out photos; reports/keep-face)"),
              click.Option(["--detect-side"], default=None, metavar="PX|full|off",
                           help="photos larger than 1024 px are also searched for small faces at this long side "
                                "(default 3072: on 4000x3000 crowds 182 of 280 faces found instead of 53, +1.0 s a "
                                "12 MP photo; 'full' = the photo's own resolution, 211, +1.4-1.9 s; 'off' = as before "
                                "2026-12-04); videos only when given (FACEGAN_DETECT_SIDE)"),
              click.Option(["--dry-run"], is_flag=True,
                           help="print what the job would do (photos and videos to do, already done, outputs renamed so "
                                "none is written twice, the resolved options) and write nothing"),
              click.Option(["--shard"], default=None, metavar="I/N",
                           help="only this machine's share of the photos (0 <= I < N, split by a hash of each output "
                                "path), with its own report.shard-I-of-N.*; run I = 0..N-1 on N machines into one "
                                "shared output folder, then `facegan report merge OUT`")]
    for o in op.options:
        flag = o.name.replace("_", "-")  # max_strength -> --max-strength (the callback gets the op's name)
        if o.type == "bool":
            params.append(click.Option([f"--{flag}/--no-{flag}", o.name], default=o.default, help=o.help))
        else:
            t = click.Choice([str(c) for c in o.choices]) if o.choices else _TYPES[o.type]
            params.append(click.Option([f"--{flag}", o.name], type=t, default=o.default,
                                       show_default=True, help=o.help))
    epilog = "\b\nExamples:\n" + "\n".join(f"  {e}" for e in op.examples) if op.examples else None
    return click.Command(op.name, callback=cb, params=params, help=op.description, epilog=epilog)


def _proof_counts(report) -> dict:
    """From the job's report (resumed photos included): how many faces read as the intended target,
    and how many the identity model still calls the same person — the numbers an anonymization job
    must check. Empty for ops whose report has no such fields."""
    try:
        rows = json.loads(open(report).read())["faces"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    out = {}
    kept = sum(str(r.get("status", "")).startswith("kept (") for r in rows)
    if kept:  # --keep-face: faces left as they are on purpose
        out["kept"] = kept
    judged = [r for r in rows if "reads_as_target" in r]
    if judged:  # the counts below are over the report's faces (a resumed job's earlier ones too), not "faces"
        out["report_faces"] = len(judged)
        out["reads_as_target"] = sum(bool(r["reads_as_target"]) for r in judged)
    second = [r for r in rows if "resnet_reads_as_target" in r]
    if second:  # the second judge never steers the retries: the independent count
        out["reads_as_target_second_judge"] = sum(bool(r["resnet_reads_as_target"]) for r in second)
        out["judges_disagree_before"] = sum(bool(r.get("judges_disagree_before")) for r in second)
    ident = [r for r in rows if isinstance(r.get("same_person"), bool)]
    if ident:
        out["still_same_person"] = sum(r["same_person"] for r in ident)
    ident2 = [r for r in rows if isinstance(r.get("same_person_2"), bool)]
    if ident2:  # faceres steers nothing (unless --id-check both): the independent identity count
        out["still_same_person_second_model"] = sum(r["same_person_2"] for r in ident2)
        if any(r.get("id_check") == "both" for r in rows):  # it steered the retries: not independent
            out["second_model_steered"] = True
    return out


def _exit_code(code: str) -> int:
    from .. import errors

    for name in dir(errors):
        c = getattr(errors, name)
        if isinstance(c, type) and issubclass(c, errors.FaceganError) and c.code == code:
            return c.exit_code
    return 1


commands = [_make(op) for op in list_ops()]
