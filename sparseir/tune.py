"""Recall-targeted tuning: the fastest query setting whose recall@k against exact search
meets a target.

Each approximate kind's query module offers ``tuning_grid(arrays, n_docs)``: for every
knob, its values ordered from cheapest (lowest recall) to most accurate. Recall is
monotone in each knob, so instead of the full grid: first, from the most accurate
setting, each knob is lowered in turn by binary search to the cheapest value that still
meets the target (coordinate descent); then, for every pair of knobs, the boundary
between passing and failing settings is walked as a staircase (lowering one knob can
only raise the other's cheapest passing value), which costs the sum of the two knobs'
lengths instead of their product. Every setting seen is timed and the fastest that
meets the target wins. A held-out part of the sample,
never used for choosing, reports the recall the chosen setting really reaches.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import ParameterError, require
from .evaluate import recall_at_k
from .kinds import get_kind
from .searchable import check_k
from .storage import update_manifest
from .vectors import SparseVectors


@dataclass(frozen=True)
class TuneConfig:
    target_recall: float = 0.95
    k: int = 10
    sample: int = 1000
    heldout_fraction: float = 0.3
    budget_seconds: float = 120.0
    repeats: int = 3
    seed: int = 0

    def __post_init__(self):
        require(0.0 < self.target_recall <= 1.0, f"target_recall must lie in (0, 1], got {self.target_recall!r}")
        check_k(self.k)
        require(isinstance(self.sample, int) and self.sample >= 4, f"sample must be an integer >= 4, got {self.sample!r}")
        require(0.0 < self.heldout_fraction < 1.0, f"heldout_fraction must lie in (0, 1), got {self.heldout_fraction!r}")
        require(self.budget_seconds > 0, f"budget_seconds must be positive, got {self.budget_seconds!r}")
        require(isinstance(self.repeats, int) and self.repeats >= 1, f"repeats must be >= 1, got {self.repeats!r}")


@dataclass(frozen=True)
class Measurement:
    setting: dict
    recall: float
    latency_ms: float


@dataclass
class TuneResult:
    setting: dict
    target_recall: float
    k: int
    met_target: bool
    recall_tuned: float
    recall_heldout: float
    recall_heldout_stderr: float
    latency_ms: float
    n_queries_tuned: int
    n_queries_heldout: int
    evaluations: int
    grid_size: int
    seconds: float
    trace: list = field(default_factory=list, repr=False)

    def manifest_entry(self) -> dict:
        entry = asdict(self)
        entry.pop("trace")
        return entry


def split_sample(n_queries: int, config: TuneConfig) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the queries used for choosing and of those held out (seeded, sorted)."""
    chosen = np.random.default_rng(config.seed).permutation(n_queries)[: min(config.sample, n_queries)]
    n_heldout = max(1, int(round(len(chosen) * config.heldout_fraction)))
    return np.sort(chosen[n_heldout:]), np.sort(chosen[:n_heldout])


def tuning_grid(index) -> dict[str, list]:
    return get_kind(index.kind).tuning_grid(index.arrays, index.n_docs)


def tune(index, queries: SparseVectors, reference, config: TuneConfig) -> TuneResult:
    """Find the fastest setting meeting config.target_recall; `reference` is an exact Index."""
    started = time.perf_counter()
    grid = tuning_grid(index)
    knobs = list(grid)
    tune_rows, heldout_rows = split_sample(len(queries), config)
    tune_queries, heldout_queries = queries.take(tune_rows), queries.take(heldout_rows)
    _, exact_tune = reference.search(tune_queries, k=config.k)
    _, exact_heldout = reference.search(heldout_queries, k=config.k)
    index.warmup()

    seen: dict[tuple, Measurement] = {}

    def measure(position: tuple) -> Measurement:
        if position not in seen:
            setting = {knob: grid[knob][i] for knob, i in zip(knobs, position)}
            best = math.inf
            for _ in range(config.repeats):  # min of repeats: the least disturbed timing
                t0 = time.perf_counter()
                _, rows = index.search(tune_queries, k=config.k, threads=1, **setting)
                best = min(best, time.perf_counter() - t0)
            recall = float(np.nanmean(recall_at_k(rows, exact_tune)))
            seen[position] = Measurement(setting, recall, 1000 * best / len(tune_queries))
        return seen[position]

    def meets(position: tuple) -> bool:
        return measure(position).recall >= config.target_recall

    def within_budget() -> bool:
        return time.perf_counter() - started < config.budget_seconds

    most_accurate = [len(grid[knob]) - 1 for knob in knobs]
    if meets(tuple(most_accurate)):
        position = list(most_accurate)
        changed = True
        while changed and within_budget():
            changed = False
            for axis in range(len(knobs)):
                # Binary search the cheapest value of this knob that still meets the target.
                low, high = 0, position[axis]
                while low < high:
                    middle = (low + high) // 2
                    if meets(tuple(position[:axis] + [middle] + position[axis + 1:])):
                        high = middle
                    else:
                        low = middle + 1
                changed |= high != position[axis]
                position[axis] = high
        for first, second in itertools.combinations(range(len(knobs)), 2):
            # Staircase: `first` from most accurate down, `second` only ever rising.
            walk = list(position)
            walk[first], walk[second] = most_accurate[first], 0
            while walk[first] >= 0 and within_budget():
                while walk[second] <= most_accurate[second] and not meets(tuple(walk)):
                    walk[second] += 1
                if walk[second] > most_accurate[second]:
                    break
                walk[first] -= 1
    passing = [m for m in seen.values() if m.recall >= config.target_recall]
    met = bool(passing)
    best = (min(passing, key=lambda m: m.latency_ms) if met
            else max(seen.values(), key=lambda m: (m.recall, -m.latency_ms)))
    _, heldout_rows = index.search(heldout_queries, k=config.k, threads=1, **best.setting)
    heldout = recall_at_k(heldout_rows, exact_heldout)
    heldout = heldout[~np.isnan(heldout)]
    stderr = float(heldout.std(ddof=1) / math.sqrt(len(heldout))) if len(heldout) > 1 else float("nan")
    return TuneResult(setting=best.setting, target_recall=config.target_recall, k=config.k, met_target=met,
                      recall_tuned=best.recall, recall_heldout=float(heldout.mean()), recall_heldout_stderr=stderr,
                      latency_ms=best.latency_ms, n_queries_tuned=len(tune_queries),
                      n_queries_heldout=len(heldout_queries), evaluations=len(seen),
                      grid_size=math.prod(len(v) for v in grid.values()),
                      seconds=time.perf_counter() - started, trace=list(seen.values()))


def store_tuning(index, result: TuneResult) -> None:
    """Make the tuned setting the index's default, atomically, in memory and on disk."""
    if index.path is None:
        raise ParameterError("the index has not been saved: save it before storing a tuned setting")
    update_manifest(index.path, {"search_defaults": result.setting, "tuning": result.manifest_entry()})
    index.search_defaults = dict(result.setting)
