"""``syncengine rsync ARGV...``: stand in for rsync where it is missing."""

from __future__ import annotations

import sys

import click

from ..standin import run_standin


def _help_requested(argv: tuple[str, ...]) -> bool:
    """``--help`` among the options (before a ``--``), as rsync reads it.
    ``-h`` is rsync's --human-readable, so it is not help here either."""
    options = argv[:argv.index("--")] if "--" in argv else argv
    return "--help" in options


class _PassThrough(click.Command):
    """Keeps the arguments exactly as given: click's parser would drop a
    ``--``, after which rsync takes ``-x`` and ``--help`` as file names."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["rsync_argv"] = tuple(args)
        return super().parse_args(ctx, args)


# The argv goes to the stand-in untouched: click must not parse options
# (help_option_names=[] keeps --help in ARGV too; it is handled below).
@click.command(name="rsync", cls=_PassThrough,
               short_help="Stand in for rsync: the seed's rsync command line on the native engine.",
               context_settings={"ignore_unknown_options": True,
                                 "allow_interspersed_args": False,
                                 "help_option_names": []},
               options_metavar="")
@click.argument("argv", nargs=-1, type=click.UNPROCESSED, metavar="[RSYNC-OPTION]... SRC... DST")
@click.pass_context
def rsync_command(ctx: click.Context, argv: tuple[str, ...]) -> None:
    """Stand in for rsync where it is not installed: run the native engine
    on the rsync command line the seed emits (-rlptgocAXH, --delete,
    --exclude=P, --info=progress2, --no-inc-recursive, SRC... DST, in any
    order and split as rsync allows), plus -n/--dry-run, -i/--itemize-changes
    and -v/--verbose, with rsync's exit codes, messages and itemized lines.
    Any other option is refused with exit 1, as rsync refuses an unknown one.

    \b
    Examples:
      syncengine rsync --delete --exclude='*.tmp' -rlptgocAXH \\
          --info=progress2 --no-inc-recursive /data/ /backup/data/
      syncengine rsync -rlptgocAXH --delete -n -i /data/ /backup/data/
    """
    argv = ctx.meta.get("rsync_argv", argv)
    if _help_requested(argv):
        click.echo(ctx.get_help())
        ctx.exit(0)
    sys.exit(run_standin(list(argv)))
