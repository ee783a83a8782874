"""sparseir's kinds against pyseismic-lsr, SINDI (pyvsag), bmp, PISA and exact search, under one timing protocol.

    python bench/vs_peers.py                                   # debian-pkgs
    python bench/vs_peers.py --collection scifact
    python bench/vs_peers.py --docs D.jsonl.gz --queries Q.jsonl.gz --name pypi-150k
    python bench/vs_peers.py --synthetic 1000000               # generated SPLADE-like vectors
    python bench/vs_peers.py --systems sparseir-blockmax,bmp,pisa --targets 0.95 --order bp   # block-max pruning

The protocol (``sparseir.timing``), the same for every system:
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
import gc
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sparseir  # noqa: E402
from sparseir.evaluate import recall_at_k  # noqa: E402
from sparseir.peers import PEERS  # noqa: E402
from sparseir.timing import IndexEngine, pinned, time_batch, time_single  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
PEER_NAMES = ("pyseismic", "pyvsag")  # the peers every ratio is taken against (the faster of them)


def grid(**values) -> list[dict]:
    return [dict(zip(values, combination)) for combination in itertools.product(*values.values())]


SEISMIC_GRID = [dict(query_cut=c, heap_factor=h) for c, h in [
    (3, 0.9), (4, 0.9), (5, 0.9), (5, 0.8), (6, 1.0), (6, 0.9), (6, 0.8), (8, 0.9), (8, 0.8), (10, 0.8), (12, 0.9),
    (12, 0.7), (15, 0.7), (20, 0.6)]]
SPARSEIR_DEFAULT = "sparseir's default"  # a build value resolved per collection (make_engine)
# name -> (kind or peer, build variants, query settings)
SYSTEMS = {
    "sparseir-sindi": ("sindi", grid(doc_prune_ratio=[0.2, 0.3, 0.4, 0.5, 0.6]),
                       grid(query_prune_ratio=[0.5, 0.4, 0.3, 0.2, 0.1, 0.0],
                            n_candidate=[15, 20, 30, 50, 75, 100, 150, 200, 300])),
    "sparseir-seismic": ("seismic", [{}], SEISMIC_GRID),
    "pyseismic": ("pyseismic", [{}], SEISMIC_GRID),
    # pyseismic-lsr keeps n_postings = 3500 whatever the size; this one gets sparseir's default
    # for the collection (3500 x sqrt(n / 8.8M)), so that both prune their lists alike.
    "pyseismic-matched": ("pyseismic", [{"n_postings": SPARSEIR_DEFAULT}], SEISMIC_GRID),
    # The same ranges of pruning as sparseir-sindi's, and wider where they can still pay.
    "pyvsag": ("pyvsag", grid(doc_prune_ratio=[0.0, 0.2, 0.4, 0.6], window_size=[10_000, 50_000]),
               grid(query_prune_ratio=[0.0, 0.2, 0.4, 0.6], term_prune_ratio=[0.0, 0.2],
                    n_candidate=[15, 20, 50, 100, 200, 500])),
    # Block-max pruning, both on the collection in the order --order gives every system.
    "sparseir-blockmax": ("blockmax", grid(reorder=["none"], block_size=[4, 8, 16, 32]),
                          grid(alpha=[0.8, 0.9, 0.95, 1.0], beta=[0.7, 0.8, 0.9, 1.0])),
    "bmp": ("bmp", grid(bsize=[8, 16, 32, 64]), grid(alpha=[0.8, 0.9, 0.95, 1.0], beta=[0.7, 0.8, 0.9, 1.0])),
    # PISA over the same quantized vectors as bmp: rank-safe dynamic pruning (not with pyvsag in one process).
    "pisa": ("pisa", [{}], grid(algorithm=["block_max_wand", "maxscore"])),
}
# Rank-safe settings, measured on the held-out queries beside the recall targets (the fastest kept).
SAFE = {"sparseir-blockmax": [{"alpha": 1.0, "beta": 1.0}], "bmp": [{"alpha": 1.0, "beta": 1.0}],
        "pisa": [{"algorithm": "block_max_wand"}, {"algorithm": "maxscore"}]}
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


# --- measuring ---------------------------------------------------------------------------


def make_engine(source: str, build: dict, docs):
    """(engine, build seconds, index bytes), built in this process (pinned by the caller)."""
    if build.get("n_postings") == SPARSEIR_DEFAULT:
        from sparseir.indexer.seismic import BuildParams

        build = {**build, "n_postings": BuildParams().postings_for(len(docs))}
    if source in PEERS:
        peer = PEERS[source](**build)
        peer.build(docs)
        return peer, peer.build_seconds, peer.index_bytes
    import tempfile

    # Compiled code is cached on disk after its first use: a build on a few documents first
    # keeps that one-time compilation out of the timed build.
    sparseir.build_index(docs[:100], kind=source, **build)
    index = sparseir.build_index(docs, kind=source, **build)
    with tempfile.TemporaryDirectory() as scratch:
        index.save(Path(scratch) / "index")
        size = sum(f.stat().st_size for f in (Path(scratch) / "index").iterdir())
    index.warmup()
    return IndexEngine(index), index.info["build_seconds"], size


def ordered(docs, order: str, seed: int):
    """The collection in the order every system is given: as read, shuffled (seeded), or by BP."""
    if order == "shuffled":
        return docs.take(np.random.default_rng(seed).permutation(len(docs)))
    if order == "bp":
        from sparseir.reorder import bp_order

        return docs.take(bp_order(docs))
    return docs


def recall(rows, exact_rows) -> float:
    return float(np.nanmean(recall_at_k(rows, exact_rows)))


def run_system(name, docs, tune, held_out, exact_tune, exact_held, args, log, make=make_engine):
    """Sweep on the tuning half (one core), then the chosen settings' figures on the held-out half.
    make(source, build, docs) -> (engine, build seconds, index bytes): builds by default."""
    source, builds, settings = SYSTEMS[name]
    swept, chosen = [], {}
    for build in builds:
        with pinned([args.core]):
            engine, build_s, index_bytes = make(source, build, docs)
            # A prebuilt index (make= another hook) reports how it was built elsewhere: not here, on one core.
            where = "one core" if make is make_engine else "prebuilt"
            log(f"{name} {build}: built in {build_s:.1f} s ({where}), {index_bytes / 1e6:.1f} MB")
            time_batch(engine, tune[:50], args.k, 1, settings[0], repeats=1)  # caches warm
            for knobs in settings:
                timing, _, rows = time_batch(engine, tune, args.k, 1, knobs, repeats=args.sweep_repeats)
                swept.append({"build": build, "knobs": knobs, "recall": recall(rows, exact_tune),
                              "us": timing.summary()["wall_us_per_query"]})
            for target in args.targets:
                passing = [s for s in swept if s["build"] == build and s["recall"] >= target]
                best = min(passing, key=lambda s: s["us"], default=None)
                if best and (target not in chosen or best["us"] < chosen[target]["tune_us"]):
                    chosen[target] = {"build": build, "knobs": best["knobs"], "tune_recall": best["recall"],
                                      "tune_us": best["us"], "build_s": build_s, "index_bytes": index_bytes}
        for knobs in SAFE.get(name, []):
            held = measure(engine, held_out, exact_held, knobs, args)
            log(f"  rank-safe {knobs}: held-out recall {held['recall']:.4f}, "
                f"{held['batch_one_core']['wall_us_per_query']:.1f} us/query one core")
            if "safe" not in chosen or held["batch_one_core"]["wall_us_per_query"] < \
                    chosen["safe"]["held_out"]["batch_one_core"]["wall_us_per_query"]:
                chosen["safe"] = {"build": build, "knobs": knobs, "build_s": build_s, "index_bytes": index_bytes,
                                  "held_out": held}
        for target, pick in chosen.items():
            if target != "safe" and pick["build"] is build and "held_out" not in pick:
                pick["held_out"] = measure(engine, held_out, exact_held, pick["knobs"], args)
                log(f"  recall {target}: {pick['knobs']} -> held-out recall {pick['held_out']['recall']:.4f}, "
                    f"{pick['held_out']['batch_one_core']['wall_us_per_query']:.1f} us/query one core")
        if hasattr(engine, "close"):
            engine.close()
        del engine
        gc.collect()
    return {"swept": swept, "chosen": {str(t): chosen.get(t) for t in args.targets}, "safe": chosen.get("safe")}


def measure(engine, queries, exact_rows, knobs, args) -> dict:
    with pinned([args.core]):
        batch, _, rows = time_batch(engine, queries, args.k, 1, knobs, repeats=3)
        single, _, single_rows = time_single(engine, queries, args.k, knobs, passes=3)
    cores = sorted(os.sched_getaffinity(0))
    with pinned(cores):
        all_cores, _, _ = time_batch(engine, queries, args.k, len(cores), knobs, repeats=3)
    return {"recall": recall(rows, exact_rows), "single_recall": recall(single_rows, exact_rows),
            "batch_one_core": batch.summary(), "single": single.summary(),
            "qps_all_cores": all_cores.summary()["qps"], "cores": len(cores)}


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
            held = pick["held_out"]
            batch, single = held["batch_one_core"], held["single"]
            setting = ", ".join(f"{k}={v}" for k, v in {**pick["build"], **pick["knobs"]}.items())
            lines.append(f"| {name} | {setting} | {held['recall']:.4f} | {batch['wall_us_per_query']:.1f} | "
                         f"{batch['wall_us_per_query'] / exact_us:.3f} | {single['mean_us']:.1f} / "
                         f"{single['p50_us']:.1f} / {single['p99_us']:.1f} | {pick['build_s']:.1f} | "
                         f"{pick['index_bytes'] / 1e6:.1f} |")
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
    from sparseir.reorder import log_gap_bits

    ordering = time.perf_counter()
    docs = ordered(docs, args.order, args.seed)
    order = {"order": args.order, "order_seconds": round(time.perf_counter() - ordering, 2),
             "log_gap_bits": round(log_gap_bits(docs), 3)}
    log(f"documents in {args.order} order ({order['order_seconds']} s): {order['log_gap_bits']} bits per d-gap")
    exact = sparseir.build_index(docs, kind="exact")
    _, exact_tune = exact.search(tune, k=args.k)
    with pinned([args.core]):
        exact_timing, _, exact_held = time_batch(IndexEngine(exact), held_out, args.k, 1, {}, repeats=1)
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
