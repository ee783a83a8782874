"""Sweeps over index kinds, peer engines and query settings on one dataset.

Every setting is measured the same way, on the same vectors, in the same process, under
one timing protocol for sparseir and the peers alike (``sparseir.bench.timing``: the engine's
own call only, inputs converted before the timer and outputs after, adapter cost shown
apart): quality against the qrels (when there are any), recall@k against exact search,
single-query latency (mean / p50 / p99) and one-core batch time with every thread of the
process pinned to one core, wall and CPU time, batch throughput on all cores, build time,
on-disk index size and peak memory. Kernels are compiled (warm-up) before any timing and
the compile time is reported on its own. A config is TOML::

    k = 10
    measures = ["RR@10", "nDCG@10"]

    [[methods]]
    name = "seismic"
    kind = "seismic"                         # an index kind, or peer = "pyseismic" / "pyvsag" / "bmp"
    build = { n_postings = 4000 }
    sweep = { heap_factor = [0.8, 0.9, 1.0] }  # every combination is one setting

Kinds or peers that are not installed are skipped with a message, so a config runs
wherever the exact kind does.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import json
import os
import platform
import tempfile
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .. import __version__
from ..datasets import Dataset, load_vectors
from ..errors import InputError, ParameterError, require
from ..evaluate import evaluate, latency_stats, parse_measures, recall_vs_exact, results_to_run
from ..extras import require_extra
from ..fileio import atomic_file
from ..formats import Qrel, ScoredDoc, read_qrels
from ..index import build_index, ground_truth_index
from ..kinds import KINDS, get_kind, make_params
from ..searchable import check_k
from ..vectors import SparseVectors
from .timing import pinned, time_batch, time_single

RESULTS_FILE = "results.json"
PLOT_FILE = "recall_latency.png"

SWEEP_VALUE_TYPES = (bool, int, float, str)


@dataclass(frozen=True)
class MethodConfig:
    """One curve: an index kind (or a peer engine), its build parameters and a query sweep."""

    name: str
    kind: str | None = None
    peer: str | None = None
    build: Mapping[str, Any] = field(default_factory=dict)
    sweep: Mapping[str, tuple] = field(default_factory=dict)

    def __post_init__(self):
        require(isinstance(self.name, str) and self.name.strip() != "", "methods: every method needs a name")
        require((self.kind is None) != (self.peer is None),
                f"method {self.name!r}: give exactly one of kind = ... or peer = ...")
        require(isinstance(self.build, Mapping), f"method {self.name!r}: build must be a table")
        require(isinstance(self.sweep, Mapping), f"method {self.name!r}: sweep must be a table")
        sweep = {}
        for knob, values in self.sweep.items():
            values = tuple(values) if isinstance(values, (list, tuple)) else (values,)
            require(len(values) > 0 and all(isinstance(v, SWEEP_VALUE_TYPES) for v in values),
                    f"method {self.name!r}: sweep.{knob} must be a non-empty list of numbers or strings")
            sweep[knob] = values
        object.__setattr__(self, "build", dict(self.build))
        object.__setattr__(self, "sweep", sweep)

    def settings(self) -> list[dict[str, Any]]:
        """Every combination of the swept query knobs (one empty setting when nothing is swept)."""
        knobs = list(self.sweep)
        return [dict(zip(knobs, values)) for values in itertools.product(*self.sweep.values())]


@dataclass(frozen=True)
class BenchConfig:
    methods: tuple[MethodConfig, ...]
    k: int = 10
    measures: tuple[str, ...] = ("RR@10", "nDCG@10")
    max_queries: int | None = None
    batch_repeats: int = 1
    pin_core: int = field(default_factory=lambda: min(os.sched_getaffinity(0)))  # for the one-core figures

    def __post_init__(self):
        require(len(self.methods) > 0, "methods: the config lists no [[methods]]")
        names = [method.name for method in self.methods]
        require(len(set(names)) == len(names), f"methods: names must be unique, got {names}")
        check_k(self.k)
        require(self.max_queries is None or (isinstance(self.max_queries, int) and self.max_queries >= 1),
                f"max_queries must be a positive integer, got {self.max_queries!r}")
        require(isinstance(self.batch_repeats, int) and self.batch_repeats >= 1,
                f"batch_repeats must be a positive integer, got {self.batch_repeats!r}")
        require(isinstance(self.pin_core, int) and self.pin_core in os.sched_getaffinity(0),
                f"pin_core must be one of this process's cores {sorted(os.sched_getaffinity(0))}, "
                f"got {self.pin_core!r}")
        parse_measures(self.measures)  # a misspelt measure fails here, not after the first build
        object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(self, "measures", tuple(self.measures))


def load_config(path: str | os.PathLike) -> BenchConfig:
    """Read and validate a TOML sweep config; errors name the file."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    path = Path(path)
    if not path.is_file():
        raise InputError("no such config file", path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"not valid TOML: {e}", path) from None
    try:
        return config_from_table(table)
    except (ParameterError, TypeError) as e:
        raise InputError(str(e), path) from None


