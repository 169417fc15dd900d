"""Options shared by several commands, their shell completion, and their checks."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource
from click.shell_completion import CompletionItem

from ..backups import LATEST
from ..engines import ENGINE_NAMES
from ..snapshots import (
                         SnapshotError,
                         list_snapshots,
)
from .guard import USAGE_ERROR, CommandFailed

# -- options shared by several commands -----------------------------------------------------

def engine_option(f: Callable) -> Callable:
    return click.option("--engine", type=click.Choice(ENGINE_NAMES), default=None,
                        envvar="SYNCENGINE_ENGINE", show_envvar=True,
                        help="Which engine syncs: rsync, the native python engine, "
                             "or auto (rsync when installed).")(f)


def output_options(f: Callable) -> Callable:
    f = click.option("-q", "--quiet", is_flag=True,
                     help="Print nothing but errors (no progress, no summary).")(f)
    f = click.option("--json", "json_out", is_flag=True,
                     help="Write JSON lines to stdout: progress, errors, and a final summary.")(f)
    f = click.option("--progress/--no-progress", default=None,
                     help="Show a live progress line on stderr (default: when stderr is a "
                          "terminal).")(f)
    return f


def complete_volumes(ctx: click.Context, param: click.Parameter, incomplete: str
                      ) -> list[CompletionItem]:
    """Volume names: directories under the volumes root (backup) or in the
    backup (restore)."""
    if ctx.command.name == "restore":
        root = ctx.params.get("backup_root") or os.environ.get("SYNCENGINE_BACKUP_ROOT")
        root = os.path.join(root, "volumes") if root else None
    else:
        root = ctx.params.get("volumes_root") or os.environ.get("SYNCENGINE_VOLUMES_ROOT")
    try:
        names = sorted(e.name for e in os.scandir(root or ".") if root
                       and e.is_dir(follow_symlinks=False) and e.name.startswith(incomplete))
    except OSError:
        return []
    return [CompletionItem(name) for name in names]


def complete_snapshots(ctx: click.Context, param: click.Parameter, incomplete: str
                        ) -> list[CompletionItem]:
    """Snapshot IDs of the backup root (and ``latest``)."""
    root = ctx.params.get("backup_root") or os.environ.get("SYNCENGINE_BACKUP_ROOT")
    try:
        ids = [s.id for s in list_snapshots(root)] if root else []
    except (OSError, SnapshotError):
        ids = []
    return [CompletionItem(i) for i in [*ids, LATEST] if i.startswith(incomplete)]


def roots_options(f: Callable) -> Callable:
    # Not required by click: a --config file may give them. Existence and
    # type are checked in the command body (require_dir), so a bad root
    # gets the same one-line error as every other bad input.
    f = click.option("--backup-root", envvar="SYNCENGINE_BACKUP_ROOT", show_envvar=True,
                     type=click.Path(path_type=str),
                     help="Where backups live (volumes under <root>/volumes/).")(f)
    f = click.option("--volumes-root", envvar="SYNCENGINE_VOLUMES_ROOT", show_envvar=True,
                     type=click.Path(path_type=str),
                     help="The directory whose subdirectories are the volumes.")(f)
    return f


def config_option(f: Callable) -> Callable:
    return click.option("--config", "config_path", type=click.Path(path_type=str, dir_okay=False),
                        metavar="FILE",
                        help="A TOML file describing roots, engine, volumes or custom syncs, "
                             "options and hooks; command-line flags win over it.")(f)


def exclude_option(f: Callable) -> Callable:
    return click.option("--exclude", "excludes", multiple=True, metavar="PATTERN",
                        help="rsync exclude rule; repeat for more (first match wins). Replaces "
                             "every exclude list of a --config file.")(f)


def sync_exclude_option(f: Callable) -> Callable:
    return click.option("--exclude", "excludes", multiple=True, metavar="PATTERN",
                        help="rsync exclude rule; repeat for more (first match wins).")(f)


def verify_flag(f: Callable) -> Callable:
    return click.option("--verify", is_flag=True,
                        help="After each sync, compare the copy with its source (as "
                             "`syncengine verify` does); a difference makes the command exit 1 "
                             "after it finishes.")(f)


def _dry_run_options(f: Callable, facade_note: str = "") -> Callable:
    f = click.option("-i", "--itemize-changes", "itemize", is_flag=True,
                     help="Print each change as rsync -i does (>f+++++++++ new-file, "
                          ".d..t...... dir/, *deleting   gone); with --json, itemize "
                          "events.")(f)
    f = click.option("-n", "--dry-run", "dry_run", is_flag=True,
                     help="Change nothing: show what would be done (with -i, each change)."
                          + facade_note)(f)
    return f


def dry_run_options(f: Callable) -> Callable:
    """-n and -i of backup and restore (which have hooks and a data version)."""
    return _dry_run_options(f, " Hooks do not run and no data version is written.")


def sync_dry_run_options(f: Callable) -> Callable:
    """-n and -i of sync: one tree, no hooks, no data version."""
    return _dry_run_options(f)


def allow_empty_source_option(f: Callable) -> Callable:
    return click.option("--allow-empty-source", is_flag=True,
                        help="Let an empty source directory replace a copy that is not empty. "
                             "Refused by default: an unmounted volume is an empty directory, "
                             "and --delete would wipe its copy.")(f)


def no_verify_in_dry_run(verify: bool, dry_run: bool) -> None:
    if verify and dry_run:
        raise CommandFailed("--verify cannot be used with --dry-run (nothing is copied to "
                            "verify)", USAGE_ERROR)




def require_dir(path: str, what: str) -> None:
    """Bad input is a usage error (exit 2), caught before anything runs."""
    if not os.path.lexists(path):
        raise CommandFailed(f"{what} {path} does not exist", USAGE_ERROR)
    if not os.path.isdir(path):
        raise CommandFailed(f"{what} {path} is not a directory", USAGE_ERROR)



def choose(ctx: click.Context, name: str, value: Any, from_config: Any) -> Any:
    """A flag on the command line wins over the config file, which wins
    over the environment variable."""
    if value is not None and ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE:
        return value
    return from_config if from_config is not None else value
