"""QPS of one process against a 2-shard index served by 2 Ray actors, and Ray's cost per batch.

    python bench/ray_qps.py [--collection debian-pkgs] [--shards 2] [--repeats 3]

Same collection, same queries, same run: exact search (1) in one process over the whole
index, (2) over the sharded index in one process (shards in turn), (3) on Ray, one actor
per shard on a local instance. Ray's overhead per batch is the median round trip of a
batch holding one query without terms (no search work at all). Also prints the figures the
capacity plan (docs/scaling.md) extrapolates from: index bytes per document and per
non-zero, and per-shard latency with one thread. Writes bench/results/ray_qps.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import sparseir
from sparseir.bench import directory_bytes
from sparseir.bench.timing import best_seconds
from sparseir.sharded import build_sharded

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"


def median_latency_ms(search, queries, n: int) -> float:
    times = []
    for q in range(n):
        started = time.perf_counter()
        search(queries[q:q + 1])
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", default="debian-pkgs")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-queries", type=int, default=200)
    args = parser.parse_args()

    import numba
    import ray

    from sparseir.distributed import DistributedIndex

    vectors = DATA / args.collection / "vectors"
    docs = sparseir.read_vectors(vectors / "collection.jsonl.gz")
    queries = sparseir.read_vectors(vectors / "queries.jsonl.gz", vocab=docs.vocab)
    cores = numba.config.NUMBA_NUM_THREADS
    k = args.k
    report = {"collection": args.collection, "n_docs": len(docs), "nnz": docs.nnz, "n_queries": len(queries),
              "query_nnz_mean": queries.nnz / len(queries), "k": k, "shards": args.shards, "cores": cores,
              "load_average_before": os.getloadavg()}

    with tempfile.TemporaryDirectory() as tmp:
        single = sparseir.build_index(docs, kind="exact")
        single.save(Path(tmp) / "single")
        single = sparseir.load_index(Path(tmp) / "single")
        single.warmup()
        size = directory_bytes(Path(tmp) / "single")
        report.update(index_bytes=size, bytes_per_doc=size / len(docs), bytes_per_nnz=size / docs.nnz)

        sharded = build_sharded(docs, Path(tmp) / "sharded", shards=args.shards)
        sharded.warmup()
        shard = sharded.shards[0]
        report["shard_docs"] = shard.n_docs
        report["shard_ms_per_query_1_thread"] = 1000 * best_seconds(
            lambda batch: shard.search(batch, k=k, threads=1), queries, len(queries), args.repeats) / len(queries)
        report["single_ms_per_query_1_thread"] = 1000 * best_seconds(
            lambda batch: single.search(batch, k=k, threads=1), queries, len(queries), args.repeats) / len(queries)

        rows = []
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
        try:
            with DistributedIndex(Path(tmp) / "sharded", cpus_per_shard=cores / args.shards) as distributed:
                distributed.warmup()
                np.testing.assert_array_equal(distributed.search(queries, k=k)[1], single.search(queries, k=k)[1])
                engines = {"one process": lambda batch: single.search(batch, k=k),
                           "sharded, one process": lambda batch: sharded.search(batch, k=k),
                           f"ray, {args.shards} actors": lambda batch: distributed.search(batch, k=k)}
                for batch in (1, 32, 256, len(queries)):
                    n = min(len(queries), max(args.latency_queries, batch))
                    rows.append({"batch": batch, **{name: n / best_seconds(search, queries[:n], batch, args.repeats)
                                                    for name, search in engines.items()}})
                # One thread per shard on both sides: the actors run the shards side by side.
                local_ms = median_latency_ms(lambda batch: sharded.search(batch, k=k, threads=1), queries,
                                             args.latency_queries)
                ray_ms = median_latency_ms(engines[f"ray, {args.shards} actors"], queries, args.latency_queries)
                # A query without terms costs no search: what remains is the round trip itself.
                empty = sparseir.SparseVectors(np.zeros(args.latency_queries + 1, dtype=np.int64), [], [],
                                               vocab=docs.vocab)
                overhead_ms = median_latency_ms(engines[f"ray, {args.shards} actors"], empty, args.latency_queries)
        finally:
            ray.shutdown()
        report.update(qps=rows, one_query_ms={"sharded, one process, 1 thread": local_ms, "ray": ray_ms},
                      ray_overhead_ms_per_batch=overhead_ms, load_average_after=os.getloadavg())

    print(f"{args.collection}: {len(docs):,} docs, {docs.nnz:,} non-zeros, {len(queries):,} queries, k={k}, "
          f"{cores} cores")
    print(f"exact index: {size / 2**20:.1f} MiB = {report['bytes_per_doc']:.0f} B/doc = "
          f"{report['bytes_per_nnz']:.2f} B/non-zero")
    print(f"1 thread: whole index {report['single_ms_per_query_1_thread']:.3f} ms/query, one shard of "
          f"{report['shard_docs']:,} docs {report['shard_ms_per_query_1_thread']:.3f} ms/query")
    names = list(rows[0])[1:]
    print("QPS by batch size: " + " | ".join(names))
    for row in rows:
        print(f"  batch {row['batch']:>5}: " + " | ".join(f"{row[name]:>9,.0f}" for name in names))
    print(f"one-query batch, median: in-process sharded (1 thread) {local_ms:.2f} ms, ray {ray_ms:.2f} ms; "
          f"ray round trip of an empty batch {overhead_ms:.2f} ms")
    print(f"load average before {report['load_average_before'][0]:.1f}, after "
          f"{report['load_average_after'][0]:.1f} (the machine may be shared: figures are noisier when high)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ray_qps.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
