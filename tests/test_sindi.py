"""The sindi index: exact when pruning is off, windows that decode back, knobs that trade recall, stable results."""

from __future__ import annotations

import functools

import numba
import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st

import sparseir
from sparseir import ParameterError
from sparseir.evaluate import recall_at_k
from sparseir.layout import forward as forward_layout
from sparseir.layout.sindi import CODE_LEVELS, MAX_WINDOW

from conftest import ENCODED_COLLECTIONS, assert_same_topk, brute_force, random_vectors, shared_vectors

UNPRUNED = dict(doc_prune_ratio=0.0, value_dtype="float32", forward_dtype="float32")
K = 10
# Tiny windows put each document's postings and a query's candidates across many windows;
# sizes that are not multiples of 16 leave part of the last accumulator group past the window.
WINDOWS = st.sampled_from([1, 2, 3, 7, 15, 16, 17, 33, 100, MAX_WINDOW]) | st.integers(1, 300)


def random_pair(seed: int, n_docs: int, n_terms: int, mean_nnz: float, integer_weights: bool):
    rng = np.random.default_rng(seed)
    docs = random_vectors(rng, n_docs, n_terms, mean_nnz, integer_weights=integer_weights)
    queries = random_vectors(rng, 15, n_terms, max(1.0, mean_nnz / 2), prefix="q", integer_weights=integer_weights)
    queries.vocab = docs.vocab
    return docs, queries


def mean_recall(rows: np.ndarray, exact_rows: np.ndarray) -> float:
    return float(np.nanmean(recall_at_k(rows, exact_rows)))


def assert_exact(docs, queries, scores, rows, k, integer_weights):
    want_scores, want_rows = brute_force(docs, queries, k)
    if integer_weights:
        # Small integer sums are exact in float32: equal scores are true ties, and the lower row must win.
        np.testing.assert_array_equal(rows, want_rows)
        np.testing.assert_array_equal(scores, want_scores.astype(np.float32))
    else:
        assert_same_topk(docs, queries, scores, rows)


# --- exactness with pruning off ---------------------------------------------------------


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), n_docs=st.integers(1, 250), n_terms=st.integers(1, 50),
       mean_nnz=st.floats(0.5, 15.0), window_size=WINDOWS, k=st.integers(1, 15), integer_weights=st.booleans(),
       extra_candidates=st.integers(0, 40))
def test_unpruned_float_index_equals_brute_force(seed, n_docs, n_terms, mean_nnz, window_size, k, integer_weights,
                                                 extra_candidates):
    docs, queries = random_pair(seed, n_docs, n_terms, mean_nnz, integer_weights)
    index = sparseir.build_index(docs, kind="sindi", window_size=window_size, **UNPRUNED)
    scores, rows = index.search(queries, k=k, query_prune_ratio=0.0, n_candidate=n_docs + extra_candidates)
    assert_exact(docs, queries, scores, rows, k, integer_weights)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), n_docs=st.integers(1, 250), n_terms=st.integers(1, 50),
       mean_nnz=st.floats(0.5, 15.0), window_size=WINDOWS, k=st.integers(1, 15), n_candidate=st.integers(1, 30))
def test_exact_first_pass_selects_the_top_candidates_with_ties_to_the_lower_row(seed, n_docs, n_terms, mean_nnz,
                                                                                window_size, k, n_candidate):
    # Integer weights with float32 values make the first pass exact (many ties): then whatever
    # n_candidate, the candidates kept across windows must hold the true top-k, lower rows winning ties.
    docs, queries = random_pair(seed, n_docs, n_terms, mean_nnz, integer_weights=True)
    index = sparseir.build_index(docs, kind="sindi", window_size=window_size, **UNPRUNED)
    scores, rows = index.search(queries, k=k, query_prune_ratio=0.0, n_candidate=n_candidate)
    assert_exact(docs, queries, scores, rows, k, integer_weights=True)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), n_docs=st.integers(4_000, 30_000), window_size=st.sampled_from([4_096, MAX_WINDOW]),
       k=st.integers(1, 10), n_candidate=st.integers(1, 12))
