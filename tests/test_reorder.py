"""Recursive graph bisection (sparseir.reorder): permutations on random collections, clusters
found in shuffled synthetic data, fewer log-gap bits on real SPLADE vectors, determinism."""

from __future__ import annotations

import gzip
import itertools
import json

import numba
import numpy as np
import pytest
from conftest import random_vectors, shared_vectors
from hypothesis import given
from hypothesis import strategies as st

from sparseir import ParameterError, SparseVectors, Vocabulary
from sparseir.reorder import bp_order, log_gap_bits


def clustered(rng: np.random.Generator, n_clusters: int, per_cluster: int, width: int, terms_per_doc: int):
    """Documents of cluster c draw their terms from [c * width, (c + 1) * width); shuffled."""
    rows = [{int(t): 1.0 for t in c * width + rng.choice(width, terms_per_doc, replace=False)}
            for c in range(n_clusters) for _ in range(per_cluster)]
    labels = np.repeat(np.arange(n_clusters), per_cluster)
    docs = SparseVectors.from_dicts(rows, vocab=Vocabulary([f"t{i}" for i in range(n_clusters * width)]))
    shuffle = rng.permutation(len(docs))
    return docs.take(shuffle), labels[shuffle]


@given(seed=st.integers(0, 2**32 - 1), n_docs=st.integers(0, 300), n_terms=st.integers(1, 60),
       mean_nnz=st.floats(0.0, 12.0), leaf_size=st.integers(1, 40),
       depth=st.none() | st.integers(1, 8), iterations=st.integers(1, 6))
def test_order_is_a_permutation_with_leaves_in_row_order(seed, n_docs, n_terms, mean_nnz, leaf_size, depth,
                                                          iterations):
    docs = random_vectors(np.random.default_rng(seed), n_docs, n_terms, mean_nnz)
    order = bp_order(docs, iterations=iterations, leaf_size=leaf_size, depth=depth)
    assert order.dtype == np.int64
    np.testing.assert_array_equal(np.sort(order), np.arange(n_docs))
    # depth=1 leaves two parts, each kept in row order.
    if depth == 1 and n_docs > leaf_size:
        mid = n_docs // 2
        assert np.all(np.diff(order[:mid]) > 0) and np.all(np.diff(order[mid:]) > 0)
    if n_docs <= leaf_size:
        np.testing.assert_array_equal(order, np.arange(n_docs))


def test_bisection_brings_shuffled_clusters_together():
    rng = np.random.default_rng(7)
    n_clusters, per_cluster = 16, 40
    docs, labels = clustered(rng, n_clusters, per_cluster, width=30, terms_per_doc=8)
    order = bp_order(docs)
    shuffled_bits, reordered_bits = log_gap_bits(docs), log_gap_bits(docs, order)
    assert reordered_bits < 0.6 * shuffled_bits, (shuffled_bits, reordered_bits)
    # A cluster is contiguous when its documents span exactly per_cluster positions.
    positions = np.argsort(order)
    spans = [np.ptp(positions[labels == c]) + 1 for c in range(n_clusters)]
    assert sum(span == per_cluster for span in spans) >= 0.75 * n_clusters, spans


def test_same_order_every_call_and_every_thread_count(two_threads):
    docs, _ = clustered(np.random.default_rng(3), 8, 50, width=20, terms_per_doc=6)
    noisy = SparseVectors.concatenate([docs, random_vectors(np.random.default_rng(4), 200, 160, 6)])
    first = bp_order(noisy, leaf_size=4)
    np.testing.assert_array_equal(bp_order(noisy, leaf_size=4), first)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one_thread = bp_order(noisy, leaf_size=4)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(one_thread, first)


def test_log_gap_bits_by_hand():
    # Term 0 in rows 0 and 1, term 1 in rows 1 and 2.
    docs = SparseVectors([0, 1, 3, 4], [0, 0, 1, 1], [1.0, 1.0, 1.0, 1.0], vocab=Vocabulary(["a", "b"]))
    # As stored: term 0 gaps 0, 1; term 1 gaps 1, 1 -> 0 + 1 + 1 + 1 bits over 4 postings.
    assert log_gap_bits(docs) == pytest.approx(3 / 4)
    # Order [0, 2, 1]: term 0 at positions 0, 2 (gaps 0, 2); term 1 at 1, 2 (gaps 1, 1).
    assert log_gap_bits(docs, np.array([0, 2, 1])) == pytest.approx((0 + np.log2(3) + 1 + 1) / 4)
    empty = SparseVectors([0, 0], [], [], vocab=Vocabulary(["a"]))
    assert log_gap_bits(empty) == 0.0


@pytest.mark.parametrize("kwargs", [{"iterations": 0}, {"iterations": 1.5}, {"leaf_size": 0},
                                    {"leaf_size": True}, {"depth": 0}, {"depth": -2}])
def test_bad_parameters(kwargs):
    docs = random_vectors(np.random.default_rng(0), 20, 10, 3)
    name = next(iter(kwargs))
    with pytest.raises(ParameterError, match=name):
        bp_order(docs, **kwargs)


@pytest.mark.parametrize("order", [[0, 1], [0, 1, 1], [0, 1, 3], [[0, 1, 2]], [0.0, 1.0, 2.0]])
def test_log_gap_bits_rejects_a_non_permutation(order):
    docs = random_vectors(np.random.default_rng(0), 3, 10, 3)
    with pytest.raises(ParameterError, match="permutation"):
        log_gap_bits(docs, np.array(order))


@pytest.mark.slow
def test_fewer_log_gap_bits_than_the_stored_order_on_debian_pkgs():
    # A prefix keeps the test short (reading all 59k vectors alone takes ~15 s).
    path = shared_vectors("debian-pkgs") / "collection.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        records = [json.loads(line) for line in itertools.islice(lines, 10_000)]
    docs = SparseVectors.from_dicts([r["vector"] for r in records], ids=[r["id"] for r in records])
    stored = log_gap_bits(docs)
    reordered = log_gap_bits(docs, bp_order(docs))
    # debian-pkgs is listed by package name, already a good order (a shuffle costs ~35% more bits).
    assert reordered < stored - 0.03, (stored, reordered)
