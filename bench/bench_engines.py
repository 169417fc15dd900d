"""Benchmark: the native engine against rsync (and ``cp -a``) on trees of
every shape users have.

    python bench/bench_engines.py                     # every shape, every scenario, 5 rounds
    python bench/bench_engines.py --shapes bench,wide --rounds 3
    python bench/bench_engines.py --one-cpu           # everything pinned to CPU 0 (taskset -c 0)
    python bench/bench_engines.py --scaling 20000,200000,1000000   # time and RSS per entry
    python bench/bench_engines.py --snapshots --shapes bench --only ''  # a snapshot vs rsync --link-dest
    python bench/bench_engines.py --quick             # tiny trees, 1 round (CI)
    python bench/bench_engines.py --xfs               # also the initial copy on XFS (root)

Shapes (``--shapes``, comma-separated): ``bench`` (20,000 files of 1-16 KiB
in 200 dirs + 20 x 20 MiB, with a few xattrs, ACLs, hard links, symlinks),
``mixed`` (20,000 files of 0-16 KiB, some empty, 2% hard-linked, 2%
symlinks, + 20 x 8 MiB), ``wide`` (one directory of 200,000 entries of 0-64
bytes), ``deep`` (20,000 files in a chain of 500 nested dirs), ``big`` (8 x
64 MiB only) and ``corpus`` (a copy of this Python's standard library and
site-packages: a tree nobody generated).  Scenarios: the initial copy (also
timed for ``cp -a``), nothing changed, 1% of the files changed at the same
size and mtime, 10% deleted.  One table: shape x scenario, medians, the
ratios native / rsync and native / ``cp -a``; then peak RSS per shape
(process tree, initial copy and re-run, measured in runs of their own) and
the most processes seen in each tree at once (the native engine's helpers
show there).

Each scenario runs the contestants alternately (A B A B ...) so that drift of
the machine hits all of them, and every run writes into a fresh directory
name (on ext4 without a journal, creating files right after deleting many is
several times slower).  Both engines run as separate processes with the
seed's command line: ``rsync -rlptgocAXH --delete --info=progress2
--no-inc-recursive SRC/ DST`` and ``python -m syncengine rsync`` with the
same argv, run from a venv of its own holding a compiled copy of the package,
as pip installs it, and run isolated (``-I``): the bench's own interpreter may
run start-up hooks that an installed package does not (see installed_python).
``--one-cpu`` runs every contestant under ``taskset -c 0``: the
native engine then sees one CPU (its affinity mask) and starts no helper
processes, as in a small container (the peak-RSS table's process counts
show it), and rsync's three processes share that CPU.

``--scaling N,N,...`` times an initial copy and a re-run with nothing
changed on trees of N entries (files of 0-256 bytes, 100 a dir): median
microseconds per entry of each engine, native / rsync, each per-entry time
against the same engine's at the smallest N (1.00 where the cost grows
linearly), and peak RSS (runs of their own); then the fixed cost of a run,
which every figure includes (an empty tree).

``--snapshots`` (or ``snapshot`` in ``--only``) adds, on each shape, a
snapshot of the unchanged tree linked against the previous snapshot:
``syncengine backup --snapshot --engine python`` (the whole run, as users
make it), the native engine alone (``syncengine rsync --link-dest=PREV``
with the seed's argv) and ``rsync --link-dest=PREV`` with the same argv
(what the rsync engine runs), alternating, each new snapshot removed after
its run.  Its own table gives the medians, the ratio to rsync and what one
new snapshot adds: its inodes that are not the previous one's (dirs; files
and symlinks, their data) and their blocks as du counts them (a tmpfs
allocates none for a dir).

``--xfs`` adds an initial copy inside a loop-mounted XFS image made with
``mkfs.xfs -m reflink=1`` (needs root and xfsprogs; the image lives in the
scratch dir): there copy_file_range clones the data instead of copying it.
A reported extra, not a target.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# --only's names; "snapshot" (also --snapshots) is not run by default.
SCENARIOS = ("initial", "unchanged", "changed", "deleted", "snapshot")
SEED = ["-rlptgocAXH", "--delete", "--info=progress2", "--no-inc-recursive"]


def contestants(one_cpu: bool = False, python: str = sys.executable) -> dict[str, list[str]]:
    """The native engine (run by ``python``), rsync (when installed) and
    ``cp -a`` (timed for initial copies only: see Bench.scenario)."""
    pin = ["taskset", "-c", "0"] if one_cpu else []
    found = {"native": [*pin, *python_command(python), "-m", "syncengine", "rsync", *SEED]}
    if shutil.which("rsync"):
        found["rsync"] = [*pin, "rsync", *SEED]
    found["cp -a"] = [*pin, "cp", "-a"]
    return found


# -- the tree ------------------------------------------------------------------------
def make_tree(root: Path, files: int, dirs: int, big: int, big_size: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    root.mkdir(parents=True)
    blob = os.urandom(16 * 1024 + 4096)
    past = 1_600_000_000_000_000_000
    dir_paths = [root / f"d{i:03d}" for i in range(dirs)]
    for d in dir_paths:
        d.mkdir()
    for i in range(files):
        d = dir_paths[i % dirs]
        size = rng.randint(1024, 16 * 1024)
        start = rng.randint(0, 4096)
        p = d / f"f{i:06d}.dat"
        p.write_bytes(blob[start:start + size])
        os.utime(p, ns=(past + i, past + i * 1_000_003))
        if i % 100 == 0:
            os.setxattr(p, b"user.bench", b"v%d" % i)
        if i % 250 == 0:
            os.setxattr(p, "system.posix_acl_access", _acl_user(1000 + i % 7))
        if i % 500 == 1:
            os.link(p, d / f"hard{i:06d}.dat")
        if i % 400 == 2:
            os.symlink(p.name, d / f"link{i:06d}")
    _big_files(root, big, big_size)
    for d in dir_paths:
        os.utime(d, ns=(past, past))


def _acl_user(uid: int) -> bytes:
    """A raw POSIX access ACL: u::rw-, u:<uid>:r--, g::r--, m::r--, o::r--."""
    import struct
    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 4, uid), (0x04, 4, 0xFFFFFFFF),
               (0x10, 4, 0xFFFFFFFF), (0x20, 4, 0xFFFFFFFF)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


PAST = 1_600_000_000_000_000_000


def _small_files(root: Path, dirs: list[Path], files: int, rng: random.Random, *,
                 sizes: tuple[int, int], empty_every: int = 0, hard_every: int = 0,
                 link_every: int = 0) -> None:
    """`files` files spread over `dirs`, sizes drawn from `sizes`; every
    `empty_every`-th empty, every `hard_every`-th followed by a hard link to
    it, every `link_every`-th by a symlink to it (0: none)."""
    blob = os.urandom(sizes[1] + 4096)
    for i in range(files):
        d = dirs[i % len(dirs)]
        size = 0 if empty_every and i % empty_every == 0 else rng.randint(*sizes)
        start = rng.randint(0, 4096)
        p = d / f"f{i:07d}.dat"
        p.write_bytes(blob[start:start + size])
        os.utime(p, ns=(PAST + i, PAST + i * 1_000_003))
        if hard_every and i % hard_every == 1:
            os.link(p, d / f"hard{i:07d}.dat")
        if link_every and i % link_every == 2:
            os.symlink(p.name, d / f"link{i:07d}")
    for d in dirs:
        os.utime(d, ns=(PAST, PAST))


def _big_files(root: Path, count: int, size: int) -> None:
    for i in range(count):
        p = root / f"big{i:02d}.bin"
        with open(p, "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(size >> 20):
                f.write(chunk)
        os.utime(p, ns=(PAST, PAST))


def make_mixed(root: Path, files: int, big: int) -> None:
    root.mkdir(parents=True)
    dirs = [root / f"d{i:03d}" for i in range(max(1, files // 100))]
    for d in dirs:
        d.mkdir()
    _small_files(root, dirs, files, random.Random(2), sizes=(0, 16 * 1024), empty_every=17,
                 hard_every=50, link_every=50)
    _big_files(root, big, 8 << 20)


def make_wide(root: Path, entries: int) -> None:
    root.mkdir(parents=True)
    _small_files(root, [root], entries, random.Random(3), sizes=(0, 64))


def make_deep(root: Path, files: int, depth: int) -> None:
    dirs, d = [], root
    for level in range(depth):
        d = d / f"l{level:03d}"
        dirs.append(d)
    dirs[-1].mkdir(parents=True)
    _small_files(root, dirs, files, random.Random(4), sizes=(1024, 16 * 1024))
    os.utime(root, ns=(PAST, PAST))


def make_big(root: Path, count: int, size: int) -> None:
    root.mkdir(parents=True)
    _big_files(root, count, size)


def make_corpus(root: Path, quick: bool) -> None:
    """A copy of this Python's standard library with its site-packages (or,
    ``quick``, of its ``json`` package): real names, sizes and layout."""
    import sysconfig
    stdlib, purelib = Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])
    root.mkdir(parents=True)
    if quick:
        subprocess.run(["cp", "-a", str(stdlib / "json"), str(root / "json")], check=True)
        return
    subprocess.run(["cp", "-a", str(stdlib), str(root / "stdlib")], check=True)
    if purelib.is_dir() and not purelib.is_relative_to(stdlib):
        subprocess.run(["cp", "-a", str(purelib), str(root / "site-packages")], check=True)


def shape_makers(quick: bool) -> dict[str, Callable[[Path], None]]:
    """Each shape's builder, full size or (``quick``) tiny."""
    q = quick
    return {
        "bench": lambda r: make_tree(r, 300 if q else 20_000, 6 if q else 200, 1 if q else 20,
                                     (1 if q else 20) << 20),
        "mixed": lambda r: make_mixed(r, 300 if q else 20_000, 1 if q else 20),
        "wide": lambda r: make_wide(r, 2_000 if q else 200_000),
        "deep": lambda r: make_deep(r, 300 if q else 20_000, 30 if q else 500),
        "big": lambda r: make_big(r, 2 if q else 8, (1 if q else 64) << 20),
        "corpus": lambda r: make_corpus(r, q),
    }


