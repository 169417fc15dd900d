"""What rsync says: its message lines, the wording of its exit codes, and
how it escapes them.  Every line the native engine prints as rsync would
is made here, by a function named for what happened (the rsync function
or situation it comes from); the engines, the stand-in and the CLI take
exit-code wording and escaping from here too.

Message lines: rsync's roles prefix them -- ``[sender]`` reads the
source, ``[generator]`` decides and makes dirs, links and deletions,
``[receiver]`` writes files and sets attributes; ``[Receiver]`` is the
client side before the transfer starts.  Paths come as the caller formats
them: ``full_fname()`` (quoted, below the receiver's cwd) for destination
names, ``sender_abs()`` for source paths.

Escaping: rsync passes every message through ``rwrite()`` (log.c).  Names
are raw bytes there, and it makes them safe for a terminal:

- with a character set from the locale (``nl_langinfo(CODESET)``, checked
  with ``iconv``), each byte that is not part of a valid character becomes
  ``\\#ooo`` (three octal digits); of the valid text, control characters
  below space other than tab become ``\\#ooo`` (``filtered_fwrite`` without
  ``isprint``).  So in a UTF-8 locale ``café`` prints as is and
  ``caf\\xe9`` as ``caf\\#351``; in the C locale (ASCII) both are escaped.
- without one, every byte that is not printable ASCII (tab excepted) is
  escaped.
- A backslash that starts ``\\#`` and three digits becomes ``\\#134``, so
  the output stays unambiguous.

:func:`rsync_escape` does the same for a line built as ``str`` (names
carried with ``os.fsdecode``'s surrogate escapes).
"""

from __future__ import annotations

import codecs
import os
import re
import stat


def locale_codec() -> str | None:
    try:
        # (the C module: ``locale`` re-exports these, and costs a ms to import)
        import _locale
        return codecs.lookup(_locale.nl_langinfo(_locale.CODESET)).name
    except (ImportError, AttributeError, LookupError, ValueError):
        return None


def _filtered(run: bytes, out: bytearray) -> None:
    """filtered_fwrite(use_isprint=0) over a run of valid characters."""
    n = len(run)
    for i, b in enumerate(run):
        if (b == 0x5C and i < n - 4 and run[i + 1] == 0x23 and run[i + 2:i + 5].isdigit()) \
                or (b < 0x20 and b != 0x09):
            out += b"\\#%03o" % b
        else:
            out.append(b)


_UTF8_MIN = {2: 0x80, 3: 0x800, 4: 0x10000, 5: 0x200000, 6: 0x4000000}


# A lead byte's range and the length of the sequence it starts.
_UTF8_LEADS = ((2, 0xC0, 0xDF), (3, 0xE0, 0xEF), (4, 0xF0, 0xF7), (5, 0xF8, 0xFB), (6, 0xFC, 0xFD))


def _utf8_char_len(raw: bytes, i: int) -> int:
    """Length of the character at ``raw[i]`` as glibc's UTF-8 iconv accepts
    it (the old 5- and 6-byte forms and values above U+10FFFF included;
    overlong forms and surrogates refused), 0 if invalid."""
    lead = raw[i]
    if lead < 0x80:
        return 1
    size = next((n for n, low, high in _UTF8_LEADS if low <= lead <= high), 0)
    if not size:
        return 0
    tail = raw[i + 1:i + size]
    if len(tail) != size - 1 or any(not 0x80 <= c <= 0xBF for c in tail):
        return 0
    value = lead & (0x7F >> size)
    for c in tail:
        value = (value << 6) | (c & 0x3F)
    if value < _UTF8_MIN[size] or 0xD800 <= value <= 0xDFFF:
        return 0
    return size


def _char_len(raw: bytes, i: int, codec: str) -> int:
    if codec == "utf-8":
        return _utf8_char_len(raw, i)
    for size in range(1, 7):
        try:
            raw[i:i + size].decode(codec)
            return size
        except UnicodeDecodeError as exc:
            if exc.reason not in ("unexpected end of data", "incomplete multibyte sequence"):
                return 0
    return 0