def config_from_table(table: Mapping[str, Any]) -> BenchConfig:
    top = {f.name for f in dataclasses.fields(BenchConfig)}
    per_method = {f.name for f in dataclasses.fields(MethodConfig)}
    unknown = sorted(set(table) - top)
    require(not unknown, f"unknown config key(s) {', '.join(unknown)} (known: {', '.join(sorted(top))})")
    methods = []
    for entry in table.get("methods", ()):
        unknown = sorted(set(entry) - per_method)
        require(not unknown, f"unknown method key(s) {', '.join(unknown)} (known: {', '.join(sorted(per_method))})")
        methods.append(MethodConfig(**entry))
    return BenchConfig(**{**table, "methods": tuple(methods)})


# --- the things measured ---------------------------------------------------------------


@dataclass(frozen=True)
class SettingResult:
    """The figures of one (method, query setting); JSON keys are these field names."""

    method: str
    kind: str | None
    peer: str | None
    build: dict[str, Any]
    search: dict[str, Any]
    quality: dict[str, float | None]  # ir-measures means over the searched queries; None without qrels
    recall_vs_exact: float  # recall@k against the exact top-k (see evaluate.recall_vs_exact)
    latency_ms: dict[str, float]  # mean / p50 / p99, one query per call, one pinned core
    single: dict[str, float]  # that pass in full (sparseir.bench.timing.SingleTiming.summary): CPU time, adapter cost
    batch_one_core: dict[str, float]  # one call for the whole batch, one pinned core (CallTiming.summary)
    qps: float  # whole query batch at once on `qps_threads` threads
    qps_threads: int
    build_seconds: float
    compile_seconds: float | None  # JIT warm-up, excluded from every timing; None for peers
    index_bytes: int | None  # on-disk size of the saved index
    memory_bytes: int | None  # peak RSS during build + searches, above the level before (Linux)
    # Per measure, the p-value of the difference from the first setting (paired t-test over the
    # judged queries, Holm-corrected over the settings; ``sparseir.compare``); None for the first
    # setting, without qrels, or without the interop extra.
    significance: dict[str, float] | None = None


class PeakMemory:
    """Peak resident memory of this process during a block, above its level at the start.

    Linux lets a process reset its high-water mark (clear_refs "5"), so each method gets
    its own peak; elsewhere the figure is None rather than a misleading process lifetime peak.
    """

    def __enter__(self):
        gc.collect()
        self.start = self.peak = None
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.start = _proc_status_bytes("VmRSS")
        except OSError:
            pass
        return self

    def __exit__(self, *exc):
        if self.start is not None:
            self.peak = _proc_status_bytes("VmHWM")
        return False

    @property
    def extra_bytes(self) -> int | None:
        return None if self.start is None else max(0, self.peak - self.start)


def _proc_status_bytes(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"{key} not in /proc/self/status")


def directory_bytes(path: Path) -> int:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file())


