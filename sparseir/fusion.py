"""Run fusion: several runs of the same queries combined into one (hybrid dense + sparse runs).

    fused = sparseir.fuse(["sparse.trec", "dense.trec"], method="rrf")
    fused = sparseir.fuse(runs, method="wsum", norm="minmax", weights=[0.3, 0.7])
    weights, value, grid = optimize_weights(runs, "irds:beir/scifact/test", measure="nDCG@10")

The fusion itself is ranx's (the ``interop`` extra): methods ``rrf`` (reciprocal rank fusion,
1 / (rrf_k + rank) summed), ``combsum``, ``combmnz`` (the sum times the number of runs that
hold the document) and ``wsum`` (a weighted sum), over each run's scores normalized per query
first: ``none``, ``minmax``, ``zmuv`` (zero mean, unit variance) or ``rank`` (1 - rank / n). A
document missing from a run adds nothing from that run, as in ranx: CombSUM and WSUM sum what
the runs hold (a zero), CombMNZ counts only the runs that hold it, RRF ranks only within them.

Each run's order within a query is its scores descending and, among equal scores, the order
of its lines (the rank the engine gave), which is what rank-based methods read; ranx is handed
the runs in that order. The fused run is ordered by score descending, then document id, and
cut at `depth` per query. Queries missing from a run are fused from the others.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .errors import ParameterError, require
from .evaluate import QrelsLike, RunLike, evaluate, load_qrels, load_run
from .extras import require_extra
from .formats import ScoredDoc

METHODS = ("rrf", "combsum", "combmnz", "wsum")
NORMS = ("none", "minmax", "zmuv", "rank")
RANX_METHODS = {"rrf": "rrf", "combsum": "sum", "combmnz": "mnz", "wsum": "wsum"}
RANX_NORMS = {"none": None, "minmax": "min-max", "zmuv": "zmuv", "rank": "rank"}
DEFAULT_DEPTH = 1000  # TREC's run depth: what the measures at 1000 expect


@dataclass(frozen=True)
class FusionConfig:
    """How runs are fused; validated on creation. weights: wsum's, one per run (default: all 1)."""

    method: str = "rrf"
    norm: str = "minmax"
    weights: tuple[float, ...] | None = None
    rrf_k: int = 60
    depth: int | None = DEFAULT_DEPTH
    n_runs: int = field(default=2)

    def __post_init__(self):
        require(self.method in METHODS, f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        require(self.norm in NORMS, f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        require(isinstance(self.n_runs, int) and self.n_runs >= 2, f"fusion needs at least 2 runs, got {self.n_runs}")
        require(not isinstance(self.rrf_k, bool) and isinstance(self.rrf_k, int) and self.rrf_k >= 0,
                f"rrf_k must be an integer >= 0, got {self.rrf_k!r}")
        require(self.depth is None or (not isinstance(self.depth, bool) and isinstance(self.depth, int)
                                       and self.depth >= 1), f"depth must be an integer >= 1, got {self.depth!r}")
        if self.weights is not None:
            require(self.method == "wsum", f"weights apply to method wsum, not {self.method}")
            require(len(self.weights) == self.n_runs,
                    f"weights: {len(self.weights)} given for {self.n_runs} runs (one per run)")
            require(all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w)
                        for w in self.weights), f"weights must be finite numbers, got {list(self.weights)}")

    def ranx_params(self) -> dict:
        if self.method == "rrf":
            return {"k": self.rrf_k}
        if self.method == "wsum":
            return {"weights": [float(w) for w in (self.weights or (1.0,) * self.n_runs)]}
        return {}


def fuse(runs: Sequence[RunLike], method: str = "rrf", norm: str = "minmax", weights: Sequence[float] | None = None,
         rrf_k: int = 60, depth: int | None = DEFAULT_DEPTH) -> list[ScoredDoc]:
    """One run fused from `runs` (TREC or MS MARCO run files, or lists of ScoredDoc), best first
    within each query; see the module's docstring for the methods and norms."""
    require(not isinstance(runs, (str, bytes)), "runs: give a list of runs (files or lists of ScoredDoc)")
    runs = list(runs)
    config = FusionConfig(method, norm, None if weights is None else tuple(weights), rrf_k, depth, len(runs))
    return fuse_prepared(prepare(runs), config)


@dataclass
class Prepared:
    """Runs as ranx takes them, once: query ids (sorted, the union of the runs') and ranx Runs."""

    query_ids: list[str]
    ranx_runs: list


def prepare(runs: Sequence[RunLike]) -> Prepared:
    require_extra("interop", "run fusion")
    loaded = [_checked(load_run(run), number) for number, run in enumerate(runs, start=1)]
    query_ids = sorted({scored.query_id for run in loaded for scored in run})
    require(len(query_ids) > 0, "the runs hold no results to fuse")
    width = _id_width(loaded)
    return Prepared(query_ids, [_ranx_run(run, query_ids, width) for run in loaded])


