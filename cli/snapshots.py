"""`syncengine snapshots list|prune|diff`."""

from __future__ import annotations

import os
from collections.abc import Callable

import click

from ..backups import resolve_snapshot
from ..config import Config, read_config
from ..rootlock import root_lock
from ..snapshots import (
    RetentionPolicy,
    describe_snapshots,
    iter_snapshot_changes,
    prune_snapshots,
)
from ..snapshots.retention import Decision
from .guard import run_guarded
from .options import choose, complete_snapshots, config_option, require_dir
from .output import Output


def backup_root_option(f: Callable) -> Callable:
    return click.option("--backup-root", envvar="SYNCENGINE_BACKUP_ROOT", show_envvar=True,
                        type=click.Path(path_type=str),
                        help="The backup root whose snapshots/ to use.")(f)


def json_option(f: Callable) -> Callable:
    return click.option("--json", "json_out", is_flag=True,
                        help="Write JSON lines to stdout: one event each, then a summary.")(f)


def _snapshot_root(ctx: click.Context, backup_root: str | None,
                   config: Config | None = None) -> str:
    root = choose(ctx, "backup_root", backup_root, config.backup_root if config else None)
    if not root:
        raise click.UsageError("Missing option '--backup-root' (or SYNCENGINE_BACKUP_ROOT).", ctx)
    require_dir(root, "backup root")
    return os.path.abspath(root)


@click.group(short_help="List, prune and compare the snapshots of a backup root.")
def snapshots() -> None:
    """List, prune and compare the snapshots that `backup --snapshot` makes
    in <backup-root>/snapshots/ (complete ones only: a run in progress, or
    one that failed or was killed, is never listed).

    \b
    Example:
      syncengine snapshots list --backup-root /mnt/backup
    """


@snapshots.command(name="list", short_help="List the complete snapshots, oldest first.")
@backup_root_option
@json_option
@click.pass_context
def snapshots_list(ctx: click.Context, backup_root: str | None, json_out: bool) -> None:
    """List the complete snapshots, oldest first, one a line: its ID, time
    (UTC), data version, entries, and the bytes it does not share with the
    snapshot before it (its files that are not hard links into that one).
    With --json, a `snapshot` event each (id, time, data_version, entries,
    unshared_bytes, unshared_disk_bytes), then a summary.

    \b
    Example:
      syncengine snapshots list --backup-root /mnt/backup --json
    """
    output = Output("snapshots list", json_out=json_out, quiet=False, progress=False)

    def body() -> int:
        infos = describe_snapshots(_snapshot_root(ctx, backup_root))
        for info in infos:
            if json_out:
                output.emit({"event": "snapshot", **info.as_dict()})
            else:
                click.echo(info.line())
        output.summary({"exit_code": 0, "snapshots": len(infos)}, None)
        return 0
    run_guarded(body, output)


def _keep_option(rule: str, what: str) -> Callable[[Callable], Callable]:
    return click.option(f"--keep-{rule}", rule, type=click.IntRange(min=0), default=None,
                        metavar="N", help=f"Keep {what}.")


@snapshots.command(name="prune", short_help="Delete the snapshots no retention rule keeps.")
@backup_root_option
@config_option
@_keep_option("last", "the N newest snapshots")
@_keep_option("hourly", "the newest snapshot of each of the N latest hours that have one")
@_keep_option("daily", "the newest snapshot of each of the N latest days that have one")
@_keep_option("weekly", "the newest snapshot of each of the N latest ISO weeks that have one")
@_keep_option("monthly", "the newest snapshot of each of the N latest months that have one")
@click.option("-n", "--dry-run", "dry_run", is_flag=True,
              help="Delete nothing: list what would be deleted.")
@json_option
@click.pass_context
def snapshots_prune(ctx: click.Context, backup_root: str | None, config_path: str | None,
                    last: int | None, hourly: int | None, daily: int | None,
                    weekly: int | None, monthly: int | None, dry_run: bool,
                    json_out: bool) -> None:
    """Delete the complete snapshots that no --keep rule keeps, with the
    rules of borg prune (see the README's "Retention rules"; periods in
    UTC). The newest snapshot is never deleted, and a prune waits for no
    one: while a backup or restore runs on the backup root it fails at
    once (exit 3). Without --keep options, a --config file's [snapshots]
    table gives them. Prints `delete ID` (with -n: `would delete ID`)
    for each snapshot that goes and `keep ID (RULE)` for the others.

    \b
    Examples:
      syncengine snapshots prune --backup-root /mnt/backup --keep-last 3 --keep-daily 7
      syncengine snapshots prune -n --config myservice.toml
    """
    output = Output("snapshots prune", json_out=json_out, quiet=False, progress=False)

    def body() -> int:
        config = read_config(config_path) if config_path else None
        root = _snapshot_root(ctx, backup_root, config)
        rules = {"last": last, "hourly": hourly, "daily": daily, "weekly": weekly,
                 "monthly": monthly}
        if any(n is not None for n in rules.values()):
            policy = RetentionPolicy(**{k: n or 0 for k, n in rules.items()})
        elif config is not None and config.retention is not None:
            policy = config.retention
        else:
            raise click.UsageError("give at least one --keep-… option (or a --config file "
                                   "with a [snapshots] table that has keep_… keys).", ctx)
        with root_lock(root, "prune", dry_run=dry_run):
            decisions = prune_snapshots(root, policy, dry_run=dry_run)
        for decision in decisions:
            _prune_line(output, decision, dry_run)
        gone = sum(not d.keep for d in decisions)
        output.summary({"exit_code": 0, "dry_run": dry_run, "deleted": gone,
                        "kept": len(decisions) - gone}, None)
        return 0
    run_guarded(body, output)


def _prune_line(output: Output, decision: Decision, dry_run: bool) -> None:
    if decision.keep:
        action, line = ("in_use" if decision.reason == "in use" else "keep",
                        f"keep {decision.id} ({decision.reason})")
    else:
        action = "would_delete" if dry_run else "delete"
        line = f"{'would delete' if dry_run else 'delete'} {decision.id}"
    if output.json:
        output.emit({"event": "prune", "id": decision.id, "action": action,
                     "reason": decision.reason})
    else:
        click.echo(line)


@snapshots.command(name="diff", short_help="Show what changed between two snapshots.")
@click.argument("old", shell_complete=complete_snapshots)
@click.argument("new", shell_complete=complete_snapshots)
@backup_root_option
@json_option
@click.pass_context
def snapshots_diff(ctx: click.Context, old: str, new: str, backup_root: str | None,
                   json_out: bool) -> None:
    """Show what changed from snapshot OLD to snapshot NEW (IDs, or
    `latest`), below volumes/, as rsync -i lines: the lines
    `rsync -rlptgocAXH --delete -n -i NEW/volumes/ OLD/volumes/` prints
    (>f+++++++++ new file, *deleting   gone, .f..t...... touched). With
    --json, `itemize` events.

    \b
    Example:
      syncengine snapshots diff 2026-12-06T151700Z latest --backup-root /mnt/backup
    """
    output = Output("snapshots diff", json_out=json_out, quiet=False, progress=False)

    def body() -> int:
        root = _snapshot_root(ctx, backup_root)
        a, b = resolve_snapshot(root, old), resolve_snapshot(root, new)
        changes = 0
        for change in iter_snapshot_changes(a, b):
            changes += 1
            output.item(change)
        output.summary({"exit_code": 0, "old": a.id, "new": b.id, "changes": changes}, None)
        return 0
    run_guarded(body, output)