class KindMethod:
    """A sparseir index kind behind the measuring loop; its engine is the public Index.search."""

    def __init__(self, kind: str, build_params: Mapping[str, Any]):
        self.kind, self.build_params = kind, dict(build_params)

    def build(self, docs: SparseVectors, workdir: Path) -> None:
        from .timing import IndexEngine

        self.index = build_index(docs, kind=self.kind, **self.build_params)
        self.doc_ids = self.index.doc_ids  # reordering changes rows
        self.build_seconds = float(self.index.info["build_seconds"])
        with tempfile.TemporaryDirectory(dir=workdir, prefix=".bench-index-") as scratch:
            self.index.save(Path(scratch) / "index")
            self.index_bytes = directory_bytes(Path(scratch) / "index")
        self.compile_seconds = self.index.warmup()
        self.engine = IndexEngine(self.index)


class PeerMethod:
    """A peer engine (sparseir.bench.peers) behind the same loop; it has no JIT to warm."""

    compile_seconds = None

    def __init__(self, peer_class, params: Mapping[str, Any]):
        self.engine = peer_class(**params)

    def build(self, docs: SparseVectors, workdir: Path) -> None:
        self.engine.build(docs)
        self.doc_ids = docs.ids
        self.build_seconds = float(self.engine.build_seconds)
        self.index_bytes = None if self.engine.index_bytes is None else int(self.engine.index_bytes)


def kind_unavailable_reason(kind: str) -> str | None:
    """Why an index kind cannot run here (unknown, or not installed), or None when it can."""
    if kind not in KINDS:
        return f"unknown index kind {kind!r} (known: {', '.join(KINDS)})"
    if find_spec(f"sparseir.indexer.{kind}") is None or find_spec(f"sparseir.query.{kind}") is None:
        return f"index kind {kind!r} is not part of this installation"
    return None


def unavailable_reason(method: MethodConfig) -> str | None:
    """Why a method cannot run here (not installed), or None when it can."""
    if method.kind is not None:
        return kind_unavailable_reason(method.kind)
    try:
        from .peers import PEERS
    except ImportError as e:
        return f"peer engines are not available ({e})"
    if method.peer not in PEERS:
        return f"unknown peer {method.peer!r} (known: {', '.join(sorted(PEERS))})"
    if not PEERS[method.peer].available():
        return f"peer {method.peer!r} is not installed"
    return None


def make_method(method: MethodConfig):
    if method.kind is not None:
        return KindMethod(method.kind, method.build)
    from .peers import PEERS

    return PeerMethod(PEERS[method.peer], method.build)


def all_threads() -> int:
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


@dataclass(frozen=True)
class Workload:
    """What every method is measured on: the vectors, the exact reference run and the qrels."""

    docs: SparseVectors
    queries: SparseVectors
    query_ids: list[str]
    exact_run: list[ScoredDoc]
    qrels: list[Qrel] | None


def make_workload(docs: SparseVectors, queries: SparseVectors, qrels: Sequence[Qrel] | None, k: int) -> Workload:
    query_ids = [str(query_id) for query_id in queries.ids]
    exact = ground_truth_index(docs).search(queries, k=k, threads=all_threads())
    if qrels is not None:
        # Judgements of queries left out (max_queries) would count as zeros in every mean.
        searched = set(query_ids)
        qrels = [qrel for qrel in qrels if qrel.query_id in searched]
    return Workload(docs, queries, query_ids, results_to_run(*exact, query_ids, docs.ids), qrels)


def check_parameters(method: MethodConfig) -> None:
    """Fail before any work on a misspelt or out-of-range parameter of an installed kind."""
    spec = get_kind(method.kind)
    make_params(spec.BuildParams, method.build, f"{method.kind} build")
    for knobs in method.settings():
        make_params(spec.SearchParams, knobs, f"{method.kind} search")


