"""Properties every index kind must keep, on random collections (hypothesis, fixed seed):
exhaustive settings equal exact search, save/load changes nothing, a batch equals its
queries one by one, and results do not depend on the thread count."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sparseir
from conftest import random_vectors

# Settings under which a kind must return exactly what exact search returns. (Exhaustive
# SaaT equals exact search over its *quantized* weights: test_saat.py checks that.)
EXHAUSTIVE = {
    "exact": ({}, {}),
    "seismic": ({"n_postings": 10**6, "summary_energy": 1.0, "forward_dtype": "float32"},
                {"query_cut": 10**6, "heap_factor": 1.0}),
}


def collection(seed, n_docs, n_terms):
    rng = np.random.default_rng(seed)
    docs = random_vectors(rng, n_docs, n_terms, 6, integer_weights=True)
    queries = random_vectors(rng, 8, n_terms, 3, prefix="q", integer_weights=True)
    return docs, queries


@pytest.mark.parametrize("kind", sorted(EXHAUSTIVE))
@given(seed=st.integers(0, 2**32 - 1), n_docs=st.integers(1, 150), n_terms=st.integers(1, 40), k=st.integers(1, 12))
def test_exhaustive_settings_equal_exact_search(kind, seed, n_docs, n_terms, k):
    docs, queries = collection(seed, n_docs, n_terms)
    build, knobs = EXHAUSTIVE[kind]
    want_scores, want_rows = sparseir.build_index(docs, kind="exact").search(queries, k=k)
    scores, rows = sparseir.build_index(docs, kind=kind, **build).search(queries, k=k, **knobs)
    # Small integer weights make every score exact in float32: rows must match, ties included.
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-6)


@pytest.mark.parametrize("kind", sparseir.KINDS)
@given(seed=st.integers(0, 2**32 - 1))
def test_save_load_and_batch_change_nothing(tmp_path_factory, kind, seed):
    docs, queries = collection(seed, 200, 30)
    index = sparseir.build_index(docs, kind=kind)
    scores, rows = index.search(queries, k=10)
    path = tmp_path_factory.mktemp(kind) / "index"
    index.save(path)
    loaded = sparseir.load_index(path, verify=True)
    for other in (loaded.search(queries, k=10), index.search(queries, k=10)):
        np.testing.assert_array_equal(other[1], rows)
        np.testing.assert_array_equal(other[0], scores)
    for q in range(len(queries)):
        one_scores, one_rows = index.search(queries[q:q + 1], k=10)
        np.testing.assert_array_equal(one_rows[0], rows[q])
        np.testing.assert_array_equal(one_scores[0], scores[q])


@pytest.mark.parametrize("kind", sparseir.KINDS)
@given(seed=st.integers(0, 2**32 - 1))
def test_thread_count_changes_nothing(two_threads, kind, seed):
    docs, queries = collection(seed, 200, 30)
    index = sparseir.build_index(docs, kind=kind)
    scores, rows = index.search(queries, k=10)  # on every thread numba has
    for threads in (1, two_threads):
        for got, want in zip(index.search(queries, k=10, threads=threads), (scores, rows)):
            np.testing.assert_array_equal(got, want)
