"""Exact search against a brute-force float64 reference, on random and real vectors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sparseir
from conftest import ENCODED_COLLECTIONS, assert_same_topk, random_vectors, shared_vectors


@given(seed=st.integers(0, 2**32 - 1), n_docs=st.integers(1, 120), n_terms=st.integers(1, 60),
       k=st.integers(1, 15), integer_weights=st.booleans())
def test_exact_equals_brute_force_on_random_vectors(seed, n_docs, n_terms, k, integer_weights):
    rng = np.random.default_rng(seed)
    docs = random_vectors(rng, n_docs, n_terms, 6, integer_weights=integer_weights)
    queries = random_vectors(rng, 7, n_terms, 3, prefix="q", integer_weights=integer_weights)
    index = sparseir.build_index(docs, kind="exact")
    scores, rows = index.search(queries, k=k)
    assert scores.shape == rows.shape == (len(queries), k)
    assert scores.dtype == np.float32 and rows.dtype == np.int64
    assert_same_topk(docs, queries, scores, rows)


def test_ties_go_to_the_lower_row():
    vocab = sparseir.Vocabulary(["a", "b"])
    docs = sparseir.SparseVectors.from_dicts([{"a": 1.0}, {"b": 1.0}, {"a": 1.0}, {"a": 1.0}], vocab=vocab)
    index = sparseir.build_index(docs)
    scores, rows = index.search([{"a": 2.0}], k=2)
    assert rows.tolist() == [[0, 2]]
    assert scores.tolist() == [[2.0, 2.0]]


def test_same_topk_takes_a_substitute_row_only_when_its_true_score_ties():
    # Guards the brute-force comparisons: a row is judged by its recomputed score, not by the one reported.
    vocab = sparseir.Vocabulary(["a"])
    docs = sparseir.SparseVectors.from_dicts([{"a": 2.0}, {"a": 1.0}, {"a": 2.0}], vocab=vocab)
    queries = sparseir.SparseVectors.from_dicts([{"a": 1.0}], vocab=vocab)
    reported = np.array([[2.0]], dtype=np.float32)
    assert_same_topk(docs, queries, reported, np.array([[2]]))  # row 2 ties with row 0
    with pytest.raises(AssertionError):
        assert_same_topk(docs, queries, reported, np.array([[1]]))  # row 1 scores 1, not 2


def test_padding_when_fewer_matches_than_k():
    vocab = sparseir.Vocabulary(["a", "b", "c"])
    docs = sparseir.SparseVectors.from_dicts([{"a": 1.0}, {"b": 2.0}], vocab=vocab)
    scores, rows = sparseir.build_index(docs).search([{"b": 1.0}, {"c": 1.0}], k=3)
    assert rows.tolist() == [[1, -1, -1], [-1, -1, -1]]
    assert scores[0, 0] == 2.0 and np.isneginf(scores[0, 1:]).all() and np.isneginf(scores[1]).all()


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(7)
    docs = random_vectors(rng, 300, 50, 8)
    queries = random_vectors(rng, 40, 50, 4, prefix="q")
    index = sparseir.build_index(docs)
    return index, queries, index.search(queries, k=10)


def test_batch_equals_one_by_one(batch):
    index, queries, (scores, rows) = batch
    for q in range(len(queries)):
        one = index.search(queries[q:q + 1], k=10)
        np.testing.assert_array_equal(one[1][0], rows[q])
        np.testing.assert_array_equal(one[0][0], scores[q])


def test_thread_count_changes_nothing(batch, two_threads):
    index, queries, (_, rows) = batch
    for threads in (1, two_threads):
        np.testing.assert_array_equal(index.search(queries, k=10, threads=threads)[1], rows)


@pytest.mark.slow
@pytest.mark.parametrize("name", ENCODED_COLLECTIONS)
def test_exact_equals_brute_force_on_shared_collections(name):
    path = shared_vectors(name)
    docs = sparseir.read_vectors(path / "collection.jsonl.gz")
    queries = sparseir.read_vectors(path / "queries.jsonl.gz")[:100]
    index = sparseir.build_index(docs, kind="exact")
    scores, rows = index.search(queries, k=10)
    assert_same_topk(docs, queries, scores, rows)


def test_search_rejects_bad_k_and_threads():
    docs = sparseir.SparseVectors.from_dicts([{"a": 1.0}], vocab=sparseir.Vocabulary(["a"]))
    index = sparseir.build_index(docs)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(sparseir.ParameterError, match="k must be"):
            index.search([{"a": 1.0}], k=bad)
    with pytest.raises(sparseir.ParameterError, match="threads"):
        index.search([{"a": 1.0}], k=1, threads=0)
    with pytest.raises(sparseir.ParameterError, match="unknown exact search parameter"):
        index.search([{"a": 1.0}], k=1, heap_factor=0.9)
