from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from sparseir import SparseVectors, Vocabulary

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ENCODED_COLLECTIONS = ("cisi", "cranfield", "nfcorpus", "scifact", "debian-pkgs")

settings.register_profile("ci", max_examples=40, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


@pytest.fixture(scope="session")
def two_threads() -> int:
    """2, for tests comparing thread counts; skips where numba has one thread (one core, a
    one-core `taskset`, or NUMBA_NUM_THREADS=1), since a search asking for more raises."""
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has a single thread here: no second thread count to compare with")
    return 2


def shared_vectors(name: str) -> Path:
    """The pre-encoded vectors directory of a shared collection, or skip the test."""
    path = SHARED_DATA / name / "vectors"
    if not path.exists():
        pytest.skip(f"shared collection {name} not available")
    return path


def random_vectors(rng: np.random.Generator, n: int, n_terms: int, mean_nnz: float, prefix: str = "d",
                   integer_weights: bool = False) -> SparseVectors:
    """Random sparse vectors with a skewed (Zipf-like) term distribution, like real text."""
    vocab = Vocabulary([f"t{i}" for i in range(n_terms)], name="random")
    popularity = 1.0 / np.arange(1, n_terms + 1) ** 0.8
    popularity /= popularity.sum()
    rows = []
    for _ in range(n):
        size = min(n_terms, max(0, int(rng.poisson(mean_nnz))))
        terms = np.sort(rng.choice(n_terms, size=size, replace=False, p=popularity))
        weights = rng.integers(1, 5, size) if integer_weights else rng.gamma(1.5, 1.0, size) + 1e-3
        rows.append(dict(zip(terms.tolist(), weights.tolist())))
    return SparseVectors.from_dicts(rows, ids=[f"{prefix}{i}" for i in range(n)], vocab=vocab)


def true_scores(docs: SparseVectors, queries: SparseVectors) -> np.ndarray:
    """Every query-document dot product in float64, dense: (queries, documents)."""
    return (queries.to_scipy().astype(np.float64) @ docs.to_scipy().astype(np.float64).T).toarray()


def brute_force(docs: SparseVectors, queries: SparseVectors, k: int):
    """Reference top-k by a dense float64 matrix product; ties to the lower row; only score > 0."""
    return top_k(true_scores(docs, queries), k)


def top_k(scores: np.ndarray, k: int):
    """Each row's k best columns of a dense score matrix, as brute_force describes."""
    out_scores = np.full((len(scores), k), -np.inf)
    out_rows = np.full((len(scores), k), -1, dtype=np.int64)
    for q, row in enumerate(scores):
        order = np.lexsort((np.arange(len(row)), -row))
        order = order[row[order] > 0][:k]
        out_scores[q, :len(order)] = row[order]
        out_rows[q, :len(order)] = order
    return out_scores, out_rows


def assert_same_topk(docs: SparseVectors, queries: SparseVectors, scores, rows, rtol=1e-5, atol=1e-5,
                     allowed: np.ndarray | None = None):
    """The brute-force top-k: equal scores (within float32 tolerance), equal rows except among true ties.

    Every returned row's score is recomputed from the vectors: an index that reported a wrong
    row with the right score would pass a check of reported scores alone. `allowed`
    (queries x documents, bool) restricts each query to its filter's documents.
    """
    every = true_scores(docs, queries)
    if allowed is not None:
        every = np.where(allowed, every, 0.0)  # a disallowed document is no result, as one sharing no term
    ref_scores, ref_rows = top_k(every, rows.shape[1])
    np.testing.assert_array_equal(rows == -1, ref_rows == -1)
    found = rows >= 0
    truth = np.take_along_axis(every, np.where(found, rows, 0), axis=1)  # of each returned row
    np.testing.assert_allclose(scores[found], ref_scores[found], rtol=rtol, atol=atol)
    np.testing.assert_allclose(scores[found], truth[found], rtol=rtol, atol=atol)
    for q in range(len(rows)):
        assert len(set(rows[q][found[q]])) == found[q].sum(), q  # no row twice
        for j in np.flatnonzero(rows[q] != ref_rows[q]):
            # A different row is acceptable only if its true score ties with the reference's.
            assert np.isclose(truth[q, j], ref_scores[q, j], rtol=rtol, atol=atol), (q, j, rows[q, j])
        kth = ref_scores[q][found[q]].min() if found[q].any() else None
        clear = ref_scores[q] > (kth + atol + rtol * abs(kth)) if kth is not None else found[q]
        # Rows scoring clearly above the k-th score are in both result sets.
        assert set(ref_rows[q][clear]) <= set(rows[q][found[q]]), q
