"""The click application: backup, restore, sync, engines."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from .. import Backups, FileEffects, Layout, SyncError, SyncOptions, SyncResult, start_sync
from ..backups import check_volume_name, read_data_version
from ..engines import ENGINE_NAMES, resolve_engine_name
from ..engines.rsync import RsyncEngine
from ..engines.native import NativeEngine
from .display import ProgressDisplay, emit_json, summary_line

__all__ = ["main", "app"]

USAGE_ERROR = 2


class CommandFailed(Exception):
    """A one-line error for the user, with the exit code to leave with."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def run_guarded(action: Callable[[], int], json_out: bool) -> None:
    """Run a command body; turn every expected failure into one line on
    stderr (and a JSON summary with --json) and rsync's exit code."""
    started = time.monotonic()
    try:
        code = action()
    except CommandFailed as exc:
        message, code = str(exc), exc.exit_code
    except ValueError as exc:
        message, code = str(exc), USAGE_ERROR
    except SyncError as exc:
        message, code = str(exc), exc.exit_code
    except OSError as exc:
        target = f" {exc.filename}" if exc.filename else ""
        message, code = f"{exc.strerror or exc}:{target}".rstrip(":"), 11
    else:
        sys.exit(code)
    click.echo(f"syncengine: error: {message}", err=True)
    if json_out:
        emit_json({"event": "summary", "exit_code": code, "error": message,
                   "duration": round(time.monotonic() - started, 6)})
    sys.exit(code)


def engine_option(f: Callable) -> Callable:
    return click.option("--engine", type=click.Choice(ENGINE_NAMES), default=None,
                        envvar="SYNCENGINE_ENGINE", show_envvar=True,
                        help="Which engine syncs: rsync, the native python engine, "
                             "or auto (rsync when installed).")(f)


def output_options(f: Callable) -> Callable:
    f = click.option("--json", "json_out", is_flag=True,
                     help="Write a machine-readable JSON summary to stdout.")(f)
    f = click.option("--progress/--no-progress", default=None,
                     help="Show live progress on stderr (default: when stderr is a terminal).")(f)
    return f


def roots_options(f: Callable) -> Callable:
    f = click.option("--backup-root", required=True, envvar="SYNCENGINE_BACKUP_ROOT",
                     show_envvar=True, type=click.Path(file_okay=False, path_type=str),
                     help="Where backups live (volumes under <root>/volumes/).")(f)
    f = click.option("--volumes-root", required=True, envvar="SYNCENGINE_VOLUMES_ROOT",
                     show_envvar=True, type=click.Path(file_okay=False, path_type=str),
                     help="The directory whose subdirectories are the volumes.")(f)
    return f


def exclude_option(f: Callable) -> Callable:
    return click.option("--exclude", "excludes", multiple=True, metavar="PATTERN",
                        help="rsync exclude rule; repeat for more (first match wins).")(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="syncengine-backups", prog_name="syncengine")
def app() -> None:
    """Back up and restore data volumes with rsync's exact semantics, with
    or without rsync installed."""


def _layout(volumes_root: str, backup_root: str) -> Layout:
    return Layout(volumes_root=os.path.abspath(volumes_root), backup_root=os.path.abspath(backup_root))


def _list_volumes(root: str, what: str) -> list[str]:
    if not os.path.isdir(root):
        raise CommandFailed(f"{what} {root} does not exist or is not a directory", 3)
    return sorted(entry.name for entry in os.scandir(root)
                  if entry.is_dir(follow_symlinks=False))


def _facade(volumes: tuple[str, ...], layout: Layout, engine: str | None, excludes: tuple[str, ...],
            delete: bool) -> Backups:
    for volume in volumes:
        check_volume_name(volume)
    backups = Backups.with_options(SyncOptions(delete=delete, exclude=excludes),
                                   layout=layout, engine=engine)
    for volume in volumes:
        backups.add_volume(volume)
    return backups


def _report(verb: str, results: list[SyncResult], started: float, json_out: bool,
            extra: dict[str, Any] | None = None) -> int:
    duration = time.monotonic() - started
    code = max((r.exit_code for r in results), default=0)
    for result in results:
        for line in result.errors:
            click.echo(line, err=True)
    if json_out:
        emit_json({"event": "summary", "command": verb, "exit_code": code,
                   "files_transferred": sum(r.files_transferred for r in results),
                   "bytes_transferred": sum(r.bytes_transferred for r in results),
                   "duration": round(duration, 6), "syncs": [r.as_dict() for r in results],
                   **(extra or {})})
    else:
        click.echo(summary_line(verb, results, duration), err=True)
    return code


