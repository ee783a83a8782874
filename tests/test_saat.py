"""The saat index: exact over quantized vectors when exhaustive, close to float search, anytime budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st

import sparseir
from sparseir import ParameterError
from sparseir.quantize import levels, quantize, quantize_queries
from sparseir.query.saat import search_impacts

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COLLECTIONS = ["cisi", "cranfield", "scifact", "nfcorpus", "debian-pkgs"]
K = 10


def random_vectors(rng, n_rows, vocab, density):
    matrix = scipy.sparse.random(n_rows, len(vocab), density=density, random_state=rng, format="csr",
                                 dtype=np.float32)
    # Few distinct weights, so that quantization ties and equal scores are common.
    matrix.data = rng.choice(np.array([0.001, 0.01, 0.3, 0.5, 1.0, 1.7, 2.9], np.float32), len(matrix.data))
    return sparseir.SparseVectors.from_scipy(matrix, vocab=vocab)


def quantized_topk(docs, queries, arrays, k):
    """Brute force over the quantized vectors: (integer scores, rows), ties to the lower row, -1 padding."""
    bits = int(arrays["bits"][0])
    scales = arrays["term_scales"]
    doc_impacts = quantize(docs.weights, scales[docs.terms], bits).astype(np.int64)
    query_impacts, _ = quantize_queries(queries.offsets, queries.terms, queries.weights, scales, bits)
    n_terms = len(docs.vocab)
    d = scipy.sparse.csr_matrix((doc_impacts, docs.terms, docs.offsets), shape=(len(docs), n_terms))
    expected_scores = np.zeros((len(queries), k), np.int64)
    expected_rows = np.full((len(queries), k), -1, np.int64)
    for start in range(0, len(queries), 256):
        part = queries[start:start + 256]
        q = scipy.sparse.csr_matrix((query_impacts[queries.offsets[start]:queries.offsets[start + len(part)]]
                                     .astype(np.int64), part.terms, part.offsets), shape=(len(part), n_terms))
        scores = (q @ d.T).toarray()
        for i, row in enumerate(scores):
            kth_best = np.partition(row, len(row) - k)[len(row) - k] if len(row) > k else 0
            candidates = np.flatnonzero((row >= kth_best) & (row > 0))
            order = candidates[np.lexsort((candidates, -row[candidates]))][:k]
            expected_rows[start + i, :len(order)] = order
            expected_scores[start + i, :len(order)] = row[order]
    return expected_scores, expected_rows


def assert_exact_over_quantized(docs, queries, index, k):
    impact_scores, rows, query_scales, _ = search_impacts(index.arrays, len(docs), queries, k)
    expected_scores, expected_rows = quantized_topk(docs, queries, index.arrays, k)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(impact_scores[rows >= 0], expected_scores[rows >= 0])
    # The float score is the integer score times the query's scale.
    scores, float_rows = index.search(queries, k=k)
    np.testing.assert_array_equal(float_rows, rows)
    expected = np.where(rows >= 0, (impact_scores * query_scales[:, None].astype(np.float64)), -np.inf)
    np.testing.assert_array_equal(scores, expected.astype(np.float32))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), n_docs=st.integers(1, 80), n_terms=st.integers(1, 40),
       density=st.floats(0.02, 0.6), bits=st.sampled_from([1, 2, 4, 8, 12, 16]),
       scaling=st.sampled_from(["global", "term"]), k=st.integers(1, 12))
def test_exhaustive_equals_exact_search_over_quantized_vectors(seed, n_docs, n_terms, density, bits, scaling, k):
    rng = np.random.default_rng(seed)
    vocab = sparseir.Vocabulary([f"t{i}" for i in range(n_terms)])
    docs = random_vectors(rng, n_docs, vocab, density)
    queries = random_vectors(rng, 12, vocab, density)
    index = sparseir.build_index(docs, kind="saat", bits=bits, scaling=scaling)
    assert_exact_over_quantized(docs, queries, index, k)


@pytest.mark.parametrize("scaling", ["global", "term"])
def test_quantizer_rounds_to_the_nearest_level_and_keeps_non_zeros(scaling):
    rng = np.random.default_rng(11)
    vocab = sparseir.Vocabulary([f"t{i}" for i in range(25)])
    docs = random_vectors(rng, 300, vocab, 0.3)
    docs.weights[:] = rng.uniform(1e-4, 3.0, docs.nnz).astype(np.float32)
    index = sparseir.build_index(docs, kind="saat", bits=6, scaling=scaling)
    scales = index.arrays["term_scales"][docs.terms]
    impacts = quantize(docs.weights, scales, 6)
    assert impacts.min() == 1 and impacts.max() == levels(6)
    large = docs.weights >= scales / 2
    assert np.all(np.abs(impacts[large] * scales[large] - docs.weights[large]) <= scales[large] * 0.5001)
    if scaling == "term":  # every term's largest weight gets the top impact
        for term in np.unique(docs.terms):
            assert impacts[docs.terms == term].max() == levels(6)
    else:
        assert np.all(scales == docs.weights.max() / levels(6))


def test_segments_are_impact_descending_with_documents_ascending():
    rng = np.random.default_rng(7)
    vocab = sparseir.Vocabulary([f"t{i}" for i in range(20)])
    index = sparseir.build_index(random_vectors(rng, 200, vocab, 0.3), kind="saat", bits=4)
    a = index.arrays
    for term in range(len(vocab)):
        impacts = a["segment_impacts"][a["term_segments"][term]:a["term_segments"][term + 1]]
        assert np.all(np.diff(impacts) < 0) and np.all((impacts >= 1) & (impacts <= levels(4)))
        for s in range(a["term_segments"][term], a["term_segments"][term + 1]):
            assert np.all(np.diff(a["posting_docs"][a["segment_offsets"][s]:a["segment_offsets"][s + 1]]) > 0)


def test_rho_bounds_postings_processed_monotonically(tmp_path):
    rng = np.random.default_rng(3)
    vocab = sparseir.Vocabulary([f"t{i}" for i in range(30)])
    docs, queries = random_vectors(rng, 300, vocab, 0.2), random_vectors(rng, 20, vocab, 0.2)
    index = sparseir.build_index(docs, kind="saat")
    _, rows_all, _, total = search_impacts(index.arrays, len(docs), queries, K)
    previous = np.zeros(len(queries), np.int64)
    for rho in [1, 2, 5, 17, 50, 120, 400, 10**9]:
        _, rows, _, processed = search_impacts(index.arrays, len(docs), queries, K, rho)
        assert np.all(processed >= previous)
        np.testing.assert_array_equal(processed, np.minimum(total, rho))
        previous = processed
    np.testing.assert_array_equal(rows, rows_all)
    # A budget that covers every posting is exhaustive search, also through the public API.
    index.save(tmp_path / "saat")
    loaded = sparseir.load_index(tmp_path / "saat")
    for a, b in zip(loaded.search(queries, k=K, rho=int(total.max())), index.search(queries, k=K)):
        np.testing.assert_array_equal(a, b)


def test_rho_one_scores_the_single_best_posting():
    vocab = sparseir.Vocabulary(["a", "b"])
    docs = sparseir.SparseVectors.from_dicts([{"a": 1.0}, {"a": 2.0, "b": 0.5}, {"b": 3.0}], vocab=vocab)
    index = sparseir.build_index(docs, kind="saat")
    scores, rows = index.search({"a": 1.0, "b": 1.0}, k=2, rho=1)
    assert rows.tolist() == [[2, -1]] and scores[0, 0] > 0 and scores[0, 1] == -np.inf


def test_queries_matching_nothing_are_padded():
    vocab = sparseir.Vocabulary(["a", "b", "c"])
    docs = sparseir.SparseVectors.from_dicts([{"a": 1.0}, {"b": 2.0}], vocab=vocab)
    index = sparseir.build_index(docs, kind="saat")
    queries = sparseir.SparseVectors.from_dicts([{"c": 1.0}, {}, {"a": 0.2, "c": 5.0}], vocab=vocab)
    scores, rows = index.search(queries, k=2)
    assert rows.tolist() == [[-1, -1], [-1, -1], [0, -1]]
    assert np.isneginf(scores[:2]).all() and scores[2, 0] > 0


@pytest.mark.parametrize("params, name", [({"bits": 0}, "bits"), ({"bits": 17}, "bits"), ({"bits": True}, "bits"),
                                          ({"scaling": "log"}, "scaling")])
def test_bad_build_parameters_are_named(params, name):
    docs = sparseir.SparseVectors.from_dicts([{"a": 1.0}], vocab=sparseir.Vocabulary(["a"]))
    with pytest.raises(ParameterError, match=name):
        sparseir.build_index(docs, kind="saat", **params)


@pytest.mark.parametrize("rho", [0, -3, 2.5, True])
def test_bad_rho_is_named(rho):
    docs = sparseir.SparseVectors.from_dicts([{"a": 1.0}], vocab=sparseir.Vocabulary(["a"]))
    index = sparseir.build_index(docs, kind="saat")
    with pytest.raises(ParameterError, match="rho"):
        index.search({"a": 1.0}, rho=rho)


@pytest.fixture(scope="module", params=COLLECTIONS)
def collection(request):
    """(name, docs, queries, float exact top-k rows) of a shared collection."""
    folder = DATA / request.param / "vectors"
    if not folder.exists():
        pytest.skip(f"shared collection {request.param} not available")
    docs = sparseir.read_vectors(folder / "collection.jsonl.gz")
    queries = sparseir.read_vectors(folder / "queries.jsonl.gz", vocab=docs.vocab)
    _, exact_rows = sparseir.build_index(docs, kind="exact").search(queries, k=K)
    return request.param, docs, queries, exact_rows


@pytest.mark.slow
@pytest.mark.parametrize("scaling", ["global", "term"])
def test_real_collections_exhaustive_is_exact_and_close_to_float_search(collection, scaling):
    name, docs, queries, exact_rows = collection
    index = sparseir.build_index(docs, kind="saat", scaling=scaling)
    # The integer check is brute force: a hundred queries show it on the larger collections.
    assert_exact_over_quantized(docs, queries[:100], index, K)
    _, rows = index.search(queries, k=K)
    found = [len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, (b >= 0).sum()) for a, b in zip(rows, exact_rows)]
    assert np.mean(found) >= 0.99, f"{name}: recall@10 {np.mean(found):.4f} against float exact search"