def test_floor_seeded_from_group_maxima_keeps_the_top_candidates(seed, n_docs, window_size, k, n_candidate):
    # Windows of >= 256 x n_candidate rows seed the candidate floor from maxima of groups of
    # accumulators; with few terms and small integer weights most scores tie with the floor.
    docs, queries = random_pair(seed, n_docs, 12, 3.0, integer_weights=True)
    index = sparseir.build_index(docs, kind="sindi", window_size=window_size, **UNPRUNED)
    scores, rows = index.search(queries, k=k, query_prune_ratio=0.0, n_candidate=n_candidate)
    assert_exact(docs, queries, scores, rows, k, integer_weights=True)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), n_docs=st.integers(1, 250), n_terms=st.integers(1, 50),
       mean_nnz=st.floats(0.5, 15.0), window_size=WINDOWS, k=st.integers(1, 15), integer_weights=st.booleans())
def test_uint8_values_with_every_document_a_candidate_are_exact(seed, n_docs, n_terms, mean_nnz, window_size, k,
                                                                 integer_weights):
    # Quantized first-pass scores only choose the candidates; rescoring from the float32 forward index is exact.
    docs, queries = random_pair(seed, n_docs, n_terms, mean_nnz, integer_weights)
    index = sparseir.build_index(docs, kind="sindi", window_size=window_size, doc_prune_ratio=0.0,
                                 value_dtype="uint8", forward_dtype="float32")
    # A collection whose weights all came out 1 is binary: stored without values.
    assert index.arrays["posting_values"].dtype == (np.bool_ if docs.is_binary else np.uint8)
    scores, rows = index.search(queries, k=k, query_prune_ratio=0.0, n_candidate=n_docs)
    assert_exact(docs, queries, scores, rows, k, integer_weights)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1), n_groups=st.integers(1, 600), padding=st.integers(0, 40))
def test_group_maxima_are_the_maxima_of_strided_groups(seed, n_groups, padding):
    # Group g is accumulators g, g + n_groups, ...: any int32 bits (negative ones too, as a
    # damaged value could give) and nothing read past the groups' rows.
    from sparseir.query.sindi import SCAN_GROUP, group_maxima

    rng = np.random.default_rng(seed)
    bits = rng.integers(-2**31, 2**31, SCAN_GROUP * n_groups + padding, dtype=np.int64).astype(np.int32)
    bits[rng.random(bits.shape[0]) < 0.5] = 0
    group_max = np.full(n_groups + 3, 7, np.int32)
    group_maxima(bits, n_groups, group_max)
    expected = bits[:SCAN_GROUP * n_groups].reshape(SCAN_GROUP, n_groups).max(0)
    np.testing.assert_array_equal(group_max[:n_groups], expected)
    assert (group_max[n_groups:] == 7).all()


@pytest.mark.parametrize("window_size", [1, 4, 64])
@pytest.mark.parametrize("value_dtype", ["float32", "uint8"])
def test_ties_go_to_the_lower_row_within_and_across_windows(window_size, value_dtype):
    # Nine equal documents and a buffer of 2 x 3 candidates: it fills and is cut within a window (64),
    # the floor meets ties in later windows (1, 4); rows 1, 2, 3 must come out.
    vocab = sparseir.Vocabulary(["a", "b"])
    docs = sparseir.SparseVectors.from_dicts([{"b": 1.0}] + [{"a": 2.0}] * 9, vocab=vocab)
    index = sparseir.build_index(docs, kind="sindi", window_size=window_size, doc_prune_ratio=0.0,
                                 value_dtype=value_dtype)
    scores, rows = index.search({"a": 1.0}, k=3, n_candidate=3, query_prune_ratio=0.0)
    assert rows.tolist() == [[1, 2, 3]]
    np.testing.assert_array_equal(scores, [[2.0, 2.0, 2.0]])


def test_queries_matching_nothing_are_padded():
    vocab = sparseir.Vocabulary(["a", "b", "c"])
    docs = sparseir.SparseVectors.from_dicts([{"a": 1.0}, {"b": 2.0}, {"a": 0.5, "b": 0.5}], vocab=vocab)
    index = sparseir.build_index(docs, kind="sindi", window_size=2)
    queries = sparseir.SparseVectors.from_dicts([{"c": 1.0}, {}, {"a": 1.0, "c": 5.0}], vocab=vocab)
    scores, rows = index.search(queries, k=4, query_prune_ratio=0.0)
    assert rows.tolist() == [[-1] * 4, [-1] * 4, [0, 2, -1, -1]]
    assert np.isneginf(scores[:2]).all() and np.isneginf(scores[2, 2:]).all()
    np.testing.assert_allclose(scores[2, :2], [1.0, 0.5], rtol=1e-3)