def rsync_escape(line: str, codec: str | None = "locale") -> str:
    """``line`` as rsync would print it (see the module doc), as ``str``
    with ``os.fsdecode``'s surrogate escapes for bytes that stay raw.
    ``codec``: the locale's character set by default; None for rsync's
    path without iconv."""
    if codec == "locale":
        codec = locale_codec()
    raw = os.fsencode(line)
    out = bytearray()
    if codec is None:
        for i, b in enumerate(raw):
            if b == 0x5C and i < len(raw) - 4 and raw[i + 1] == 0x23 \
                    and raw[i + 2:i + 5].isdigit():
                out += b"\\#134"
            elif (b < 0x20 and b != 0x09) or b >= 0x7F:
                out += b"\\#%03o" % b
            else:
                out.append(b)
        return os.fsdecode(bytes(out))
    start = pos = 0
    while pos < len(raw):
        size = _char_len(raw, pos, codec)
        if size:
            pos += size
            continue
        # iconv stops at a bad byte: the text so far is written, the byte
        # escaped, and conversion goes on after it.
        _filtered(raw[start:pos], out)
        out += b"\\#%03o" % raw[pos]
        start = pos = pos + 1
    _filtered(raw[start:], out)
    return os.fsdecode(bytes(out))


_OCTAL = re.compile(rb"\\#([0-7]{3})")


def unescape(line: str) -> str:
    """The raw line behind an escaped one: every ``\\#ooo`` back to its
    byte.  Escaping is injective (a literal ``\\#ddd`` has its backslash
    escaped), so ``rsync_escape(unescape(x))`` re-escapes a line that was
    escaped for another locale, and leaves a correctly escaped one as is."""
    return os.fsdecode(_OCTAL.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]),
                                  os.fsencode(line)))


# -- exit codes -------------------------------------------------------------------
# rsync's exit codes (rsync(1), "EXIT VALUES").
EXIT_MESSAGES = {
    0: "success",
    1: "syntax or usage error",
    2: "protocol incompatibility",
    3: "errors selecting input/output files, dirs",
    4: "requested action not supported",
    5: "error starting client-server protocol",
    10: "error in socket IO",
    11: "error in file IO",
    12: "error in rsync protocol data stream",
    13: "errors with program diagnostics",
    14: "error in IPC code",
    20: "received SIGINT, SIGTERM, or SIGHUP",
    21: "some error returned by waitpid()",
    22: "error allocating core memory buffers",
    23: "some files/attrs were not transferred (see previous errors)",
    24: "some files vanished before they could be transferred",
    25: "the --max-delete limit stopped deletions",
    30: "timeout in data send/receive",
    35: "timeout waiting for daemon connection",
}

# 24 (source files vanished during the run) is a warning, not a failure.
WARNING_EXIT_CODES = frozenset({24})


def exit_line(code: int) -> str:
    """rsync's last line for a non-zero exit code (log.c ``log_exit()``)."""
    kind = "warning" if code in WARNING_EXIT_CODES else "error"
    return f"rsync {kind}: {EXIT_MESSAGES.get(code, 'unexplained error')} (code {code})"


def is_exit_line(line: str) -> bool:
    return line.startswith(("rsync error:", "rsync warning:"))


# -- names and errors in messages -------------------------------------------------
def strerror(error: OSError | int) -> str:
    """An errno as rsync shows it: ``No such file or directory (2)``."""
    if isinstance(error, int):
        return f"{os.strerror(error)} ({error})"
    return f"{os.strerror(error.errno)} ({error.errno})" if error.errno else str(error)


def sender_abs(path: bytes) -> str:
    """A path as rsync's sender messages show it: absolute, as str."""
    return os.fsdecode(os.path.abspath(path))


def full_fname(path: bytes) -> str:
    """rsync's full_fname() of a path from the command line, as str: a
    relative one joined to the cwd as it was given (slashes and dots
    kept)."""
    if path.startswith(b"/"):
        return os.fsdecode(path)
    return os.fsdecode(os.getcwdb().rstrip(b"/") + b"/" + path)