def all_files(root: Path) -> list[Path]:
    """The regular files of a tree that are not hard links of another (each
    inode once), in a stable order."""
    seen, found = set(), []
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            found.append(p)
    return found


def rewrite_same_size_and_time(paths: list[Path]) -> None:
    for p in paths:
        st = p.stat()
        data = bytearray(p.read_bytes())
        if not data:
            continue
        data[0] ^= 0xFF
        p.write_bytes(bytes(data))
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))


# -- measuring ---------------------------------------------------------------------------
def _tree_sample(pid: int) -> tuple[int, int]:
    """(RSS in KiB summed over the process tree of `pid`, its processes)."""
    total, count, todo = 0, 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            count += 1
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total, count


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_kib: int = 0       # peak RSS of the process tree (sampled runs only)
    processes: int = 0      # the most processes seen in it at once (sampled runs only)


def timed_run(argv: list[str], sample_memory: bool = False) -> Run:
    """Run argv; with `sample_memory`, sample its process tree every 10 ms
    (which costs time: time runs without it)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = processes = 0
    try:
        if sample_memory:
            while proc.poll() is None:
                kib, count = _tree_sample(proc.pid)
                peak, processes = max(peak, kib), max(processes, count)
                time.sleep(0.01)
        _, err = proc.communicate()
    except BaseException:  # (Ctrl-C: stop the run before the scratch dir is removed)
        proc.kill()
        proc.wait()
        raise
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 24):
        raise SystemExit(f"{argv[0]} failed with {proc.returncode}: {err.decode()[-500:]}")
    return Run(elapsed, peak, processes)


@dataclass(frozen=True)
class Peaks:
    """Peak RSS (MiB) and most processes of an initial copy and a re-run."""
    initial: float
    rerun: float
    processes: tuple[int, int]


class Bench:
    def __init__(self, work: Path, rounds: int, one_cpu: bool = False,
                 python: str = sys.executable) -> None:
        self.work = work
        self.rounds = rounds
        self.pin = ["taskset", "-c", "0"] if one_cpu else []
        self.python = python
        self.runners = contestants(one_cpu, python)
        self.engines = [who for who in ("native", "rsync") if who in self.runners]
        self.counter = 0
        self.rows: list[tuple[str, str, dict[str, float]]] = []
        self.memory_rows: list[tuple[str, dict[str, Peaks]]] = []
        self.snapshot_rows: list[tuple[str, str, float, Added]] = []

    def fresh(self, stem: str, where: Path | None = None) -> Path:
        self.counter += 1
        return (where or self.work) / f"{stem}{self.counter:04d}"

    def scenario(self, shape: str, name: str, src: Path, prepare=None, with_cp: bool = False,
                 where: Path | None = None) -> dict[str, float]:
        """Run each contestant `rounds` times, alternating; `prepare(dst)` makes
        the destination's starting state (untimed)."""
        times: dict[str, list[float]] = {}
        for _ in range(self.rounds):
            for who, argv in self.runners.items():
                if who == "cp -a" and not with_cp:
                    continue
                dst = self.fresh("dst", where)
                if prepare is not None:
                    prepare(dst)
                target = [str(src) + "/", str(dst)] if who != "cp -a" else [str(src), str(dst)]
                times.setdefault(who, []).append(timed_run(argv + target).seconds)
                shutil.rmtree(dst)
        medians = {who: statistics.median(v) for who, v in times.items()}
        self.rows.append((shape, name, medians))
        print(f"  {shape}, {name}: " + ", ".join(f"{w} {t:.3f}s" for w, t in medians.items()),
              flush=True)
        return medians

    def initial_and_rerun(self, src: Path) -> dict[str, tuple[float, float]]:
        """Median seconds of each engine's initial copy of `src` and of its
        re-run with nothing changed: `rounds` rounds, the engines
        alternating, each round into a fresh directory."""
        times: dict[str, tuple[list[float], list[float]]] = {w: ([], []) for w in self.engines}
        for _ in range(self.rounds):
            for who in self.engines:
                dst = self.fresh("dst")
                argv = self.runners[who] + [str(src) + "/", str(dst)]
                times[who][0].append(timed_run(argv).seconds)
                times[who][1].append(timed_run(argv).seconds)
                shutil.rmtree(dst)
        return {who: (statistics.median(first), statistics.median(again))
                for who, (first, again) in times.items()}

    def peaks(self, src: Path) -> dict[str, Peaks]:
        """Each engine's peak RSS (process tree) in an initial copy of `src`,
        then a re-run: runs of their own, as sampling costs time."""
        found = {}
        for who in self.engines:
            dst = self.fresh("mem")
            argv = self.runners[who] + [str(src) + "/", str(dst)]
            first, again = timed_run(argv, sample_memory=True), timed_run(argv, sample_memory=True)
            found[who] = Peaks(first.peak_kib / 1024, again.peak_kib / 1024,
                               (first.processes, again.processes))
            shutil.rmtree(dst)
        return found

    def memory(self, shape: str, src: Path) -> None:
        self.memory_rows.append((shape, self.peaks(src)))

    def report(self) -> str:
        """The tables that have rows: times, peak RSS, snapshots."""
        tables = [self._times_table(), self._memory_table(), self._snapshot_table()]
        return "\n\n".join("\n".join(table) for table in tables if table)

    def _times_table(self) -> list[str]:
        if not self.rows:
            return []
        names = list(self.runners)
        lines = ["| shape | scenario | " + " | ".join(names) + " | native / rsync | native / cp -a |",
                 "|---|---|" + "---|" * len(names) + "---|---|"]
        for shape, name, medians in self.rows:
            cells = [f"{medians[w]:.3f} s" if w in medians else "" for w in names]
            lines.append(f"| {shape} | {name} | " + " | ".join(cells)
                         + f" | {_ratio(medians, 'rsync')} | {_ratio(medians, 'cp -a')} |")
        return lines

    def _memory_table(self) -> list[str]:
        """Peak RSS, and the most processes seen at once (initial, re-run):
        helpers show there (under --one-cpu the native engine has none)."""
        if not self.memory_rows:
            return []
        lines = ["| peak RSS, MiB | native initial | native re-run | rsync initial | rsync re-run "
                 "| processes, native | processes, rsync |", "|---|---|---|---|---|---|---|"]
        for shape, peaks in self.memory_rows:
            cells = [f"{getattr(peaks[w], k):.1f}" if w in peaks else ""
                     for w in ("native", "rsync") for k in ("initial", "rerun")]
            cells += [", ".join(map(str, peaks[w].processes)) if w in peaks else ""
                      for w in ("native", "rsync")]
            lines.append(f"| {shape} | " + " | ".join(cells) + " |")
        return lines

    def _snapshot_table(self) -> list[str]:
        if not self.snapshot_rows:
            return []
        lines = ["| snapshot of an unchanged tree | who | median | / rsync | new dirs | new files "
                 "and symlinks | file data written, KiB | allocated (du), KiB |",
                 "|---|---|---|---|---|---|---|---|"]
        rsync_times = {shape: t for shape, who, t, _ in self.snapshot_rows if who == "rsync"}
        for shape, who, seconds, added in self.snapshot_rows:
            ratio = f"{seconds / rsync_times[shape]:.2f}" if shape in rsync_times else ""
            lines.append(f"| {shape} | {who} | {seconds:.3f} s | {ratio} | {added.dirs} | "
                         f"{added.others} | {added.data / 1024:.1f} | {added.allocated / 1024:.1f} |")
        return lines


