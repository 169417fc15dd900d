"""Benchmark: the native engine against rsync (and ``cp -a``) on one tree.

    python bench/bench_engines.py                 # the default tree, 5 rounds
    python bench/bench_engines.py --quick         # a tiny tree, 1 round (CI)
    python bench/bench_engines.py --files 2000 --big 2 --rounds 3 --memory-entries 20000
    python bench/bench_engines.py --xfs           # also: the initial copy on XFS (root)

Each scenario runs the contestants alternately (A B A B ...) so that drift of
the machine hits all of them, and every run writes into a fresh directory
name (on ext4 without a journal, creating files right after deleting many is
several times slower).  Prints medians and the ratio native / rsync.
Both engines run as separate processes with the seed's command line:
``rsync -rlptgocAXH --delete --info=progress2 --no-inc-recursive SRC/ DST``
and ``python -m syncengine rsync`` with the same argv.

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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEED = ["-rlptgocAXH", "--delete", "--info=progress2", "--no-inc-recursive"]


def contestants(with_cp: bool) -> dict[str, list[str]]:
    found = {"native": [sys.executable, "-m", "syncengine", "rsync", *SEED]}
    if shutil.which("rsync"):
        found["rsync"] = ["rsync", *SEED]
    if with_cp:
        found["cp -a"] = ["cp", "-a"]
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
    for i in range(big):
        p = root / f"big{i:02d}.bin"
        with open(p, "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(big_size >> 20):
                f.write(chunk)
        os.utime(p, ns=(past, past))
    for d in dir_paths:
        os.utime(d, ns=(past, past))


def _acl_user(uid: int) -> bytes:
    """A raw POSIX access ACL: u::rw-, u:<uid>:r--, g::r--, m::r--, o::r--."""
    import struct
    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 4, uid), (0x04, 4, 0xFFFFFFFF),
               (0x10, 4, 0xFFFFFFFF), (0x20, 4, 0xFFFFFFFF)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.dat") if p.is_file() and not p.is_symlink())


def rewrite_same_size_and_time(paths: list[Path]) -> None:
    for p in paths:
        st = p.stat()
        data = bytearray(p.read_bytes())
        data[0] ^= 0xFF
        p.write_bytes(bytes(data))
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))


# -- measuring ---------------------------------------------------------------------------
def _tree_rss_kib(pid: int) -> int:
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def timed_run(argv: list[str], sample_memory: bool = False) -> tuple[float, int]:
    """Run argv; return (seconds, peak RSS of its process tree in KiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    if sample_memory:
        while proc.poll() is None:
            peak = max(peak, _tree_rss_kib(proc.pid))
            time.sleep(0.01)
    _, err = proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 24):
        raise SystemExit(f"{argv[0]} failed with {proc.returncode}: {err.decode()[-500:]}")
    return elapsed, peak


class Bench:
    def __init__(self, work: Path, rounds: int, with_cp: bool) -> None:
        self.work = work
        self.rounds = rounds
        self.runners = contestants(with_cp)
        self.counter = 0
        self.rows: list[tuple[str, dict[str, float]]] = []

    def fresh(self, stem: str, where: Path | None = None) -> Path:
        self.counter += 1
        return (where or self.work) / f"{stem}{self.counter:04d}"

    def scenario(self, name: str, src: Path, prepare=None, with_cp: bool = False,
                 where: Path | None = None) -> None:
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
                seconds, _ = timed_run(argv + target)
                times.setdefault(who, []).append(seconds)
                shutil.rmtree(dst)
        medians = {who: statistics.median(v) for who, v in times.items()}
        self.rows.append((name, medians))
        print(f"  {name}: " + ", ".join(f"{w} {t:.3f}s" for w, t in medians.items()), flush=True)

    def report(self) -> str:
        names = list(self.runners)
        lines = ["| scenario | " + " | ".join(names) + " | native / rsync |",
                 "|---|" + "---|" * len(names) + "---|"]
        for name, medians in self.rows:
            cells = [f"{medians[w]:.3f} s" if w in medians else "" for w in names]
            ratio = (f"{medians['native'] / medians['rsync']:.2f}"
                     if "rsync" in medians and medians.get("rsync") else "n/a")
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {ratio} |")
        return "\n".join(lines)


