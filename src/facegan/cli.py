"""The ``facegan`` command line. Thin: each command lives in ``facegan/commands/<name>.py`` and
exposes a click command named ``command`` (or a list ``commands``); errors become exit codes."""
from __future__ import annotations

import importlib
import sys

import click

from . import __version__
from .errors import FaceganError

# one module per command group; a module that is missing is skipped (capabilities land over time)
COMMAND_MODULES = [
    "analyze", "align", "ops", "train", "translate", "export", "evaluate", "serve", "data", "models", "report",
]

EPILOG = """\b
Examples:
  facegan analyze photo.jpg --annotate out/           faces, landmarks, gender, age, expression
  facegan align photos/ -o crops/ --size 256          aligned face crops
  facegan swap-gender photo.jpg -o out/ --to opposite gender swap with a per-face report
  facegan anonymize photos/ -o anon/                  every face, resumable, report.json/csv
  facegan anonymize photos/ -o anon/ --workers 2      the same over 2 processes (--shard I/N: machines)
  facegan anonymize photos/ -o anon/ --keep-face me.jpg   everyone but me (--only-face: only them)
  facegan report summary anon/                        the job's proof: rates with 95% intervals
  facegan train configs/gender-translator.yaml        train (or resume) a model
  facegan serve                                       web page + REST API on 127.0.0.1:7860
Exit codes: 0 ok, 1 other (e.g. a write the system refused), 10 unsupported format, 11 corrupt image,
12 empty file, 13 image too large, 14 no face, 15 input not found, 16 model error, 17 bad config/option,
18 output exists.
"""


class FaceganGroup(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except FaceganError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)
        except OSError as e:  # the system refused a read or a write (permissions, a full disk): said plainly
            if e.filename is None or e.strerror is None:
                raise
            where = f"{e.filename}" + (f" -> {e.filename2}" if e.filename2 else "")
            click.echo(f"error: {where}: {e.strerror}", err=True)
            ctx.exit(1)


@click.group(cls=FaceganGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="facegan")
def main():
    """facegan: transform faces in real photos with GANs."""


def _register():
    for name in COMMAND_MODULES:
        modname = f"facegan.commands.{name}"
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name == modname:
                continue
            raise
        cmds = getattr(mod, "commands", None) or [getattr(mod, "command")]
        for c in cmds:
            main.add_command(c)


_register()

if __name__ == "__main__":
    sys.exit(main())