# rsync's words for an entry type in "could not make way for new ...".
TYPE_WORDS = {stat.S_IFREG: "regular file", stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink"}
SKIP_DIR = "*** Skipping any contents from this failed directory ***"
NO_DELETION = "IO error encountered -- skipping file deletion"
# Lines of rsync's sender while it sends files (they come after the lines
# it read before: see TreeSync.err).
SENDER_LINES = ("rsync: [sender] ", "file has vanished: ")
# Error lines of rsync's generator and receiver, which they write straight
# to stderr, escaped without the locale's charset (see TreeSync.__init__).
SERVER_SIDE = ("rsync: [generator]", "rsync: [receiver]", "rsync: [Receiver]",
               "could not make way for new ", SKIP_DIR)


# -- the client, before the transfer (main.c) -----------------------------------
DEST_NOT_A_DIR = "ERROR: destination must be a directory when copying more than 1 file"
DIR_OVER_NON_DIR = "ERROR: cannot overwrite non-directory with a directory"


def cannot_stat_destination(path: str, error: OSError) -> str:
    return f'rsync: [Receiver] ERROR: cannot stat destination "{path}": {strerror(error)}'


def change_dir_failed(how: str, path: str, error: OSError) -> str:
    """``how``: which of get_local_name()'s change_dir calls (#1, #2, #3)."""
    return f'rsync: [Receiver] {how} "{path}" failed: {strerror(error)}'


def mkdir_dest_failed(path: str, error: OSError) -> str:
    return f'rsync: [Receiver] mkdir "{path}" failed: {strerror(error)}'


def created_directory(name: bytes) -> str:
    return f"created directory {os.fsdecode(name)}"


# -- the sender (flist.c, sender.c) -----------------------------------------------
def sender_failed(call: str, path: str, error: OSError) -> str:
    """``call``: change_dir, link_stat or opendir of a source path."""
    return f'rsync: [sender] {call} "{path}" failed: {strerror(error)}'


def readlink_stat_failed(path: str, error: OSError) -> str:
    return f'rsync: [sender] readlink_stat("{path}") failed: {strerror(error)}'


def send_files_failed(path: str, error: OSError) -> str:
    return f'rsync: [sender] send_files failed to open "{path}": {strerror(error)}'


def vanished(path: str) -> str:
    return f'file has vanished: "{path}"'


def read_errors_mapping(path: str, error: int) -> str:
    return f'rsync: [sender] read errors mapping "{path}": {strerror(error)}'


# The sender's complaint when the receiver died of a write error.
SENDER_BROKEN_PIPE = "rsync: [sender] write error: Broken pipe (32)"


def skipping_non_regular(rel: bytes) -> str:
    return f'skipping non-regular file "{os.fsdecode(rel)}"'


# -- the generator (generator.c, delete.c, hlink.c) -------------------------------
def mkdir_failed(name: str, error: OSError) -> str:
    return f"rsync: [generator] recv_generator: mkdir {name} failed: {strerror(error)}"


def failed_to_stat(name: str, error: int) -> str:
    return f"rsync: [generator] recv_generator: failed to stat {name}: {strerror(error)}"


def generator_stat_failed(name: str, error: OSError | int) -> str:
    return f"rsync: [generator] stat {name} failed: {strerror(error)}"


def generator_opendir_failed(name: str, error: OSError) -> str:
    return f"rsync: [generator] opendir {name} failed: {strerror(error)}"


def generator_readlink_stat_failed(name: str, error: int) -> str:
    return f"rsync: [generator] readlink_stat({name}) failed: {strerror(error)}"


def modify_permissions_failed(name: str, error: OSError) -> str:
    return f"rsync: [generator] failed to modify permissions on {name}: {strerror(error)}"


def cannot_delete_non_empty(rel: bytes) -> str:
    return f"cannot delete non-empty directory: {os.fsdecode(rel)}"


def delete_failed(call: str, rel: bytes, error: OSError) -> str:
    """``call``: rmdir or unlink."""
    return f"rsync: [generator] delete_file: {call}({os.fsdecode(rel)}) failed: {strerror(error)}"


def could_not_make_way(kind: int, rel: bytes) -> str:
    return f"could not make way for new {TYPE_WORDS[kind]}: {os.fsdecode(rel)}"


def create_failed(call: str, name: str, what: str, error: OSError) -> str:
    """atomic_create(): ``call`` link or symlink, ``what`` "=> leader" or
    '-> "target"'."""
    return f"rsync: [generator] {call} {name} {what} failed: {strerror(error)}"


def generator_rename_failed(temp: str, name: str, error: OSError) -> str:
    # (sic: rsync quotes full_fname()'s quoted name again)
    return f'rsync: [generator] rename {temp} -> "{name}" failed: {strerror(error)}'


def default_acl_refused(rel: bytes) -> str:
    """get_acl() asking a file, just made over an old dir, for a default ACL."""
    return (f"rsync: [generator] get_acl: sys_acl_get_file({os.fsdecode(rel)}, "
            f"ACL_TYPE_DEFAULT): Permission denied (13)")


def copy_xattrs_failed(why: str) -> str:
    return f"rsync: [generator] gen_entry_copy_xattrs: {why}"


def openat_failed(path: str, error: int) -> str:
    return f'openat("{path}") failed: {strerror(error)}'


def secure_open_failed(path: str, error: int) -> str:
    return f'secure open of "{path}" failed: {strerror(error)}'


def secure_open_basis_failed(path: bytes, error: OSError) -> str:
    return f'secure open of basis "{os.fsdecode(path)}" failed: {strerror(error)}'


def basis_open_failed(path: bytes, error: OSError) -> str:
    return f'rsync: [generator] open "{os.fsdecode(path)}": {strerror(error)}'


# -- the receiver (receiver.c) ------------------------------------------------------
def receiver_stat_failed(name: str, error: OSError | int) -> str:
    return f"rsync: [receiver] stat {name} failed: {strerror(error)}"


def mkstemp_failed(name: str, error: OSError, role: str = "receiver") -> str:
    """``role``: generator when it copies a --link-dest match locally
    (generator.c copy_altdest_file() -> open_tmpfile())."""
    return f"rsync: [{role}] mkstemp {name} failed: {strerror(error)}"


def write_failed(path: str, error: OSError) -> str:
    return f'rsync: [receiver] write failed on "{path}": {strerror(error)}'


def finish_rename_failed(temp: str, rel: bytes, error: OSError, role: str = "receiver") -> str:
    """finish_transfer()'s rename (``role`` as for mkstemp_failed)."""
    return f'rsync: [{role}] rename {temp} -> "{os.fsdecode(rel)}": {strerror(error)}'


def failed_verification(rel: bytes) -> str:
    return f"ERROR: {os.fsdecode(rel)} failed verification -- update discarded."


# -- attributes (rsync.c, xattrs.c, acls.c), by any role ------------------------------
def attr_call_failed(role: str, what: str, error: int) -> str:
    """An attribute call that failed: ``what`` names it as rsync does
    (``failed to set times on "…"``, ``chown "…" failed``, …)."""
    return f"rsync: [{role}] {what}: {strerror(error)}"


# What rsync calls a failed attribute call (MetaContext.report adds the role
# and the errno).  ``name``: quoted, as full_fname() quotes it.
def llistxattr_call(name: str) -> str:
    return f"get_xattr_names: llistxattr({name},1024) failed"


def lgetxattr_call(name: str, attr: bytes) -> str:
    return f'get_xattr_data: lgetxattr({name},"{os.fsdecode(attr)}",0) failed'


def xacl_get_call(name: str, acl_type: str) -> str:
    return f"get_acl: xacl_get({name}, {acl_type})"


def stat_call(name: str) -> str:
    return f"stat {name} failed"


def chown_call(name: str, owner: bool) -> str:
    return f"{'chown' if owner else 'chgrp'} {name} failed"


def set_times_call(name: str) -> str:
    return f"failed to set times on {name}"


def set_permissions_call(name: str) -> str:
    return f"failed to set permissions on {name}"


def setxattr_call(prefix: str, name: str, attr: bytes) -> str:
    """``prefix``: "l" for a symlink's lsetxattr, else ""."""
    return f'rsync_xal_set: {prefix}setxattr({name},"{os.fsdecode(attr)}") failed'


def removexattr_call(prefix: str, name: str, attr: bytes) -> str:
    return f'rsync_xal_set: {prefix}removexattr({name},"{os.fsdecode(attr)}") failed'


def set_acl_call(setter: str, name: str, acl_type: str) -> str:
    return f"set_acl: {setter}({name}, {acl_type})"


def delete_default_acl_call(name: str) -> str:
    return f"set_acl: sys_acl_delete_def_file({name})"