def memory(work: Path, entries: int, runners: dict[str, list[str]]) -> str:
    src = work / "mem-src"
    make_tree(src, files=entries, dirs=max(1, entries // 100), big=0, big_size=0, seed=7)
    lines = ["| peak RSS, %d entries | initial copy, MiB | re-run, nothing changed, MiB |"
             % entries, "|---|---|---|"]
    for who in ("native", "rsync"):
        if who not in runners:
            continue
        dst = work / f"mem-dst-{who}"
        argv = runners[who] + [str(src) + "/", str(dst)]
        _, peak = timed_run(argv, sample_memory=True)
        _, again = timed_run(argv, sample_memory=True)
        lines.append(f"| {who} | {peak / 1024:.1f} | {again / 1024:.1f} |")
        shutil.rmtree(dst)
    shutil.rmtree(src)
    return "\n".join(lines)


def xfs_scenario(bench: Bench, work: Path, src: Path, size_mib: int) -> None:
    """The initial copy inside a reflink XFS loop mount (skipped, with a
    note, where that cannot be had)."""
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
        subprocess.run(["cp", "-a", str(src), str(xsrc)], check=True)
        bench.scenario("initial copy, XFS reflink", xsrc, with_cp=True, where=mount)
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()
        image.unlink()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--dirs", type=int, default=200)
    ap.add_argument("--big", type=int, default=20, help="number of big files")
    ap.add_argument("--big-mib", type=int, default=20, help="size of each big file")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--memory-entries", type=int, default=200_000,
                    help="entries in the peak-memory tree (0: skip)")
    ap.add_argument("--work", type=Path, default=None, help="scratch dir (default: a temp dir)")
    ap.add_argument("--quick", action="store_true", help="a tiny run that checks the bench works")
    ap.add_argument("--only", default="initial,unchanged,changed,deleted",
                    help="scenarios to run, comma-separated (default: all four)")
    ap.add_argument("--xfs", action="store_true",
                    help="also the initial copy on a reflink XFS loop mount (root, xfsprogs)")
    args = ap.parse_args(argv)
    if args.quick:
        args.files, args.dirs, args.big, args.big_mib = 300, 6, 1, 1
        args.rounds, args.memory_entries = 1, 2000

    work = Path(tempfile.mkdtemp(prefix="syncengine-bench-", dir=args.work))
    try:
        print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
        src = work / "src"
        make_tree(src, args.files, args.dirs, args.big, args.big_mib << 20)
        bench = Bench(work, args.rounds, with_cp=True)
        seed_copy = bench.runners.get("rsync", bench.runners["native"])

        def synced(dst: Path) -> None:
            subprocess.run(seed_copy + [str(src) + "/", str(dst)], check=True,
                           stdout=subprocess.DEVNULL)

        print(f"tree: {args.files} files in {args.dirs} dirs + {args.big} x {args.big_mib} MiB; "
              f"{args.rounds} rounds")
        only = set(args.only.split(","))
        if "initial" in only:
            bench.scenario("initial copy", src, with_cp=True)
        if "unchanged" in only:
            bench.scenario("nothing changed", src, prepare=synced)
        changed = all_files(src)[:: 100]

        rewrite_same_size_and_time(changed)
        # The destination holds the old bytes: prepare from a pristine copy.
        if "changed" in only:
            bench.scenario("1% changed (same size and mtime)", src,
                           prepare=lambda dst: (synced(dst), rewrite_same_size_and_time(
                               [dst / p.relative_to(src) for p in changed])))
        victims = all_files(src)[5:: 10]

        for p in victims:
            p.unlink()
        doomed = [p.relative_to(src) for p in victims]

        def with_extra(dst: Path) -> None:
            synced(dst)
            for rel in doomed:  # the destination still has the files deleted at the source
                (dst / rel).write_bytes(b"x" * 4096)

        if "deleted" in only:
            bench.scenario("10% deleted", src, prepare=with_extra)
        if args.xfs:
            tree_mib = sum(p.stat().st_size for p in src.rglob("*") if p.is_file()) >> 20
            xfs_scenario(bench, work, src, max(300, tree_mib * 4 + 200))
        print()
        print(bench.report())
        if args.memory_entries:
            print()
            print(memory(work, args.memory_entries, bench.runners))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
