"""Config files: a TOML description of what the :class:`Backups` facade
describes in code.

::

    engine = "auto"                  # optional: auto, rsync, python
    data_version = "1.4.2"           # optional: recorded by a backup
    allow_empty_source = false       # optional: let an empty volume replace its copy

    [layout]                         # relative roots: from the file's directory
    volumes_root = "/srv/volumes"
    backup_root = "/mnt/backup"

    [options]                        # every sync, both directions
    exclude = ["*.tmp"]
    [backup_options]                 # backups only (restore_options: restores)
    exclude = ["*.tmp", "cache/"]

    [hooks]                          # shell commands (/bin/sh -c)
    pre_backup = "systemctl stop myservice"
    post_backup = "systemctl start myservice"

    [snapshots]                      # optional: backups make snapshots, then prune
    keep_last = 3                    # keep_hourly/daily/weekly/monthly/yearly too
    keep_daily = 7
    allow_full_copies = false        # true: snapshot even where hard links fail

    volumes = ["main", { name = "logs", backup_options = { delete = false } }]

    [[syncs]]                        # custom paths; relative ones are under the roots
    name = "db"
    data_path = "main/db/"
    backup_path = "db/"
    options = { exclude = ["*.lock"] }

Options merge as in the facade (a later layer's ``exclude`` replaces):
backup = options < backup_options < entry.options < entry.backup_options
(< the caller's ``override``); restore likewise with the restore layers.

Every problem is a :class:`ConfigError` (a ValueError) with one line that
names the file and the key: ``backup.toml: volumes[1].optons: unknown key
(known: name, options, backup_options, restore_options)``.
"""

from __future__ import annotations

import os
import posixpath
import signal
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .backups import Backups, BackupSync, Layout, check_volume_name
from .engines import ENGINE_NAMES
from .options import OptionsLike, normalize_partial
from .snapshots import RetentionError, RetentionPolicy, policy_from_table

__all__ = ["Config", "ConfigEntry", "ConfigError", "HookError", "ShellHook", "HOOK_NAMES",
           "load_config", "read_config"]

HOOK_NAMES = ("pre_backup", "post_backup", "pre_restore", "post_restore")
OPTION_LAYERS = ("options", "backup_options", "restore_options")
_TOP_KEYS = ("engine", "data_version", "allow_empty_source", "layout", *OPTION_LAYERS, "hooks", "volumes", "syncs",
             "snapshots")
_SNAPSHOT_KEYS = ("allow_full_copies",)  # besides the keep_* of policy_from_table
_LAYOUT_KEYS = ("volumes_root", "backup_root")
_OPTION_KEYS = ("delete", "exclude")
_VOLUME_KEYS = ("name", *OPTION_LAYERS)
_SYNC_KEYS = ("name", "data_path", "backup_path", *OPTION_LAYERS)

_TOML_TYPES = {str: "a string", bool: "a boolean", int: "an integer", float: "a float",
               list: "an array", dict: "a table"}


class ConfigError(ValueError):
    """A config file that cannot be used: one line naming the file and key."""


class HookError(RuntimeError):
    """A hook command failed (non-zero exit status, or it could not start)."""

    def __init__(self, hook: str, command: str, status: int | None, message: str) -> None:
        super().__init__(message)
        self.hook, self.command, self.status = hook, command, status


# -- the parsed file -------------------------------------------------------------------

