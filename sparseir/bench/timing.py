"""One timing protocol for sparseir and every peer engine.

Every engine is driven through the same four steps, and only the engine's own call is
timed:

1. ``prepare`` / ``prepare_one``: queries converted into the engine's input types
   (untimed, measured on its own as adapter cost);
2. ``search_prepared`` (one call for the whole batch: the engine's batch call where it has
   one, else a plain loop over its single-query call) or ``search_one`` (the engine's own
   single-query call): timed, wall and CPU;
3. ``collect`` / ``collect_one``: the engine's output converted into fixed (n, k) arrays
   (untimed, measured on its own as adapter cost).

For sparseir the call is the public ``Index.search``, validation included: nothing is
subtracted for anyone. Single-core figures come from a process whose every thread is
pinned to one core (``pinned``), since some engines start threads of their own whatever
they are asked; CPU time over wall time (``cores_used``) shows any that still spread.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..evaluate import queries_per_second
from ..vectors import SparseVectors


class IndexEngine:
    """A sparseir index behind the protocol: its input is SparseVectors as is, its call Index.search."""

    def __init__(self, index):
        self.index = index

    def resolve_knobs(self, knobs: Mapping[str, Any]) -> dict:
        self.index.search_params(**knobs)  # a misspelt knob fails here, before any timing
        return dict(knobs)

    def prepare(self, queries: SparseVectors) -> SparseVectors:
        return queries

    def prepare_one(self, queries: SparseVectors) -> list[SparseVectors]:
        return [queries[q:q + 1] for q in range(len(queries))]

    def search_prepared(self, prepared, k: int, threads: int, knobs: dict):
        return self.index.search(prepared, k=k, threads=threads, **knobs)

    def search_one(self, one, k: int, knobs: dict):
        return self.index.search(one, k=k, threads=1, **knobs)

    def collect(self, raw, n_queries: int, k: int):
        return raw

    def collect_one(self, raw, k: int):
        return raw[0][0], raw[1][0]


@dataclass(frozen=True)
class CallTiming:
    """Seconds spent by a batch of queries: in the engine's calls (wall, CPU) and in the adapter around them."""

    n_queries: int
    wall_s: float
    cpu_s: float
    prepare_s: float
    collect_s: float

    def per_query_us(self, seconds: float) -> float:
        return 1e6 * seconds / max(self.n_queries, 1)

    def summary(self) -> dict[str, float]:
        return {"wall_us_per_query": self.per_query_us(self.wall_s), "cpu_us_per_query": self.per_query_us(self.cpu_s),
                "cores_used": self.cpu_s / self.wall_s, "qps": queries_per_second(self.n_queries, self.wall_s),
                "adapter_us_per_query": self.per_query_us(self.prepare_s + self.collect_s)}


def time_batch(engine, queries: SparseVectors, k: int, threads: int, knobs: Mapping[str, Any], repeats: int = 3):
    """(CallTiming of the fastest of `repeats` batch calls, scores, rows)."""
    knobs = engine.resolve_knobs(knobs)
    started = time.perf_counter()
    prepared = engine.prepare(queries)
    prepare_s = time.perf_counter() - started
    best = None
    gc.disable()
    try:
        for _ in range(repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            raw = engine.search_prepared(prepared, k, threads, knobs)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if best is None or wall < best[0]:
                best = (wall, cpu)
    finally:
        gc.enable()
    started = time.perf_counter()
    scores, rows = engine.collect(raw, len(queries), k)
    collect_s = time.perf_counter() - started
    return CallTiming(len(queries), best[0], best[1], prepare_s, collect_s), scores, rows


@dataclass(frozen=True)
class SingleTiming:
    """One query per call: each query's wall seconds (from the fastest pass) and the pass's totals."""

    latencies_s: np.ndarray
    calls: CallTiming

    def summary(self) -> dict[str, float]:
        us = 1e6 * self.latencies_s
        return {"mean_us": float(us.mean()), "p50_us": float(np.percentile(us, 50)),
                "p99_us": float(np.percentile(us, 99)), **self.calls.summary()}


def time_single(engine, queries: SparseVectors, k: int, knobs: Mapping[str, Any], passes: int = 3):
    """SingleTiming of the pass (over all queries, one call each) with the lowest mean, and its results."""
    knobs = engine.resolve_knobs(knobs)
    started = time.perf_counter()
    prepared = engine.prepare_one(queries)
    prepare_s = time.perf_counter() - started
    n = len(prepared)
    best = None
    gc.disable()  # a collection landing inside one query would show up as a fake p99
    try:
        for _ in range(passes):
            latencies = np.empty(n)
            raws = [None] * n
            cpu = time.process_time()
            for q, one in enumerate(prepared):
                wall = time.perf_counter()
                raws[q] = engine.search_one(one, k, knobs)
                latencies[q] = time.perf_counter() - wall
            cpu = time.process_time() - cpu
            if best is None or latencies.mean() < best[0].mean():
                best = (latencies, cpu, raws)
    finally:
        gc.enable()
    latencies, cpu, raws = best
    started = time.perf_counter()
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    rows = np.full((n, k), -1, dtype=np.int64)
    for q, raw in enumerate(raws):
        scores[q], rows[q] = engine.collect_one(raw, k)
    collect_s = time.perf_counter() - started
    return SingleTiming(latencies, CallTiming(n, float(latencies.sum()), cpu, prepare_s, collect_s)), scores, rows


def best_seconds(search: Callable, queries, batch: int, repeats: int) -> float:
    """Seconds for the whole query set searched in batches of `batch`, best of `repeats` passes."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, len(queries), batch):
            search(queries[start:start + batch])
        best = min(best, time.perf_counter() - started)
    return best


def measured_process(command: Sequence[str]) -> dict:
    """Run a command in a process of its own, printing it and its record: wall and CPU seconds,
    peak resident memory in MB (10^6 bytes, from ``wait4``) and the exit status."""
    import subprocess

    print("$ " + " ".join(command), flush=True)
    started = time.perf_counter()
    child = subprocess.Popen(list(command))
    _, status, usage = os.wait4(child.pid, 0)
    record = {"seconds": round(time.perf_counter() - started, 1),
              "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
              "peak_rss_mb": round(usage.ru_maxrss * 1024 / 1e6),  # ru_maxrss is in KiB
              "exit": os.waitstatus_to_exitcode(status)}
    print(f"  -> {record}", flush=True)
    return record


def thread_ids() -> list[int]:
    """Every thread of this process (Linux); just the process elsewhere."""
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


class pinned:
    """Confine every thread of this process to `cores` within the block, then restore.

    Threads already running (numba's pool, a Rust engine's pool started earlier) are
    pinned too, and threads started inside the block inherit the mask, so the block runs
    as a process pinned from its start would.
    """

    def __init__(self, cores: Sequence[int]):
        self.cores = set(cores)

    def __enter__(self):
        self.previous = os.sched_getaffinity(0)
        set_affinity(self.cores)
        return self

    def __exit__(self, *exc):
        set_affinity(self.previous)
        return False


def set_affinity(cores: set[int]) -> None:
    for tid in thread_ids():
        try:
            os.sched_setaffinity(tid, cores)
        except (ProcessLookupError, PermissionError):  # a thread that ended meanwhile
            pass