def measure_method(method_config: MethodConfig, workload: Workload, config: BenchConfig, workdir: Path,
                   log: Callable[[str], None], per_query: list | None = None) -> list[SettingResult]:
    """Build one method and measure each of its settings; per_query: a list that gets each
    setting's per-query quality ({query: {measure: value}}), for the significance tests."""
    k, measures = config.k, config.measures
    with PeakMemory() as memory:
        method = make_method(method_config)
        log(f"{method_config.name}: building")
        method.build(workload.docs, workdir)
        figures = []
        engine = method.engine
        for knobs in method_config.settings():
            log(f"{method_config.name}: searching with {format_knobs(knobs)}")
            time_batch(engine, workload.queries, k, all_threads(), knobs, 1)  # untimed: pages and caches warm
            with pinned([config.pin_core]):
                single, _, _ = time_single(engine, workload.queries, k, knobs, passes=1)
                one_core, _, _ = time_batch(engine, workload.queries, k, 1, knobs, config.batch_repeats)
            all_cores, scores, rows = time_batch(engine, workload.queries, k, all_threads(), knobs,
                                                 config.batch_repeats)
            run = results_to_run(scores, rows, workload.query_ids, method.doc_ids)
            evaluation = None if workload.qrels is None else evaluate(run, workload.qrels, measures)
            quality = {name: None for name in measures} if evaluation is None else evaluation.aggregate
            if per_query is not None:
                per_query.append(None if evaluation is None else evaluation.per_query)
            figures.append(dict(search=dict(knobs), quality=quality,
                                recall_vs_exact=recall_vs_exact(run, workload.exact_run, k),
                                latency_ms=latency_stats(single.latencies_s), single=single.summary(),
                                batch_one_core=one_core.summary(), qps=all_cores.summary()["qps"]))
    return [SettingResult(method=method_config.name, kind=method_config.kind, peer=method_config.peer,
                          build=dict(method_config.build), qps_threads=all_threads(),
                          build_seconds=method.build_seconds, compile_seconds=method.compile_seconds,
                          index_bytes=method.index_bytes, memory_bytes=memory.extra_bytes, **figure)
            for figure in figures]