def _ratio(medians: dict[str, float], other: str) -> str:
    if not medians.get(other) or "native" not in medians:
        return ""
    return f"{medians['native'] / medians[other]:.2f}"


def bench_shape(bench: Bench, shape: str, make: Callable[[Path], None], only: set[str],
                with_memory: bool) -> None:
    """Every scenario on one shape of tree."""
    volumes = bench.work / "volumes"  # (the source is a volume: see snapshot_scenario)
    volumes.mkdir(exist_ok=True)
    src = volumes / shape
    make(src)
    seed_copy = bench.runners.get("rsync", bench.runners["native"])
    pristine: list[Path] = []  # the source as rsync copies it, while the source stays as it is

    def synced(dst: Path) -> None:
        """A copy of the source as rsync makes it: made by rsync once (on
        `deep` it takes rsync some 50 s), then `cp -a` of that copy, which
        keeps every attribute the seed's flags do (and hard links)."""
        if not pristine:
            pristine.append(bench.fresh("synced"))
            subprocess.run(seed_copy + [str(src) + "/", str(pristine[0])], check=True,
                           stdout=subprocess.DEVNULL)
        subprocess.run(["cp", "-a", "--", str(pristine[0]), str(dst)], check=True)

    def source_changed() -> None:
        while pristine:
            shutil.rmtree(pristine.pop())

    files = all_files(src)
    print(f"{shape}: {sum(1 for _ in src.rglob('*'))} entries, {len(files)} distinct files, "
          f"{sum(p.lstat().st_size for p in files) / (1 << 20):.1f} MiB", flush=True)
    if "initial" in only:
        bench.scenario(shape, "initial copy", src, with_cp=True)
    if "unchanged" in only:
        bench.scenario(shape, "nothing changed", src, prepare=synced)
    if "snapshot" in only:
        snapshot_scenario(bench, shape, volumes)
    changed = [p for p in files if p.lstat().st_size][::100]
    rewrite_same_size_and_time(changed)
    source_changed()
    # The destination holds the old bytes: prepare from a pristine copy.
    if "changed" in only:
        bench.scenario(shape, "1% changed (same size and mtime)", src,
                       prepare=lambda dst: (synced(dst), rewrite_same_size_and_time(
                           [dst / p.relative_to(src) for p in changed])))
    victims = files[5::10]
    for p in victims:
        p.unlink()
    source_changed()
    doomed = [p.relative_to(src) for p in victims]

    def with_extra(dst: Path) -> None:
        synced(dst)
        for rel in doomed:  # the destination still has the files deleted at the source
            (dst / rel).write_bytes(b"x" * 4096)

    if "deleted" in only:
        bench.scenario(shape, "10% deleted", src, prepare=with_extra)
    if with_memory:
        bench.memory(shape, src)
    source_changed()
    shutil.rmtree(src)


