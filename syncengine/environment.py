"""What a syncengine process takes from its environment, read once at its
edge (the engines, the stand-in, the command) and handed on as values:
nothing under ``treesync/`` reads the environment.

- ``SYNCENGINE_PRECHECK=0`` / ``SYNCENGINE_WRITER=0``: the native engine's
  helpers off (the re-run look-ahead, the initial copy's writer process),
  as on one CPU.
- ``SYNCENGINE_ACL_BACKEND=raw``: ACLs through the kernel's
  ``system.posix_acl_*`` xattrs, even where pylibacl is installed.
- ``SYNCENGINE_CRASH_AFTER=N`` / ``SYNCENGINE_STALL_AFTER=N`` (with
  ``SYNCENGINE_STALL_SECONDS``): the test-only crash hook
  (treesync/faults.py), armed for the whole process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .treesync import faults
from .treesync.model import Tuning

__all__ = ["arm_crash_hook", "tuning_from_environment"]

PRECHECK = "SYNCENGINE_PRECHECK"
WRITER = "SYNCENGINE_WRITER"
ACL_BACKEND = "SYNCENGINE_ACL_BACKEND"
CRASH_AFTER = "SYNCENGINE_CRASH_AFTER"
STALL_AFTER = "SYNCENGINE_STALL_AFTER"
STALL_SECONDS = "SYNCENGINE_STALL_SECONDS"


def tuning_from_environment(environ: Mapping[str, str] = os.environ) -> Tuning:
    # (only "raw" is honoured, as before: "libacl" without pylibacl would
    # fail the run; anything else means the default)
    return Tuning(precheck=environ.get(PRECHECK, "1") != "0",
                  writer=environ.get(WRITER, "1") != "0",
                  acl_backend="raw" if environ.get(ACL_BACKEND) == "raw" else None)


def arm_crash_hook(environ: Mapping[str, str] = os.environ) -> None:
    """Arm the crash hook when the environment asks for it (tests only)."""
    if environ.get(CRASH_AFTER):
        faults.arm(int(_number(environ, CRASH_AFTER, -1)))
    elif environ.get(STALL_AFTER):
        faults.arm(int(_number(environ, STALL_AFTER, -1)),
                   stall=_number(environ, STALL_SECONDS, 1.5))


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    value = environ.get(name, "").strip()
    try:
        return float(value) if value else default
    except ValueError:
        return default