@pytest.mark.parametrize("window_size", [MAX_WINDOW, MAX_WINDOW - 1, 40000])
def test_more_documents_than_one_window_holds(window_size):
    # Over 2^16 documents: rows within a window use all of uint16, and candidates from the third window are
    # told apart from those of the first. Integer weights: exact for every n_candidate (see above).
    rng = np.random.default_rng(12)
    n_terms = 30
    matrix = scipy.sparse.random(140_000, n_terms, density=0.05, random_state=rng, format="csr", dtype=np.float32)
    matrix.data = rng.integers(1, 5, len(matrix.data)).astype(np.float32)
    vocab = sparseir.Vocabulary([f"t{i}" for i in range(n_terms)])
    docs = sparseir.SparseVectors.from_scipy(matrix, vocab=vocab)
    queries = random_vectors(rng, 8, n_terms, 3, prefix="q", integer_weights=True)
    queries.vocab = vocab
    index = sparseir.build_index(docs, kind="sindi", window_size=window_size, **UNPRUNED)
    assert int(index.arrays["posting_docs"].max()) == window_size - 1
    for n_candidate in (len(docs), 7):
        scores, rows = index.search(queries, k=25, query_prune_ratio=0.0, n_candidate=n_candidate)
        assert_exact(docs, queries, scores, rows, 25, integer_weights=True)


# --- the arrays: term-major postings, pruning, quantization ---------------------------


