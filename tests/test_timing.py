"""The timing protocol: every engine through the same steps, pinning that reaches every thread."""

import os
import sys
import threading

import numpy as np
import pytest

import sparseir
from sparseir.bench.peers import PEERS
from sparseir.bench.timing import IndexEngine, pinned, thread_ids, time_batch, time_single

from conftest import random_vectors

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="thread affinity is read from /proc")


def affinities() -> list[set[int]]:
    """The mask of every thread still alive: a thread may end between listing and reading."""
    masks = []
    for tid in thread_ids():
        try:
            masks.append(os.sched_getaffinity(tid))
        except ProcessLookupError:
            pass
    return masks


@linux_only
def test_pinned_confines_every_thread_and_restores():
    before = os.sched_getaffinity(0)
    core = max(before)
    release = threading.Event()
    started = {"early": threading.Event(), "late": threading.Event()}
    seen = {}

    def worker(name):
        seen[name] = os.sched_getaffinity(0)
        started[name].set()
        release.wait()

    early = threading.Thread(target=worker, args=("early",), daemon=True)
    early.start()
    assert started["early"].wait(60), "the first thread never ran"
    try:
        with pinned([core]):
            # A thread already running is pinned too, not just the calling one.
            assert all(mask == {core} for mask in affinities())
            late = threading.Thread(target=worker, args=("late",), daemon=True)
            late.start()
            # What the thread saw is read only once it has recorded it, however long that takes.
            assert started["late"].wait(60), "the thread started inside the block never ran"
    finally:
        release.set()
    early.join()
    late.join()
    assert seen["late"] == {core}  # started inside the block: inherits the mask
    assert all(mask == before for mask in affinities())


def engines(docs):
    yield "sparseir", IndexEngine(sparseir.build_index(docs, kind="sindi", doc_prune_ratio=0.0)), {"n_candidate": 500}
    exact_knobs = {"pyseismic": dict(query_cut=1000, heap_factor=0.01), "pyvsag": dict(n_candidate=500), "bmp": {}}
    for name, peer_class in sorted(PEERS.items()):
        # pisa runs in a process of its own (it cannot share one with pyvsag): test_peers times it there.
        if peer_class.available() and name != "pisa":
            peer = peer_class(**({"n_postings": 10**6, "summary_energy": 1.0} if name == "pyseismic" else {}))
            peer.build(docs)
            yield name, peer, exact_knobs[name]


def test_batch_and_single_calls_agree_for_every_engine():
    rng = np.random.default_rng(3)
    docs = random_vectors(rng, 400, 60, 10)
    queries = random_vectors(rng, 12, 60, 5, prefix="q")
    queries.vocab = docs.vocab
    for name, engine, knobs in engines(docs):
        batch, batch_scores, batch_rows = time_batch(engine, queries, 5, 1, knobs, repeats=2)
        single, single_scores, single_rows = time_single(engine, queries, 5, knobs, passes=2)
        np.testing.assert_array_equal(batch_rows, single_rows, err_msg=name)
        np.testing.assert_allclose(batch_scores, single_scores, rtol=1e-6, err_msg=name)
        assert batch.n_queries == single.calls.n_queries == len(queries)
        assert batch.wall_s > 0 and batch.prepare_s >= 0 and batch.collect_s >= 0, name
        assert single.latencies_s.shape == (len(queries),) and (single.latencies_s > 0).all(), name
        assert single.calls.wall_s == pytest.approx(single.latencies_s.sum())
        summary = single.summary()
        assert summary["p50_us"] <= summary["p99_us"] and summary["mean_us"] > 0
        with pytest.raises(sparseir.ParameterError, match="unknown"):
            time_batch(engine, queries, 5, 1, {"no_such_knob": 1})
