"""Recall-targeted tuning against the full grid, on the same queries in the same run.

For each target recall, `Index.tune` picks a setting by monotone coordinate search; the
full grid of the same knob values is then measured on the same tuning queries, and the
fastest grid setting meeting the target is compared with the tuned one.

    python bench/tune_vs_grid.py --dataset ../shared/data/debian-pkgs --kind seismic
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

import sparseir
from sparseir.bench import TuneConfig, recall_at_k, split_sample, tuning_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="directory with vectors/*.jsonl.gz")
    parser.add_argument("--kind", default="seismic", choices=["seismic", "saat"])
    parser.add_argument("--targets", type=float, nargs="+", default=[0.90, 0.95, 0.99])
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--output", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    docs = sparseir.read_vectors(args.dataset / "vectors" / "collection.jsonl.gz")
    queries = sparseir.read_vectors(args.dataset / "vectors" / "queries.jsonl.gz")
    index = sparseir.build_index(docs, kind=args.kind)
    exact = sparseir.build_index(docs, kind="exact")
    grid = tuning_grid(index)
    rows = []
    for target in args.targets:
        started = time.perf_counter()
        tuned = index.tune(queries, target_recall=target, reference=exact, sample=args.sample, budget_seconds=600)
        tuning_seconds = time.perf_counter() - started
        # The very queries the tuner chose on, now measured over the whole grid.
        tune_queries = queries.take(split_sample(len(queries), TuneConfig(sample=args.sample))[0])
        _, exact_rows = exact.search(tune_queries, k=10)
        started = time.perf_counter()
        best = None
        for values in itertools.product(*grid.values()):
            setting = dict(zip(grid, values))
            timings = []
            for _ in range(3):
                t0 = time.perf_counter()
                _, found = index.search(tune_queries, k=10, threads=1, **setting)
                timings.append(time.perf_counter() - t0)
            recall = float(np.nanmean(recall_at_k(found, exact_rows)))
            latency = 1000 * min(timings) / len(tune_queries)
            if recall >= target and (best is None or latency < best[2]):
                best = (setting, recall, latency)
        grid_seconds = time.perf_counter() - started
        # Re-time the tuned setting beside the grid's best, now, so both timings share conditions.
        retimed = {}
        for name, setting in (("tuned", tuned.setting), ("grid", best[0] if best else None)):
            if setting is not None:
                t0 = time.perf_counter()
                for _ in range(3):
                    index.search(tune_queries, k=10, threads=1, **setting)
                retimed[name] = 1000 * (time.perf_counter() - t0) / 3 / len(tune_queries)
        row = {"target": target, "tuned_setting": tuned.setting, "tuned_recall": tuned.recall_tuned,
               "heldout_recall": tuned.recall_heldout, "heldout_stderr": tuned.recall_heldout_stderr,
               "tuned_ms": retimed.get("tuned"), "tuning_seconds": tuning_seconds, "evaluations": tuned.evaluations,
               "grid_setting": best[0] if best else None, "grid_recall": best[1] if best else None,
               "grid_ms": retimed.get("grid"), "grid_size": tuned.grid_size, "grid_seconds": grid_seconds}
        row["tuned_over_grid"] = (row["tuned_ms"] / row["grid_ms"]) if best else None
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.output:
        args.output.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
