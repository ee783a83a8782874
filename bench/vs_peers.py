"""sparseir's kinds against pyseismic-lsr, SINDI (pyvsag), bmp, PISA and exact search, under one timing protocol.

    python bench/vs_peers.py                                   # debian-pkgs
    python bench/vs_peers.py --collection scifact
    python bench/vs_peers.py --docs D.jsonl.gz --queries Q.jsonl.gz --name pypi-150k
    python bench/vs_peers.py --synthetic 1000000               # generated SPLADE-like vectors
    python bench/vs_peers.py --systems sparseir-blockmax,bmp,pisa --targets 0.95 --order bp   # block-max pruning

The protocol (``sparseir.bench.timing``), the same for every system:
- the engine's own call only: inputs converted before the timer, outputs after, and that
  adapter cost reported in a column of its own for everyone;
- one-core figures with every thread of the process pinned to one core (``--core``), builds
  included, since some engines start threads whatever they are asked; CPU time / wall
  time (``cores``) shows any that still spreads;
- batch: one call for all queries (a peer without a batch call: a loop over its
  single-query call); single: each engine's own single-query call, for sparseir the
  public ``Index.search``; p50 and p99 beside the mean;
- QPS with all cores: the batch call with every core allowed and ``threads`` = cores.

The queries are split in two halves at random (seeded): each system's settings are swept
on the tuning half, the fastest one-core batch setting reaching each recall target
(recall@k against exact search) is chosen there, and every reported figure comes from the
held-out half. Each system gets its build variants and a grid of query settings (below).
Writes ``<out>/vs_peers_<name>.json`` and prints one markdown table per recall target with
ratios to the faster of pyseismic-lsr and SINDI (``--report JSON`` prints them again).
Systems with rank-safe settings (sparseir's blockmax at alpha = beta = 1, bmp at alpha =
beta = 1, PISA's block-max WAND and MaxScore) also get a table of those, with their time
against exhaustive exact search. ``--order`` gives every system the collection in one
order: as read, shuffled (seeded) or BP-reordered (``sparseir.reorder``), to show what
reordering does on its own. PISA and SINDI (pyvsag) cannot share a process: run them
apart.

Synthetic vectors (``--synthetic N``): vocabulary of 30,522 ids; a term's document
frequency follows a Zipf law (exponent 1.1) over a fixed random order of the ids;
document lengths are log-normal around 120 distinct terms (SPLADE expansions of MS MARCO
passages), weights log-normal (median ~0.5, heavy upper tail, capped at 3.5). Each
query is built from one document (its 12 heaviest terms, re-weighted by a log-normal
factor) plus 8 terms drawn from the Zipf law, so that queries have true neighbours as
real ones do. Generation is chunked (bounded memory) and seeded.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

import sparseir
from sparseir.bench import (BATCH_REPEATS, PEERS, SYSTEMS, IndexEngine, bp_order, log_gap_bits, pick_cells, pinned,
                            run_system, time_batch)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
PEER_NAMES = ("pyseismic", "pyvsag")  # the peers every ratio is taken against (the faster of them)
ORDERS = ("given", "shuffled", "bp")


# --- data -------------------------------------------------------------------------------


def synthetic(n_docs: int, n_queries: int, seed: int = 0, n_terms: int = 30522, chunk: int = 100_000):
    """SPLADE-like documents and queries (see the module docstring)."""
    rng = np.random.default_rng(seed)
    vocab = sparseir.Vocabulary.default()
    order = rng.permutation(n_terms)
    popularity = 1.0 / np.arange(1, n_terms + 1) ** 1.1
    popularity /= popularity.sum()

    def draw_rows(n_rows, mean_len, sigma):
        """CSR (offsets, terms) of n_rows rows: Zipf-drawn ids, duplicates within a row merged."""
        lengths = np.clip(rng.lognormal(np.log(mean_len), sigma, n_rows).astype(np.int64), 1, 400)
        rows = np.repeat(np.arange(n_rows), lengths)
        terms = order[rng.choice(n_terms, size=len(rows), p=popularity)]
        keys = np.unique(rows * n_terms + terms)  # sorted: by row, then term
        rows, terms = keys // n_terms, keys % n_terms
        offsets = np.zeros(n_rows + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_rows), out=offsets[1:])
        return offsets, terms

    parts = []
    for start in range(0, n_docs, chunk):
        offsets, terms = draw_rows(min(chunk, n_docs - start), 120, 0.35)
        weights = np.minimum(3.5, rng.lognormal(np.log(0.5), 0.7, offsets[-1])).astype(np.float32)
        ids = np.arange(start, start + len(offsets) - 1).astype(str)
        parts.append(sparseir.SparseVectors(offsets, terms, weights, ids, vocab))
    docs = sparseir.SparseVectors.concatenate(parts)

    dicts = []
    for source in rng.integers(0, n_docs, n_queries):
        lo, hi = docs.offsets[source], docs.offsets[source + 1]
        heavy = np.argsort(-docs.weights[lo:hi])[:12]
        vector = dict(zip(docs.terms[lo:hi][heavy].tolist(),
                          (docs.weights[lo:hi][heavy] * rng.lognormal(0, 0.3, len(heavy))).tolist()))
        for term in order[rng.choice(n_terms, size=8, p=popularity)].tolist():
            vector.setdefault(term, float(rng.lognormal(np.log(0.3), 0.5)))
        dicts.append(vector)
    return docs, sparseir.SparseVectors.from_dicts(dicts, vocab=vocab)


def load(args):
    if args.synthetic:
        return f"synthetic-{args.synthetic}", *synthetic(args.synthetic, args.n_queries)
    if args.docs:
        docs_path, queries_path = Path(args.docs), Path(args.queries)
        name = args.name or docs_path.parent.parent.name
    else:
        name = args.collection
        docs_path, queries_path = (DATA / name / "vectors" / f"{part}.jsonl.gz" for part in ("collection", "queries"))
    docs = sparseir.read_vectors(docs_path)
    return name, docs, sparseir.read_vectors(queries_path, vocab=docs.vocab)[:args.n_queries]


def ordered(docs, order: str, seed: int):
    """The collection in the order every system is given: as read, shuffled (seeded), or by BP."""
    if order == "shuffled":
        return docs.take(np.random.default_rng(seed).permutation(len(docs)))
    if order == "bp":
        return docs.take(bp_order(docs))
    return docs


def report(record) -> str:
    """The record as markdown: one table per recall target, ratios to the faster peer."""
    cores = max((pick["held_out"]["cores"] for result in record["systems"].values()
                 for pick in result["chosen"].values() if pick), default=1)
    lines = [f"{record['collection']}: {record['n_docs']:,} documents, {record['nnz']:,} non-zeros; settings chosen on "
             f"{record['n_tune']} tuning queries, figures from {record['n_held_out']} held-out queries; one pinned core "
             f"(QPS: {cores} cores). Exact search: {record['exact']['wall_us_per_query']:.1f} us/query (one core, "
             "batch)."]
    safe = [(name, result["safe"]) for name, result in record["systems"].items() if result.get("safe")]
    if safe:
        exact_us = record["exact"]["wall_us_per_query"]
        lines += ["", f"Rank-safe settings ({record.get('order', 'given')} order, "
                  f"{record.get('log_gap_bits', float('nan')):.3f} bits per d-gap):", "",
                  "| system | setting | recall | batch us | x exact (batch) | single mean / p50 / p99 us | build s | MB |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, pick in safe:
            setting, recall, batch_us, single = pick_cells(pick)
            lines.append(f"| {name} | {setting} | {recall} | {batch_us:.1f} | {batch_us / exact_us:.3f} | {single} | "
                         f"{pick['build_s']:.1f} | {pick['index_bytes'] / 1e6:.1f} |")
    for target in record["targets"]:
        rows = [(name, result["chosen"][str(target)]) for name, result in record["systems"].items()]
        peer_batch = min((pick["held_out"]["batch_one_core"]["wall_us_per_query"] for name, pick in rows
                          if name in PEER_NAMES and pick), default=float("nan"))
        peer_single = min((pick["held_out"]["single"]["mean_us"] for name, pick in rows if name in PEER_NAMES and pick),
                          default=float("nan"))
        lines += ["", f"recall@{record['k']} >= {target} (ratios to the faster of {', '.join(PEER_NAMES)}):", "",
                  "| system | setting | recall | batch us | CPU us | single mean / p50 / p99 us | adapter us "
                  "| QPS all cores | build s | MB | x peer (batch) | x peer (single) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, pick in rows:
            if not pick:
                lines.append(f"| {name} | no swept setting reached the target |" + " |" * 10)
                continue
            held = pick["held_out"]
            batch, single = held["batch_one_core"], held["single"]
            setting = ", ".join(f"{k}={v}" for k, v in {**pick["build"], **pick["knobs"]}.items())
            lines.append(
                f"| {name} | {setting} | {held['recall']:.4f} | {batch['wall_us_per_query']:.1f} | "
                f"{batch['cpu_us_per_query']:.1f} | {single['mean_us']:.1f} / {single['p50_us']:.1f} / "
                f"{single['p99_us']:.1f} | {batch['adapter_us_per_query']:.1f} | {held['qps_all_cores']:,.0f} | "
                f"{pick['build_s']:.1f} | {pick['index_bytes'] / 1e6:.1f} | "
                f"{batch['wall_us_per_query'] / peer_batch:.2f} | {single['mean_us'] / peer_single:.2f} |")
    return "\n".join(lines)


def summary(records) -> str:
    """One markdown row per (collection, recall target): sparseir's sindi against each peer."""
    lines = ["| collection | recall target | sindi: batch / single us (recall) | pyseismic-lsr | SINDI (pyvsag) "
             "| x faster peer, batch / single | QPS all cores: sindi / pyseismic / SINDI | MB: sindi / pyseismic / SINDI "
             "| build s: sindi / pyseismic / SINDI |", "|---|---|---|---|---|---|---|---|---|"]
    for record in records:
        for target in record["targets"]:
            picks = {name: result["chosen"][str(target)] for name, result in record["systems"].items()}
            cells = {}
            for name in ("sparseir-sindi", *PEER_NAMES):
                pick = picks.get(name)
                cells[name] = ("-" if not pick else
                               f"{pick['held_out']['batch_one_core']['wall_us_per_query']:.0f} / "
                               f"{pick['held_out']['single']['mean_us']:.0f} ({pick['held_out']['recall']:.3f})")
            ours = picks.get("sparseir-sindi")
            peers = [picks[name] for name in PEER_NAMES if picks.get(name)]
            if not ours or not peers:
                continue
            held = ours["held_out"]
            batch = held["batch_one_core"]["wall_us_per_query"] / min(
                p["held_out"]["batch_one_core"]["wall_us_per_query"] for p in peers)
            single = held["single"]["mean_us"] / min(p["held_out"]["single"]["mean_us"] for p in peers)
            sizes = " / ".join(f"{picks[n]['index_bytes'] / 1e6:.0f}" if picks.get(n) else "-"
                               for n in ("sparseir-sindi", *PEER_NAMES))
            builds = " / ".join(f"{picks[n]['build_s']:.1f}" if picks.get(n) else "-"
                                for n in ("sparseir-sindi", *PEER_NAMES))
            qps = " / ".join(f"{picks[n]['held_out']['qps_all_cores']:,.0f}" if picks.get(n) else "-"
                             for n in ("sparseir-sindi", *PEER_NAMES))
            lines.append(f"| {record['collection']} | {target} | {cells['sparseir-sindi']} | {cells['pyseismic']} | "
                         f"{cells['pyvsag']} | {batch:.2f} / {single:.2f} | {qps} | {sizes} | {builds} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--collection", default="debian-pkgs", help="a shared collection with vectors/")
    parser.add_argument("--docs", help="documents file instead (with --queries)")
    parser.add_argument("--queries")
    parser.add_argument("--name", help="name for --docs (default: the folder above its folder)")
    parser.add_argument("--synthetic", type=int, default=0, help="generate N synthetic documents instead")
    parser.add_argument("--n-queries", type=int, default=2000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--targets", default="0.95,0.99", help="recall@k targets, comma-separated")
    parser.add_argument("--systems", default="sparseir-sindi,sparseir-seismic,pyseismic,pyvsag",
                        help=f"comma-separated, of {', '.join(SYSTEMS)}")
    parser.add_argument("--core", type=int, default=min(os.sched_getaffinity(0)), help="the core of one-core figures")
    parser.add_argument("--sweep-repeats", type=int, default=1, help="batch calls per swept setting (fastest kept)")
    parser.add_argument("--seed", type=int, default=0, help="of the tuning / held-out split (and of --order shuffled)")
    parser.add_argument("--order", choices=ORDERS, default="given",
                        help="the documents' order, the same for every system: as read, shuffled, or BP-reordered")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--report", metavar="JSON", help="only print the tables of an earlier run's JSON")
    parser.add_argument("--summary", metavar="JSON", nargs="+", help="only print one row per collection and target")
    args = parser.parse_args(argv)
    if args.report:
        print(report(json.loads(Path(args.report).read_text())))
        return
    if args.summary:
        print(summary([json.loads(Path(path).read_text()) for path in args.summary]))
        return
    args.targets = [float(t) for t in args.targets.split(",")]
    log = lambda message: print(message, flush=True)  # noqa: E731

    started = time.perf_counter()
    name, docs, queries = load(args)
    split = np.random.default_rng(args.seed).permutation(len(queries))
    tune, held_out = queries.take(np.sort(split[:len(split) // 2])), queries.take(np.sort(split[len(split) // 2:]))
    log(f"== {name}: {len(docs):,} docs, {docs.nnz:,} non-zeros; {len(tune)} tuning + {len(held_out)} held-out "
        f"queries; loaded in {time.perf_counter() - started:.1f} s; one-core figures on core {args.core}")
    ordering = time.perf_counter()
    docs = ordered(docs, args.order, args.seed)
    order = {"order": args.order, "order_seconds": round(time.perf_counter() - ordering, 2),
             "log_gap_bits": round(log_gap_bits(docs), 3)}
    log(f"documents in {args.order} order ({order['order_seconds']} s): {order['log_gap_bits']} bits per d-gap")
    exact = sparseir.build_index(docs, kind="exact")
    _, exact_tune = exact.search(tune, k=args.k)
    with pinned([args.core]):
        exact_timing, _, exact_held = time_batch(IndexEngine(exact), held_out, args.k, 1, {}, repeats=BATCH_REPEATS)
    del exact
    record = {"collection": name, "n_docs": len(docs), "nnz": int(docs.nnz), "k": args.k, "targets": args.targets,
              "n_tune": len(tune), "n_held_out": len(held_out), "core": args.core, "exact": exact_timing.summary(),
              **order, "systems": {}}
    for system in args.systems.split(","):
        source = SYSTEMS[system][0]
        if source in PEERS and not PEERS[source].available():
            log(f"skipping {system}: not installed")
            continue
        record["systems"][system] = run_system(system, docs, tune, held_out, exact_tune, exact_held, args, log)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"vs_peers_{name}{'' if args.order == 'given' else '_' + args.order}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    log("\n" + report(record))
    log(f"wrote {path} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
