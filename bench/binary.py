"""Binary, ultra-high-dimensional collections (UHD): index bytes without weights, latency per kind.

    python bench/binary.py                           # debian-pkgs binarized + a synthetic 100k-dimension one
    python bench/binary.py --top-k 64 --n-docs 200000

Two collections, as UHD (Jang et al., EMNLP 2021) builds them:
- debian-pkgs' SPLADE vectors binarized: each document's ``--top-k`` heaviest terms kept
  with weight 1 (``SparseVectors.binarized``, ``sparseir binarize``); the queries keep their
  float weights, and a query scores a document by the weights of the terms they share;
- a synthetic binary collection over 100,000 dimensions with UHD's controlled sparsity:
  every document has exactly ``--active`` dimensions set, drawn around topic centres (so
  that documents have neighbours), and queries are float vectors drawn the same way.

For each kind: index bytes of the binary collection against the same postings stored with
weights (every weight 1 + 1e-3 per row-position, so that nothing is binary), and the one-core
latency of the setting that ``Index.tune`` picks for recall@10 >= 0.95 against exact search
(tuned on one half of the queries, measured on the other; exact search at its defaults).
Timing follows ``sparseir.bench.timing`` (the engine call only, one pinned core).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import sparseir
from sparseir.bench import IndexEngine, pinned, recall_at_k, time_batch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
N_DIMENSIONS = 100_000


def synthetic_uhd(n_docs: int, n_queries: int, active: int, seed: int = 0, n_topics: int = 2000):
    """Binary documents with exactly `active` of N_DIMENSIONS dimensions each, and float queries."""
    rng = np.random.default_rng(seed)
    vocab = sparseir.Vocabulary([str(i) for i in range(N_DIMENSIONS)], name="uhd-100k", open=True)
    centres = np.stack([rng.choice(N_DIMENSIONS, 8 * active, replace=False) for _ in range(n_topics)])

    def draw(n):
        """Each row: `active` distinct dimensions of one topic's centre."""
        topics = rng.integers(0, n_topics, n)
        picks = rng.random((n, 8 * active)).argsort(axis=1)[:, :active]
        return [np.sort(centres[topic][pick]) for topic, pick in zip(topics, picks)]

    def vectors(rows, weights):
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(r) for r in rows], out=offsets[1:])
        terms = np.concatenate(rows).astype(np.int32)
        return sparseir.SparseVectors(offsets, terms, weights(len(terms)), np.arange(len(rows)).astype(str), vocab)

    docs = vectors(draw(n_docs), lambda n: np.ones(n, dtype=np.float32))
    queries = vectors(draw(n_queries), lambda n: rng.gamma(1.5, 1.0, n).astype(np.float32))
    return docs, queries


def with_weights(docs):
    """The same postings, stored with weights: nothing in them is binary."""
    jitter = np.float32(1.0) + np.float32(1e-3) * (np.arange(docs.nnz) % 7).astype(np.float32)
    return sparseir.SparseVectors(docs.offsets, docs.terms, jitter, docs.ids, docs.vocab)


def index_bytes(index) -> int:
    return int(sum(array.nbytes for array in index.arrays.values()))


def measure(name, docs, queries, args, log) -> dict:
    split = np.random.default_rng(args.seed).permutation(len(queries))
    tune_queries, held_out = queries.take(np.sort(split[:len(split) // 2])), queries.take(np.sort(split[len(split) // 2:]))
    exact = sparseir.build_index(docs, kind="exact")
    _, truth = exact.search(held_out, k=10)
    record = {"collection": name, "n_docs": len(docs), "nnz": int(docs.nnz), "n_terms": len(docs.vocab),
              "binary": docs.is_binary, "kinds": {}}
    for kind in sparseir.KINDS:
        started = time.perf_counter()
        index = sparseir.build_index(docs, kind=kind, **({"reorder": "none"} if kind == "blockmax" else {}))
        build_s = time.perf_counter() - started
        weighted = sparseir.build_index(with_weights(docs), kind=kind,
                                        **({"reorder": "none"} if kind == "blockmax" else {}))
        knobs = {}
        if kind != "exact":
            result = index.tune(tune_queries, target_recall=0.95, k=10, reference=exact, budget_seconds=60)
            knobs = dict(result.setting)
        index.warmup()
        with pinned([args.core]):
            timing, _, rows = time_batch(IndexEngine(index), held_out, 10, 1, knobs, repeats=3)
        entry = {"bytes": index_bytes(index), "weighted_bytes": index_bytes(weighted),
                 "ratio": round(index_bytes(index) / index_bytes(weighted), 3), "build_s": round(build_s, 2),
                 "knobs": knobs, "recall": float(np.nanmean(recall_at_k(rows, truth))),
                 "us_per_query": timing.summary()["wall_us_per_query"]}
        record["kinds"][kind] = entry
        log(f"{name} {kind}: {entry['bytes'] / 1e6:.1f} MB vs {entry['weighted_bytes'] / 1e6:.1f} MB with weights "
            f"({entry['ratio']}x); {knobs or 'defaults'}: recall {entry['recall']:.3f}, "
            f"{entry['us_per_query']:.1f} us/query (one core)")
    return record


def report(records) -> str:
    lines = ["| collection | kind | MB binary | MB with weights | ratio | setting (recall@10 >= 0.95) | recall | "
             "us/query (one core) |", "|---|---|---|---|---|---|---|---|"]
    for record in records:
        for kind, entry in record["kinds"].items():
            setting = ", ".join(f"{k}={v}" for k, v in entry["knobs"].items()) or "defaults (exhaustive)"
            lines.append(f"| {record['collection']} ({record['n_docs']:,} docs, {record['n_terms']:,} dims) | {kind} | "
                         f"{entry['bytes'] / 1e6:.1f} | {entry['weighted_bytes'] / 1e6:.1f} | {entry['ratio']:.2f} | "
                         f"{setting} | {entry['recall']:.3f} | {entry['us_per_query']:.1f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--top-k", type=int, default=64, help="terms kept per debian-pkgs document")
    parser.add_argument("--n-docs", type=int, default=100_000, help="synthetic documents")
    parser.add_argument("--active", type=int, default=64, help="dimensions set per synthetic document")
    parser.add_argument("--n-queries", type=int, default=2000)
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    log = lambda message: print(message, flush=True)  # noqa: E731
    records = []
    vectors = DATA / "debian-pkgs" / "vectors"
    if vectors.exists():
        docs = sparseir.read_vectors(vectors / "collection.jsonl.gz")
        queries = sparseir.read_vectors(vectors / "queries.jsonl.gz", vocab=docs.vocab)[:args.n_queries]
        records.append(measure(f"debian-pkgs binarized (top {args.top_k})", docs.binarized(args.top_k), queries,
                               args, log))
    docs, queries = synthetic_uhd(args.n_docs, args.n_queries, args.active, args.seed)
    records.append(measure(f"synthetic UHD ({args.active} active)", docs, queries, args, log))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "binary.json").write_text(json.dumps(records, indent=2) + "\n")
    log("\n" + report(records))


if __name__ == "__main__":
    main()
