"""sparseir's Seismic and SINDI indexes against pyseismic-lsr and SINDI (pyvsag) at MS MARCO scale,
and blockmax's rank-safe search against exact search, each built in a process of its own.

    python bench/msmarco_synthetic.py DATA                                  # 8.8M passages in Parquet parts
    python bench/at_scale.py DATA/collection DATA/queries.parquet OUT       # builds, ground truth, latency
    python bench/at_scale.py ... --systems sparseir-sindi,sparseir-seismic,pyseismic,pyvsag
    python bench/at_scale.py ... --systems exact,sparseir-blockmax --n-queries 400

At this size no process may hold the collection beside an index, so every build runs in a
child process and reads the parts itself, on both cores:
- sparseir: ``sparseir index --kind seismic|sindi|blockmax --memory-budget B`` (out of core;
  sindi with ``--doc-prune-ratio`` and ``--window-size`` from those options; blockmax with
  ``--block-size`` from that option, in its default BP order);
- pyseismic-lsr: its ``SeismicDataset`` fed one part at a time, then ``build_from_dataset``
  (its defaults; ``num_threads`` = the cores), and ``save``;
- SINDI (pyvsag): its ``build`` takes the whole collection as CSR arrays, so the child counts
  the parts' non-zeros, fills arrays of that size part by part, and builds with the same
  ``doc_prune_ratio`` as sparseir's and its own default window (50,000). Its address space is
  capped (``--pyvsag-memory``) so that a build too large for the machine fails on its own
  instead of calling the kernel's out-of-memory killer; the peak RSS it reached is reported.
  pyvsag's build returns nothing and only logs a failed allocation (leaving documents out),
  so the child reads its log and exits 3 on any error;
- ground truth: ``sparseir index --kind exact --memory-budget B``, searched on both cores.
Each build reports wall time and the child's peak resident memory (``wait4``), with the
index bytes on disk. One build per system: its query settings are swept (the grid of
``sparseir.bench.SYSTEMS``), not its build. Then each system's index is opened in a fresh process of its own
(one that has held another index runs on fragmented memory) and timed under the protocol
of ``bench/vs_peers.py`` (``sparseir.bench.run_system``, timed by ``sparseir.bench.timing``:
engine call only, one pinned core): query settings swept on a tuning half of the queries,
the fastest reaching each recall target chosen there, figures from the held-out half.
Rank-safe settings (``sparseir.bench.SAFE``) are measured on the held-out half too; the
system ``exact`` times exact search there, the yardstick of those. ``--builds-only`` stops
after the builds, so that the timing can run later on an otherwise idle machine.
Steps whose output exists are skipped, so an interrupted run resumes. Writes
OUT/at_scale.json and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import sparseir
from sparseir.bench import (BATCH_REPEATS, SYSTEMS, IndexEngine, PySeismic, PyVsag, directory_bytes, pick_cells,
                            run_system, vector_parts)
from sparseir.bench.timing import measured_process, pinned, time_batch
from sparseir.workspace import parse_bytes

PYSEISMIC_INDEX = Path("pyseismic") / "index"  # under OUT: the prefix SeismicIndex.save extends
PYVSAG_INDEX = Path("pyvsag") / "index"  # under OUT, with index.json beside it
SPARSEIR_KINDS = {"sparseir-seismic": "seismic", "sparseir-sindi": "sindi",
                  "sparseir-blockmax": "blockmax"}  # system -> kind (its OUT folder)


def log(message: str) -> None:
    print(message, flush=True)


def build_pyseismic(docs: str, prefix: Path, threads: int) -> None:
    """In the child: pyseismic-lsr over the parts, one part in memory at a time, ids = row numbers."""
    import seismic

    dataset = seismic.SeismicDataset()
    rows = 0
    for part in vector_parts(docs):
        vectors = sparseir.read_vectors(part)
        dataset.add_documents_by_id(np.arange(rows, rows + len(vectors)).astype(str).tolist(),
                                    vectors.terms.astype(np.int64), vectors.weights, vectors.offsets)
        rows += len(vectors)
        del vectors
    index = seismic.SeismicIndex.build_from_dataset(dataset, num_threads=threads)
    del dataset
    index.save(str(prefix))


def build_pyvsag(docs: str, out: Path, doc_prune_ratio: float, memory: str) -> None:
    """In the child: SINDI (pyvsag) over the whole collection, filled part by part into arrays sized
    by a first pass, under an address-space cap."""
    import resource
    import shutil

    cap = parse_bytes(memory)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    parts = vector_parts(docs)
    sizes = []
    for part in parts:
        vectors = sparseir.read_vectors(part)
        sizes.append((len(vectors), vectors.nnz, len(vectors.vocab)))
        del vectors
    n_docs, nnz = sum(n for n, _, _ in sizes), sum(z for _, z, _ in sizes)
    log(f"pyvsag: {n_docs:,} passages, {nnz:,} non-zeros in {len(parts)} parts")
    offsets = np.zeros(n_docs + 1, dtype=np.uint64 if nnz >= 2**32 else np.uint32)
    terms, weights = np.empty(nnz, dtype=np.uint32), np.empty(nnz, dtype=np.float32)
    rows = at = 0
    for part in parts:
        vectors = sparseir.read_vectors(part)
        offsets[rows + 1:rows + len(vectors) + 1] = at + vectors.offsets[1:]
        terms[at:at + vectors.nnz], weights[at:at + vectors.nnz] = vectors.terms, vectors.weights
        rows, at = rows + len(vectors), at + vectors.nnz
        del vectors
    peer = PyVsag(doc_prune_ratio=doc_prune_ratio)
    # pyvsag returns nothing from build: an allocation that fails inside it is only logged, and
    # the index then lacks documents. Its log goes to a file, read back for errors.
    log_path = out / "pyvsag" / "build.log"
    log_path.parent.mkdir(exist_ok=True)
    saved = os.dup(1), os.dup(2)
    with open(log_path, "wb") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            peer.build_arrays(offsets, terms, weights, max(v for _, _, v in sizes))
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
    errors = [line for line in log_path.read_text(errors="replace").splitlines() if "[error]" in line]
    if errors:
        log(f"pyvsag failed to build {n_docs:,} passages: {errors[0]}")
        raise SystemExit(3)
    target = out / PYVSAG_INDEX
    target.parent.mkdir(exist_ok=True)
    for name in ("index", "index.json"):
        shutil.move(str(peer.workdir / name), str(target.parent / name))


def measure_system(name: str, record: dict, out: Path, args) -> None:
    """In a child: sweep and measure one built system (``sparseir.bench.run_system``) into OUT/system_NAME.json."""
    exact = sparseir.load_index(out / "exact")
    queries = sparseir.read_vectors(args.queries, vocab=exact.vocab)[:args.n_queries]
    truth = np.load(out / f"truth_{args.n_queries}_{args.k}.npy")
    if name in SPARSEIR_KINDS:  # an index built in another order (blockmax: BP) numbers its rows otherwise
        built = sparseir.load_index(out / SPARSEIR_KINDS[name])
        if not np.array_equal(exact.doc_ids, built.doc_ids):
            found = truth >= 0  # -1: fewer than k results
            truth = truth.copy()
            truth[found] = built.rows_of_ids(exact.doc_ids[truth[found]])
        del built
    del exact
    order = np.random.default_rng(args.seed).permutation(len(queries))
    tune_rows, held_rows = np.sort(order[:len(order) // 2]), np.sort(order[len(order) // 2:])
    build = record["builds"][name]
    if name == "exact":  # the yardstick of rank-safe settings: exhaustive search, timed the same way
        index = sparseir.load_index(out / "exact", memory="all")
        index.warmup()
        with pinned([args.core]):
            timing, _, _ = time_batch(IndexEngine(index), queries.take(held_rows), args.k, 1, {},
                                     repeats=BATCH_REPEATS)
        (out / "system_exact.json").write_text(json.dumps({"held_out": timing.summary()}, indent=2) + "\n")
        return

    def open_built(source, build_params, docs):
        if source == "pyseismic":
            prefix = out / PYSEISMIC_INDEX
            engine = PySeismic.load(next(prefix.parent.glob(prefix.name + "*")))
        elif source == "pyvsag":
            engine = PyVsag.load(out / PYVSAG_INDEX)
        else:
            index = sparseir.load_index(out / SPARSEIR_KINDS[name], memory="all")
            index.warmup()
            engine = IndexEngine(index)
        return engine, build["seconds"], build["index_mb"] * 1e6

    source, _, settings = SYSTEMS[name]
    result = run_system(name, None, queries.take(tune_rows), queries.take(held_rows), truth[tune_rows],
                        truth[held_rows], args, log, make=open_built, system=(source, [build["params"]], settings))
    (out / f"system_{name}.json").write_text(json.dumps(result, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("docs", help="the collection: a directory or glob of parts, or one file")
    parser.add_argument("queries")
    parser.add_argument("out")
    parser.add_argument("--budget", default="1G", help="sparseir's --memory-budget")
    parser.add_argument("--n-queries", type=int, default=2000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--targets", default="0.95")
    parser.add_argument("--systems", default="sparseir-seismic,pyseismic")
    parser.add_argument("--core", type=int, default=min(os.sched_getaffinity(0)))
    parser.add_argument("--sweep-repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--doc-prune-ratio", type=float, default=0.2, help="of both SINDI builds")
    parser.add_argument("--window-size", type=int, help="of sparseir's SINDI build (default: sparseir's)")
    parser.add_argument("--builds-only", action="store_true",
                        help="stop after the builds (time them later, on an otherwise idle machine)")
    parser.add_argument("--block-size", type=int, default=8, help="of sparseir's blockmax build")
    parser.add_argument("--pyvsag-memory", default="22G", help="the SINDI (pyvsag) build's address-space cap")
    parser.add_argument("--pyseismic-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pyvsag-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--measure-child", metavar="SYSTEM", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    out = Path(args.out)
    if args.pyseismic_child:
        build_pyseismic(args.docs, out / PYSEISMIC_INDEX, threads=cores)
        return
    if args.pyvsag_child:
        build_pyvsag(args.docs, out, args.doc_prune_ratio, args.pyvsag_memory)
        return
    targets = args.targets
    args.targets = [float(t) for t in targets.split(",")]
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / "at_scale.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {"builds": {}, "systems": {}}
    if args.measure_child:
        measure_system(args.measure_child, record, out, args)
        return

    def save() -> None:
        record_path.write_text(json.dumps(record, indent=2) + "\n")

    systems = args.systems.split(",")
    sindi = {"doc_prune_ratio": args.doc_prune_ratio}
    sindi_options = ["--kind", "sindi", "--doc-prune-ratio", str(args.doc_prune_ratio)]
    sparseir_sindi = dict(sindi)
    if args.window_size is not None:
        sparseir_sindi["window_size"] = args.window_size
        sindi_options += ["--window-size", str(args.window_size)]
    blockmax = {"block_size": args.block_size}  # reorder="bp", the kind's default
    builds = {"exact": ({}, ["--kind", "exact"]), "sparseir-seismic": ({}, ["--kind", "seismic"]),
              "sparseir-sindi": (sparseir_sindi, sindi_options),
              "sparseir-blockmax": (blockmax, ["--kind", "blockmax", "--block-size", str(args.block_size)])}
    for name, (params, options) in builds.items():
        if name in record["builds"] or (name != "exact" and name not in systems):
            continue
        path = out / SPARSEIR_KINDS.get(name, name)
        result = measured_process([sys.executable, "-m", "sparseir", "index", args.docs, "-o", str(path), *options,
                                   "--memory-budget", args.budget])
        if result["exit"] == 0:
            result["index_mb"] = round(directory_bytes(path) / 1e6)
        record["builds"][name] = {**result, "params": params}
        save()
    peers = {"pyseismic": ({}, ["--pyseismic-child"], PYSEISMIC_INDEX),
             "pyvsag": (sindi, ["--pyvsag-child", "--doc-prune-ratio", str(args.doc_prune_ratio), "--pyvsag-memory",
                                args.pyvsag_memory], PYVSAG_INDEX)}
    for name, (params, options, where) in peers.items():
        if name not in systems or name in record["builds"]:
            continue
        (out / where).parent.mkdir(exist_ok=True)
        result = measured_process([sys.executable, __file__, args.docs, args.queries, args.out, *options])
        if result["exit"] == 0:
            result["index_mb"] = round(directory_bytes((out / where).parent) / 1e6)
        record["builds"][name] = {**result, "params": params}
        save()

    if args.builds_only:
        return
    truth_path = out / f"truth_{args.n_queries}_{args.k}.npy"
    if not truth_path.exists():
        exact = sparseir.load_index(out / "exact")
        queries = sparseir.read_vectors(args.queries, vocab=exact.vocab)[:args.n_queries]
        started = time.perf_counter()
        np.save(truth_path, exact.search(queries, k=args.k, threads=cores)[1])
        record["exact_seconds_all_cores"] = round(time.perf_counter() - started, 1)
        save()
        del exact, queries
    # Each system is timed in a fresh process: one that has just held another index (or the
    # ground truth's) runs on fragmented memory, which measured up to 1.4x slower at 8.8M.
    for name in systems:
        if name in record["systems"] or record["builds"].get(name, {}).get("exit") != 0:
            continue
        subprocess.run([sys.executable, __file__, args.docs, args.queries, args.out, "--measure-child", name,
                        "--n-queries", str(args.n_queries), "--k", str(args.k), "--targets", targets,
                        "--core", str(args.core), "--sweep-repeats", str(args.sweep_repeats), "--seed",
                        str(args.seed)], check=True)
        record["systems"][name] = json.loads((out / f"system_{name}.json").read_text())
        save()
    print(report(record, args))


def report(record, args) -> str:
    lines = ["| system | build s (2 cores) | peak RSS MB | index MB |", "|---|---|---|---|"]
    for name, build in record["builds"].items():
        lines.append(f"| {name} | {build['seconds']} | {build['peak_rss_mb']:,} | {build.get('index_mb', '-')} |"
                     + ("" if build["exit"] == 0 else f" exit {build['exit']}"))
    for target in args.targets:
        lines += ["", f"recall@{args.k} >= {target} (held-out queries, one pinned core):", "",
                  "| system | setting | recall | batch us | single mean / p50 / p99 us | QPS all cores |",
                  "|---|---|---|---|---|---|"]
        for name, result in record["systems"].items():
            if "chosen" not in result:  # exact search: no settings
                continue
            pick = result["chosen"].get(str(target))
            if not pick:
                lines.append(f"| {name} | no swept setting reached the target | | | | |")
                continue
            held = pick["held_out"]
            batch, single = held["batch_one_core"], held["single"]
            setting = ", ".join(f"{k}={v}" for k, v in pick["knobs"].items())
            lines.append(f"| {name} | {setting} | {held['recall']:.4f} | {batch['wall_us_per_query']:.1f} | "
                         f"{single['mean_us']:.1f} / {single['p50_us']:.1f} / {single['p99_us']:.1f} | "
                         f"{held['qps_all_cores']:,.0f} |")
    safe = [(name, result["safe"]) for name, result in record["systems"].items() if result.get("safe")]
    if safe:
        exact_us = record["systems"].get("exact", {}).get("held_out", {}).get("wall_us_per_query")
        lines += ["", "Rank-safe settings (held-out queries, one pinned core)"
                  + (f"; exact search {exact_us:,.1f} us per query:" if exact_us else ":"), "",
                  "| system | setting | recall | batch us | x exact | single mean / p50 / p99 us | QPS all cores |",
                  "|---|---|---|---|---|---|---|"]
        for name, pick in safe:
            setting, recall, batch_us, single = pick_cells(pick)
            ratio = f"{batch_us / exact_us:.3f}" if exact_us else "-"
            lines.append(f"| {name} | {setting} | {recall} | {batch_us:,.1f} | {ratio} | {single} | "
                         f"{pick['held_out']['qps_all_cores']:,.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
