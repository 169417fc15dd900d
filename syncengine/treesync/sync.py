"""The walk: make DST what ``rsync -rlptgocAXH [--delete] [--exclude=P]...
--no-inc-recursive SRC... DST`` would make it.

Two passes over the source, both streaming directory by directory:
1. ``_Census`` counts entries and bytes (progress totals, rsync's
   single-item rule) and finds unreadable directories, which with
   ``--no-inc-recursive`` suppress every deletion;
2. ``TreeSync`` walks source and destination side by side: in each
   directory it deletes extraneous entries (delete-during, reverse order),
   then syncs non-directories, then recurses into subdirectories, and sets a
   directory's attributes after its contents.

Every destination operation is relative to a directory fd opened with
O_NOFOLLOW, so a symlink swapped into the destination cannot redirect it.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .filters import FilterRules
from .messages import locale_codec, rsync_escape
from .meta import MetaContext, apply_meta, read_src_meta
from .transfer import copy_data, open_temp, same_content, temp_name, unlink_quietly

__all__ = ["Cancelled", "Stats", "TreeSync", "run_sync"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NOATIME", 0)

# rsync's words for an entry type in "could not make way for new ...".
_TYPE_WORDS = {stat.S_IFREG: "regular file", stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink"}


class Cancelled(Exception):
    """Raised inside the walk when the job was cancelled."""


class Fatal(Exception):
    """An error that ends the run at once (rsync's exit_cleanup)."""

    def __init__(self, exit_code: int, *lines: str) -> None:
        super().__init__(lines[0] if lines else "")
        self.exit_code = exit_code
        self.lines = lines


@dataclass
class Stats:
    entries_total: int = 0
    bytes_total: int = 0
    entries_done: int = 0
    bytes_done: int = 0          # bytes of transferred files (rsync's progress figure)
    bytes_seen: int = 0          # bytes of regular files processed, transferred or not
    files_transferred: int = 0
    files_deleted: int = 0
    files_skipped: int = 0
    current: bytes = b""


def _join(rel: bytes, name: bytes) -> bytes:
    return rel + b"/" + name if rel else name


def _strerror(exc: OSError) -> str:
    return f"{os.strerror(exc.errno)} ({exc.errno})" if exc.errno else str(exc)


def _abs(path: bytes) -> str:
    """A path as rsync's messages show it: absolute, as str."""
    return os.fsdecode(os.path.abspath(path))


def _lstat_at(dirfd: int, name: bytes) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _list_names(dirfd: int) -> list[bytes]:
    """Names in a directory (bytes), without opening it a second time."""
    dup = os.dup(dirfd)
    try:
        with os.scandir(dup) as it:
            return [os.fsencode(entry.name) for entry in it]
    finally:
        os.close(dup)


@dataclass
class _Source:
    """One SRC argument: where its top entry lives and what it is called."""

    arg: bytes
    parent: bytes          # the directory the top entry is looked up in
    name: bytes            # b"." for the contents form (SRC/)
    rel: bytes             # its name for filters and messages ("" for SRC/)
    st: os.stat_result | None = None
    entries: int = 0
    size: int = 0
    unreadable: set[bytes] = field(default_factory=set)


def _parse_source(arg: bytes) -> _Source:
    if arg.endswith(b"/") or arg == b"." or arg.endswith(b"/."):
        return _Source(arg, arg, b".", b"")
    parent, name = os.path.split(arg)
    return _Source(arg, parent or b".", name, name)


class TreeSync:
    """One run.  ``out`` gets rsync's stdout lines, ``err`` its stderr lines."""

    def __init__(self, sources: Sequence[bytes | str], dest: bytes | str, *, delete: bool,
                 rules: FilterRules, out: Callable[[str], None], err: Callable[[str], None],
                 on_progress: Callable[[Stats], None] | None = None,
                 cancel: threading.Event | None = None) -> None:
        self.sources = [_parse_source(os.fsencode(s)) for s in sources]
        self.dest = os.fsencode(dest)
        self.delete = delete
        self.rules = rules
        # Lines go out as rsync prints them: names escaped (messages.py).
        codec = locale_codec()
        self.out = lambda line: out(rsync_escape(line, codec))
        self.err = lambda line: err(rsync_escape(line, codec))
        self.on_progress = on_progress
        self.cancel_event = cancel or threading.Event()
        self.stats = Stats()
        self.meta = MetaContext(errors=err)  # meta escapes its own lines
        self.partial = False         # rsync's io_error: ends in exit 23
        self.scan_error = False      # a source dir could not be read: no deletions
        self.vanished = False
        self._warned_no_delete = False
        self._links: dict[tuple[int, int], tuple[bytes, ...]] = {}   # -H: leader's dest path
        self._root_fd = -1

    # -- entry point ------------------------------------------------------
    def run(self) -> int:
        try:
            return self._run()
        except Fatal as fatal:
            for line in fatal.lines:
                self.err(line)
            return fatal.exit_code
        except Cancelled:
            self.err("rsync error: received SIGINT, SIGTERM, or SIGHUP (code 20)")
            return 20

    def _run(self) -> int:
        for source in self.sources:
            _Census(self, source).run()
        self.stats.entries_total = sum(s.entries for s in self.sources)
        self.stats.bytes_total = sum(s.size for s in self.sources)
        if self.stats.entries_total:
            self._transfer()
        return self._exit_code()

    def _exit_code(self) -> int:
        if self.partial or self.meta.had_error:
            self.err("rsync error: some files/attrs were not transferred (see previous errors) "
                     "(code 23)")
            return 23
        if self.vanished:
            self.err("rsync warning: some files vanished before they could be transferred "
                     "(code 24)")
            return 24
        return 0

    # -- where things go (rsync's get_local_name) ----------------------------
    def _transfer(self) -> None:
        sources = [s for s in self.sources if s.entries]
        total = self.stats.entries_total
        try:
            dst_st = os.stat(self.dest)  # the root may be a symlink to a dir: followed
        except FileNotFoundError:
            dst_st = None
        except OSError as exc:
            raise Fatal(3, f"ERROR: cannot stat destination {_abs(self.dest)}: {_strerror(exc)}")
        if dst_st is not None and not stat.S_ISDIR(dst_st.st_mode):
            if total > 1:
                raise Fatal(3, "ERROR: destination must be a directory when copying more than 1 file")
            if stat.S_ISDIR(sources[0].st.st_mode):
                raise Fatal(3, "ERROR: cannot overwrite non-directory with a directory")
        if dst_st is not None and stat.S_ISDIR(dst_st.st_mode):
            self._into_dir(self.dest, sources, created=False)
        elif total != 1 or self.dest.endswith(b"/"):
            try:
                os.mkdir(self.dest, 0o777)
            except OSError as exc:
                raise Fatal(11, f'rsync: [Receiver] mkdir "{_abs(self.dest)}" failed: '
                                f"{_strerror(exc)}")
            self._into_dir(self.dest, sources, created=True)
        else:
            parent, name = os.path.split(self.dest)
            try:
                parent_fd = os.open(parent or b".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as exc:
                raise Fatal(3, f'rsync: [Receiver] change_dir#3 "{_abs(parent or b".")}" failed: '
                               f"{_strerror(exc)}")
            try:
                self._root_fd = parent_fd
                self._send_top(sources[0], parent_fd, name)
            finally:
                os.close(parent_fd)

    def _into_dir(self, path: bytes, sources: list[_Source], created: bool) -> None:
        root_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._root_fd = root_fd
        try:
            for source in sources:
                if source.name == b".":
                    self._sync_root_contents(source, root_fd)
                else:
                    self._send_top(source, root_fd, source.name)
        finally:
            os.close(root_fd)

    def _send_top(self, source: _Source, dst_parent: int, dst_name: bytes) -> None:
        src_parent = os.open(source.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self._entry(src_parent, source.name if source.name != b"." else b".", source.st,
                        dst_parent, dst_name, source.rel or b".", (dst_name,), source)
        finally:
            os.close(src_parent)

    def _sync_root_contents(self, source: _Source, dst_fd: int) -> None:
        """SRC/ into an existing dir: its contents, then its attributes."""
        try:
            src_fd = os.open(source.arg, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            self._scan_failed(f'rsync: [sender] change_dir "{_abs(source.arg)}" failed: '
                              f"{_strerror(exc)}")
            return
        try:
            src_meta = read_src_meta(source.st, fd=src_fd, dirfd=src_fd, name=b".", ctx=self.meta)
            self._dir_contents(src_fd, dst_fd, b"", (), source)
            apply_meta(self.meta, src_meta, None, dirfd=dst_fd, name=b".", fd=dst_fd,
                       exact_time=False, is_new=False)
        finally:
            os.close(src_fd)
        self._done_entry(source.st)

    # -- one entry ----------------------------------------------------------
    def _entry(self, src_parent: int, name: bytes, st: os.stat_result, dst_parent: int,
               dst_name: bytes, rel: bytes, dst_path: tuple[bytes, ...], source: _Source) -> None:
        if self.cancel_event.is_set():
            raise Cancelled()
        self.stats.current = rel
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFDIR:
            self._dir(src_parent, name, st, dst_parent, dst_name, rel, dst_path, source)
            return
        if kind == stat.S_IFREG:
            self._file(src_parent, name, st, dst_parent, dst_name, rel, dst_path)
        elif kind == stat.S_IFLNK:
            self._symlink(src_parent, name, st, dst_parent, dst_name, rel)
        else:
            self.out(f'skipping non-regular file "{os.fsdecode(rel)}"')
            self.stats.files_skipped += 1
        self._done_entry(st)

    def _done_entry(self, st: os.stat_result) -> None:
        self.stats.entries_done += 1
        if stat.S_ISREG(st.st_mode):
            self.stats.bytes_seen += st.st_size
        if self.on_progress is not None:
            self.on_progress(self.stats)

    # -- directories ----------------------------------------------------------
    def _dir(self, src_parent: int, name: bytes, st: os.stat_result, dst_parent: int,
             dst_name: bytes, rel: bytes, dst_path: tuple[bytes, ...], source: _Source) -> None:
        dst_st = _lstat_at(dst_parent, dst_name)
        if dst_st is not None and not stat.S_ISDIR(dst_st.st_mode):
            if not self._make_way(dst_parent, dst_name, dst_st, stat.S_IFDIR, rel):
                return
            dst_st = None
        try:
            src_fd = os.open(name, _DIR_FLAGS, dir_fd=src_parent)
        except OSError as exc:
            if rel not in source.unreadable:
                self._scan_failed(f'rsync: [sender] opendir "{self._src_abs(source, rel)}" failed: '
                                  f"{_strerror(exc)}")
            src_fd = -1
        try:
            if dst_st is None:
                os.mkdir(dst_name, 0o700, dir_fd=dst_parent)
            dst_fd = os.open(dst_name, _DIR_FLAGS, dir_fd=dst_parent)
        except OSError as exc:
            if src_fd >= 0:
                os.close(src_fd)
            self._fail(f'rsync: [generator] recv_generator: mkdir "{os.fsdecode(rel)}" failed: '
                       f"{_strerror(exc)}")
            return
        try:
            if src_fd >= 0:
                src_meta = read_src_meta(st, fd=src_fd, dirfd=src_parent, name=name, ctx=self.meta)
                self._dir_contents(src_fd, dst_fd, rel, dst_path, source)
            else:
                src_meta = read_src_meta(st, fd=None, dirfd=src_parent, name=name, ctx=self.meta)
            apply_meta(self.meta, src_meta, None, dirfd=dst_parent, name=dst_name, fd=dst_fd,
                       exact_time=False, is_new=dst_st is None)
        finally:
            os.close(dst_fd)
            if src_fd >= 0:
                os.close(src_fd)
        self._done_entry(st)

    def _dir_contents(self, src_fd: int, dst_fd: int, rel: bytes, dst_path: tuple[bytes, ...],
                      source: _Source) -> None:
        entries = self._read_source_dir(src_fd, rel, source)
        if entries is None:
            return
        if self.delete:
            self._delete_extraneous(dst_fd, rel, {name for name, _ in entries})
        dirs = []
        for name, st in entries:
            if stat.S_ISDIR(st.st_mode):
                dirs.append((name, st))
            else:
                self._entry(src_fd, name, st, dst_fd, name, _join(rel, name), dst_path + (name,),
                            source)
        for name, st in dirs:
            self._entry(src_fd, name, st, dst_fd, name, _join(rel, name), dst_path + (name,), source)

    def _read_source_dir(self, src_fd: int, rel: bytes,
                         source: _Source) -> list[tuple[bytes, os.stat_result]] | None:
        """The sorted, filtered listing of one source dir; None if unreadable."""
        entries = []
        try:
            names = _list_names(src_fd)
        except OSError as exc:
            if rel not in source.unreadable:
                self._scan_failed(f'rsync: [sender] opendir "{self._src_abs(source, rel)}" failed: '
                                  f"{_strerror(exc)}")
            return None
        for name in sorted(names):
            try:
                st = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # gone before we got to it: rsync would not have listed it
            except OSError as exc:
                self._scan_failed(f'rsync: [sender] readlink_stat("{self._src_abs(source, _join(rel, name))}") '
                                  f"failed: {_strerror(exc)}")
                continue
            if not self.rules.excluded(_join(rel, name), stat.S_ISDIR(st.st_mode)):
                entries.append((name, st))
        return entries

    # -- deletion ---------------------------------------------------------------
    def _delete_extraneous(self, dst_fd: int, rel: bytes, keep: set[bytes]) -> None:
        if self.scan_error:
            if not self._warned_no_delete:
                self.out("IO error encountered -- skipping file deletion")
                self._warned_no_delete = True
            return
        for name in sorted(_list_names(dst_fd), reverse=True):
            if name in keep:
                continue
            st = _lstat_at(dst_fd, name)
            if st is None or self.rules.excluded(_join(rel, name), stat.S_ISDIR(st.st_mode)):
                continue
            self._delete(dst_fd, name, st, _join(rel, name), recurse=True)

    def _delete(self, dirfd: int, name: bytes, st: os.stat_result, rel: bytes, recurse: bool) -> bool:
        """Delete one destination entry (a dir with its unprotected contents).
        Returns True when it is gone."""
        if self.cancel_event.is_set():
            raise Cancelled()
        if stat.S_ISDIR(st.st_mode):
            if recurse:
                try:
                    fd = os.open(name, _DIR_FLAGS, dir_fd=dirfd)
                except OSError as exc:
                    self._fail(f"rsync: [generator] opendir({os.fsdecode(rel)}) failed: "
                               f"{_strerror(exc)}")
                    return False
                try:
                    for child in sorted(_list_names(fd), reverse=True):
                        child_st = _lstat_at(fd, child)
                        child_rel = _join(rel, child)
                        if child_st is None or self.rules.excluded(child_rel, stat.S_ISDIR(child_st.st_mode)):
                            continue
                        self._delete(fd, child, child_st, child_rel, recurse=True)
                finally:
                    os.close(fd)
            try:
                os.rmdir(name, dir_fd=dirfd)
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    self.out(f"cannot delete non-empty directory: {os.fsdecode(rel)}")
                else:
                    self._fail(f"rsync: [generator] delete_file: rmdir({os.fsdecode(rel)}) failed: "
                               f"{_strerror(exc)}")
                return False
        else:
            try:
                os.unlink(name, dir_fd=dirfd)
            except FileNotFoundError:
                return True
            except OSError as exc:
                self._fail(f"rsync: [generator] delete_file: unlink({os.fsdecode(rel)}) failed: "
                           f"{_strerror(exc)}")
                return False
        self.stats.files_deleted += 1
        return True

    def _make_way(self, dirfd: int, name: bytes, dst_st: os.stat_result, new_kind: int,
                  rel: bytes) -> bool:
        """Remove a destination entry of another type so ``new_kind`` can take
        its place.  Non-dirs are replaced by rename, so only dirs (and, for a
        new dir, non-dirs) are removed here."""
        if self._delete(dirfd, name, dst_st, rel, recurse=self.delete):
            return True
        self._fail(f"could not make way for new {_TYPE_WORDS[new_kind]}: {os.fsdecode(rel)}")
        return False

    # -- regular files ------------------------------------------------------------
    def _file(self, src_parent: int, name: bytes, st: os.stat_result, dst_parent: int,
              dst_name: bytes, rel: bytes, dst_path: tuple[bytes, ...]) -> None:
        dst_st = _lstat_at(dst_parent, dst_name)
        if dst_st is not None and stat.S_ISDIR(dst_st.st_mode):
            if not self._make_way(dst_parent, dst_name, dst_st, stat.S_IFREG, rel):
                return
            dst_st = None
        key = (st.st_dev, st.st_ino) if st.st_nlink > 1 else None
        if key is not None and key in self._links:
            self._hard_link(self._links[key], dst_parent, dst_name, dst_st, rel, dst_path)
            return
        try:
            src_fd = os.open(name, _FILE_FLAGS, dir_fd=src_parent)
        except OSError as exc:
            self._source_open_failed(exc, src_parent, name, rel)
            return
        try:
            src_st = os.fstat(src_fd)
            src_meta = read_src_meta(st, fd=src_fd, dirfd=src_parent, name=name, ctx=self.meta)
            if (dst_st is not None and stat.S_ISREG(dst_st.st_mode)
                    and dst_st.st_size == src_st.st_size
                    and self._same_as_dest(src_fd, dst_parent, dst_name)):
                self._update_in_place(src_meta, dst_parent, dst_name)
            elif not self._write_new(src_fd, src_st, src_meta, dst_parent, dst_name, rel):
                return
        finally:
            os.close(src_fd)
        if key is not None:
            self._links[key] = dst_path

    def _same_as_dest(self, src_fd: int, dst_parent: int, dst_name: bytes) -> bool:
        try:
            dst_fd = os.open(dst_name, _FILE_FLAGS, dir_fd=dst_parent)
        except OSError:
            return False
        try:
            return same_content(src_fd, dst_fd)
        finally:
            os.close(dst_fd)
            os.lseek(src_fd, 0, os.SEEK_SET)

    def _update_in_place(self, src_meta, dst_parent: int, dst_name: bytes) -> None:
        try:
            fd = os.open(dst_name, _FILE_FLAGS, dir_fd=dst_parent)
        except OSError as exc:
            self._fail(f'rsync: [generator] open "{os.fsdecode(dst_name)}" failed: {_strerror(exc)}')
            return
        try:
            apply_meta(self.meta, src_meta, os.fstat(fd), dirfd=dst_parent, name=dst_name, fd=fd,
                       exact_time=True, is_new=False)
        finally:
            os.close(fd)

    def _write_new(self, src_fd: int, src_st: os.stat_result, src_meta, dst_parent: int,
                   dst_name: bytes, rel: bytes) -> bool:
        """Copy to a temp file, give it its attributes, rename it over the
        target.  On any failure the temp file is removed."""
        tmp_fd, tmp = open_temp(dst_parent, dst_name, src_st.st_mode & 0o7777)
        try:
            try:
                copied = copy_data(src_fd, tmp_fd, src_st.st_size)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise Fatal(11, f'rsync: [receiver] write failed on "{_abs(self._dest_abs(rel))}": '
                                    f"{_strerror(exc)}",
                                "rsync error: error in file IO (code 11)")
                raise
            apply_meta(self.meta, src_meta, None, dirfd=dst_parent, name=tmp, fd=tmp_fd,
                       exact_time=True, is_new=True)
            os.rename(tmp, dst_name, src_dir_fd=dst_parent, dst_dir_fd=dst_parent)
        except BaseException:
            os.close(tmp_fd)
            unlink_quietly(dst_parent, tmp)
            raise
        os.close(tmp_fd)
        self.stats.files_transferred += 1
        self.stats.bytes_done += copied
        return True

    def _hard_link(self, leader: tuple[bytes, ...], dst_parent: int, dst_name: bytes,
                   dst_st: os.stat_result | None, rel: bytes, dst_path: tuple[bytes, ...]) -> None:
        """Make this follower a hard link to its group's first written member."""
        leader_dir = self._open_dest_dir(leader[:-1])
        try:
            leader_st = os.stat(leader[-1], dir_fd=leader_dir, follow_symlinks=False)
            if dst_st is not None and (dst_st.st_dev, dst_st.st_ino) == (leader_st.st_dev, leader_st.st_ino):
                return
            tmp = temp_name(dst_name)
            os.link(leader[-1], tmp, src_dir_fd=leader_dir, dst_dir_fd=dst_parent,
                    follow_symlinks=False)
            try:
                os.rename(tmp, dst_name, src_dir_fd=dst_parent, dst_dir_fd=dst_parent)
            except BaseException:
                unlink_quietly(dst_parent, tmp)
                raise
        except OSError as exc:
            self._fail(f'rsync: [generator] link "{os.fsdecode(rel)}" => '
                       f'"{os.fsdecode(b"/".join(leader))}" failed: {_strerror(exc)}')
        finally:
            if leader_dir != self._root_fd:
                os.close(leader_dir)

    def _open_dest_dir(self, parts: tuple[bytes, ...]) -> int:
        """Open a destination dir by its path below the root, one component
        at a time and never following a symlink."""
        fd = self._root_fd
        for part in parts:
            next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            if fd != self._root_fd:
                os.close(fd)
            fd = next_fd
        return fd

    # -- symlinks -------------------------------------------------------------------
    def _symlink(self, src_parent: int, name: bytes, st: os.stat_result, dst_parent: int,
                 dst_name: bytes, rel: bytes) -> None:
        try:
            target = os.readlink(name, dir_fd=src_parent)
        except OSError as exc:
            self._source_open_failed(exc, src_parent, name, rel)
            return
        src_meta = read_src_meta(st, fd=None, dirfd=src_parent, name=name, ctx=self.meta)
        dst_st = _lstat_at(dst_parent, dst_name)
        if dst_st is not None and stat.S_ISLNK(dst_st.st_mode):
            try:
                same = os.readlink(dst_name, dir_fd=dst_parent) == target
            except OSError:
                same = False
            if same:
                apply_meta(self.meta, src_meta, dst_st, dirfd=dst_parent, name=dst_name,
                           exact_time=False, is_new=False)
                return
        if dst_st is not None and stat.S_ISDIR(dst_st.st_mode):
            if not self._make_way(dst_parent, dst_name, dst_st, stat.S_IFLNK, rel):
                return
        tmp = temp_name(dst_name)
        try:
            os.symlink(target, tmp, dir_fd=dst_parent)
        except OSError as exc:
            self._fail(f'rsync: [receiver] symlink "{os.fsdecode(rel)}" -> '
                       f'"{os.fsdecode(target)}" failed: {_strerror(exc)}')
            return
        try:
            apply_meta(self.meta, src_meta, None, dirfd=dst_parent, name=tmp,
                       exact_time=False, is_new=True)
            os.rename(tmp, dst_name, src_dir_fd=dst_parent, dst_dir_fd=dst_parent)
        except BaseException:
            unlink_quietly(dst_parent, tmp)
            raise

    # -- errors -----------------------------------------------------------------------
    def _fail(self, line: str) -> None:
        self.err(line)
        self.partial = True

    def _scan_failed(self, line: str) -> None:
        self._fail(line)
        self.scan_error = True

    def _source_open_failed(self, exc: OSError, src_parent: int, name: bytes, rel: bytes) -> None:
        if exc.errno == errno.ENOENT:
            self.err(f'file has vanished: "{self._src_abs_rel(rel)}"')
            self.vanished = True
        else:
            self._fail(f'rsync: [sender] send_files failed to open "{self._src_abs_rel(rel)}": '
                       f"{_strerror(exc)}")

    def _src_abs(self, source: _Source, rel: bytes) -> str:
        base = source.arg if source.name == b"." else source.parent
        return _abs(os.path.join(base, rel) if rel else base)

    def _src_abs_rel(self, rel: bytes) -> str:
        source = self.sources[0]
        for candidate in self.sources:
            if candidate.rel and (rel == candidate.rel or rel.startswith(candidate.rel + b"/")):
                source = candidate
                break
        return self._src_abs(source, rel)

    def _dest_abs(self, rel: bytes) -> bytes:
        return os.path.join(self.dest, rel)


class _Census:
    """Pass 1: count what rsync's file list would hold for one source, and
    report unreadable directories as rsync's sender does while listing."""

    def __init__(self, run: TreeSync, source: _Source) -> None:
        self.run_ = run
        self.source = source

    def run(self) -> None:
        source, run = self.source, self.run_
        try:
            if source.name == b".":
                source.st = os.stat(source.arg)
                if not stat.S_ISDIR(source.st.st_mode):
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
            else:
                source.st = os.stat(source.arg.rstrip(b"/") or source.arg, follow_symlinks=False)
        except OSError as exc:
            verb = "change_dir" if source.name == b"." else "link_stat"
            run._fail(f'rsync: [sender] {verb} "{_abs(source.arg)}" failed: {_strerror(exc)}')
            if exc.errno != errno.ENOENT:
                run.scan_error = True
            return
        if source.rel and run.rules.excluded(source.rel, stat.S_ISDIR(source.st.st_mode)):
            return
        self._count(source.st)
        if stat.S_ISDIR(source.st.st_mode):
            try:
                fd = os.open(source.arg, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
                             | (0 if source.name == b"." else os.O_NOFOLLOW))
            except OSError as exc:
                self._unreadable(source.rel, exc)
                return
            self._walk(fd, source.rel)

    def _count(self, st: os.stat_result) -> None:
        self.source.entries += 1
        if stat.S_ISREG(st.st_mode):
            self.source.size += st.st_size

    def _unreadable(self, rel: bytes, exc: OSError) -> None:
        self.source.unreadable.add(rel or b".")
        self.run_._scan_failed(f'rsync: [sender] opendir "{self.run_._src_abs(self.source, rel)}" '
                               f"failed: {_strerror(exc)}")

    def _walk(self, fd: int, rel: bytes) -> None:
        """Count one directory's listing, then its subdirectories (closing
        each fd before descending keeps the walk to one open fd per level)."""
        rules = self.run_.rules
        subdirs = []
        try:
            try:
                names = _list_names(fd)
            except OSError as exc:
                self._unreadable(rel, exc)
                return
            for name in names:
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError:
                    continue
                child = _join(rel, name)
                is_dir = stat.S_ISDIR(st.st_mode)
                if rules.excluded(child, is_dir):
                    continue
                self._count(st)
                if is_dir:
                    subdirs.append(name)
            for name in subdirs:
                try:
                    sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    self._unreadable(_join(rel, name), exc)
                    continue
                self._walk(sub, _join(rel, name))
        finally:
            os.close(fd)


def run_sync(sources: Sequence[bytes | str], dest: bytes | str, *, delete: bool = True,
             excludes: Sequence[str] = (), out: Callable[[str], None] = print,
             err: Callable[[str], None] = print) -> int:
    """Convenience: one run with rsync's exclude list; returns the exit code."""
    return TreeSync(sources, dest, delete=delete, rules=FilterRules.from_excludes(excludes),
                    out=out, err=err).run()
