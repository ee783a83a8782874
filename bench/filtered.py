"""Filtered search: latency and recall per selectivity, every kind, under the one timing protocol.

For each kind (default settings) and each selectivity (a seeded random share of the
collection allowed, the same mask for every query), on one pinned core:

  batch_us   one Index.search call over all queries, per query (fastest of 3)
  p50/p99    one call per query
  recall     recall@10 against filtered exact search (the kinds' own ground truth)

The filter is prepared once (``index.prepare_filter``: the mask packed into a bitset)
before the timer, as queries are converted before it; what each call does with it is
timed.

    python bench/filtered.py                                   # debian-pkgs, JSON in bench/results/
    python bench/filtered.py --queries 300 --kinds seismic sindi
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import sparseir
from sparseir.bench import IndexEngine, pinned, recall_at_k, time_batch, time_single

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
SELECTIVITIES = (None, 0.001, 0.01, 0.1, 0.5)


class FilteredEngine(IndexEngine):
    """An index searched under one filter, prepared before the timer (``index.prepare_filter``) as
    any input is converted before it."""

    def __init__(self, index, mask):
        super().__init__(index)
        self.mask = None if mask is None else index.prepare_filter(mask)

    def search_prepared(self, prepared, k, threads, knobs):
        return self.index.search(prepared, k=k, threads=threads, filter=self.mask, **knobs)

    def search_one(self, one, k, knobs):
        return self.index.search(one, k=k, threads=1, filter=self.mask, **knobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collection", default="debian-pkgs")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--kinds", nargs="+", default=["exact", "seismic", "sindi", "saat"])
    parser.add_argument("--core", type=int, default=1, help="the core every figure is pinned to")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    vectors = DATA / args.collection / "vectors"
    docs = sparseir.read_vectors(vectors / "collection.jsonl.gz")
    queries = sparseir.read_vectors(vectors / "queries.jsonl.gz", vocab=docs.vocab)[:args.queries]
    rng = np.random.default_rng(args.seed)
    masks = {selectivity: None if selectivity is None else rng.random(len(docs)) < selectivity
             for selectivity in SELECTIVITIES}
    exact = sparseir.build_index(docs, kind="exact")
    truth = {selectivity: exact.search(queries, k=10, filter=mask)[1] for selectivity, mask in masks.items()}
    results = {"collection": args.collection, "n_docs": len(docs), "n_queries": len(queries), "k": 10,
               "core": args.core, "rows": []}
    print(f"{'kind':8} {'allowed':>8} {'batch us':>9} {'p50 us':>8} {'p99 us':>8} {'recall':>7}")
    with pinned([args.core]):
        for kind in args.kinds:
            index = exact if kind == "exact" else sparseir.build_index(docs, kind=kind)
            for selectivity, mask in masks.items():
                engine = FilteredEngine(index, mask)
                engine.search_prepared(queries[:50], 10, 1, {})  # compiles this kernel variant
                batch, _, rows = time_batch(engine, queries, 10, 1, {})
                single, _, _ = time_single(engine, queries, 10, {}, passes=2)
                recall = float(np.nanmean(recall_at_k(rows, truth[selectivity])))
                row = {"kind": kind, "selectivity": selectivity,
                       "allowed": None if mask is None else int(mask.sum()),
                       "batch_us": round(batch.per_query_us(batch.wall_s), 1),
                       "cores_used": round(batch.cpu_s / batch.wall_s, 2),
                       **{name: round(value, 1) for name, value in single.summary().items()
                          if name in ("mean_us", "p50_us", "p99_us")},
                       "recall@10": round(recall, 4)}
                results["rows"].append(row)
                label = "all" if selectivity is None else f"{selectivity:.1%}"
                print(f"{kind:8} {label:>8} {row['batch_us']:9.1f} {row['p50_us']:8.1f} {row['p99_us']:8.1f} "
                      f"{row['recall@10']:7.4f}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "filtered.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