@dataclass(frozen=True)
class ConfigEntry:
    """One volume (``kind == "volume"``, by name) or custom sync."""

    kind: str
    key: str                          # where it is in the file, e.g. "syncs[0]"
    name: str | None = None
    data_path: str | None = None      # syncs: as written (may be relative)
    backup_path: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    backup_options: dict[str, Any] = field(default_factory=dict)
    restore_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    """A config file's contents, validated; :meth:`build` makes the facade."""

    path: str
    engine: str | None = None
    data_version: str | None = None
    allow_empty_source: bool = False
    volumes_root: str | None = None   # absolute (resolved from the file's directory)
    backup_root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    backup_options: dict[str, Any] = field(default_factory=dict)
    restore_options: dict[str, Any] = field(default_factory=dict)
    hooks: dict[str, str] = field(default_factory=dict)
    entries: tuple[ConfigEntry, ...] = ()
    snapshots: bool = False           # a [snapshots] table: backups make snapshots
    retention: RetentionPolicy | None = None
    allow_full_copies: bool = False

    @property
    def directory(self) -> str:
        return os.path.dirname(os.path.abspath(self.path))

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {problem}" if key else f"{self.path}: {problem}")

    def names(self) -> list[str]:
        return [e.name for e in self.entries if e.name is not None]

    def select(self, names: Sequence[str]) -> tuple[ConfigEntry, ...]:
        """The entries with these names, in the order given (all of them
        when ``names`` is empty)."""
        if not names:
            return self.entries
        by_name = {e.name: e for e in self.entries if e.name is not None}
        out = []
        for name in names:
            if name not in by_name:
                have = ", ".join(self.names()) or "none"
                raise ConfigError(f"{self.path}: no volume or sync named {name!r} "
                                  f"(named in the file: {have})")
            out.append(by_name[name])
        return tuple(out)

    def build(self, *, entries: Sequence[ConfigEntry] | None = None,
              volumes_root: str | None = None, backup_root: str | None = None,
              engine: str | None = None, override: OptionsLike = None,
              allow_empty_source: bool | None = None, snapshots: bool | None = None,
              allow_full_copies: bool | None = None,
              hook_log: Callable[[str, str], None] | None = None,
              hook_output: Callable[[str], None] | None = None) -> Backups:
        """The facade this file describes.  Arguments given here win over
        the file: the roots, the engine, ``entries`` (e.g. from
        :meth:`select`) and ``override``, an options layer above every
        other one (for both directions), ``allow_empty_source``, and
        ``snapshots`` / ``allow_full_copies`` (the file's [snapshots]
        table turns snapshots on, with its retention policy)."""
        try:
            layout = Layout(volumes_root=volumes_root or self.volumes_root or Layout.volumes_root,
                            backup_root=backup_root or self.backup_root or Layout.backup_root)
        except ValueError as exc:
            raise self.error("layout", str(exc)) from None
        top = normalize_partial(override)
        backups = Backups(layout=layout, engine=engine or self.engine, options=self.options,
                          allow_empty_source=self.allow_empty_source
                          if allow_empty_source is None else allow_empty_source)
        backups.set_backup_options(self.backup_options).set_restore_options(self.restore_options)
        if self.snapshots if snapshots is None else snapshots:
            backups.set_snapshots(retention=self.retention, allow_full_copies=self.allow_full_copies
                                  if allow_full_copies is None else allow_full_copies)
        for entry in (self.entries if entries is None else entries):
            layers = {"options": entry.options,
                      "backup_options": {**entry.backup_options, **top},
                      "restore_options": {**entry.restore_options, **top}}
            try:
                if entry.kind == "volume":
                    assert entry.name is not None  # (read_config: a volume has one)
                    backups.add_volume(entry.name, **layers)
                else:
                    assert entry.data_path is not None and entry.backup_path is not None
                    backups.add_sync(BackupSync(
                        data_path=_under(layout.volumes_root, entry.data_path),
                        backup_path=_under(layout.backup_root, entry.backup_path),
                        name=entry.name, **layers))
            except ValueError as exc:
                raise self.error(entry.key, str(exc)) from None
        env = {"SYNCENGINE_CONFIG": os.path.abspath(self.path),
               "SYNCENGINE_VOLUMES_ROOT": layout.volumes_root,
               "SYNCENGINE_BACKUP_ROOT": layout.backup_root}
        setters = {"pre_backup": backups.set_pre_backup, "post_backup": backups.set_post_backup,
                   "pre_restore": backups.set_pre_restore, "post_restore": backups.set_post_restore}
        for hook, command in self.hooks.items():
            setters[hook](ShellHook(hook, command, cwd=self.directory, env=env,
                                    log=hook_log, output=hook_output))
        return backups


def _under(root: str, path: str) -> str:
    """A relative sync path is under its root; a trailing slash is kept
    (it means "the contents" to rsync)."""
    return path if path.startswith("/") else posixpath.join(root, path)


# -- hooks --------------------------------------------------------------------------------

def _default_log(hook: str, command: str) -> None:
    print(f"syncengine: running {hook} hook: {command}", file=sys.stderr, flush=True)


def _default_output(line: str) -> None:
    sys.stderr.write(line)
    sys.stderr.flush()


