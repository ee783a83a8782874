"""Per-thread query memory of block-max search at a collection size, from the layout arithmetic.

    python bench/blockmax_memory.py                                   # 8,841,823 passages, 43-term queries
    python bench/blockmax_memory.py --block-size 4 --query-terms 140
    python bench/blockmax_memory.py --synthetic-sample 200000         # entries from the MS MARCO-shaped model
    python bench/blockmax_memory.py --index DIR --queries FILE        # an index already built, its queries

A query's buffers (``sparseir.query.blockmax.scratch_bytes``, what the kernel allocates per
thread) are one float per block (the bounds) and, beyond it, what the entries its terms hold
set: the heap of bounded blocks (at most one per entry) and the rank rows (4 bytes per
``GROUP_ENTRIES`` entries and per term). So the figure needs each query term's entry count:

- worst case (the default): every term in every block;
- ``--synthetic-sample N``: document frequencies measured on N passages of the generator of
  ``bench/msmarco_synthetic.py`` and scaled to ``--n-docs``; a term in a share p of the
  passages is taken to be in 1 - (1 - p)^block_size of the blocks, as in a collection in
  random order (the generator's; document reordering only lowers it);
- ``--index DIR --queries FILE``: the entries of a built index (``--n-docs`` is then its own).

Nothing is timed: this is arithmetic over declared buffer sizes, safe to run anywhere.
"""

from __future__ import annotations

import argparse

import numpy as np

from sparseir.bench.synthetic import DEV_SMALL_QUERIES, MSMARCO_PASSAGES
from sparseir.kernels import offsets_of
from sparseir.query.blockmax import scratch_bytes



def size(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def query_bytes(entry_counts: np.ndarray, n_docs: int, block_size: int, k: int) -> dict:
    """Buffer bytes for one query whose terms hold `entry_counts` entries each."""
    counts = np.asarray(entry_counts, dtype=np.int64)
    return scratch_bytes(offsets_of(counts), np.arange(len(counts), dtype=np.int32), n_docs, block_size, k)


def synthetic_entries(sample: int, n_queries: int, n_docs: int, block_size: int, seed: int) -> list[np.ndarray]:
    """Each query's per-term entry counts at n_docs, from document frequencies on `sample` passages."""
    from sparseir.bench.synthetic import build_model, generate_docs, generate_queries

    model = build_model(seed)
    _, terms, *_ = generate_docs(model, np.arange(sample))
    q_offsets, q_terms, *_ = generate_queries(model, n_queries, n_docs)
    share = np.bincount(terms, minlength=int(max(terms.max(), q_terms.max())) + 1) / sample
    n_blocks = -(-n_docs // block_size)
    blocks = np.ceil(n_blocks * (1.0 - (1.0 - share) ** block_size)).astype(np.int64)
    return [blocks[q_terms[q_offsets[q]:q_offsets[q + 1]]] for q in range(n_queries)]


def index_entries(index_dir: str, queries_file: str) -> tuple[list[np.ndarray], int, int]:
    """Each query's per-term entry counts in a built index, with its document count and block size."""
    import sparseir
    from sparseir.layout.blockmax import block_size

    index = sparseir.load_index(index_dir)
    if getattr(index, "kind", None) != "blockmax":
        raise SystemExit(f"{index_dir}: not a single blockmax index")
    queries = sparseir.read_vectors(queries_file, vocab=index.vocab)
    counts = np.diff(index.arrays["term_entries"])
    return ([counts[queries.terms[queries.offsets[q]:queries.offsets[q + 1]]] for q in range(len(queries))],
            len(index.doc_ids), block_size(index.arrays))


def report(label: str, per_query: list[dict]) -> None:
    """Per query, and for one thread running them all (each buffer sized for the largest query)."""
    totals = np.array([sum(b.values()) for b in per_query])
    thread = {name: max(b[name] for b in per_query) for name in per_query[0]}
    print(f"{label}: per-thread query memory p50 {size(np.median(totals))}, "
          f"p99 {size(np.percentile(totals, 99))}, max {size(totals.max())} over {len(per_query)} queries; "
          f"one thread running them all: {size(sum(thread.values()))}")
    print("  that thread, by buffer: " + ", ".join(f"{name} {size(n)}" for name, n in thread.items()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-docs", type=int, default=MSMARCO_PASSAGES)
    parser.add_argument("--block-size", type=int, default=8)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--query-terms", type=int, default=43, help="terms per query, worst case")
    parser.add_argument("--synthetic-sample", type=int, default=0, metavar="N",
                        help="estimate entries from N generated passages (0: worst case)")
    parser.add_argument("--n-queries", type=int, default=DEV_SMALL_QUERIES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", help="a built blockmax index (with --queries)")
    parser.add_argument("--queries", help="query vectors for --index")
    args = parser.parse_args(argv)
    if bool(args.index) != bool(args.queries):
        parser.error("--index and --queries go together")
    if args.index:
        entries, n_docs, size = index_entries(args.index, args.queries)
        report(f"{args.index} ({n_docs:,} documents, block_size={size}, k={args.k})",
               [query_bytes(e, n_docs, size, args.k) for e in entries])
        return
    n_blocks = -(-args.n_docs // args.block_size)
    where = f"{args.n_docs:,} documents, block_size={args.block_size} ({n_blocks:,} blocks), k={args.k}"
    if args.synthetic_sample:
        entries = synthetic_entries(args.synthetic_sample, args.n_queries, args.n_docs, args.block_size, args.seed)
        report(f"{where}, entries from {args.synthetic_sample:,} synthetic passages",
               [query_bytes(e, args.n_docs, args.block_size, args.k) for e in entries])
    else:
        report(f"{where}, {args.query_terms} terms each in every block (worst case)",
               [query_bytes(np.full(args.query_terms, n_blocks), args.n_docs, args.block_size, args.k)])


if __name__ == "__main__":
    main()