def decoded_postings(arrays, n_docs: int, n_terms: int) -> dict[tuple[int, int], float]:
    """(row, term) -> posting value, read back from the term-major layout, checking it on the way."""
    window_size = int(arrays["window_size"][0])
    n_windows = -(-n_docs // window_size)
    offsets, docs, values = arrays["posting_offsets"], arrays["posting_docs"], arrays["posting_values"]
    assert offsets.shape == (n_terms * n_windows + 1,) and offsets[0] == 0
    assert np.all(np.diff(offsets) >= 0)
    assert offsets[-1] == len(docs) == len(values)
    assert docs.dtype == np.uint16
    postings = {}
    for w in range(n_windows):
        rows_here = min(window_size, n_docs - w * window_size)
        for t in range(n_terms):
            lo, hi = offsets[t * n_windows + w], offsets[t * n_windows + w + 1]
            in_window = docs[lo:hi].astype(np.int64)
            assert np.all(np.diff(in_window) > 0), (w, t)  # ascending, no row twice
            assert np.all(in_window < rows_here), (w, t)
            for p, local in zip(range(lo, hi), in_window):
                postings[w * window_size + int(local), t] = values[p]
    return postings


@pytest.mark.parametrize("doc_prune_ratio", [0.1, 0.3, 0.6])
@pytest.mark.parametrize("window_size", [1, 7, 50, MAX_WINDOW])
def test_pruning_keeps_each_documents_heaviest_entries(doc_prune_ratio, window_size):
    rng = np.random.default_rng(5)
    docs = random_vectors(rng, 300, 80, 12)
    index = sparseir.build_index(docs, kind="sindi", doc_prune_ratio=doc_prune_ratio, window_size=window_size)
    a = index.arrays
    assert a["posting_values"].dtype == np.uint8
    assert len(a["posting_docs"]) < docs.nnz
    postings = decoded_postings(a, len(docs), len(docs.vocab))
    for row in range(len(docs)):
        lo, hi = docs.offsets[row], docs.offsets[row + 1]
        terms, weights = docs.terms[lo:hi], docs.weights[lo:hi].astype(np.float64)
        kept = np.array([(row, int(t)) in postings for t in terms], dtype=bool)
        if not len(terms):
            continue
        assert kept.any(), row
        budget = doc_prune_ratio * weights.sum()
        dropped = weights[~kept]
        assert dropped.sum() <= budget * (1 + 1e-5) + 1e-9, row
        # The heaviest are kept, and no more than needed: one more of the lightest kept would exceed the budget.
        assert not len(dropped) or dropped.max() <= weights[kept].min(), row
        assert dropped.sum() + weights[kept].min() > budget * (1 - 1e-5), row
    # Nothing but the collection's entries is posted.
    entries = set(zip(np.repeat(np.arange(len(docs)), np.diff(docs.offsets)).tolist(), docs.terms.tolist()))
    assert set(postings) <= entries


def test_uint8_values_decode_to_the_weights_within_half_a_step():
    rng = np.random.default_rng(9)
    docs = random_vectors(rng, 400, 60, 10)
    docs.weights[:] = rng.uniform(1e-4, 3.0, docs.nnz).astype(np.float32)  # some below half a step
    index = sparseir.build_index(docs, kind="sindi", doc_prune_ratio=0.2, window_size=33)
    a = index.arrays
    postings = decoded_postings(a, len(docs), len(docs.vocab))
    weight_of = {(int(r), int(t)): float(w) for r, t, w in
                 zip(np.repeat(np.arange(len(docs)), np.diff(docs.offsets)), docs.terms, docs.weights)}
    scales = a["term_scales"].astype(np.float64)
    keys = list(postings)
    terms = np.array([t for _, t in keys])
    codes = np.array([postings[key] for key in keys], dtype=np.float64)
    weights = np.array([weight_of[key] for key in keys])
    step = scales[terms]
    assert codes.min() >= 1 and codes.max() == CODE_LEVELS
    large = weights >= step / 2
    assert large.sum() > 0.9 * len(weights)
    assert np.all(np.abs(codes[large] * step[large] - weights[large]) <= step[large] * 0.5001)
    assert np.all(codes[~large] == 1)  # a kept posting never rounds to zero
    for t in np.unique(terms):  # each term's largest kept weight takes the top code
        assert codes[terms == t].max() == CODE_LEVELS, t
    unposted = np.setdiff1d(np.arange(len(docs.vocab)), terms)
    np.testing.assert_array_equal(a["term_scales"][unposted], 1.0)


def test_term_steps_come_from_the_kept_weights():
    # "a" weighs most in document 0, where it is pruned (lightest of its document): its step comes from document 1.
    vocab = sparseir.Vocabulary(["a", "b"])
    docs = sparseir.SparseVectors.from_dicts([{"a": 2.0, "b": 100.0}, {"a": 0.5}, {"a": 0.2}], vocab=vocab)
    a = sparseir.build_index(docs, kind="sindi", doc_prune_ratio=0.25).arrays
    np.testing.assert_allclose(a["term_scales"], [0.5 / CODE_LEVELS, 100.0 / CODE_LEVELS], rtol=1e-6)
    assert decoded_postings(a, 3, 2) == {(0, 1): CODE_LEVELS, (1, 0): CODE_LEVELS, (2, 0): 102}


def test_float32_values_are_the_weights_and_no_pruning_posts_everything():
    rng = np.random.default_rng(4)
    docs = random_vectors(rng, 200, 40, 8)
    index = sparseir.build_index(docs, kind="sindi", window_size=9, **UNPRUNED)
    a = index.arrays
    assert len(a["posting_docs"]) == docs.nnz
    np.testing.assert_array_equal(a["term_scales"], 1.0)
    postings = decoded_postings(a, len(docs), len(docs.vocab))
    rows = np.repeat(np.arange(len(docs)), np.diff(docs.offsets))
    assert postings == {(int(r), int(t)): w for r, t, w in zip(rows, docs.terms, docs.weights)}


# --- the knobs --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(1)
    docs = random_vectors(rng, 1500, 300, 25)
    queries = random_vectors(rng, 40, 300, 10, prefix="q")
    queries.vocab = docs.vocab
    return docs, queries


def exact_dot(docs, queries, rows: np.ndarray) -> np.ndarray:
    matrix, query_matrix = docs.to_scipy().tocsr(), queries.to_scipy().tocsr()
    return np.array([[matrix[r].dot(query_matrix[q].T).toarray().item() if r >= 0 else -np.inf for r in row]
                     for q, row in enumerate(rows)])


@pytest.mark.parametrize("forward_dtype, rtol", [("float32", 1e-5), ("float16", 2e-3)])
def test_scores_are_dot_products_with_the_whole_query(small, forward_dtype, rtol):
    # Query pruning thins the first pass only: candidates are rescored with every query term.
    docs, queries = small
    index = sparseir.build_index(docs, kind="sindi", window_size=100, forward_dtype=forward_dtype)
    scores, rows = index.search(queries, k=K, query_prune_ratio=0.6, n_candidate=30)
    assert (rows >= 0).all()
    np.testing.assert_allclose(scores, exact_dot(docs, queries, rows), rtol=rtol)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_window_size_changes_nothing_but_speed(small):
    # First-pass scores add up in the same order whatever the windows, so candidates and results are the same.
    docs, queries = small
    want = sparseir.build_index(docs, kind="sindi").search(queries, k=K, n_candidate=20)
    for window_size in (1, 5, 16, 17, 100, 1499):
        got = sparseir.build_index(docs, kind="sindi", window_size=window_size).search(queries, k=K, n_candidate=20)
        np.testing.assert_array_equal(got[1], want[1], err_msg=str(window_size))
        np.testing.assert_array_equal(got[0], want[0], err_msg=str(window_size))


def test_each_knob_trades_recall_on_random_vectors(small):
    docs, queries = small
    _, exact_rows = brute_force(docs, queries, K)
    index = sparseir.build_index(docs, kind="sindi", window_size=128)
    generous = mean_recall(index.search(queries, k=K, n_candidate=len(docs), query_prune_ratio=0.0)[1], exact_rows)
    few = mean_recall(index.search(queries, k=K, n_candidate=K, query_prune_ratio=0.0)[1], exact_rows)
    pruned = mean_recall(index.search(queries, k=K, n_candidate=40, query_prune_ratio=0.7)[1], exact_rows)
    unpruned = mean_recall(index.search(queries, k=K, n_candidate=40, query_prune_ratio=0.0)[1], exact_rows)
    assert few < generous and pruned < unpruned
    # Doc pruning leaves entries out of the first pass only: fewer candidates find fewer of the true top-k.
    heavy = sparseir.build_index(docs, kind="sindi", window_size=128, doc_prune_ratio=0.7, forward_dtype="float32")
    light = sparseir.build_index(docs, kind="sindi", window_size=128, doc_prune_ratio=0.0, forward_dtype="float32")
    assert (mean_recall(heavy.search(queries, k=K, n_candidate=15, query_prune_ratio=0.0)[1], exact_rows)
            < mean_recall(light.search(queries, k=K, n_candidate=15, query_prune_ratio=0.0)[1], exact_rows))


@functools.lru_cache(maxsize=1)  # debian-pkgs is large: hold one collection at a time
def encoded_collection(name: str):
    """(docs, queries, exact top-K rows) of a shared collection, or skip."""
    folder = shared_vectors(name)
    docs = sparseir.read_vectors(folder / "collection.jsonl.gz")
    queries = sparseir.read_vectors(folder / "queries.jsonl.gz", vocab=docs.vocab)
    _, exact_rows = sparseir.build_index(docs, kind="exact").search(queries, k=K)
    return docs, queries, exact_rows


def test_fewer_candidates_and_more_query_pruning_lose_recall_on_scifact():
    docs, queries, exact_rows = encoded_collection("scifact")
    index = sparseir.build_index(docs, kind="sindi")
    generous = mean_recall(index.search(queries, k=K, n_candidate=1000, query_prune_ratio=0.0)[1], exact_rows)
    by_candidates = [mean_recall(index.search(queries, k=K, n_candidate=n, query_prune_ratio=0.0)[1], exact_rows)
                     for n in (K, 20, 50, 200, 1000)]
    # A larger candidate set holds every smaller one (same first pass): recall never drops as it grows.
    assert np.all(np.diff(by_candidates) >= 0), by_candidates
    assert by_candidates[0] < generous, by_candidates
    pruned = mean_recall(index.search(queries, k=K, n_candidate=1000, query_prune_ratio=0.6)[1], exact_rows)
    assert pruned < generous, (pruned, generous)


@pytest.mark.slow
@pytest.mark.parametrize("name", ENCODED_COLLECTIONS)
def test_default_recall_on_real_collections(name):
    docs, queries, exact_rows = encoded_collection(name)
    _, rows = sparseir.build_index(docs, kind="sindi").search(queries, k=K)
    recall = mean_recall(rows, exact_rows)
    assert recall >= 0.95, f"{name}: recall@{K} {recall:.4f} against exact search"


# --- same results however they are asked for ---------------------------------------------


@pytest.mark.parametrize("params", [dict(window_size=100), dict(window_size=7, value_dtype="float32",
                                                                 forward_dtype="float32", doc_prune_ratio=0.4)])
def test_save_load_round_trip(small, tmp_path, params):
    docs, queries = small
    index = sparseir.build_index(docs, kind="sindi", **params)
    index.save(tmp_path / "index")
    loaded = sparseir.load_index(tmp_path / "index", verify=True)
    assert loaded.kind == "sindi" and loaded.build_params == index.build_params
    assert loaded.arrays.keys() == index.arrays.keys()
    for name, array in index.arrays.items():
        np.testing.assert_array_equal(np.asarray(loaded.arrays[name]), array, err_msg=name)
    for knobs in ({}, dict(n_candidate=15, query_prune_ratio=0.5)):
        for got, want in zip(loaded.search(queries, k=7, **knobs), index.search(queries, k=7, **knobs)):
            np.testing.assert_array_equal(got, want)


def test_thread_counts_give_the_same_results(small):
    docs, queries = small
    index = sparseir.build_index(docs, kind="sindi", window_size=200)
    one = index.search(queries, k=K, threads=1)
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has a single thread")
    two = index.search(queries, k=K, threads=2)
    np.testing.assert_array_equal(two[1], one[1])
    np.testing.assert_array_equal(two[0], one[0])


@pytest.mark.parametrize("knobs", [{}, dict(n_candidate=12, query_prune_ratio=0.5)])
def test_batch_equals_one_query_at_a_time(small, knobs):
    # Scratch arrays are reused across a chunk's queries: one query must leave nothing behind for the next.
    docs, queries = small
    index = sparseir.build_index(docs, kind="sindi", window_size=64)
    scores, rows = index.search(queries, k=K, **knobs)
    for q in range(len(queries)):
        one_scores, one_rows = index.search(queries[q:q + 1], k=K, **knobs)
        np.testing.assert_array_equal(one_rows[0], rows[q], err_msg=str(q))
        np.testing.assert_array_equal(one_scores[0], scores[q], err_msg=str(q))
    for threads in (1, 2) if numba.config.NUMBA_NUM_THREADS >= 2 else (1,):
        for got, want in zip(index.search(queries, k=K, threads=threads, **knobs), (scores, rows)):
            np.testing.assert_array_equal(got, want)


def test_prefetching_documents_leaves_results_unchanged(small, monkeypatch):
    # Small forward indexes are rescored without prefetching; force it on to run that path too.
    docs, queries = small
    index = sparseir.build_index(docs, kind="sindi", window_size=100)
    plain = index.search(queries, k=K, n_candidate=30)
    monkeypatch.setattr(forward_layout, "PREFETCH_ABOVE_BYTES", 0)
    prefetched = index.search(queries, k=K, n_candidate=30)
    np.testing.assert_array_equal(prefetched[1], plain[1])
    np.testing.assert_array_equal(prefetched[0], plain[0])


def test_indexes_of_the_same_shape_share_nothing_between_queries():
    # One-query calls reuse scratch across indexes of the same shape: each must find it clean.
    rng = np.random.default_rng(8)
    first, second = random_vectors(rng, 300, 50, 10), random_vectors(rng, 300, 50, 10)
    queries = random_vectors(rng, 12, 50, 5, prefix="q")
    second.vocab = queries.vocab = first.vocab
    indexes = [sparseir.build_index(docs, kind="sindi", window_size=32, forward_dtype="float32")
               for docs in (first, second)]
    batches = [index.search(queries, k=5, n_candidate=8) for index in indexes]
    for q in range(len(queries)):
        for index, (scores, rows) in zip(indexes, batches):
            one_scores, one_rows = index.search(queries[q:q + 1], k=5, n_candidate=8)
            np.testing.assert_array_equal(one_rows[0], rows[q])
            np.testing.assert_array_equal(one_scores[0], scores[q])
    for docs, (scores, rows) in zip((first, second), batches):
        found = rows >= 0
        assert found.any()
        # The scores are true dot products with this index's own documents.
        np.testing.assert_allclose(scores[found], exact_dot(docs, queries, rows)[found], rtol=1e-5)


# --- bad parameters -----------------------------------------------------------------------


@pytest.mark.parametrize("params, name", [
    (dict(window_size=0), "window_size"), (dict(window_size=70000), "window_size"),
    (dict(window_size=2.5), "window_size"), (dict(window_size=True), "window_size"),
    (dict(doc_prune_ratio=1.0), "doc_prune_ratio"), (dict(doc_prune_ratio=-0.1), "doc_prune_ratio"),
    (dict(value_dtype="int4"), "value_dtype"), (dict(forward_dtype="int8"), "forward_dtype")])
def test_bad_build_params_name_the_parameter(params, name):
    docs = sparseir.SparseVectors.from_dicts([{"a": 1.0}], vocab=sparseir.Vocabulary(["a"]))
    with pytest.raises(ParameterError, match=name):
        sparseir.build_index(docs, kind="sindi", **params)


@pytest.mark.parametrize("knobs, name", [
    (dict(query_prune_ratio=-0.1), "query_prune_ratio"), (dict(query_prune_ratio=1.0), "query_prune_ratio"),
    (dict(n_candidate=0), "n_candidate"), (dict(n_candidate=-5), "n_candidate"), (dict(n_candidate=2.5), "n_candidate"),
    (dict(n_candidate=True), "n_candidate")])
def test_bad_search_params_name_the_parameter(knobs, name):
    docs = sparseir.SparseVectors.from_dicts([{"a": 1.0}], vocab=sparseir.Vocabulary(["a"]))
    index = sparseir.build_index(docs, kind="sindi")
    with pytest.raises(ParameterError, match=name):
        index.search({"a": 1.0}, k=1, **knobs)


@pytest.mark.parametrize("good, bad", [(1, True), (2, 2.0)])
def test_bad_n_candidate_is_rejected_after_an_equal_good_one(good, bad):
    docs = sparseir.SparseVectors.from_dicts([{"a": 1.0}], vocab=sparseir.Vocabulary(["a"]))
    index = sparseir.build_index(docs, kind="sindi")
    index.search({"a": 1.0}, k=1, n_candidate=good)
    with pytest.raises(ParameterError, match="n_candidate"):
        index.search({"a": 1.0}, k=1, n_candidate=bad)


def test_query_terms_without_postings_spend_no_pruning_budget():
    # "c" is in the vocabulary but in no document: were its weight counted in the query's
    # mass, pruning 20% of it would drop "a", the only term that matches anything.
    vocab = sparseir.Vocabulary(["a", "b", "c"])
    docs = sparseir.SparseVectors.from_dicts([{"a": 1.0}, {"b": 2.0}, {"a": 0.5, "b": 1.0}], vocab=vocab)
    for value_dtype in ("uint8", "float32"):
        index = sparseir.build_index(docs, kind="sindi", value_dtype=value_dtype)
        _, rows = index.search({"a": 1.0, "c": 5.0}, k=3, query_prune_ratio=0.2)
        assert rows[0].tolist() == [0, 2, -1], value_dtype


def test_changed_search_defaults_apply_to_the_next_search():
    docs = sparseir.SparseVectors.from_dicts([{"a": 1.0}, {"a": 2.0}, {"a": 3.0}], vocab=sparseir.Vocabulary(["a"]))
    index = sparseir.build_index(docs, kind="sindi")
    assert index.search_params().n_candidate == 100
    index.search_defaults = {"n_candidate": 7}  # as `tune --store` does
    assert index.search_params().n_candidate == 7


def test_a_window_too_small_for_the_vocabulary_is_refused_before_allocating():
    vocab = sparseir.Vocabulary([f"t{i}" for i in range(1 << 20)] + ["a"])
    docs = sparseir.SparseVectors.from_dicts([{"a": 1.0}] * 40, vocab=vocab)
    with pytest.raises(ParameterError, match="window_size=1 cuts 40 documents into 40 windows.*at least 3"):
        sparseir.build_index(docs, kind="sindi", window_size=1)
    assert sparseir.build_index(docs, kind="sindi", window_size=3).n_docs == 40
