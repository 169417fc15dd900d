"""Load: a tree synced, mutated at random and re-synced, round after round,
by the native engine in one process, compared with real rsync (on its own
copy with the same history) every round; the engine's memory stays flat.

CI runs it small (3,000 entries, 4 rounds).  The full size::

    SYNCENGINE_SOAK_ENTRIES=100000 SYNCENGINE_SOAK_ROUNDS=6 \\
        python -m pytest tests/safety/test_soak.py -m slow

Memory is measured with tracemalloc around each run (Python allocations:
the engine holds only hard-link bookkeeping and failures, never the tree),
after a garbage collection: what stays allocated after a run must not grow
from round to round, and each run's peak must not either.
"""

from __future__ import annotations

import gc
import os
import random
import time
import tracemalloc

import pytest

from fixtures.treespec import build_tree
from tests.snapshot import diff_snapshots, snapshot

from .helpers import lines, mutate_tree, native, random_tree, rsync_tree

pytestmark = [pytest.mark.slow, pytest.mark.rsync]

ENTRIES = int(os.environ.get("SYNCENGINE_SOAK_ENTRIES", 3000))
ROUNDS = int(os.environ.get("SYNCENGINE_SOAK_ROUNDS", 4))
MiB = 1 << 20


def test_soak_rounds_match_rsync_and_memory_stays_flat(tmp_path):
    seed = int(os.environ.get("SYNCENGINE_SAFETY_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    build_tree(tmp_path, random_tree(rng, "src", ENTRIES))
    src, ours, theirs = tmp_path / "src", tmp_path / "ours", tmp_path / "theirs"
    currents, peaks, timings = [], [], []
    tracemalloc.start()
    try:
        for round_no in range(1, ROUNDS + 1):
            if round_no > 1:
                mutate_tree(rng, src, max(20, ENTRIES // 20), round_no)
            source = snapshot(src)
            gc.collect()
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            started = time.monotonic()
            code, out, err = native([f"{src}/"], str(ours))
            timings.append(time.monotonic() - started)
            gc.collect()
            current, peak = tracemalloc.get_traced_memory()
            currents.append(current - base)   # what the run left allocated
            peaks.append(peak - base)         # what the run needed at most
            real = rsync_tree(f"{src}/", str(theirs))
            context = f"round {round_no} of {ROUNDS} ({ENTRIES} entries, seed {seed})"
            assert code == real.returncode, f"{context}: {err} / {real.stderr!r}"
            assert sorted(err) == sorted(lines(real.stderr, (str(theirs), str(ours)))), context
            assert sorted(out) == sorted(lines(real.stdout, (str(theirs), str(ours)))), context
            diff = diff_snapshots(snapshot(theirs), snapshot(ours))
            assert not diff, f"{context}:\n" + "\n".join(diff[:30])
            assert snapshot(src) == source, f"{context}: the source changed"
    finally:
        tracemalloc.stop()
    report = ", ".join(f"{c / MiB:.2f}/{p / MiB:.2f} MiB in {s:.2f} s"
                       for c, p, s in zip(currents, peaks, timings, strict=True))
    print(f"\nsoak: {ENTRIES} entries, {ROUNDS} rounds: {report}")
    # Nothing accumulates from run to run (the first run may fill caches)...
    assert max(currents[1:]) <= 256 * 1024, f"runs leave memory behind: {report}"
    # ... no run needs more than the previous ones did, give or take...
    assert max(peaks[1:]) <= 1.5 * peaks[1] + 1 * MiB, f"peak memory grows: {report}"
    # ... and the engine does not hold the tree: besides the first run's
    # imports, a run needs about 1 MiB plus its hard-link bookkeeping (a few
    # tens of bytes per entry here; a list of every name would be more).
    assert max(peaks[1:]) < 1 * MiB + ENTRIES * 200, f"peak memory too high: {report}"
    assert peaks[0] < 8 * MiB + ENTRIES * 200, f"peak memory too high: {report}"