def fuse_prepared(prepared: Prepared, config: FusionConfig) -> list[ScoredDoc]:
    from numba.core.errors import NumbaTypeSafetyWarning
    from ranx import fuse as ranx_fuse

    require(config.n_runs == len(prepared.ranx_runs),
            f"the configuration is for {config.n_runs} runs, {len(prepared.ranx_runs)} given")
    with warnings.catch_warnings():
        # ranx's kernels index query lists with unsigned ints, which numba warns of at each compilation.
        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
        fused = ranx_fuse(prepared.ranx_runs, norm=RANX_NORMS[config.norm], method=RANX_METHODS[config.method],
                          params=config.ranx_params())
    result = []
    for query_id in prepared.query_ids:
        scored = fused.run[query_id]
        ranked = sorted(((float(score), str(doc_id)) for doc_id, score in scored.items()), key=lambda s: (-s[0], s[1]))
        result.extend(ScoredDoc(query_id, doc_id, score) for score, doc_id in ranked[:config.depth])
    return result


def _checked(run: list[ScoredDoc], number: int) -> list[ScoredDoc]:
    """The run, refused when a (query, document) pair repeats (a file's reader refuses it by line)."""
    seen = set()
    for scored in run:
        key = (scored.query_id, scored.doc_id)
        if key in seen:
            raise ParameterError(f"run {number}: query {scored.query_id!r} lists document {scored.doc_id!r} twice")
        seen.add(key)
        if not math.isfinite(scored.score):
            raise ParameterError(f"run {number}: score {scored.score!r} of ({scored.query_id!r}, {scored.doc_id!r}) "
                                 "is not finite")
    return run


def _id_width(runs: list[list[ScoredDoc]]) -> int:
    """One width of document-id strings for every run, a power of two: ranx compiles its kernels
    once per width, and cached compilations serve the next call."""
    longest = max((len(scored.doc_id) for run in runs for scored in run), default=1)
    return 1 << max(3, (longest - 1).bit_length())


def _ranx_run(run: list[ScoredDoc], query_ids: list[str], width: int):
    """A ranx Run holding every query of `query_ids` (none: empty), each query's documents in the
    run's order: score descending, line order among equal scores."""
    from numba.typed import List as TypedList
    from ranx import Run
    from ranx.data_structures.common import create_bulk

    by_query: dict[str, list[ScoredDoc]] = defaultdict(list)
    for scored in run:
        by_query[scored.query_id].append(scored)
    doc_ids, scores = [], []
    for query_id in query_ids:
        ranked = sorted(by_query.get(query_id, ()), key=lambda s: -s.score)  # stable: line order among ties
        doc_ids.append(np.array([s.doc_id for s in ranked], dtype=f"<U{width}"))
        scores.append(np.array([s.score for s in ranked], dtype=np.float64))
    fused = Run()
    fused.run = create_bulk(TypedList(query_ids), TypedList(doc_ids), TypedList(scores))
    fused.sorted = True
    return fused


def weight_grid(n_runs: int, step: float) -> list[tuple[float, ...]]:
    """Every weighting of n_runs runs in multiples of `step` that sums to 1."""
    require(isinstance(step, float | int) and 0 < step <= 1 and abs(1 / step - round(1 / step)) < 1e-9,
            f"step must divide 1 (0.1, 0.05, 0.25 ...), got {step!r}")
    units = round(1 / step)
    return [tuple(c / units for c in combination) for combination in itertools.product(range(units + 1), repeat=n_runs)
            if sum(combination) == units]


def optimize_weights(runs: Sequence[RunLike], qrels: QrelsLike, norm: str = "minmax", measure: str = "nDCG@10",
                     step: float = 0.1, depth: int | None = DEFAULT_DEPTH
                     ) -> tuple[tuple[float, ...], float, list[tuple[tuple[float, ...], float]]]:
    """wsum's weights that maximize `measure` (ir-measures, over the judged queries) on `qrels`:
    (best weights, their value, every weighting tried with its value). A grid in steps of `step`
    summing to 1; the first best in grid order wins ties."""
    grid = weight_grid(len(runs), step)
    FusionConfig("wsum", norm, grid[0], depth=depth, n_runs=len(runs))  # checks before the work
    prepared = prepare(runs)
    judged = load_qrels(qrels)
    tried = []
    for weights in grid:
        fused = fuse_prepared(prepared, FusionConfig("wsum", norm, weights, depth=depth, n_runs=len(runs)))
        tried.append((weights, float(next(iter(evaluate(fused, judged, [measure]).aggregate.values())))))
    best = max(range(len(tried)), key=lambda i: (tried[i][1], -i))
    return tried[best][0], tried[best][1], tried
