"""The systems that bench/vs_peers.py and bench/at_scale.py compare, and how each is measured.

A system (``SYSTEMS``) is an index kind or a peer engine (``sparseir.bench.peers``) with its
build variants and a grid of query settings. `run_system` sweeps the settings on a tuning
half of the queries on one pinned core, picks for each recall target the fastest one-core
batch setting reaching it, and measures the picks, and the rank-safe settings (``SAFE``), on
the held-out half under the one timing protocol (``sparseir.bench.timing``).
"""

from __future__ import annotations

import gc
import itertools
import os
from pathlib import Path

import numpy as np

from ..evaluate import recall_at_k
from ..index import build_index
from .peers import PEERS
from .timing import IndexEngine, pinned, time_batch, time_single


def grid(**values) -> list[dict]:
    return [dict(zip(values, combination)) for combination in itertools.product(*values.values())]


SEISMIC_GRID = [dict(query_cut=c, heap_factor=h) for c, h in [
    (3, 0.9), (4, 0.9), (5, 0.9), (5, 0.8), (6, 1.0), (6, 0.9), (6, 0.8), (8, 0.9), (8, 0.8), (10, 0.8), (12, 0.9),
    (12, 0.7), (15, 0.7), (20, 0.6)]]
SPARSEIR_DEFAULT = "sparseir's default"  # a build value resolved per collection (make_engine)
# name -> (kind or peer, build variants, query settings)
SYSTEMS = {
    "sparseir-sindi": ("sindi", grid(doc_prune_ratio=[0.2, 0.3, 0.4, 0.5, 0.6], window_size=[8192, 65536]),
                       grid(query_prune_ratio=[0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0],
                            n_candidate=[15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750])),
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


def make_engine(source: str, build: dict, docs):
    """(engine, build seconds, index bytes), built in this process (pinned by the caller)."""
    if build.get("n_postings") == SPARSEIR_DEFAULT:
        from ..indexer.seismic import BuildParams

        build = {**build, "n_postings": BuildParams().postings_for(len(docs))}
    if source in PEERS:
        peer = PEERS[source](**build)
        peer.build(docs)
        return peer, peer.build_seconds, peer.index_bytes
    import tempfile

    # Compiled code is cached on disk after its first use: a build on a few documents first
    # keeps that one-time compilation out of the timed build.
    build_index(docs[:100], kind=source, **build)
    index = build_index(docs, kind=source, **build)
    with tempfile.TemporaryDirectory() as scratch:
        index.save(Path(scratch) / "index")
        size = sum(f.stat().st_size for f in (Path(scratch) / "index").iterdir())
    index.warmup()
    return IndexEngine(index), index.info["build_seconds"], size


def recall(rows, exact_rows) -> float:
    return float(np.nanmean(recall_at_k(rows, exact_rows)))


def run_system(name, docs, tune, held_out, exact_tune, exact_held, args, log, make=make_engine, system=None):
    """Sweep on the tuning half (one core), then the chosen settings' figures on the held-out half.
    make(source, build, docs) -> (engine, build seconds, index bytes): builds by default.
    system: (source, builds, settings) in place of SYSTEMS[name]'s."""
    source, builds, settings = system or SYSTEMS[name]
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


def pick_cells(pick: dict) -> tuple[str, str, float, str]:
    """A measured pick's table cells: (build and query settings, held-out recall, batch us per
    query, single mean / p50 / p99 us)."""
    held = pick["held_out"]
    batch, single = held["batch_one_core"], held["single"]
    setting = ", ".join(f"{k}={v}" for k, v in {**pick["build"], **pick["knobs"]}.items())
    return (setting, f"{held['recall']:.4f}", batch["wall_us_per_query"],
            f"{single['mean_us']:,.1f} / {single['p50_us']:,.1f} / {single['p99_us']:,.1f}")


# Batch calls of a held-out figure, the fastest kept: exact search's yardstick is timed alike.
BATCH_REPEATS = 3


def measure(engine, queries, exact_rows, knobs, args) -> dict:
    with pinned([args.core]):
        batch, _, rows = time_batch(engine, queries, args.k, 1, knobs, repeats=BATCH_REPEATS)
        single, _, single_rows = time_single(engine, queries, args.k, knobs, passes=3)
    cores = sorted(os.sched_getaffinity(0))
    with pinned(cores):
        all_cores, _, _ = time_batch(engine, queries, args.k, len(cores), knobs, repeats=3)
    return {"recall": recall(rows, exact_rows), "single_recall": recall(single_rows, exact_rows),
            "batch_one_core": batch.summary(), "single": single.summary(),
            "qps_all_cores": all_cores.summary()["qps"], "cores": len(cores)}
