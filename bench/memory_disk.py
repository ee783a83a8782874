"""Serving under a memory budget: resident memory, latency and bytes read per query, cold and warm.

    python bench/memory_disk.py                                  # debian-pkgs, seismic (with disk_blocks)
    python bench/memory_disk.py --kind sindi                     # debian-pkgs, sindi
    python bench/memory_disk.py --kind blockmax --index DIR      # an index already built

Each measurement runs in a fresh process pinned to one core (``sparseir.bench.pinned``),
searching the queries one call per query (``Index.search``, timed by ``sparseir.bench.time_single``
in one pass: queries prepared before the timer, garbage collection off), after the kernels are
compiled:

- ``all``: every array read into RAM (``load_index(memory="all")``);
- ``summaries, warm``: summaries and directories in RAM, the kind's bulk
  (``layout.<kind>.ON_DISK``) memory-mapped with MADV_RANDOM, every query run once before;
- ``summaries, cold``: the same, with the bulk evicted from the page cache first
  (``madvise(MADV_DONTNEED)`` on the mappings, then ``posix_fadvise(POSIX_FADV_DONTNEED)``
  on the index's files), so each query's documents come from disk;
- ``disk, warm`` and ``disk, cold`` (kinds with the ``disk_mode`` capability, whose index holds
  what the mode reads: Seismic built with ``disk_blocks``, any SINDI index): only the
  directories in RAM; each query reads what it needs (Seismic: its lists' summaries and its
  visited blocks' records; SINDI: its kept terms' lists window by window and its candidates'
  forward-index rows) into buffers (``load_index(memory="disk")``), warm or with every index
  file evicted first.

Reported: index bytes; the index's own resident memory after the run (arrays in RAM plus the
resident pages of the mapped ones, from /proc/self/smaps) against them, and the process's
VmRSS beside it (interpreter, numba and libraries included); mean / p50 / p99 latency, and
the CPU time per query in the process (user) and in the kernel for it (system: the copies of
its reads, its page faults);
bytes the process read from storage per query (``/proc/self/io`` read_bytes: what missed
the page cache) and bytes it read from files per query, from the page cache or not
(``rchar``: what ``memory="disk"`` asks of pread, warm or cold); and how much of the index's
files sits in the page cache after the run (``mincore``), every mode having evicted them once
its kernels were compiled: what a warm run relies on beyond the process's memory. Every
mode's top-10 rows are hashed and compared: the modes must return the same results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MODES = ("all", "summaries-warm", "summaries-cold", "disk-warm", "disk-cold")


def proc_value(path: str, key: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    raise KeyError(key)


def index_resident_bytes(index) -> int:
    """The index's own resident memory: the arrays read into RAM (document ids included), plus the resident pages of
    the mapped ones (their Rss in /proc/self/smaps). The interpreter, numba and the libraries
    (a few hundred MB whatever the index) are not counted here; VmRSS is reported beside it."""
    arrays = [*index.arrays.values(), index.doc_ids]
    in_ram = sum(array.nbytes for array in arrays if not isinstance(array, np.memmap))
    mapped_files = {str(Path(array.filename).resolve()) for array in arrays if isinstance(array, np.memmap)}
    resident, current = 0, None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):  # a mapping's header: pathname last, if any
            current = fields[5] if len(fields) >= 6 else None
        elif fields and fields[0] == "Rss:" and current in mapped_files:
            resident += int(fields[1]) * 1024
    return in_ram + resident


def page_cache_bytes(directory: str) -> int:
    """Bytes of the index's files in the OS page cache (mincore(2) over a mapping of each): what
    a warm run relies on beyond the process's own memory."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    total = 0
    for file in Path(directory).iterdir():
        size = file.stat().st_size
        if size == 0:
            continue
        with open(file, "rb") as f, mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ) as mapping:
            pages = np.zeros(-(-size // mmap.PAGESIZE), dtype=np.uint8)
            view = np.frombuffer(mapping, dtype=np.uint8)
            if libc.mincore(ctypes.c_void_p(view.ctypes.data), ctypes.c_size_t(size),
                            pages.ctypes.data_as(ctypes.c_void_p)) != 0:
                raise OSError(ctypes.get_errno(), f"mincore failed on {file}")
            total += int((pages & 1).sum()) * mmap.PAGESIZE
            del view
    return total


def evict(index, directory: str) -> None:
    """Drop the index's mapped arrays from this process, and all its files from the page cache."""
    for array in index.arrays.values():
        mapping = getattr(array, "_mmap", None)
        if mapping is not None:
            mapping.madvise(mmap.MADV_DONTNEED)
    for file in Path(directory).iterdir():
        with open(file, "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def child(args) -> dict:
    """One measurement, in this (fresh) process."""
    import sparseir
    from sparseir.bench import IndexEngine, pinned, time_single

    memory, _, cache = args.mode.partition("-")
    index = sparseir.load_index(args.index, memory=memory)
    queries = sparseir.read_vectors(args.queries, vocab=index.vocab)[:args.n_queries]
    knobs = json.loads(args.knobs)
    with pinned([args.core]):
        index.search(queries[:1], k=10, **knobs)  # compiles the kernels
        # Evicted first (cold stays so), so that the page cache after the run holds what this mode brought in.
        evict(index, args.index)
        if cache == "warm":
            index.search(queries, k=10, **knobs)
        read_before = proc_value("/proc/self/io", "read_bytes:")
        asked_before = proc_value("/proc/self/io", "rchar:")
        # One pass: a second would find the cold mode's documents cached.
        cpu_before = os.times()
        timing, _, rows = time_single(IndexEngine(index), queries, 10, knobs, passes=1)
        cpu = os.times()
        read = proc_value("/proc/self/io", "read_bytes:") - read_before
        asked = proc_value("/proc/self/io", "rchar:") - asked_before
    ms = timing.latencies_s * 1e3
    return {"mode": args.mode, "rss_bytes": proc_value("/proc/self/status", "VmRSS:") * 1024,
            "index_resident_bytes": index_resident_bytes(index), "page_cache_bytes": page_cache_bytes(args.index),
            "results_sha256": hashlib.sha256(rows.tobytes()).hexdigest(),
            "mean_ms": float(ms.mean()), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "read_bytes_per_query": read / len(queries), "file_bytes_per_query": asked / len(queries),
            # CPU time in the process and in the kernel on its behalf (system: its reads and page faults).
            "user_ms_per_query": (cpu.user - cpu_before.user) * 1e3 / len(queries),
            "system_ms_per_query": (cpu.system - cpu_before.system) * 1e3 / len(queries)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kind", default="seismic")
    parser.add_argument("--index", help="an index directory (default: built from --docs into a temp dir)")
    parser.add_argument("--docs", default=str(DATA / "debian-pkgs" / "vectors" / "collection.jsonl.gz"))
    parser.add_argument("--queries", default=str(DATA / "debian-pkgs" / "vectors" / "queries.jsonl.gz"))
    parser.add_argument("--knobs", default="{}", help="search knobs as JSON, e.g. '{\"query_cut\": 5}'")
    parser.add_argument("--n-queries", type=int, default=1000)
    parser.add_argument("--build", default="{}", help="build parameters as JSON, where the bench builds the index")
    parser.add_argument("--core", type=int, default=min(os.sched_getaffinity(0)))
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # set in the child processes
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    if args.mode:
        print(json.dumps(child(args)))
        return
    import sparseir
    from sparseir.kinds import get_kind

    with tempfile.TemporaryDirectory() as scratch:
        if args.index is None:
            args.index = str(Path(scratch) / "index")
            # What the disk mode reads, built (Seismic's block records, whose size bound a
            # collection this small exceeds: DiskMode.build lifts it, to measure the mode anyway).
            disk = get_kind(args.kind).disk_mode
            params = {**(disk.build if disk is not None else {}), **json.loads(args.build)}
            sparseir.build_index(sparseir.read_vectors(args.docs), kind=args.kind, **params).save(args.index)
        manifest = json.loads((Path(args.index) / "manifest.json").read_text())
        args.kind = manifest["kind"]
        disk = get_kind(args.kind).disk_mode
        served = disk is not None and all(name in manifest["arrays"] for name in disk.needs)
        files = list(Path(args.index).iterdir())
        index_bytes = sum(f.stat().st_size for f in files)
        # Arrays that only the disk mode reads (Seismic's block records) copy others: the share is
        # also given against the index without them, the one the other modes serve.
        only = {f"{name}.npy" for name in (disk.only if disk is not None else ())}
        records_bytes = sum(f.stat().st_size for f in files if f.name in only)
        results = []
        for mode in MODES if served else MODES[:3]:
            command = [sys.executable, __file__, "--mode", mode, "--index", args.index, "--queries", args.queries,
                       "--knobs", args.knobs, "--n-queries", str(args.n_queries), "--core", str(args.core)]
            result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            result["resident_share"] = result["index_resident_bytes"] / index_bytes
            result["resident_share_without_records"] = result["index_resident_bytes"] / (index_bytes - records_bytes)
            results.append(result)
            # The share without the disk mode's own arrays, where the kind has some (Seismic's records).
            without = (f", {result['resident_share_without_records']:.0%} without {', '.join(sorted(only))}"
                       if records_bytes else "")
            print(f"{mode:15s} index resident {result['index_resident_bytes'] / 1e6:7.1f} MB "
                  f"({result['resident_share']:.0%} of the index{without}; "
                  f"process RSS {result['rss_bytes'] / 1e6:.0f} MB) "
                  f"mean {result['mean_ms']:.3f} ms p50 {result['p50_ms']:.3f} p99 {result['p99_ms']:.3f} "
                  f"(CPU: user {result['user_ms_per_query']:.3f}, system {result['system_ms_per_query']:.3f} ms)  "
                  f"read {result['read_bytes_per_query'] / 1024:.1f} KiB/query from storage, "
                  f"{result['file_bytes_per_query'] / 1024:.1f} KiB/query from files; "
                  f"index files in the page cache {result['page_cache_bytes'] / 1e6:.0f} MB", flush=True)
    same = len({result["results_sha256"] for result in results}) == 1
    print(f"every mode returned the same top-10 rows: {same}")
    by_mode = {result["mode"]: result for result in results}
    warm_vs_all = None
    if "disk-warm" in by_mode:
        warm_vs_all = {stat: by_mode["disk-warm"][stat] / by_mode["all"][stat] for stat in ("mean_ms", "p50_ms", "p99_ms")}
        print("disk, warm against all: " + ", ".join(f"{stat[:-3]} {ratio:.2f}x" for stat, ratio in warm_vs_all.items()))
    record = {"kind": args.kind, "index_bytes": index_bytes, "block_records_bytes": records_bytes, "same_results": same,
              "knobs": json.loads(args.knobs), "disk_warm_vs_all": warm_vs_all, "results": results}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"memory_disk_{args.kind}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"index {index_bytes / 1e6:.1f} MB; wrote {out / f'memory_disk_{args.kind}.json'}")


if __name__ == "__main__":
    main()
