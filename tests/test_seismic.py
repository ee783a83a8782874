"""Seismic index: exact when pruning is off, close to exact with defaults, stable through save/load."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparseir
from sparseir import ParameterError, SparseVectors, Vocabulary
from sparseir.layout import forward as forward_layout
from sparseir.layout import read
from sparseir.indexer.seismic import packed_entry_blocks
from sparseir.layout.seismic import Summaries, block_field_widths
from sparseir.query.seismic import entry_block, list_summary_entries

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COLLECTIONS = ("debian-pkgs", "scifact", "nfcorpus", "cisi", "cranfield")
UNPRUNED = dict(n_postings=10**9, summary_energy=1.0, forward_dtype="float32")
UNPRUNED_QUERY = dict(query_cut=10**6, heap_factor=1.0)


def random_vectors(seed: int, n: int, n_terms: int, max_len: int) -> SparseVectors:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, max_len + 1, n)
    terms = [np.sort(rng.choice(n_terms, size, replace=False)) for size in lengths]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # Skewed weights, as learned sparse models produce: a few heavy terms per vector.
    weights = (rng.gamma(0.5, 1.0, offsets[-1]) + 1e-3).astype(np.float32)
    vocab = Vocabulary([f"t{i}" for i in range(n_terms)])
    return SparseVectors(offsets, np.concatenate(terms + [np.empty(0, dtype=np.int64)]), weights, None, vocab)


def recall(rows: np.ndarray, exact_rows: np.ndarray) -> float:
    hits = [len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, int((b >= 0).sum())) for a, b in zip(rows, exact_rows)]
    return float(np.mean(hits))


def changed_queries(rows: np.ndarray, other_rows: np.ndarray) -> int:
    """How many queries two searches answer with different rows."""
    return int((rows != other_rows).any(axis=1).sum())


def exact_dot(docs: SparseVectors, queries: SparseVectors, rows: np.ndarray) -> np.ndarray:
    matrix = docs.to_scipy()
    return np.array([[matrix[r].dot(queries.to_scipy()[q].T).toarray().item() if r >= 0 else -np.inf
                      for r in row] for q, row in enumerate(rows)])


@pytest.fixture(scope="module")
def small():
    docs = random_vectors(1, 1500, 300, 30)
    queries = random_vectors(2, 40, 300, 12)
    queries.vocab = docs.vocab
    exact = sparseir.build_index(docs, kind="exact")
    return docs, queries, exact.search(queries, k=10)


@settings(max_examples=12, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10**6), clustering=st.sampled_from(["clustered", "fixed"]), k=st.integers(1, 15),
       centroid_fraction=st.sampled_from([0.05, 0.3, 1.0]), block_size=st.integers(1, 40))
def test_unpruned_equals_exact(seed, clustering, k, centroid_fraction, block_size):
    docs = random_vectors(seed, 400, 60, 15)
    queries = random_vectors(seed + 1, 25, 60, 8)
    queries.vocab = docs.vocab
    want_scores, want_rows = sparseir.build_index(docs, kind="exact").search(queries, k=k)
    index = sparseir.build_index(docs, kind="seismic", clustering=clustering, centroid_fraction=centroid_fraction,
                                 block_size=block_size, **UNPRUNED)
    scores, rows = index.search(queries, k=k, **UNPRUNED_QUERY)
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5)


def test_pruning_loses_results_and_heap_factor_buys_them_back(small):
    # Guards the tests above against a processor that never skips anything. Only the summaries
    # are pruned (every posting kept, every query term visited), so that results are lost to
    # blocks skipped on bounds below their documents' scores alone: what heap_factor controls.
    docs, queries, (_, exact_rows) = small
    index = sparseir.build_index(docs, kind="seismic", **{**UNPRUNED, "summary_energy": 0.3})
    strict_rows = index.search(queries, k=10, **UNPRUNED_QUERY)[1]
    lenient_rows = index.search(queries, k=10, **{**UNPRUNED_QUERY, "heap_factor": 0.1})[1]
    strict, lenient = recall(strict_rows, exact_rows), recall(lenient_rows, exact_rows)
    assert strict < 1.0
    # Scoring the blocks a strict test skips finds some of what it lost: an ignored heap_factor
    # would return the same rows, at the same recall.
    assert changed_queries(strict_rows, lenient_rows) > 0
    assert lenient > strict


def test_scores_are_exact_dot_products(small):
    docs, queries, _ = small
    for dtype, rtol in (("float32", 1e-5), ("float16", 2e-3)):
        index = sparseir.build_index(docs, kind="seismic", forward_dtype=dtype)
        scores, rows = index.search(queries, k=10)
        np.testing.assert_allclose(scores, exact_dot(docs, queries, rows), rtol=rtol)
        assert all((np.diff(row[np.isfinite(row)]) <= 0).all() for row in scores)


def test_prefetching_documents_leaves_results_unchanged(small, monkeypatch):
    # Small forward indexes are scored without prefetching; force it on to run that path too.
    docs, queries, _ = small
    index = sparseir.build_index(docs, kind="seismic", n_knn=5)
    plain = index.search(queries, k=10, n_knn=5)
    monkeypatch.setattr(forward_layout, "PREFETCH_ABOVE_BYTES", 0)
    prefetched = index.search(queries, k=10, n_knn=5)
    np.testing.assert_array_equal(prefetched[0], plain[0])
    np.testing.assert_array_equal(prefetched[1], plain[1])


def test_knn_refinement_only_adds_candidates(small):
    docs, queries, (_, exact_rows) = small
    index = sparseir.build_index(docs, kind="seismic", n_knn=5, n_postings=60)
    plain_scores, plain_rows = index.search(queries, k=10, query_cut=2)
    refined_scores, refined_rows = index.search(queries, k=10, query_cut=2, n_knn=5)
    # The blocks scored are the same; the neighbours come on top: no result gets worse, at any rank ...
    assert (refined_scores >= plain_scores).all()
    # ... and some get better: an ignored n_knn would return the same results, at the same recall.
    assert changed_queries(plain_rows, refined_rows) > 0
    assert recall(refined_rows, exact_rows) > recall(plain_rows, exact_rows)
    assert index.arrays["knn"].shape == (len(docs), 5)
    assert not (index.arrays["knn"] == np.arange(len(docs))[:, None]).all()
    with pytest.raises(ParameterError, match="n_knn"):
        index.search(queries, k=10, n_knn=6)


def decoded_summaries(arrays) -> dict[tuple[int, int], float]:
    """(block, term) -> summary value, read back through the layout's decoder."""
    summaries = read(Summaries, arrays)
    values = {}
    for t in range(len(arrays["term_blocks"]) - 1):
        entries = list_summary_entries(summaries, t)
        singles = summaries.single_terms[summaries.list_single_offsets[t]:summaries.list_single_offsets[t + 1]]
        others = summaries.list_terms[summaries.list_term_offsets[t]:summaries.list_term_offsets[t + 1]]
        owners = [term for _, term, _ in entries]
        # Single-block terms first, one entry each; then the others, in two blocks or more.
        assert owners[:len(singles)] == [int(term) for term in singles]
        assert all(owners.count(int(term)) >= 2 for term in others)
        for e, term, block_in_list in entries:
            block = int(arrays["term_blocks"][t]) + block_in_list
            assert (block, term) not in values
            values[block, term] = summaries.summary_min[block] + summaries.summary_scale[block] * summaries.entry_codes[e]
    return values