# -- snapshots ------------------------------------------------------------------------
@dataclass
class Added:
    """What a new snapshot adds: its inodes that are not the previous one's."""
    dirs: int = 0
    others: int = 0         # files and symlinks (not hard links to the previous snapshot's)
    data: int = 0           # the sizes of those files
    allocated: int = 0      # the blocks of every new inode, as du counts them (st_blocks)


def _walk(root: Path):
    """lstat of every entry of a tree, root included (no symlink followed)."""
    yield root.lstat()
    todo = [root]
    while todo:
        with os.scandir(todo.pop()) as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                yield st
                if stat.S_ISDIR(st.st_mode):
                    todo.append(Path(entry.path))


def inodes(root: Path) -> set[tuple[int, int]]:
    return {(st.st_dev, st.st_ino) for st in _walk(root)}


def added_by(new: Path, previous: set[tuple[int, int]]) -> Added:
    """Count each inode of `new` that is not in `previous` once (as du)."""
    added, seen = Added(), set(previous)
    for st in _walk(new):
        key = (st.st_dev, st.st_ino)
        if key in seen:
            continue
        seen.add(key)
        added.allocated += st.st_blocks * 512
        if stat.S_ISDIR(st.st_mode):
            added.dirs += 1
        else:
            added.others += 1
            added.data += st.st_size if stat.S_ISREG(st.st_mode) else 0
    return added


