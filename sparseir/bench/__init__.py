"""Benchmark tooling: the sweep behind ``sparseir bench`` and ``sparseir demo``, peer engines, one
timing protocol, and what the scripts under bench/ use (the ``bench`` extra brings the plots and peers).

- ``sweep``: TOML sweeps over index kinds and peers on one dataset, results JSON, plot, table;
- ``timing``: the one timing protocol every engine is measured under;
- ``peers``: adapters to competing engines (pyseismic-lsr, pyvsag, bmp, PISA), imported when asked;
- ``systems``: the systems bench/vs_peers.py and bench/at_scale.py compare, tuned and held out;
- ``counters``: work a search does beside its results;
- ``synthetic``: MS MARCO-shaped synthetic vectors (``from sparseir.bench import synthetic``;
  not imported here, so that the commands above do not pay for it).

This module only re-exports; heavy optional packages are imported where used.
"""

from ..evaluate import latency_stats, recall_at_k
from ..fileio import atomic_file, open_binary
from ..formats import vector_parts
from ..reorder import bp_order, log_gap_bits
from ..tune import TuneConfig, split_sample, tuning_grid
from .counters import saat_postings_processed
from .peers import BMP, PEERS, PISA, Peer, PySeismic, PyVsag
from .sweep import (PLOT_FILE, RESULTS_FILE, BenchConfig, MethodConfig, SettingResult, bench_dataset,
                    config_from_table, directory_bytes, format_table, kind_unavailable_reason, load_config,
                    pareto_front, plot_recall_latency, run_bench, write_results)
from .systems import BATCH_REPEATS, SAFE, SYSTEMS, make_engine, pick_cells, run_system
from .timing import CallTiming, IndexEngine, SingleTiming, pinned, thread_ids, time_batch, time_single

__all__ = [
    # the sweep (sparseir bench, sparseir demo)
    "PLOT_FILE", "RESULTS_FILE", "BenchConfig", "MethodConfig", "SettingResult", "bench_dataset",
    "config_from_table", "directory_bytes", "format_table", "kind_unavailable_reason", "load_config",
    "pareto_front", "plot_recall_latency", "run_bench", "write_results",
    # the timing protocol
    "CallTiming", "IndexEngine", "SingleTiming", "pinned", "thread_ids", "time_batch", "time_single",
    # peer engines and the systems compared with them
    "BATCH_REPEATS", "BMP", "PEERS", "PISA", "Peer", "PySeismic", "PyVsag", "SAFE", "SYSTEMS", "make_engine",
    "pick_cells",
    "run_system",
    "saat_postings_processed",
    # library functions the bench scripts use
    "TuneConfig", "atomic_file", "bp_order", "latency_stats", "log_gap_bits", "open_binary", "recall_at_k",
    "split_sample", "tuning_grid", "vector_parts",
]