@app.command()
@click.argument("volumes", nargs=-1)
@roots_options
@exclude_option
@click.option("--no-delete", is_flag=True, help="Keep backup files whose source is gone.")
@click.option("--data-version", default=None, help="Record this data version in the backup.")
@engine_option
@output_options
def backup(volumes: tuple[str, ...], volumes_root: str, backup_root: str, excludes: tuple[str, ...],
           no_delete: bool, data_version: str | None, engine: str | None,
           progress: bool | None, json_out: bool) -> None:
    """Back up VOLUMEs (default: every directory under --volumes-root) into
    --backup-root/volumes/, then record the data version.

    \b
    Example:
      syncengine backup main config --volumes-root /srv/volumes \\
          --backup-root /mnt/backup --exclude '*.tmp'
    """
    def body() -> int:
        started = time.monotonic()
        layout = _layout(volumes_root, backup_root)
        names = volumes or tuple(_list_volumes(layout.volumes_root, "volumes root"))
        backups = _facade(names, layout, engine, excludes, not no_delete)
        display = ProgressDisplay(enabled=progress)
        try:
            results = backups.create_backup(FileEffects(os.devnull, version=data_version),
                                            on_progress=display)
        finally:
            display.end()
        return _report("backup", results, started, json_out,
                       {"volumes": list(names), "data_version": data_version})
    run_guarded(body, json_out)


@app.command()
@click.argument("volumes", nargs=-1)
@roots_options
@exclude_option
@click.option("--no-delete", is_flag=True, help="Keep data files that are not in the backup.")
@engine_option
@output_options
def restore(volumes: tuple[str, ...], volumes_root: str, backup_root: str, excludes: tuple[str, ...],
            no_delete: bool, engine: str | None, progress: bool | None, json_out: bool) -> None:
    """Restore VOLUMEs (default: every volume in the backup) from
    --backup-root/volumes/ into --volumes-root, and print the backup's data
    version.

    \b
    Example:
      syncengine restore main --volumes-root /srv/volumes --backup-root /mnt/backup
    """
    def body() -> int:
        started = time.monotonic()
        layout = _layout(volumes_root, backup_root)
        names = volumes or tuple(_list_volumes(os.path.join(layout.backup_root, "volumes"),
                                               "backup volumes directory"))
        backups = _facade(names, layout, engine, excludes, not no_delete)
        display = ProgressDisplay(enabled=progress)
        try:
            results = backups.restore_backup(_NoEffects(), on_progress=display)
        finally:
            display.end()
        version = read_data_version(layout)
        if not json_out:
            click.echo(f"data version: {version if version is not None else '(none)'}")
        return _report("restore", results, started, json_out,
                       {"volumes": list(names), "data_version": version})
    run_guarded(body, json_out)


class _NoEffects:
    """The CLI reports the data version instead of recording it anywhere."""

    def get_data_version(self) -> None:
        return None

    def set_data_version(self, version: str) -> None:
        pass


@app.command(name="sync")
@click.argument("src", type=click.Path(path_type=str))
@click.argument("dst", type=click.Path(path_type=str))
@exclude_option
@click.option("--delete/--no-delete", default=True, show_default=True,
              help="Delete destination entries that are not in the source.")
@engine_option
@output_options
def sync_command(src: str, dst: str, excludes: tuple[str, ...], delete: bool, engine: str | None,
                 progress: bool | None, json_out: bool) -> None:
    """Sync one tree: SRC to DST with rsync -rlptgocAXH semantics (a
    trailing slash on SRC copies its contents into DST).

    \b
    Example:
      syncengine sync /srv/data/ /mnt/copy/data --exclude 'cache/'
    """
    def body() -> int:
        started = time.monotonic()
        if not src or not dst:
            raise ValueError("SRC and DST must not be empty")
        options = SyncOptions(delete=delete, exclude=excludes)
        display = ProgressDisplay(enabled=progress)
        try:
            result = start_sync(src, dst, options, engine=engine, on_progress=display).result()
        finally:
            display.end()
        return _report("sync", [result], started, json_out)
    run_guarded(body, json_out)


@app.command()
@click.option("--json", "json_out", is_flag=True, help="Write the answer as JSON.")
def engines(json_out: bool) -> None:
    """Show which engines are available here and which one auto picks.

    \b
    Example:
      syncengine engines --json
    """
    def body() -> int:
        rsync = RsyncEngine()
        info = {
            "rsync": {"available": rsync.available(), "version": rsync.version(),
                      "path": rsync.executable()},
            "python": {"available": NativeEngine().available()},
            "auto": resolve_engine_name("auto"),
            "default": resolve_engine_name(None),
        }
        if json_out:
            emit_json(info)
            return 0
        rs = info["rsync"]
        click.echo(f"rsync:  {'available' if rs['available'] else 'not available'}"
                   + (f" (version {rs['version']}, {rs['path']})" if rs["available"] else ""))
        click.echo(f"python: {'available' if info['python']['available'] else 'not available'}")
        click.echo(f"auto picks: {info['auto']}")
        return 0
    run_guarded(body, json_out)


def main() -> None:
    app(prog_name="syncengine")