def run_bench(config: BenchConfig, docs: SparseVectors, queries: SparseVectors, qrels: Sequence[Qrel] | None,
              workdir: str | os.PathLike, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every available (method, setting) of `config`; returns the JSON-ready results."""
    if config.max_queries is not None:
        queries = queries[:config.max_queries]
    runnable, skipped = [], []
    for method_config in config.methods:
        reason = unavailable_reason(method_config)
        if reason is not None:
            log(f"skipping {method_config.name}: {reason}")
            skipped.append({"method": method_config.name, "reason": reason})
            continue
        if method_config.kind is not None:
            check_parameters(method_config)
        runnable.append(method_config)
    log(f"reference: exact top-{config.k} of {len(queries)} queries over {len(docs)} documents")
    workload = make_workload(docs, queries, qrels, config.k)
    settings, per_query = [], []
    for method_config in runnable:
        settings.extend(measure_method(method_config, workload, config, Path(workdir), log, per_query))
    settings = with_significance(settings, per_query, workload.qrels)
    return {"sparseir_version": __version__, "k": config.k, "measures": list(config.measures),
            "n_docs": len(docs), "n_queries": len(queries),
            "machine": {"cpus": os.cpu_count(), "threads": all_threads(), "python": platform.python_version(),
                        "platform": platform.platform()},
            "skipped": skipped, "settings": [dataclasses.asdict(setting) for setting in settings]}


def with_significance(settings: list[SettingResult], per_query: list, qrels) -> list[SettingResult]:
    """The settings with the p-values of their differences from the first (``SettingResult.significance``)."""
    from ..extras import missing

    if len(settings) < 2 or qrels is None or missing("interop") or any(values is None for values in per_query):
        return settings
    from ..compare import compare_per_query

    measures = list(settings[0].quality)
    comparison = compare_per_query({str(i): values for i, values in enumerate(per_query)},
                                   sorted({qrel.query_id for qrel in qrels}), measures)
    return [settings[0]] + [dataclasses.replace(setting, significance=comparison.p_values[str(i)])
                            for i, setting in enumerate(settings[1:], start=1)]


def bench_dataset(config: BenchConfig, dataset: Dataset, workdir: str | os.PathLike,
                  log: Callable[[str], None] = print, progress: bool = True) -> dict[str, Any]:
    """run_bench on a dataset: vectors read (or encoded), qrels read when present."""
    docs, queries = load_vectors(dataset, progress=progress)
    qrels = None if dataset.qrels is None else list(read_qrels(dataset.qrels))
    return {"dataset": dataset.describe(), **run_bench(config, docs, queries, qrels, workdir, log)}


def format_knobs(knobs: Mapping[str, Any]) -> str:
    return " ".join(f"{name}={value}" for name, value in knobs.items()) or "defaults"


# --- output ------------------------------------------------------------------------------


def write_results(results: Mapping[str, Any], outdir: str | os.PathLike, overwrite: bool = False) -> tuple[Path, Path]:
    """Write results.json and the recall-vs-latency plot into `outdir`; returns their paths."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    json_path, plot_path = outdir / RESULTS_FILE, outdir / PLOT_FILE
    with atomic_file(json_path, overwrite=overwrite) as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    plot_recall_latency(results, plot_path, overwrite=overwrite)
    return json_path, plot_path


def plot_recall_latency(results: Mapping[str, Any], path: str | os.PathLike, title: str | None = None,
                        overwrite: bool = False) -> None:
    """Recall@k vs exact against mean single-thread latency (log axis), one curve per method."""
    require_extra("bench", "plotting")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    curves: dict[str, list[tuple[float, float]]] = {}
    for setting in results["settings"]:
        curves.setdefault(setting["method"], []).append((setting["latency_ms"]["mean"], setting["recall_vs_exact"]))
    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for method, points in curves.items():
        # Every setting as a dot; the line joins the ones no other setting beats on both axes.
        line = axes.plot(*zip(*pareto_front(points)), marker="o", label=method)[0]
        axes.scatter(*zip(*points), s=12, color=line.get_color(), alpha=0.35)
    axes.set_xscale("log")
    axes.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel("mean latency per query, one thread (ms, log scale)")
    axes.set_ylabel(f"recall@{results['k']} vs exact")
    axes.set_title(title or f"{results['n_docs']:,} documents, {results['n_queries']:,} queries")
    axes.grid(True, which="both", alpha=0.3)
    if curves:
        axes.legend()
    figure.tight_layout()
    with atomic_file(path, mode="wb", overwrite=overwrite) as f:
        figure.savefig(f, format="png")
    plt.close(figure)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (latency, recall) points that no other point beats with lower latency and higher recall."""
    front: list[tuple[float, float]] = []
    for latency, recall in sorted(points, key=lambda point: (point[0], -point[1])):
        if not front or recall > front[-1][1]:
            front.append((latency, recall))
    return front


SIGNIFICANCE_ALPHA = 0.05


def format_table(results: Mapping[str, Any]) -> str:
    """The settings as an aligned text table, one row per setting."""
    measures = list(results.get("measures", ()))
    k = results["k"]
    header = ["method", "settings", *measures, f"R@{k} vs exact", "mean ms", "p99 ms", "QPS", "build s", "index MB"]
    rows = [header]
    marked = False
    for s in results["settings"]:
        significance = s.get("significance") or {}
        marks = ["*" if significance.get(name) is not None and significance[name] <= SIGNIFICANCE_ALPHA else ""
                 for name in measures]
        marked = marked or any(marks)
        rows.append([s["method"], format_knobs(s["search"]),
                     *[_number(s["quality"].get(name), 3) + mark for name, mark in zip(measures, marks)],
                     _number(s["recall_vs_exact"], 3), _number(s["latency_ms"]["mean"], 3),
                     _number(s["latency_ms"]["p99"], 3), _number(s["qps"], 0), _number(s["build_seconds"], 2),
                     _number(None if s["index_bytes"] is None else s["index_bytes"] / 1e6, 1)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) if i < 2 else cell.rjust(width) for i, (cell, width) in
                       enumerate(zip(row, widths))).rstrip() for row in rows]
    note = ([f"* differs from the first row: paired t-test over the judged queries, Holm-corrected, "
             f"p <= {SIGNIFICANCE_ALPHA}"] if marked else [])
    return "\n".join([lines[0], "  ".join("-" * width for width in widths), *lines[1:], *note])


def _number(value: float | None, decimals: int) -> str:
    return "-" if value is None else f"{value:,.{decimals}f}"