class ShellHook:
    """A hook that runs a shell command (``/bin/sh -c COMMAND``) in ``cwd``.

    Before it runs, ``log(hook, command)`` announces it (default: one line
    on stderr).  The command's stdout and stderr are passed line by line to
    ``output`` (default: our stderr, so a machine-readable stdout stays
    clean).  Its environment adds ``SYNCENGINE_HOOK`` (the hook's name) and
    ``env``.  A non-zero exit status raises :class:`HookError`.
    """

    def __init__(self, hook: str, command: str, *, cwd: str | None = None,
                 env: Mapping[str, str] | None = None,
                 log: Callable[[str, str], None] | None = None,
                 output: Callable[[str], None] | None = None) -> None:
        self.hook, self.command, self.cwd = hook, command, cwd
        self.env = dict(env or {})
        self.log = log or _default_log
        self.output = output or _default_output

    def __repr__(self) -> str:
        return f"ShellHook({self.hook!r}, {self.command!r})"

    def __call__(self, effects: Any = None) -> None:
        self.log(self.hook, self.command)
        env = {**os.environ, **self.env, "SYNCENGINE_HOOK": self.hook}
        try:
            proc = subprocess.Popen(["/bin/sh", "-c", self.command], cwd=self.cwd, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except OSError as exc:
            raise HookError(self.hook, self.command, None,
                            f"{self.hook} hook could not start ({exc.strerror}): "
                            f"{self.command}") from None
        assert proc.stdout is not None
        with proc.stdout:
            for line in iter(proc.stdout.readline, b""):
                self.output(line.decode("utf-8", "replace"))
        status = proc.wait()
        if status < 0:
            try:
                name = signal.Signals(-status).name
            except ValueError:
                name = f"signal {-status}"
            raise HookError(self.hook, self.command, status,
                            f"{self.hook} hook was killed by {name}: {self.command}")
        if status:
            raise HookError(self.hook, self.command, status,
                            f"{self.hook} hook failed with exit status {status}: {self.command}")


# -- reading and validating -------------------------------------------------------------

def _type_name(value: Any) -> str:
    for kind, name in _TOML_TYPES.items():
        if isinstance(value, kind):
            return name
    return type(value).__name__


class _Reader:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {problem}" if key else f"{self.path}: {problem}")

    def table(self, value: Any, key: str, known: Sequence[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, not {_type_name(value)}")
        for name in value:
            if name not in known:
                where = f"{key}.{name}" if key else name
                hint = ""
                if key in ("layout", *OPTION_LAYERS, "hooks") and name in _TOP_KEYS:
                    # TOML puts a key written after [table] into that table.
                    hint = f"; to set the top-level {name!r}, write it before the first [table]"
                raise self.fail(where, f"unknown key (known: {', '.join(known)}){hint}")
        return value

    def string(self, value: Any, key: str, what: str = "a string") -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"must be {what}, not {_type_name(value)}")
        if not value:
            raise self.fail(key, "must not be empty")
        if "\0" in value:
            raise self.fail(key, "must not contain a NUL character")
        return value

    def options(self, value: Any, key: str) -> dict[str, Any]:
        table = self.table(value, key, _OPTION_KEYS)
        if "delete" in table and not isinstance(table["delete"], bool):
            raise self.fail(f"{key}.delete", f"must be true or false, not {_type_name(table['delete'])}")
        if "exclude" in table:
            patterns = table["exclude"]
            if not isinstance(patterns, list):
                raise self.fail(f"{key}.exclude",
                                f"must be an array of patterns, not {_type_name(patterns)}")
            for i, pattern in enumerate(patterns):
                if not isinstance(pattern, str):
                    raise self.fail(f"{key}.exclude[{i}]",
                                    f"must be a string, not {_type_name(pattern)}")
        try:
            return normalize_partial(table)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def layers(self, table: dict[str, Any], key: str) -> dict[str, Any]:
        return {layer: self.options(table[layer], f"{key}.{layer}" if key else layer)
                for layer in OPTION_LAYERS if layer in table}

    def snapshots(self, value: Any) -> dict[str, Any]:
        """The [snapshots] table: keep_* (the retention), allow_full_copies."""
        try:
            policy = policy_from_table(value, other_keys=_SNAPSHOT_KEYS)
        except RetentionError as exc:
            raise self.fail(f"snapshots.{exc.key}" if exc.key else "snapshots",
                            str(exc).removeprefix(f"{exc.key}: ")) from None
        allow = value.get("allow_full_copies", False)
        if not isinstance(allow, bool):
            raise self.fail("snapshots.allow_full_copies",
                            f"must be true or false, not {_type_name(allow)}")
        return {"snapshots": True, "retention": policy, "allow_full_copies": allow}

    def root(self, value: Any, key: str) -> str:
        text = self.string(value, key, "a path")
        return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(self.path)), text))


