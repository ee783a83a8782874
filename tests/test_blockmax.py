"""Block-max pruning: safe mode is exact search, bit for bit, whatever the blocks and the order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import sparseir
from sparseir.errors import ParameterError
from sparseir.formats import read_vectors
from sparseir.index import in_build_order
from sparseir.layout.blockmax import MAX_CODE
from sparseir.query.blockmax import FIRST_ROUND, SEARCH_RATIO, SearchParams, first_at_least, scratch_bytes

from conftest import ENCODED_COLLECTIONS, assert_same_topk, random_vectors, shared_vectors


def assert_identical(got, want):
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


@given(seed=st.integers(0, 2**32 - 1), n_docs=st.integers(1, 300), block_size=st.sampled_from([1, 3, 8, 32, 64]),
       integer_weights=st.booleans(), k=st.sampled_from([1, 5, 10, 50]))
def test_safe_mode_equals_exact_search(seed, n_docs, block_size, integer_weights, k):
    rng = np.random.default_rng(seed)
    # Few terms and integer weights: many documents tie, and ties must go to the lower row.
    docs = random_vectors(rng, n_docs, 40, 6, integer_weights=integer_weights)
    queries = random_vectors(rng, 20, 40, 4, prefix="q", integer_weights=integer_weights)
    blockmax = sparseir.build_index(docs, kind="blockmax", block_size=block_size, reorder="none")
    want = sparseir.build_index(docs, kind="exact").search(queries, k=k)
    assert_identical(blockmax.search(queries, k=k), want)
    assert_identical(blockmax.search(queries, k=k, threads=1), want)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_docs=st.integers(2 * SEARCH_RATIO * FIRST_ROUND, 5 * SEARCH_RATIO * FIRST_ROUND),
       k=st.sampled_from([10, 100, 400]), integer_weights=st.booleans())
def test_safe_mode_over_several_rounds_and_searched_terms_equals_exact_search(seed, n_docs, k, integer_weights):
    # One document per block and a small vocabulary: common terms hold more entries than
    # SEARCH_RATIO x the first round's blocks (so they are searched, not read whole), and
    # k = 400 scores at least 400 blocks: rounds of 64, 128 and 256 blocks at least.
    rng = np.random.default_rng(seed)
    docs = random_vectors(rng, n_docs, 30, 5, integer_weights=integer_weights)
    queries = random_vectors(rng, 8, 30, 6, prefix="q", integer_weights=integer_weights)
    blockmax = sparseir.build_index(docs, kind="blockmax", block_size=1, reorder="none")
    assert np.diff(blockmax.arrays["term_entries"]).max() > SEARCH_RATIO * FIRST_ROUND
    want = sparseir.build_index(docs, kind="exact").search(queries, k=k)
    assert_identical(blockmax.search(queries, k=k, threads=1), want)


@given(values=st.lists(st.integers(0, 50), max_size=40), lo=st.integers(0, 40), value=st.integers(-1, 52))
def test_first_at_least_finds_the_first_position_holding_at_least_the_value(values, lo, value):
    values = np.sort(np.array(values, dtype=np.int32))
    lo = min(lo, len(values))
    want = lo + int(np.searchsorted(values[lo:], value, side="left"))
    assert first_at_least(values, lo, len(values), value) == want


@pytest.mark.parametrize("longest", [1, 43, 400, 4000, 40_000])
def test_a_threads_query_memory_at_ms_marco_size_stays_under_64_mb(longest):
    # 8,841,823 passages in blocks of 8: buffers per block and one round's table, never blocks
    # x query terms (which at 43 terms would be 190 MB).
    assert scratch_bytes(8_841_823, 8, longest) < 64 * 2**20
    assert scratch_bytes(8_841_823, 8, longest) - scratch_bytes(8_841_823, 8, 1) < 8 * 2**20 + 24 * longest


@given(seed=st.integers(0, 2**32 - 1), n_docs=st.integers(1, 200))
def test_reordered_safe_mode_equals_exact_search_over_the_same_order(seed, n_docs):
    rng = np.random.default_rng(seed)
    docs = random_vectors(rng, n_docs, 40, 6, integer_weights=True)
    queries = random_vectors(rng, 15, 40, 4, prefix="q", integer_weights=True)
    blockmax = sparseir.build_index(docs, kind="blockmax")  # reorder="bp", the kind's default
    assert blockmax.build_params.reorder == "bp"
    reordered, _ = in_build_order(docs, None, "bp")
    np.testing.assert_array_equal(blockmax.doc_ids, reordered.ids)
    exact = sparseir.build_index(reordered, kind="exact")
    assert_identical(blockmax.search(queries, k=10), exact.search(queries, k=10))
    # Reordering changes rows, never the documents found: against the collection as given.
    assert_same_topk(reordered, queries, *blockmax.search(queries, k=10))


@given(seed=st.integers(0, 2**32 - 1), selectivity=st.sampled_from([0.01, 0.2, 0.9]))
def test_filtered_safe_mode_equals_filtered_exact_search(seed, selectivity):
    rng = np.random.default_rng(seed)
    docs = random_vectors(rng, 250, 40, 6, integer_weights=True)
    queries = random_vectors(rng, 15, 40, 4, prefix="q", integer_weights=True)
    masks = rng.random((len(queries), len(docs))) < selectivity
    blockmax = sparseir.build_index(docs, kind="blockmax", reorder="none")
    exact = sparseir.build_index(docs, kind="exact")
    assert_identical(blockmax.search(queries, k=10, filters=list(masks)), exact.search(queries, k=10,
                                                                                       filters=list(masks)))
    assert_same_topk(docs, queries, *blockmax.search(queries, k=10, filters=list(masks)), allowed=masks)


@pytest.mark.slow
@pytest.mark.parametrize("name", ENCODED_COLLECTIONS)
def test_safe_mode_equals_exact_search_on_shared_collections(name):
    path = shared_vectors(name)
    docs = read_vectors(path / "collection.jsonl.gz")
    queries = read_vectors(path / "queries.jsonl.gz", vocab=docs.vocab)[:500]
    exact = sparseir.build_index(docs, kind="exact").search(queries, k=100)
    # The collection's own order is what ground truth uses; bp is the kind's default.
    assert_identical(sparseir.build_index(docs, kind="blockmax", reorder="none").search(queries, k=100), exact)
    reordered = sparseir.build_index(docs, kind="blockmax", block_size=32)
    scores, rows = reordered.search(queries, k=100)
    np.testing.assert_array_equal(scores, exact[0])
    for q in range(len(queries)):
        found = exact[1][q] >= 0
        if found.any():  # the documents scoring above the k-th are the same; ties may change places
            clear = found & (exact[0][q] > exact[0][q][found].min())
            assert set(reordered.doc_ids[rows[q][clear]]) == set(docs.ids[exact[1][q][clear]])


def test_block_maxima_bound_every_weight_they_cover():
    rng = np.random.default_rng(7)
    docs = random_vectors(rng, 500, 60, 10)
    arrays = sparseir.build_index(docs, kind="blockmax", block_size=16, reorder="none").arrays
    size = 16
    term_of_entry = np.repeat(np.arange(len(docs.vocab)), np.diff(arrays["term_entries"]))
    offsets = arrays["entry_postings"].astype(np.int64)
    dense = docs.to_scipy().toarray()
    assert arrays["entry_maxima"].max() <= MAX_CODE
    for e in range(len(arrays["entry_blocks"])):
        postings = slice(offsets[e], offsets[e + 1])
        mask = int(arrays["entry_masks"][e])
        slots = [s for s in range(size) if mask >> s & 1]
        rows = arrays["entry_blocks"][e] * size + np.array(slots)
        assert len(slots) == offsets[e + 1] - offsets[e] >= 1
        assert np.all(dense[rows, term_of_entry[e]] > 0)  # the mask names the block's documents holding the term
        bound = np.float32(arrays["entry_maxima"][e]) * arrays["term_scales"][term_of_entry[e]]
        weights = arrays["posting_weights"][postings]
        assert np.all(weights <= bound)
        # Rounded up by at most one step: bounds stay tight.
        assert bound - weights.max() <= arrays["term_scales"][term_of_entry[e]] * 1.0001
        np.testing.assert_array_equal(weights, dense[rows, term_of_entry[e]])


@pytest.mark.slow
def test_approximate_knobs_trade_recall_monotonically_on_a_real_collection():
    path = shared_vectors("debian-pkgs")
    docs = read_vectors(path / "collection.jsonl.gz")
    queries = read_vectors(path / "queries.jsonl.gz", vocab=docs.vocab)[:300]
    index = sparseir.build_index(docs, kind="blockmax", reorder="none")
    _, truth = sparseir.build_index(docs, kind="exact").search(queries, k=10)

    def recall(**knobs):
        _, rows = index.search(queries, k=10, **knobs)
        return np.mean([len(set(rows[q]) & set(truth[q])) / 10 for q in range(len(queries))])

    alphas = [recall(alpha=a) for a in (0.5, 0.8, 0.95, 1.0)]
    assert alphas == sorted(alphas) and alphas[-1] == 1.0 and alphas[0] < 0.95
    assert recall(beta=0.5) < recall(beta=0.9) <= 1.0


def test_bad_knobs_name_the_parameter():
    for knobs, name in [({"alpha": 0.0}, "alpha"), ({"alpha": 1.5}, "alpha"), ({"beta": 0}, "beta")]:
        with pytest.raises(ParameterError, match=name):
            SearchParams(**knobs)
    docs = random_vectors(np.random.default_rng(0), 10, 10, 3)
    for params, name in [({"block_size": 65}, "block_size"), ({"block_size": 0}, "block_size"),
                         ({"reorder": "random"}, "reorder")]:
        with pytest.raises(ParameterError, match=name):
            sparseir.build_index(docs, kind="blockmax", **params)
