"""Binary, ultra-high-dimensional vectors (UHD): binarization, weightless storage, exact search.

Every kind, at exhaustive settings, equals brute force over binary vectors of more than
100,000 dimensions; an index of a binary collection stores no weights.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import sparseir
from sparseir import SparseVectors, Vocabulary
from sparseir.errors import ParameterError
from sparseir.layout import UNIT_WEIGHTS
from sparseir.indexer.forward import forward_index

from conftest import assert_same_topk, random_vectors
from test_saat import assert_exact_over_quantized

N_DIMENSIONS = 120_000  # past 65,536: term ids no longer fit uint16 anywhere
EXHAUSTIVE = {
    "exact": ({}, {}),
    "blockmax": ({"reorder": "none"}, {}),
    "seismic": ({"n_postings": 10**9, "summary_energy": 1.0}, {"query_cut": 10**6, "heap_factor": 1.0}),
    "sindi": ({"doc_prune_ratio": 0.0}, {"query_prune_ratio": 0.0, "n_candidate": 10**6}),
}
WEIGHT_ARRAYS = {"exact": ["posting_weights"], "blockmax": ["posting_weights", "entry_maxima"],
                 "seismic": ["doc_weights", "entry_codes"], "sindi": ["doc_weights", "posting_values"]}


def uhd_collection(seed: int, n_docs: int, n_queries: int, active: int):
    """Binary documents with exactly `active` of N_DIMENSIONS dimensions set (UHD's controlled
    sparsity), drawn around a few shared centres so that documents overlap; float queries."""
    rng = np.random.default_rng(seed)
    vocab = Vocabulary([str(i) for i in range(N_DIMENSIONS)], name="uhd", open=True)
    centres = [rng.choice(N_DIMENSIONS, size=4 * active, replace=False) for _ in range(5)]

    def draw(n, weights):
        rows = []
        for _ in range(n):
            terms = rng.choice(centres[rng.integers(len(centres))], size=active, replace=False)
            rows.append(dict(zip(terms.tolist(), weights(active))))
        return rows

    docs = SparseVectors.from_dicts(draw(n_docs, lambda n: [1.0] * n), vocab=vocab)
    queries = SparseVectors.from_dicts(draw(n_queries, lambda n: rng.gamma(1.5, 1.0, n).tolist()), vocab=vocab)
    return docs, queries


@pytest.mark.slow
@settings(max_examples=10)
@given(seed=st.integers(0, 2**32 - 1), n_docs=st.integers(1, 150), active=st.sampled_from([1, 3, 16]),
       k=st.sampled_from([1, 10, 40]))
def test_every_kind_is_exact_over_binary_vectors_of_120k_dimensions(seed, n_docs, active, k):
    docs, queries = uhd_collection(seed, n_docs, 12, active)
    assert docs.is_binary and len(docs.vocab) == N_DIMENSIONS
    for kind, (build, knobs) in EXHAUSTIVE.items():
        index = sparseir.build_index(docs, kind=kind, **build)
        for name in WEIGHT_ARRAYS[kind]:
            assert index.arrays[name] is UNIT_WEIGHTS, (kind, name)
        assert_same_topk(docs, queries, *index.search(queries, k=k, **knobs))
    saat = sparseir.build_index(docs, kind="saat")
    assert_exact_over_quantized(docs, queries, saat, k)


def test_forward_terms_above_16_bits_are_stored_as_gaps_where_every_gap_fits():
    vocab = Vocabulary([str(i) for i in range(N_DIMENSIONS)], name="uhd", open=True)
    fits = SparseVectors.from_dicts([{5: 1.0, 65540: 1.0}, {65_000: 1.0, 119_999: 1.0}, {}], vocab=vocab)
    assert fits.terms.tolist() == [5, 65540, 65_000, 119_999]
    stored = forward_index(fits, "float32")
    assert stored["doc_terms"].dtype == np.uint16 and stored["doc_term_gaps"][0]
    too_far = SparseVectors.from_dicts([{1: 1.0, 70_000: 1.0}], vocab=vocab)
    stored = forward_index(too_far, "float32")
    assert stored["doc_terms"].dtype == np.int32 and not stored["doc_term_gaps"][0]
    np.testing.assert_array_equal(stored["doc_terms"], too_far.terms)


@pytest.mark.slow
def test_binary_indexes_round_trip_and_forward_terms_are_gaps(tmp_path):
    docs, queries = uhd_collection(5, 300, 20, 16)
    for kind in ("seismic", "sindi", "blockmax", "exact"):
        index = sparseir.build_index(docs, kind=kind, **EXHAUSTIVE[kind][0])
        if "doc_terms" in index.arrays:
            assert index.arrays["doc_terms"].dtype == np.uint16 and index.arrays["doc_term_gaps"][0]
        index.save(tmp_path / kind)
        loaded = sparseir.load_index(tmp_path / kind, verify=True)
        for got, want in zip(loaded.search(queries, k=10, **EXHAUSTIVE[kind][1]),
                             index.search(queries, k=10, **EXHAUSTIVE[kind][1])):
            np.testing.assert_array_equal(got, want)


def test_binarized_keeps_each_vectors_heaviest_terms_as_ones():
    vocab = Vocabulary([f"t{i}" for i in range(6)])
    vectors = SparseVectors.from_dicts([{"t0": 0.5, "t1": 2.0, "t2": 2.0, "t3": 0.1}, {}, {"t5": 0.3}], vocab=vocab)
    binary = vectors.binarized(2)
    assert binary.is_binary and not vectors.is_binary
    assert [vector.as_dict(vocab) for vector in binary] == [{"t1": 1.0, "t2": 1.0}, {}, {"t5": 1.0}]
    # Ties go to the lower term id.
    assert binary.binarized(1)[0].as_dict(vocab) == {"t1": 1.0}
    np.testing.assert_array_equal(binary.ids, vectors.ids)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ParameterError, match="top_k"):
            vectors.binarized(bad)


@pytest.mark.slow
def test_binarized_real_like_vectors_search_exactly():
    docs = random_vectors(np.random.default_rng(1), 500, 300, 20).binarized(8)
    queries = random_vectors(np.random.default_rng(2), 30, 300, 6, prefix="q")
    queries.vocab = docs.vocab
    for kind, (build, knobs) in EXHAUSTIVE.items():
        assert_same_topk(docs, queries, *sparseir.build_index(docs, kind=kind, **build).search(queries, k=10, **knobs))


@pytest.mark.slow
def test_term_ids_up_to_2_31_read_from_jsonl_and_parquet(tmp_path):
    pyarrow = pytest.importorskip("pyarrow")
    import gzip
    import json

    import pyarrow.parquet as pq

    rng = np.random.default_rng(9)
    dims = rng.choice(2**31 - 1, size=300, replace=False)
    rows = [sorted(rng.choice(dims, size=12, replace=False).tolist()) for _ in range(200)]
    with gzip.open(tmp_path / "docs.jsonl.gz", "wt") as f:
        for i, row in enumerate(rows):
            f.write(json.dumps({"id": f"d{i}", "vector": {str(term): 1 for term in row}}) + "\n")
    # A foreign Parquet file: integer term ids and no vocabulary in its metadata.
    pq.write_table(pyarrow.table({"id": [f"d{i}" for i in range(len(rows))],
                                  "terms": pyarrow.array(rows, type=pyarrow.list_(pyarrow.int64())),
                                  "weights": [[1.0] * len(row) for row in rows]}), tmp_path / "docs.parquet")
    from_jsonl = sparseir.read_vectors(tmp_path / "docs.jsonl.gz")
    from_parquet = sparseir.read_vectors(tmp_path / "docs.parquet")
    for docs in (from_jsonl, from_parquet):
        assert docs.is_binary and len(docs.vocab) == len(np.unique(np.concatenate(rows)))
        as_dims = [sorted(int(docs.vocab.term(t)) for t in vector.terms) for vector in docs]
        assert as_dims == rows  # the vocabulary keeps the dimensions used, named by their numbers
    queries = SparseVectors.from_dicts([{str(term): 1.5 for term in rows[0][:4]}], vocab=from_jsonl.vocab)
    for kind, (build, knobs) in EXHAUSTIVE.items():
        scores, found = sparseir.build_index(from_jsonl, kind=kind, **build).search(queries, k=3, **knobs)
        assert found[0, 0] == 0 and scores[0, 0] == pytest.approx(6.0)
