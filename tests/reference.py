"""The reference rsync: the one build the native engine is proven against.

The native engine reproduces rsync 3.5.0 *as Debian 13 packages it*.  Other
builds differ where it shows (an upstream 3.5.0, or Debian 12's rsync, say
``readlink_stat … failed`` and exit 0 in unprivileged cases where Debian 13's
says ``opendir … failed`` and exits 23), so the equivalence tests (every test
that runs rsync as the oracle) use exactly that build:

- ``SYNCENGINE_REFERENCE_RSYNC``, when set, names it (``tools/reference-rsync``
  prints the path of one it fetched from Debian 13's packages);
- else the system's rsync, when it is that build (``/usr/bin/rsync`` from the
  Debian package ``3.5.0+ds1-…deb13…``);
- else the test fails under ``SYNCENGINE_REQUIRE_RSYNC=1`` with one line
  saying how to get it, and skips otherwise.  Never silently.

The rsync *engine* is different: it runs whatever rsync the system has, and
its own tests use that (``conftest.rsync_path_or_skip``).
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REFERENCE_ENV = "SYNCENGINE_REFERENCE_RSYNC"
REQUIRE_ENV = "SYNCENGINE_REQUIRE_RSYNC"
PACKAGE_PATTERN = "3.5.0+ds1-*deb13*"      # Debian 13's rsync 3.5.0, any revision
FETCH_SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "reference-rsync"
HOW_TO_GET = (f"run `export {REFERENCE_ENV}=$({FETCH_SCRIPT.relative_to(FETCH_SCRIPT.parents[1])})` "
              "to fetch it from Debian 13's packages (the system is not touched)")


@dataclass(frozen=True)
class Reference:
    path: str             # what to execute (the system binary or the wrapper)
    binary: str           # the rsync executable itself, for its sha256
    package: str          # Debian package version
    origin: str           # "system" or "SYNCENGINE_REFERENCE_RSYNC"

    def sha256(self) -> str:
        return hashlib.sha256(Path(self.binary).read_bytes()).hexdigest()

    def describe(self) -> str:
        return (f"reference rsync: {self.path} (Debian package rsync {self.package}, "
                f"from {self.origin}; sha256 of {self.binary}: {self.sha256()})")


def _system_package_version() -> str | None:
    try:
        proc = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "rsync"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def _wrapped_binary(wrapper: str) -> tuple[str, str]:
    """(rsync binary, package version) of a wrapper made by tools/reference-rsync:
    its cache folder holds ``root/usr/bin/rsync`` and ``package-version``."""
    cache = Path(wrapper).resolve().parent
    binary, version_file = cache / "root" / "usr" / "bin" / "rsync", cache / "package-version"
    if not binary.is_file() or not version_file.is_file():
        return os.path.realpath(wrapper), "unknown (not made by tools/reference-rsync)"
    return str(binary), version_file.read_text().strip()


@functools.cache
def find_reference() -> Reference | str:
    """The reference rsync, or the one-line reason there is none here."""
    named = os.environ.get(REFERENCE_ENV)
    if named:
        if not (os.path.isfile(named) and os.access(named, os.X_OK)):
            return f"{REFERENCE_ENV}={named} is not an executable file; {HOW_TO_GET}"
        if os.path.realpath(named) == "/usr/bin/rsync":      # the system's, named
            binary, package = "/usr/bin/rsync", _system_package_version() or "unknown"
        else:
            binary, package = _wrapped_binary(named)
        if not fnmatch.fnmatchcase(package, PACKAGE_PATTERN):
            return (f"{REFERENCE_ENV}={named} is rsync {package}, not Debian 13's "
                    f"3.5.0; {HOW_TO_GET}")
        return Reference(named, binary, package, REFERENCE_ENV)
    system = shutil.which("rsync")
    if system is None:
        return f"rsync is not installed and {REFERENCE_ENV} is not set; {HOW_TO_GET}"
    package = _system_package_version()
    if os.path.realpath(system) == "/usr/bin/rsync" and package \
            and fnmatch.fnmatchcase(package, PACKAGE_PATTERN):
        return Reference(system, "/usr/bin/rsync", package, "system")
    return (f"the system's rsync ({system}, package {package or 'unknown'}) is not the "
            f"reference, Debian 13's rsync 3.5.0; {HOW_TO_GET}")


def reference_rsync() -> str:
    """The path of the reference rsync; fail (SYNCENGINE_REQUIRE_RSYNC=1) or
    skip, with the one-line reason, when this machine has none."""
    found = find_reference()
    if isinstance(found, Reference):
        return found.path
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{found} ({REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(found)