def snapshot_scenario(bench: Bench, shape: str, volumes: Path) -> None:
    """A new snapshot of the unchanged volume `volumes/shape`, linked
    against the previous one (made first, untimed), by:

    - ``syncengine backup --snapshot --engine python``: the whole run a user
      makes (hard-link probe, build under a temp name, link-dest against the
      newest snapshot, commit by rename);
    - ``syncengine rsync --link-dest=PREV`` with the seed's argv: the
      native engine alone, into a fresh dir;
    - ``rsync --link-dest=PREV`` with the same argv (what the rsync engine
      runs for a snapshot).

    Alternating, `rounds` times; each new snapshot is removed after its
    run, so each links against the same PREV.  Also what each adds."""
    src = volumes / shape
    root = bench.work / f"backup-{shape}"
    root.mkdir()
    backup = [*bench.pin, *python_command(bench.python), "-m", "syncengine", "backup", shape, "--snapshot",
              "--engine", "python", "-q", "--volumes-root", str(volumes), "--backup-root", str(root)]
    timed_run(backup)
    snapshots = root / "snapshots"
    (prev,) = snapshots.iterdir()
    previous = inodes(prev)
    link = [f"--link-dest={prev / 'volumes' / shape}", f"{src}/"]

    def snapshot_backup() -> tuple[float, Path]:
        seconds = timed_run(backup).seconds
        (made,) = set(snapshots.iterdir()) - {prev}
        return seconds, made

    def linked(argv: list[str]) -> Callable[[], tuple[float, Path]]:
        def run() -> tuple[float, Path]:
            dst = bench.fresh("snap")
            return timed_run(argv + link + [str(dst)]).seconds, dst
        return run

    runs = {"native, backup --snapshot": snapshot_backup,
            "native, syncengine rsync": linked(bench.runners["native"])}
    if "rsync" in bench.runners:
        runs["rsync"] = linked(bench.runners["rsync"])
    times: dict[str, list[float]] = {who: [] for who in runs}
    added: dict[str, Added] = {}
    for _ in range(bench.rounds):
        for who, run in runs.items():
            seconds, made = run()
            times[who].append(seconds)
            if who not in added:
                added[who] = added_by(made, previous)
            shutil.rmtree(made)
    shutil.rmtree(root)
    for who, seconds in times.items():
        bench.snapshot_rows.append((shape, who, statistics.median(seconds), added[who]))
    print(f"  {shape}, snapshot of an unchanged tree: " + ", ".join(
        f"{who} {statistics.median(t):.3f}s ({added[who].dirs} new dirs, {added[who].others} "
        "new files)" for who, t in times.items()), flush=True)