@pytest.mark.parametrize("clustering", ["clustered", "fixed"])
def test_unpruned_summaries_are_the_block_maxima(small, clustering):
    docs = small[0]
    index = sparseir.build_index(docs, kind="seismic", clustering=clustering, n_postings=40, summary_energy=1.0)
    a = index.arrays
    got = decoded_summaries(a)
    matrix = docs.to_scipy().tocsr()
    # Summaries bound the weights search scores: those the forward index stores (float16).
    matrix.data = matrix.data.astype(np.float16).astype(np.float32)
    want = {}
    for block in range(len(a["block_offsets"]) - 1):
        rows = a["block_docs"][a["block_offsets"][block]:a["block_offsets"][block + 1]]
        maxima = matrix[rows].max(axis=0).tocoo()
        want.update({(block, int(term)): value for term, value in zip(maxima.col, maxima.data)})
    assert got.keys() == want.keys()
    for key, value in want.items():
        # Codes round up: never below the maximum, at most one quantization step above it.
        assert value <= got[key] <= value + a["summary_scale"][key[0]] * 1.0001, key


def test_block_field_widths_are_the_fewest_bits():
    blocks = np.array([0, 1, 2, 3, 4, 5, 256, 257, 1 << 20, (1 << 32) - 1, 1 << 32])
    np.testing.assert_array_equal(block_field_widths(blocks), [0, 0, 1, 2, 2, 3, 8, 9, 20, 32, 32])