def read_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file (see the module doc)."""
    path = os.fspath(path)
    reader = _Reader(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise reader.fail("", f"invalid TOML: {exc}") from None
    except OSError as exc:
        raise reader.fail("", f"cannot read: {exc.strerror}") from None
    reader.table(data, "", _TOP_KEYS)

    kw: dict[str, Any] = {"path": path}
    if "engine" in data:
        engine = reader.string(data["engine"], "engine")
        if engine not in ENGINE_NAMES:
            raise reader.fail("engine", f"unknown engine {engine!r} (choose from "
                                        f"{', '.join(ENGINE_NAMES)})")
        kw["engine"] = engine
    if "data_version" in data:
        kw["data_version"] = reader.string(data["data_version"], "data_version")
    if "allow_empty_source" in data:
        allow = data["allow_empty_source"]
        if not isinstance(allow, bool):
            raise reader.fail("allow_empty_source", f"must be true or false, not {_type_name(allow)}")
        kw["allow_empty_source"] = allow
    if "layout" in data:
        layout = reader.table(data["layout"], "layout", _LAYOUT_KEYS)
        for key in _LAYOUT_KEYS:
            if key in layout:
                kw[key] = reader.root(layout[key], f"layout.{key}")
    kw.update(reader.layers(data, ""))
    if "hooks" in data:
        hooks = reader.table(data["hooks"], "hooks", HOOK_NAMES)
        kw["hooks"] = {name: reader.string(hooks[name], f"hooks.{name}", "a shell command")
                       for name in HOOK_NAMES if name in hooks}

    if "snapshots" in data:
        kw.update(reader.snapshots(data["snapshots"]))

    entries: list[ConfigEntry] = []
    names: dict[str, str] = {}

    def claim(name: str, key: str) -> None:
        if name in names:
            raise reader.fail(key, f"the name {name!r} is already used by {names[name]}")
        names[name] = key

    volumes = data.get("volumes", [])
    if not isinstance(volumes, list):
        raise reader.fail("volumes", f"must be an array of volume names or tables, "
                                     f"not {_type_name(volumes)}")
    for i, item in enumerate(volumes):
        key = f"volumes[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        table = reader.table(item, key, _VOLUME_KEYS)
        if "name" not in table:
            raise reader.fail(key, "missing key 'name'")
        name = reader.string(table["name"], f"{key}.name")
        try:
            check_volume_name(name)
        except ValueError as exc:
            raise reader.fail(f"{key}.name", str(exc)) from None
        claim(name, key)
        entries.append(ConfigEntry("volume", key, name=name, **reader.layers(table, key)))

    syncs = data.get("syncs", [])
    if not isinstance(syncs, list):
        raise reader.fail("syncs", f"must be an array of tables ([[syncs]]), "
                                   f"not {_type_name(syncs)}")
    for i, item in enumerate(syncs):
        key = f"syncs[{i}]"
        table = reader.table(item, key, _SYNC_KEYS)
        for required in ("data_path", "backup_path"):
            if required not in table:
                raise reader.fail(key, f"missing key {required!r}")
        sync_name: str | None = None
        if "name" in table:
            sync_name = reader.string(table["name"], f"{key}.name")
            claim(sync_name, key)
        entries.append(ConfigEntry(
            "sync", key, name=sync_name,
            data_path=reader.string(table["data_path"], f"{key}.data_path", "a path"),
            backup_path=reader.string(table["backup_path"], f"{key}.backup_path", "a path"),
            **reader.layers(table, key)))
    kw["entries"] = tuple(entries)
    return Config(**kw)


def load_config(path: str | os.PathLike[str], **build_kw: Any) -> tuple[Backups, Config]:
    """Read a config file and build its facade: ``(backups, config)``.
    ``build_kw`` goes to :meth:`Config.build` (roots, engine, override...)."""
    config = read_config(path)
    return config.build(**build_kw), config