def make_scaling_tree(root: Path, entries: int) -> None:
    """`entries` entries: files of 0-256 bytes, 100 a directory."""
    root.mkdir()
    dirs = [root / f"d{i:05d}" for i in range(max(1, entries // 100))]
    for d in dirs:
        d.mkdir()
    _small_files(root, dirs, entries - len(dirs), random.Random(5), sizes=(0, 256))


def scaling(bench: Bench, sizes: list[int]) -> str:
    """Time per entry of an initial copy and of a re-run with nothing
    changed at each tree size (make_scaling_tree): medians of `rounds`, the
    engines alternating; each per-entry time against the same engine's at
    the smallest size (linear cost: 1.00); peak RSS from runs of their own.
    The fixed cost of a run (an empty tree) is in every figure, and given."""
    first = min(sizes)
    lines = ["| entries | who | initial copy, us/entry | re-run, us/entry | native / rsync, "
             f"initial | native / rsync, re-run | initial, x per entry at {first:,} | re-run, "
             f"x per entry at {first:,} | peak RSS initial, MiB | peak RSS re-run, MiB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    per_entry: dict[tuple[int, str], tuple[float, float]] = {}
    for n in sorted(sizes):
        src = bench.work / f"scale-{n}"
        make_scaling_tree(src, n)
        medians, peaks = bench.initial_and_rerun(src), bench.peaks(src)
        shutil.rmtree(src)
        for who in bench.engines:
            per_entry[n, who] = (medians[who][0] / n * 1e6, medians[who][1] / n * 1e6)
        for who in bench.engines:
            (initial, rerun), (at_first_initial, at_first_rerun) = per_entry[n, who], per_entry[first, who]
            versus = ["", ""]
            if who == "native" and "rsync" in bench.engines:
                versus = [f"{medians['native'][k] / medians['rsync'][k]:.2f}" for k in (0, 1)]
            lines.append(f"| {n:,} | {who} | {initial:.1f} | {rerun:.1f} | {versus[0]} | "
                         f"{versus[1]} | {initial / at_first_initial:.2f} | "
                         f"{rerun / at_first_rerun:.2f} | {peaks[who].initial:.1f} | "
                         f"{peaks[who].rerun:.1f} |")
            print("  " + lines[-1], flush=True)
    empty = bench.work / "scale-empty"
    empty.mkdir()
    fixed = bench.initial_and_rerun(empty)
    shutil.rmtree(empty)
    lines += ["", "The fixed cost in each figure (an empty tree: initial copy, re-run): "
              + "; ".join(f"{who} {fixed[who][0]:.3f} s, {fixed[who][1]:.3f} s"
                          for who in bench.engines) + "."]
    return "\n".join(lines)


def xfs_scenario(bench: Bench, work: Path, size_mib: int) -> None:
    """The bench shape's initial copy inside a reflink XFS loop mount
    (skipped, with a note, where that cannot be had)."""
    image, mount = work / "xfs.img", work / "xfs"
    mkfs = shutil.which("mkfs.xfs")
    if mkfs is None or os.geteuid() != 0:
        print("  (XFS scenario skipped: needs root and mkfs.xfs from xfsprogs)")
        return
    with open(image, "wb") as f:
        f.truncate(size_mib << 20)
    mount.mkdir()
    try:
        subprocess.run([mkfs, "-q", "-m", "reflink=1", str(image)], check=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True,
                       capture_output=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"  (XFS scenario skipped: {exc})")
        image.unlink()
        mount.rmdir()
        return
    try:
        xsrc = mount / "src"
        make_tree(xsrc, 20_000, 200, 20, 20 << 20)
        bench.scenario("bench on XFS", "initial copy, reflink", xsrc, with_cp=True, where=mount)
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()
        image.unlink()


def compile_package() -> bool:
    """Write the package's bytecode, as pip does when it installs it: a
    run that compiles its modules first (a checkout, or an environment
    with PYTHONDONTWRITEBYTECODE set) measures the compiler -- some 60 ms
    a run.  False if it could not be written."""
    import compileall

    return bool(compileall.compile_dir(Path(__file__).resolve().parents[1] / "syncengine",
                                       quiet=2))


def installed_python(work: Path) -> str | None:
    """A Python that runs this checkout's package as pip installs it: a
    venv of its own (in ``work``) with a compiled copy of the package,
    which finds its dependencies in this interpreter's site-packages by
    plain path entries.  The interpreter that runs the bench may run
    start-up hooks at every start that an installed package does not: an
    editable install's finder (it imports pathlib), a machine's own .pth
    files -- some 15 ms a run on the VM of the README's figures, which
    rsync does not pay.  None if the venv could not be made or filled
    (the bench then says so)."""
    import compileall
    import site
    import sysconfig

    checkout = Path(__file__).resolve().parents[1]
    env = work / "venv"
    python = env / "bin" / "python"
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        purelib = Path(subprocess.run([str(python), "-I", "-c", "import sysconfig; "
                                       "print(sysconfig.get_paths()['purelib'])"], check=True,
                                      capture_output=True, text=True).stdout.strip())
        # The checkout's layout, as pip lays it out (syncengine.cli lives
        # beside the package there: the library never imports click).
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(checkout / "syncengine", purelib / "syncengine", ignore=ignore)
        shutil.copytree(checkout / "cli", purelib / "syncengine" / "cli", ignore=ignore)
    except (OSError, subprocess.CalledProcessError):
        return None
    if not compileall.compile_dir(purelib / "syncengine", quiet=2):
        return None
    deps = dict.fromkeys(str(path) for path in [*map(Path, site.getsitepackages()),
                                                 Path(sysconfig.get_paths()["platlib"]),
                                                 Path(site.getusersitepackages())]
                         if path.is_dir())
    # (a .pth of plain paths: added to sys.path, nothing imported or run)
    (purelib / "syncengine-deps.pth").write_text("".join(f"{line}\n" for line in deps))
    return str(python)


def python_command(python: str) -> list[str]:
    """How to start ``python`` on the package: the venv's isolated (``-I``:
    neither the current dir nor PYTHONPATH comes first on sys.path, as
    when its ``syncengine`` script starts; from a checkout, ``-m`` would
    import the checkout's package)."""
    return [python] if python == sys.executable else [python, "-I"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shapes", default="bench,mixed,wide,deep,big,corpus",
                    help="tree shapes, comma-separated (default: all)")
    ap.add_argument("--only", default=",".join(SCENARIOS[:4]),
                    help="scenarios to run, comma-separated, from " + ", ".join(SCENARIOS)
                    + " (default: the first four)")
    ap.add_argument("--snapshots", action="store_true",
                    help="also the snapshot scenario: a snapshot of the unchanged tree linked "
                    "against the previous one (backup --snapshot vs rsync --link-dest)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-RSS runs")
    ap.add_argument("--scaling", default="",
                    help="entry counts for the time-per-entry table, e.g. 20000,200000,1000000")
    ap.add_argument("--one-cpu", action="store_true",
                    help="pin every contestant to CPU 0 (the native engine then runs no helpers)")
    ap.add_argument("--work", type=Path, default=None, help="scratch dir (default: a temp dir)")
    ap.add_argument("--quick", action="store_true", help="tiny trees, 1 round: checks the bench works")
    ap.add_argument("--xfs", action="store_true",
                    help="also the initial copy on a reflink XFS loop mount (root, xfsprogs)")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds = 1
    makers = shape_makers(args.quick)
    shapes = [s for s in args.shapes.split(",") if s]
    unknown = [s for s in shapes if s not in makers]
    if unknown:
        ap.error(f"unknown shape(s): {', '.join(unknown)} (choose from {', '.join(makers)})")
    only = {s for s in args.only.split(",") if s} | ({"snapshot"} if args.snapshots else set())
    if only - set(SCENARIOS):
        ap.error(f"unknown scenario(s): {', '.join(sorted(only - set(SCENARIOS)))} "
                 f"(choose from {', '.join(SCENARIOS)})")
    try:
        sizes = [int(n) for n in args.scaling.split(",") if n]
    except ValueError:
        sizes = [0]
    if any(n < 1 for n in sizes):
        ap.error(f"--scaling takes entry counts, comma-separated, not {args.scaling!r}")

    work = Path(tempfile.mkdtemp(prefix="syncengine-bench-", dir=args.work))
    try:
        python = installed_python(work)
        compiled = python is not None or compile_package()
        print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}, {platform.system()} {platform.release()}; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {args.rounds} rounds"
              + ("; every contestant pinned to CPU 0" if args.one_cpu else "")
              + ("" if compiled else "; the package's bytecode could not be written: each "
                 "run compiles it")
              + ("" if python else "; no venv could be made: the native engine runs under "
                 "this interpreter, with its start-up hooks")
              + f"; the package: {Path(__file__).resolve().parents[1]}", flush=True)
        bench = Bench(work, args.rounds, one_cpu=args.one_cpu, python=python or sys.executable)
        for shape in shapes:
            bench_shape(bench, shape, makers[shape], only, with_memory=not args.no_memory)
        if args.xfs:
            xfs_scenario(bench, work, 1200)
        if shapes or args.xfs:
            print()
            print(bench.report())
        if sizes:
            print()
            print(scaling(bench, sizes))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
