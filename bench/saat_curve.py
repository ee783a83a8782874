"""Score-at-a-time curve: recall@10 against exact search and single-thread latency as rho varies.

    python bench/saat_curve.py                      # debian-pkgs vectors beside the repository
    python bench/saat_curve.py --collection scifact --queries 300 --out saat_scifact.json

Every method runs in the same process on the same queries, one query per call on one
thread; each query is timed `--repeats` times and its fastest time kept, as wall time and
as the thread's CPU time (the machine may be shared). Recall@10 is the fraction of exact
search's top 10 found. Seismic, when this sparseir has it, is measured beside at its
default parameters.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import sparseir
from sparseir.bench import atomic_file, kind_unavailable_reason, latency_stats, recall_at_k, saat_postings_processed

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEFAULT_RHOS = [5_000, 10_000, 20_000, 40_000, 60_000, 80_000, 100_000, 110_000, 120_000, 130_000, 140_000,
                150_000, 200_000]
K = 10


def time_queries(index, queries, repeats: int, **knobs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows (n, K), wall seconds, thread CPU seconds per query): each query alone, one thread, best of `repeats`.

    CPU time is what the query costs when other processes share the cores; wall time adds waiting.
    """
    singles = [queries[i:i + 1] for i in range(len(queries))]
    rows = np.empty((len(queries), K), dtype=np.int64)
    wall = np.full(len(queries), np.inf)
    cpu = np.full(len(queries), np.inf)
    for _ in range(repeats):
        for i, query in enumerate(singles):
            started, started_cpu = time.perf_counter(), time.thread_time()
            _, found = index.search(query, k=K, threads=1, **knobs)
            cpu[i] = min(cpu[i], time.thread_time() - started_cpu)
            wall[i] = min(wall[i], time.perf_counter() - started)
            rows[i] = found[0]
    return rows, wall, cpu


def summary(method: str, rows, wall, cpu, exact_rows, **extra) -> dict:
    result = {"method": method, **extra, "recall@10": round(float(np.nanmean(recall_at_k(rows, exact_rows))), 4)}
    for name, seconds in (("", wall), ("cpu_", cpu)):
        result |= {f"{name}{stat}_ms": round(value, 4) for stat, value in latency_stats(seconds).items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collection", default="debian-pkgs", help="a collection folder name under the shared data")
    parser.add_argument("--queries", type=int, default=0, help="first N queries (0: all)")
    parser.add_argument("--rho", type=int, nargs="+", default=DEFAULT_RHOS, help="budgets to measure")
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--scaling", default="global")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="saat_curve.json", help="JSON results file")
    args = parser.parse_args()

    folder = DATA / args.collection / "vectors"
    docs = sparseir.read_vectors(folder / "collection.jsonl.gz")
    queries = sparseir.read_vectors(folder / "queries.jsonl.gz", vocab=docs.vocab)
    if args.queries:
        queries = queries[:args.queries]
    print(f"{args.collection}: {len(docs)} documents, {docs.nnz} postings, {len(queries)} queries")

    exact = sparseir.build_index(docs, kind="exact")
    exact.warmup()
    exact_rows, wall, cpu = time_queries(exact, queries, args.repeats)
    results = [summary("exact", exact_rows, wall, cpu, exact_rows)]

    saat = sparseir.build_index(docs, kind="saat", bits=args.bits, scaling=args.scaling)
    saat.warmup()
    array_bytes = {name: int(array.nbytes) for name, array in saat.arrays.items()}
    for rho in [*sorted(args.rho), None]:
        rows, wall, cpu = time_queries(saat, queries, args.repeats, rho=rho)
        processed = saat_postings_processed(saat, queries, K, rho)
        results.append(summary("saat", rows, wall, cpu, exact_rows, rho=rho, postings=round(float(processed.mean()))))

    if kind_unavailable_reason("seismic") is None:
        seismic = sparseir.build_index(docs, kind="seismic")
        seismic.warmup()
        rows, wall, cpu = time_queries(seismic, queries, args.repeats)
        results.append(summary("seismic", rows, wall, cpu, exact_rows))
    else:
        print("seismic: not available in this sparseir, compared with exact search only")

    exact_ms, exact_cpu_ms = results[0]["mean_ms"], results[0]["cpu_mean_ms"]
    print(f"{'method':8} {'rho':>8} {'postings':>8} {'recall@10':>9} | wall ms: {'mean':>7} {'p50':>7} {'p99':>7} "
          f"{'x exact':>7} | cpu ms: {'mean':>7} {'p50':>7} {'p99':>7} {'x exact':>7}")
    for r in results:
        rho = "all" if r["method"] == "saat" and r["rho"] is None else r.get("rho", "-")
        print(f"{r['method']:8} {rho:>8} {r.get('postings', '-'):>8} {r['recall@10']:9.4f} | {'':8} "
              f"{r['mean_ms']:7.3f} {r['p50_ms']:7.3f} {r['p99_ms']:7.3f} {r['mean_ms'] / exact_ms:7.3f} | {'':7} "
              f"{r['cpu_mean_ms']:7.3f} {r['cpu_p50_ms']:7.3f} {r['cpu_p99_ms']:7.3f} "
              f"{r['cpu_mean_ms'] / exact_cpu_ms:7.3f}")
    reaching = [r for r in results if r["method"] == "saat" and r["recall@10"] >= 0.95]
    if reaching:
        best = min(reaching, key=lambda r: r["postings"])
        print(f"smallest rho reaching recall@10 0.95: {best['rho']}, mean {best['mean_ms']:.3f} ms wall "
              f"({best['mean_ms'] / exact_ms:.3f} x exact), {best['cpu_mean_ms']:.3f} ms cpu "
              f"({best['cpu_mean_ms'] / exact_cpu_ms:.3f} x exact)")
    report = {"collection": args.collection, "documents": len(docs), "queries": len(queries), "bits": args.bits,
              "scaling": args.scaling, "repeats": args.repeats, "saat_array_bytes": array_bytes, "results": results}
    with atomic_file(args.out, "wb") as f:
        f.write(json.dumps(report, indent=2).encode("utf-8") + b"\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
