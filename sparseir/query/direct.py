"""Filtered search over few allowed documents: score each of them exactly from the forward index.

When a filter leaves only a small share of the collection, walking the index to find
the best of them costs more than scoring them all (as OpenSearch and Qdrant do below a
selectivity threshold). The results are exact.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .scratch import new_dense_query, run_chunks
from .forward import score_doc
from .topk import empty_results, heap_drain, heap_push


@njit(cache=True, nogil=True)
def score_chunk(forward, n_terms, q_offsets, q_terms, q_weights, filter_offsets, filter_rows, filter_of_query, chunk,
                n_chunks, out_scores, out_rows):
    dense_query = new_dense_query(n_terms)
    k = out_scores.shape[1]
    heap_scores = np.empty(k, dtype=np.float32)
    heap_rows = np.empty(k, dtype=np.int64)
    for q in range(chunk, q_offsets.shape[0] - 1, n_chunks):
        lo, hi = q_offsets[q], q_offsets[q + 1]
        for j in range(lo, hi):
            dense_query[q_terms[j]] = q_weights[j]
        f = filter_of_query[q]
        size = 0
        for p in range(filter_offsets[f], filter_offsets[f + 1]):
            doc = filter_rows[p]
            score = score_doc(forward.doc_offsets, forward.doc_terms, forward.doc_weights, forward.term_gaps, doc,
                              dense_query)
            if score > 0:  # as in the index kernels: a document sharing no term is no result
                size = heap_push(heap_scores, heap_rows, size, score, doc)
        heap_drain(heap_scores, heap_rows, size, out_scores[q], out_rows[q])
        for j in range(lo, hi):
            dense_query[q_terms[j]] = 0.0


@njit(parallel=True, cache=True, nogil=True)
def score_batch(forward, n_terms, q_offsets, q_terms, q_weights, filter_offsets, filter_rows, filter_of_query,
                n_chunks, out_scores, out_rows):
    for chunk in prange(n_chunks):
        score_chunk(forward, n_terms, q_offsets, q_terms, q_weights, filter_offsets, filter_rows, filter_of_query,
                    chunk, n_chunks, out_scores, out_rows)


def search(forward, n_terms: int, queries, k: int, filter_offsets: np.ndarray, filter_rows: np.ndarray,
           filter_of_query: np.ndarray):
    """Exact top-k of each query among its filter's rows (filter f: filter_rows[filter_offsets[f]:...])."""
    out_scores, out_rows = empty_results(len(queries), k)
    args = (forward, n_terms, queries.offsets, queries.terms, queries.weights, filter_offsets, filter_rows,
            filter_of_query)
    return run_chunks(score_chunk, score_batch, args, len(queries), out_scores, out_rows)
