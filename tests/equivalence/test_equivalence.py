"""The equivalence suite: the native engine against the real rsync.

Each example draws a whole work dir (a source tree, a destination pre-state,
an ``outside`` canary; in a share of the examples a second source tree), an
exclude list, the trailing-slash forms (or, for several sources, a list of
arguments) and ``--delete`` or not (``strategies.cases``); builds it twice;
runs ``rsync -rlptgocAXH [--delete] [--exclude=P]... --no-inc-recursive SRC... DST``
on one copy and the native engine on the other; and compares exit codes,
messages and full snapshots, and checks that the sources did not change
(``harness.check``).  A failure shrinks to a minimal tree; the falsifying
``Case`` is valid Python to paste into ``test_regressions.py``.

Running it::

    python -m pytest tests/equivalence -q             # CI: 300 examples as root
                                                      # plus a share as nobody
    SYNCENGINE_EQUIV_EXAMPLES=1000 python -m pytest tests/equivalence
    HYPOTHESIS_PROFILE=thorough python -m pytest tests/equivalence   # 5000 examples
    SYNCENGINE_EQUIV_SEED=1234 python -m pytest tests/equivalence    # rerun a seed

The seed of each run is random and printed in pytest's header; failing
examples are also kept in ``.hypothesis/`` and replayed first next time.
``SYNCENGINE_EQUIV_RSYNC_TIMEOUT`` (seconds, default 8) bounds each rsync
run: rsync 3.5.0 can deadlock with ``-H`` (rsync-semantics §11).

The unprivileged share (``test_unprivileged.py``: a third as many examples)
runs both engines as nobody through ``setpriv``; see ``unprivileged.py`` for
how it finds a Python that nobody can execute, or else forks.

The whole directory takes about a minute with the defaults on two cores
(1000 examples: about three minutes).  Its files:

- ``strategies.py``: the generators (trees, destination pre-states,
  exclude lists, whole cases);
- ``harness.py``: one case through both engines, and every comparison;
- ``test_equivalence.py`` (this file), ``test_unprivileged.py``: the
  property tests; the latter also states rsync's rules for a non-root user;
- ``test_explicit.py``: issue 4's list of what the engine must do, case by
  case (argument forms and errors, types, -c, -H, deletion, §11);
- ``test_regressions.py``: every divergence the suite found, as its
  minimal case;
- ``test_refused_calls.py``, ``test_capabilities.py``,
  ``test_hardlinked_symlinks.py``: issue 14's families one by one
  (immutable, append-only and sticky-dir refusals; file capabilities
  across owner changes; symlinks that share an inode);
- ``test_rsync_bugs.py``: where rsync itself loses data or metadata, the
  native engine keeps the source's (README, known differences).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given, note, seed, settings

from .conftest import PROFILE, SEED
from .harness import check
from .strategies import cases

pytestmark = [pytest.mark.rsync, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


@pytest.mark.slow
@seed(SEED)
@settings(PROFILE)
@given(case=cases())
def test_equivalence(case, workbase):
    note(f"run seed {SEED}: rerun with SYNCENGINE_EQUIV_SEED={SEED}")
    check(case, workbase)



# `pytest -m "not slow"`: a short run of the same property (a developer's
# minute), each run on a new seed like the full one.
QUICK_EXAMPLES = int(os.environ.get("SYNCENGINE_EQUIV_QUICK_EXAMPLES", 25))


@seed(SEED)
@settings(PROFILE, max_examples=min(QUICK_EXAMPLES, PROFILE.max_examples))
@given(case=cases())
def test_equivalence_quick(case, workbase):
    note(f"run seed {SEED}: rerun with SYNCENGINE_EQUIV_SEED={SEED}")
    check(case, workbase)
