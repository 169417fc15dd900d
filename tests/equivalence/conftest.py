"""Settings and fixtures of the equivalence suite (see test_equivalence.py)."""

from __future__ import annotations

import os
import secrets
import sys

import pytest
from hypothesis import HealthCheck, settings

# The native engine raises Python's recursion limit for deep trees; raise it
# before hypothesis starts, which otherwise warns that it changed.
sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))

EXAMPLES = int(os.environ.get("SYNCENGINE_EQUIV_EXAMPLES", 300))
# One seed per run, printed in the header: random, but reproducible with
# SYNCENGINE_EQUIV_SEED=<seed>.
SEED = int(os.environ.get("SYNCENGINE_EQUIV_SEED") or secrets.randbits(32))

_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
settings.register_profile("equivalence", max_examples=EXAMPLES, **_COMMON)
settings.register_profile(
    "thorough", max_examples=int(os.environ.get("SYNCENGINE_EQUIV_EXAMPLES", 5000)), **_COMMON)
PROFILE_NAME = "thorough" if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else "equivalence"
PROFILE = settings.get_profile(PROFILE_NAME)


def header() -> str:
    """The run's equivalence settings, for the session header (tests/conftest.py)."""
    return (f"equivalence suite: profile {PROFILE_NAME!r}, {PROFILE.max_examples} examples, "
            f"seed {SEED} (rerun with SYNCENGINE_EQUIV_SEED={SEED})")


@pytest.fixture(scope="module")
def workbase(tmp_path_factory: pytest.TempPathFactory):
    """A directory for the examples' work dirs (one pair at a time)."""
    return tmp_path_factory.mktemp("equiv")
