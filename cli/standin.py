"""``syncengine rsync ARGV...``: stand in for rsync where it is missing."""

from __future__ import annotations

import sys

import click

from ..standin import run_standin


@click.command(name="rsync", context_settings={"ignore_unknown_options": True,
                                               "allow_interspersed_args": False,
                                               "help_option_names": []})
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def rsync_command(argv: tuple[str, ...]) -> None:
    """Run the native engine on an rsync command line (the seed's flags:
    -rlptgocAXH, --delete, --exclude, --info=progress2, --no-inc-recursive).
    Exit codes and messages are rsync's.

    \b
    Example:
      syncengine rsync --delete --exclude='*.tmp' -rlptgocAXH \\
          --info=progress2 --no-inc-recursive /data/ /backup/data/
    """
    sys.exit(run_standin(list(argv)))