@settings(max_examples=25, deadline=None, derandomize=True)
@given(list_blocks=st.lists(st.integers(1, 1 << 32), min_size=1, max_size=6), seed=st.integers(0, 10**6))
def test_packed_entry_blocks_read_back(list_blocks, seed):
    # Widths from 0 to 32 bits, fields straddling words included, lists packed side by side.
    rng = np.random.default_rng(seed)
    list_blocks = np.array(list_blocks, dtype=np.int64)
    sizes = rng.integers(0, 40, len(list_blocks))
    list_entries = np.concatenate([[0], np.cumsum(sizes)])
    blocks = np.concatenate([rng.integers(0, n, size) for n, size in zip(list_blocks, sizes)]).astype(np.int64)
    widths, words, packed = packed_entry_blocks(list_blocks, list_entries, blocks)
    for t in range(len(list_blocks)):
        for e in range(list_entries[t], list_entries[t + 1]):
            assert entry_block(packed, words[t], int(widths[t]), e - list_entries[t]) == blocks[e]


def test_save_load_round_trip(small, tmp_path):
    docs, queries, _ = small
    index = sparseir.build_index(docs, kind="seismic", n_knn=3)
    index.save(tmp_path / "index")
    loaded = sparseir.load_index(tmp_path / "index", verify=True)
    for got, want in zip(loaded.search(queries, k=7, n_knn=3), index.search(queries, k=7, n_knn=3)):
        np.testing.assert_array_equal(got, want)


def test_padding_for_short_and_empty_queries():
    docs = SparseVectors.from_dicts([{"a": 1.0}, {"a": 2.0, "b": 1.0}, {"c": 1.0}], vocab=Vocabulary.growing())
    index = sparseir.build_index(docs, kind="seismic")
    scores, rows = index.search([{"a": 1.0}, {}], k=4)
    np.testing.assert_array_equal(rows, [[1, 0, -1, -1], [-1, -1, -1, -1]])
    assert np.isneginf(scores[0, 2:]).all() and np.isneginf(scores[1]).all()


@pytest.mark.parametrize("params, name", [
    (dict(n_postings=0), "n_postings"), (dict(centroid_fraction=0.0), "centroid_fraction"),
    (dict(summary_energy=1.5), "summary_energy"), (dict(clustering="kmeans"), "clustering"),
    (dict(forward_dtype="int8"), "forward_dtype"), (dict(block_size=0), "block_size"),
    (dict(n_knn=-1), "n_knn"), (dict(doc_cut=0), "doc_cut"), (dict(max_fraction=0.0), "max_fraction"),
    (dict(min_cluster_size=-1), "min_cluster_size")])
def test_bad_build_params_name_the_parameter(small, params, name):
    with pytest.raises(ParameterError, match=name):
        sparseir.build_index(small[0], kind="seismic", **params)


@pytest.mark.parametrize("knobs, name", [(dict(query_cut=0), "query_cut"), (dict(heap_factor=0.0), "heap_factor"),
                                         (dict(heap_factor=1.5), "heap_factor")])
def test_bad_search_params_name_the_parameter(small, knobs, name):
    index = sparseir.build_index(small[0], kind="seismic")
    with pytest.raises(ParameterError, match=name):
        index.search(small[1], k=3, **knobs)


def test_pruning_keeps_the_heaviest_postings_of_the_collection(small):
    from sparseir.indexer.seismic import kept_list_sizes

    docs = small[0]
    lists = [np.sort(docs.weights[docs.terms == t])[::-1] for t in range(len(docs.vocab))]
    sizes, _, _ = kept_list_sizes(docs, np.array([len(w) for w in lists]), 30, 1.5)
    assert sizes.max() == 45 and 0 < sizes.sum() <= 30 * sum(len(w) > 0 for w in lists)
    # Below the cap, one global threshold: nothing dropped outweighs anything kept.
    uncapped = [(w[:n], w[n:]) for w, n in zip(lists, sizes) if n < 45]
    assert min(kept.min() for kept, _ in uncapped if len(kept)) > max(drop.max() for _, drop in uncapped if len(drop))


def test_default_postings_scale_with_collection_size():
    from sparseir.indexer.seismic import BuildParams

    params = BuildParams()
    assert params.postings_for(1000) == 1000
    assert params.postings_for(8_841_823) == 3500
    assert params.postings_for(1_000_000) < params.postings_for(4_000_000) < 3500
    assert BuildParams(n_postings=7).postings_for(10**7) == 7


@pytest.mark.slow
@pytest.mark.parametrize("name", COLLECTIONS)
def test_default_recall_on_real_collections(name):
    folder = DATA / name / "vectors"
    if not folder.exists():
        pytest.skip(f"{name} vectors not available")
    docs = sparseir.read_vectors(folder / "collection.jsonl.gz")
    queries = sparseir.read_vectors(folder / "queries.jsonl.gz", vocab=docs.vocab)
    _, exact_rows = sparseir.build_index(docs, kind="exact").search(queries, k=10)
    _, rows = sparseir.build_index(docs, kind="seismic").search(queries, k=10)
    assert recall(rows, exact_rows) >= 0.95
