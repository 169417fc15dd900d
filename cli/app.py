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
    # Existence and type are checked in the command body (_require_dir), so a
    # bad root gets the same one-line error as every other bad input.
    f = click.option("--backup-root", required=True, envvar="SYNCENGINE_BACKUP_ROOT",
                     show_envvar=True, type=click.Path(path_type=str),
                     help="Where backups live (volumes under <root>/volumes/).")(f)
    f = click.option("--volumes-root", required=True, envvar="SYNCENGINE_VOLUMES_ROOT",
                     show_envvar=True, type=click.Path(path_type=str),
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


def _require_dir(path: str, what: str) -> None:
    """Bad input is a usage error (exit 2), caught before anything runs."""
    if not os.path.lexists(path):
        raise CommandFailed(f"{what} {path} does not exist", USAGE_ERROR)
    if not os.path.isdir(path):
        raise CommandFailed(f"{what} {path} is not a directory", USAGE_ERROR)


def _require_dir_destination(path: str, root: str) -> None:
    """``path`` (under the existing dir ``root``) and every parent up to
    ``root`` must be a directory or not exist yet."""
    path = os.path.normpath(path)
    while path != root and os.path.commonpath([path, root]) == root:
        if os.path.lexists(path) and not os.path.isdir(path):
            raise CommandFailed(f"destination {path} exists and is not a directory", USAGE_ERROR)
        path = os.path.dirname(path)


def _list_volumes(root: str, what: str) -> list[str]:
    _require_dir(root, what)
    return sorted(entry.name for entry in os.scandir(root)
                  if entry.is_dir(follow_symlinks=False))


def _check_volumes(volumes: tuple[str, ...], src_root: str, where: str, dst_root: str,
                   dst_of: Callable[[str], str]) -> None:
    """Every named volume is a valid name with a source directory, and its
    destination is not blocked by a file."""
    for volume in volumes:
        check_volume_name(volume)
        if not os.path.isdir(os.path.join(src_root, volume)):
            raise CommandFailed(f"unknown volume {volume!r}: no directory "
                                f"{os.path.join(src_root, volume)} {where}", USAGE_ERROR)
        _require_dir_destination(dst_of(volume), dst_root)


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
        _require_dir(layout.volumes_root, "volumes root")
        _require_dir(layout.backup_root, "backup root")
        names = volumes or tuple(_list_volumes(layout.volumes_root, "volumes root"))
        _check_volumes(names, layout.volumes_root, "in the volumes root", layout.backup_root,
                       layout.volume_backup_path)
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
        _require_dir(layout.volumes_root, "volumes root")
        _require_dir(layout.backup_root, "backup root")
        in_backup = os.path.join(layout.backup_root, "volumes")
        names = volumes or tuple(_list_volumes(in_backup, "backup volumes directory"))
        _check_volumes(names, in_backup, "in the backup", layout.volumes_root, layout.volume_path)
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
        # Bad input is refused before rsync runs (one line, exit 2, nothing changed).
        if not os.path.lexists(src):
            raise CommandFailed(f"source {src} does not exist", USAGE_ERROR)
        src_is_dir = os.path.isdir(src) and (src.endswith("/") or not os.path.islink(src))
        if src_is_dir and os.path.lexists(dst) and not os.path.isdir(dst):
            raise CommandFailed(f"destination {dst} exists and is not a directory", USAGE_ERROR)
        parent = os.path.dirname(dst.rstrip("/")) or "."
        if not os.path.lexists(dst) and not os.path.isdir(parent):
            raise CommandFailed(f"destination's parent directory {parent} does not exist",
                                USAGE_ERROR)
        options = SyncOptions(delete=delete, exclude=excludes)
        display = ProgressDisplay(enabled=progress)
        try:
            # A relative path that starts with "-" must not reach rsync as an option.
            result = start_sync(_not_an_option(src), _not_an_option(dst), options, engine=engine,
                                on_progress=display).result()
        finally:
            display.end()
        return _report("sync", [result], started, json_out)
    run_guarded(body, json_out)


def _not_an_option(path: str) -> str:
    return "./" + path if path.startswith("-") else path


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
