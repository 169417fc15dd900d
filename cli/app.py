"""The click application: backup, restore, sync, verify, engines (snapshots:
snapshots.py; options: options.py; error lines and exit codes: guard.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from .. import Backups, Layout, SyncOptions, SyncResult, start_sync
from ..backups import LATEST, check_volume_name, read_data_version, resolve_snapshot
from ..config import Config, ConfigEntry, read_config
from ..engines import check_arguments, check_source_kind, resolve_engine_name
from ..engines.native import NativeEngine
from ..engines.rsync import RsyncEngine
from ..fsutil import read_version_file
from ..verify import IGNORABLE, VerifyStats, iter_differences
from .display import human_bytes, summary_line
from .guard import INTERRUPTED, MISMATCH, USAGE_ERROR, CommandFailed, own_signals, run_guarded
from .observe import CliObserver, run_verify
from .options import (
    allow_empty_source_option,
    choose,
    complete_snapshots,
    complete_volumes,
    config_option,
    dry_run_options,
    engine_option,
    exclude_option,
    no_verify_in_dry_run,
    output_options,
    require_dir,
    roots_options,
    sync_dry_run_options,
    sync_exclude_option,
    verify_flag,
)
from .output import Output
from .snapshots import snapshots

__all__ = ["main", "app"]

# (click >= 8.2 raises it for a group run without a command)
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _OneLineErrors(click.Group):
    """click, but a usage error is one line, ``syncengine: error: …``
    (exit 2), as every other error is: not click's usage block."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except _NO_ARGS_IS_HELP as exc:  # `syncengine` alone: the help, on stderr
            exc.show()
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            message = " ".join(exc.format_message().splitlines())
            ctx = getattr(exc, "ctx", None)
            if isinstance(exc, click.UsageError) and ctx is not None:
                message += f" (see '{ctx.command_path} --help')"
            click.echo(f"syncengine: error: {message}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("syncengine: error: interrupted", err=True)
            sys.exit(INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)  # (--help, --version: 0)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="syncengine-backups", prog_name="syncengine")
def app() -> None:
    """Back up and restore data volumes with rsync's exact semantics, with
    or without rsync installed: `backup` and `restore` drive the Backups
    facade, `sync` copies one tree, `verify` checks a copy, `engines` shows
    what runs, and `rsync` stands in for rsync.

    \b
    Example:
      syncengine backup --volumes-root /srv/volumes --backup-root /mnt/backup
    """


# -- helpers for backup and restore ----------------------------------------------------------

def _layout(volumes_root: str, backup_root: str) -> Layout:
    return Layout(volumes_root=os.path.abspath(volumes_root), backup_root=os.path.abspath(backup_root))



def _require_writable(path: str, what: str) -> None:
    """A destination the sync could not write (a read-only filesystem, or
    no permission) is refused before anything runs."""
    if not os.access(path, os.W_OK | os.X_OK):
        raise CommandFailed(f"{what} {path} is not writable", USAGE_ERROR)


def _require_dir_destination(path: str, root: str) -> None:
    """``path`` (under the existing dir ``root``) and every parent up to
    ``root`` must be a directory or not exist yet."""
    path = os.path.normpath(path)
    while path != root and os.path.commonpath([path, root]) == root:
        if os.path.lexists(path) and not os.path.isdir(path):
            raise CommandFailed(f"destination {path} exists and is not a directory", USAGE_ERROR)
        path = os.path.dirname(path)


def _list_volumes(root: str, what: str, output: Output) -> list[str]:
    """The volumes under ``root``: its directories.  A symlink is not a
    volume (it would lead the backup anywhere): each one is named in a
    warning.  None at all is an error: there would be nothing to do."""
    require_dir(root, what)
    names = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.is_symlink():
            output.warning(f"syncengine: warning: skipping {entry.path}: a symlink is not a "
                           "volume (name the volume to follow it)")
        elif entry.is_dir(follow_symlinks=False):
            names.append(entry.name)
    if not names:
        raise CommandFailed(f"no volumes in {what} {root}: nothing to do (a volume is a "
                            "directory there)", USAGE_ERROR)
    return names


def _check_volumes(volumes: list[str], src_root: str, where: str, dst_root: str,
                   dst_of: Callable[[str], str]) -> None:
    """Every named volume is a valid name with a source directory, and its
    destination is not blocked by a file."""
    for volume in volumes:
        check_volume_name(volume)
        if not os.path.isdir(os.path.join(src_root, volume)):
            raise CommandFailed(f"unknown volume {volume!r}: no directory "
                                f"{os.path.join(src_root, volume)} {where}", USAGE_ERROR)
        _require_dir_destination(dst_of(volume), dst_root)



def _roots(ctx: click.Context, config: Config | None, volumes_root: str | None,
           backup_root: str | None) -> Layout:
    roots = {}
    for name, flag, env, value in (
            ("volumes_root", "--volumes-root", "SYNCENGINE_VOLUMES_ROOT", volumes_root),
            ("backup_root", "--backup-root", "SYNCENGINE_BACKUP_ROOT", backup_root)):
        roots[name] = choose(ctx, name, value, getattr(config, name, None))
        if not roots[name]:
            raise click.UsageError(f"Missing option '{flag}' (or {env}, or layout.{name} in a "
                                   f"--config file).", ctx)
    return _layout(roots["volumes_root"], roots["backup_root"])


def _plan(config: Config | None, volumes: tuple[str, ...], discover: Callable[[], list[str]]
          ) -> list[ConfigEntry]:
    """What to sync: the config's entries (those named, if any are), or
    the named volumes, or every volume found."""
    if config is not None and config.entries:
        return list(config.select(volumes))
    names = list(volumes) or discover()
    return [ConfigEntry("volume", f"volume {name!r}", name=name) for name in names]


def _facade(ctx: click.Context, config: Config | None, entries: list[ConfigEntry],
            layout: Layout, engine: str | None, excludes: tuple[str, ...], no_delete: bool,
            allow_empty_source: bool, output: Output, snapshot: bool = False,
            allow_full_copies: bool = False) -> Backups:
    engine = choose(ctx, "engine", engine, config.engine if config else None)
    if config is None:
        backups = Backups.with_options(SyncOptions(delete=not no_delete, exclude=excludes),
                                       layout=layout, engine=engine)
        backups.set_allow_empty_source(allow_empty_source)
        if snapshot:
            backups.set_snapshots(allow_full_copies=allow_full_copies)
        for entry in entries:
            assert entry.name is not None  # (_plan without a config: volumes)
            backups.add_volume(entry.name)
    else:
        override: dict[str, Any] = {}
        if excludes:
            override["exclude"] = excludes
        if no_delete:
            override["delete"] = False
        backups = config.build(entries=entries, volumes_root=layout.volumes_root,
                               backup_root=layout.backup_root, engine=engine, override=override,
                               allow_empty_source=allow_empty_source or None,
                               snapshots=True if snapshot else None,
                               allow_full_copies=True if allow_full_copies else None,
                               hook_log=output.hook_log, hook_output=output.hook_output)
    return backups


def _report(output: Output, results: list[SyncResult], extra: dict[str, Any] | None = None,
            mismatches: int = 0) -> int:
    code = max((r.exit_code for r in results), default=0)
    for result in results:
        for line in result.errors:
            output.error(line)
    fields: dict[str, Any] = {
        "exit_code": code,
        "files_transferred": sum(r.files_transferred for r in results),
        "files_deleted": sum(r.files_deleted for r in results),
        "files_skipped": sum(r.files_skipped for r in results),
        "bytes_transferred": sum(r.bytes_transferred for r in results),
        "bytes_total": sum(r.bytes_total for r in results),
        "dry_run": any(r.dry_run for r in results),
        "syncs": [r.as_dict() for r in results], **(extra or {})}
    if mismatches:
        message = f"verify found {mismatches} difference(s) between a copy and its source"
        output.bar.clear()
        click.echo(f"syncengine: error: {message}", err=True)
        if code == 0:
            code = fields["exit_code"] = MISMATCH
        fields["error"] = message
    output.summary(fields, summary_line(output.command, results, output.elapsed()))
    return code


class _NoEffects:
    """The CLI's data version comes from --data-version (or the config
    file); a restore reports the backup's instead of recording it."""

    def __init__(self, version: str | None = None) -> None:
        self.version = version

    def get_data_version(self) -> str | None:
        return self.version

    def set_data_version(self, version: str) -> None:
        pass


# -- backup ------------------------------------------------------------------------------------

@app.command(short_help="Back up volumes (or a --config file's syncs) into a backup root.")
@click.argument("volumes", nargs=-1, shell_complete=complete_volumes)
@config_option
@roots_options
@exclude_option
@click.option("--no-delete", is_flag=True, help="Keep backup files whose source is gone.")
@allow_empty_source_option
@click.option("--data-version", default=None, help="Record this data version in the backup.")
@click.option("--snapshot", is_flag=True,
              help="Back up into a new snapshot, <backup-root>/snapshots/<ID>/, instead of the "
                   "mirror (on by default with a --config file's [snapshots] table, which also "
                   "prunes after a successful backup). With -n: what would change since the "
                   "latest snapshot; nothing is created.")
@click.option("--allow-full-copies", is_flag=True,
              help="With --snapshot, where hard links do not work (FAT, exFAT, some network "
                   "shares): make every snapshot a full copy instead of refusing.")
@verify_flag
@dry_run_options
@engine_option
@output_options
@click.pass_context
def backup(ctx: click.Context, volumes: tuple[str, ...], config_path: str | None,
           volumes_root: str | None, backup_root: str | None, excludes: tuple[str, ...],
           no_delete: bool, allow_empty_source: bool, data_version: str | None, snapshot: bool,
           allow_full_copies: bool, verify: bool, dry_run: bool,
           itemize: bool, engine: str | None, progress: bool | None, json_out: bool,
           quiet: bool) -> None:
    """Back up VOLUMEs (default: every directory under --volumes-root, or
    every volume and sync of --config) into --backup-root/volumes/ with
    rsync -rlptgocAXH --delete semantics: pre_backup hook, each sync, the
    data version into <backup-root>/dataVersion.txt, post_backup hook (which
    runs even when a sync fails). --verify compares each copy with its
    source right after its sync. With --snapshot, the same into a new
    snapshot, <backup-root>/snapshots/<ID>/ (listed only once every sync
    succeeded; see `syncengine snapshots --help`).

    \b
    Examples:
      syncengine backup main config --volumes-root /srv/volumes \\
          --backup-root /mnt/backup --exclude '*.tmp' --verify
      syncengine backup --config /etc/syncengine/myservice.toml
      syncengine backup -n -i --config myservice.toml   # what would change
      syncengine backup --snapshot --volumes-root /srv/volumes --backup-root /mnt/backup
    """
    output = Output("backup", json_out=json_out, quiet=quiet, progress=progress)

    def body() -> int:
        no_verify_in_dry_run(verify, dry_run)
        config = read_config(config_path) if config_path else None
        layout = _roots(ctx, config, volumes_root, backup_root)
        require_dir(layout.volumes_root, "volumes root")
        require_dir(layout.backup_root, "backup root")
        _require_writable(layout.backup_root, "backup root")
        entries = _plan(config, volumes,
                        lambda: _list_volumes(layout.volumes_root, "volumes root", output))
        _check_volumes([e.name for e in entries if e.kind == "volume" and e.name is not None], layout.volumes_root,
                       "in the volumes root", layout.backup_root, layout.volume_backup_path)
        backups = _facade(ctx, config, entries, layout, engine, excludes, no_delete,
                          allow_empty_source, output, snapshot, allow_full_copies)
        observer = CliObserver(output, verify, [e.name or e.key for e in entries])
        version = data_version if data_version is not None else (config and config.data_version)
        results = backups.create_backup(_NoEffects(version or None),
                                        on_progress=output.progress, observer=observer,
                                        on_item=output.item if itemize else None,
                                        dry_run=dry_run)
        return _report(output, results, {"volumes": [e.name for e in entries if e.kind == "volume"],
                                         "data_version": version or None,
                                         **({"snapshot": observer.snapshot_id}
                                            if backups.snapshots else {}),
                                         **({"differences": observer.mismatches} if verify else {})},
                       observer.mismatches)
    run_guarded(body, output)


# -- restore -----------------------------------------------------------------------------------

@app.command(short_help="Restore volumes (or a --config file's syncs) from a backup.")
@click.argument("volumes", nargs=-1, shell_complete=complete_volumes)
@config_option
@roots_options
@exclude_option
@click.option("--no-delete", is_flag=True, help="Keep data files that are not in the backup.")
@allow_empty_source_option
@click.option("--snapshot", "snapshot_id", metavar="ID|latest", default=None,
              shell_complete=complete_snapshots,
              help="Restore from this complete snapshot (see `syncengine snapshots list`), or "
                   "the newest with `latest`, instead of the mirror; the snapshot is only read. "
                   "With a --config file's [snapshots] table the default is `latest`.")
@verify_flag
@dry_run_options
@engine_option
@output_options
@click.pass_context
def restore(ctx: click.Context, volumes: tuple[str, ...], config_path: str | None,
            volumes_root: str | None, backup_root: str | None, excludes: tuple[str, ...],
            no_delete: bool, allow_empty_source: bool, snapshot_id: str | None, verify: bool,
            dry_run: bool, itemize: bool, engine: str | None, progress: bool | None, json_out: bool,
            quiet: bool) -> None:
    """Restore VOLUMEs (default: every volume in the backup, or every
    volume and sync of --config) from --backup-root/volumes/ (or from
    snapshot --snapshot's volumes/) into --volumes-root: pre_restore hook,
    each sync, post_restore hook; then print the backup's data version.

    \b
    Examples:
      syncengine restore main --volumes-root /srv/volumes --backup-root /mnt/backup
      syncengine restore --config /etc/syncengine/myservice.toml --verify
      syncengine restore -n -i main --volumes-root /srv/volumes --backup-root /mnt/backup
      syncengine restore main --snapshot latest --volumes-root /srv/volumes \\
          --backup-root /mnt/backup
    """
    output = Output("restore", json_out=json_out, quiet=quiet, progress=progress)

    def body() -> int:
        no_verify_in_dry_run(verify, dry_run)
        config = read_config(config_path) if config_path else None
        layout = _roots(ctx, config, volumes_root, backup_root)
        require_dir(layout.volumes_root, "volumes root")
        require_dir(layout.backup_root, "backup root")
        _require_writable(layout.volumes_root, "volumes root")
        # A config whose backups are snapshots has no mirror to restore: the latest.
        chosen = snapshot_id or (LATEST if config is not None and config.snapshots else None)
        source = resolve_snapshot(layout.backup_root, chosen) if chosen else None
        in_backup = os.path.join(layout.backup_root, "volumes") if source is None \
            else source.volumes_dir
        entries = _plan(config, volumes,
                        lambda: _list_volumes(in_backup, "backup volumes directory", output))
        _check_volumes([e.name for e in entries if e.kind == "volume" and e.name is not None], in_backup,
                       "in the backup", layout.volumes_root, layout.volume_path)
        backups = _facade(ctx, config, entries, layout, engine, excludes, no_delete,
                          allow_empty_source, output)
        observer = CliObserver(output, verify, [e.name or e.key for e in entries])
        results = backups.restore_backup(_NoEffects(), on_progress=output.progress,
                                         observer=observer,
                                         on_item=output.item if itemize else None,
                                         dry_run=dry_run,
                                         snapshot=source.id if source is not None else None)
        version = (read_data_version(layout) if source is None
                   else read_version_file(source.data_version_path))
        if not json_out and not quiet:
            click.echo(f"data version: {version if version is not None else '(none)'}")
        return _report(output, results, {"volumes": [e.name for e in entries if e.kind == "volume"],
                                         "data_version": version,
                                         **({"snapshot": source.id} if source is not None else {}),
                                         **({"differences": observer.mismatches} if verify else {})},
                       observer.mismatches)
    run_guarded(body, output)


# -- sync --------------------------------------------------------------------------------------

@app.command(name="sync", short_help="Sync one tree, SRC to DST, as rsync -rlptgocAXH --delete.")
@click.argument("src", type=click.Path(path_type=str))
@click.argument("dst", type=click.Path(path_type=str))
@sync_exclude_option
@click.option("--delete/--no-delete", default=True, show_default=True,
              help="Delete destination entries that are not in the source.")
@verify_flag
@sync_dry_run_options
@engine_option
@output_options
def sync_command(src: str, dst: str, excludes: tuple[str, ...], delete: bool, verify: bool,
                 dry_run: bool, itemize: bool, engine: str | None, progress: bool | None,
                 json_out: bool, quiet: bool) -> None:
    """Sync one tree, SRC to DST, with rsync -rlptgocAXH semantics: a
    trailing slash on SRC copies its contents (and its own attributes) onto
    DST, without one SRC is copied into DST; --delete (the default) removes
    what SRC does not have.

    \b
    Examples:
      syncengine sync /srv/data/ /mnt/copy/data --exclude 'cache/' --verify
      syncengine sync -n -i /srv/data/ /mnt/copy/data   # show what would change
    """
    output = Output("sync", json_out=json_out, quiet=quiet, progress=progress)

    def body() -> int:
        no_verify_in_dry_run(verify, dry_run)
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
        if os.path.isdir(dst):
            _require_writable(dst, "destination")
        elif not os.path.lexists(dst):
            _require_writable(parent, "destination's parent directory")
        options = SyncOptions(delete=delete, exclude=excludes)
        # A relative path that starts with "-" must not reach rsync as an option.
        real_src, real_dst = _not_an_option(src), _not_an_option(dst)
        # Overlapping trees, special files, bad exclude rules: ValueError, exit 2.
        check_arguments(real_src, real_dst, options)
        output.sync_start(1, 1, src, dst)
        job = None
        try:
            job = start_sync(real_src, real_dst, options, engine=engine,
                             on_progress=output.progress,
                             on_item=output.item if itemize else None, dry_run=dry_run)
            result = job.result()
        except KeyboardInterrupt:
            if job is not None:  # (a start-up cut short cancels its own job)
                job.cancel()  # stop the engine (rsync too) before leaving
                job.result()
            raise
        output.sync_end(1, result)
        mismatches = 0
        if verify and result.ok:
            mismatches = run_verify(output, real_src, real_dst, options, index=1)
        return _report(output, [result], {"differences": mismatches} if verify else None,
                       mismatches)
    run_guarded(body, output)


def _not_an_option(path: str) -> str:
    return "./" + path if path.startswith("-") else path


# -- verify ------------------------------------------------------------------------------------

@app.command(name="verify", short_help="Check that DST is an exact copy of SRC.")
@click.argument("src", type=click.Path(path_type=str))
@click.argument("dst", type=click.Path(path_type=str))
@click.option("--exclude", "excludes", multiple=True, metavar="PATTERN",
              help="rsync exclude rule, as given to the sync; repeat for more.")
@click.option("--ignore", "ignore", multiple=True, type=click.Choice(IGNORABLE),
              help="Do not compare this attribute (`extra`: entries only in DST, as a sync "
                   "without --delete leaves them); repeat for more.")
@output_options
def verify_command(src: str, dst: str, excludes: tuple[str, ...], ignore: tuple[str, ...],
                   progress: bool | None, json_out: bool, quiet: bool) -> None:
    """Check that DST is an exact copy of SRC, as `syncengine sync SRC DST`
    (rsync -rlptgocAXH --delete) makes it: type, content, mode, owner,
    group, nanosecond mtime, symlink target, hard-link groups, xattrs and
    ACLs, with the same trailing-slash and --exclude rules. Prints each
    difference on one line (on stdout); exits 0 when there is none, 1 when
    there are some, 2 on bad input.

    \b
    Examples:
      syncengine verify /srv/volumes/main/ /mnt/backup/volumes/main/
      syncengine verify /srv/data/ /mnt/copy/data --exclude 'cache/' --json
    """
    output = Output("verify", json_out=json_out, quiet=quiet, progress=progress)

    def body() -> int:
        check_source_kind(src)  # a fifo or device: nothing would be compared
        stats = VerifyStats()
        found = 0
        for diff in iter_differences(src, dst, excludes, ignore=ignore,
                                     on_progress=output.verify_progress, stats=stats):
            found += 1
            output.difference(diff, as_error=False)
        code = MISMATCH if found else 0
        verdict = f"{found} difference(s)" if found else "identical"
        output.summary({"exit_code": code, "differences": found, "entries": stats.entries,
                        "bytes_compared": stats.bytes_compared},
                       f"verify: {verdict} ({stats.entries} entries, "
                       f"{human_bytes(stats.bytes_compared)} compared in "
                       f"{output.elapsed():.2f} s)")
        return code
    run_guarded(body, output)


# -- engines -----------------------------------------------------------------------------------

@app.command(short_help="Show the available engines and which one auto picks.")
@click.option("--json", "json_out", is_flag=True, help="Write the answer as one JSON line.")
def engines(json_out: bool) -> None:
    """Show which engines are available here, rsync's version, and which
    engine `auto` (and SYNCENGINE_ENGINE) picks.

    \b
    Example:
      syncengine engines --json
    """
    output = Output("engines", json_out=json_out, quiet=False, progress=False)

    def body() -> int:
        rsync = RsyncEngine()
        info: dict[str, Any] = {
            "rsync": {"available": rsync.available(), "version": rsync.version(),
                      "path": rsync.executable(), "reason": rsync.unusable_reason()},
            "python": {"available": NativeEngine().available()},
            "auto": resolve_engine_name("auto"),
            "default": resolve_engine_name(None),
        }
        if json_out:
            output.summary({"exit_code": 0, **info}, None)
            return 0
        rs = info["rsync"]
        click.echo(f"rsync:  {'available' if rs['available'] else 'not available'}"
                   + (f" (version {rs['version']}, {rs['path']})" if rs["available"]
                      else f" ({rs['reason']})"))
        click.echo(f"python: {'available' if info['python']['available'] else 'not available'}")
        click.echo(f"auto picks: {info['auto']}")
        return 0
    run_guarded(body, output)



app.add_command(snapshots)


def main() -> None:
    own_signals()
    app(prog_name="syncengine")
