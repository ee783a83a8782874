"""Exact top-k: term-at-a-time accumulation over the full inverted index."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from .scratch import accumulate_postings, new_accumulator, thread_chunks
from .topk import empty_results, heap_drain, heap_push


@dataclass(frozen=True)
class SearchParams:
    """Exact search has no query knobs."""


@njit(cache=True)
def score_query(term_offsets, posting_docs, posting_weights, q_terms, q_weights,
                scores, touched, seen, heap_scores, heap_rows, out_scores, out_rows):
    n_touched = 0
    for j in range(q_terms.shape[0]):
        n_touched = accumulate_postings(term_offsets, posting_docs, posting_weights, q_terms[j], q_weights[j],
                                        scores, touched, n_touched, seen)
    size = 0
    for i in range(n_touched):
        doc = touched[i]
        size = heap_push(heap_scores, heap_rows, size, scores[doc], doc)
        scores[doc] = 0.0
        seen[doc] = False
    heap_drain(heap_scores, heap_rows, size, out_scores, out_rows)


@njit(parallel=True, cache=True)
def search_batch(term_offsets, posting_docs, posting_weights, n_docs, q_offsets, q_terms, q_weights,
                 n_chunks, out_scores, out_rows):
    n_queries = q_offsets.shape[0] - 1
    k = out_scores.shape[1]
    for chunk in prange(n_chunks):
        scores, touched, seen = new_accumulator(n_docs)
        heap_scores = np.empty(k, dtype=np.float32)
        heap_rows = np.empty(k, dtype=np.int64)
        # Interleaved queries balance chunks when query costs drift along the batch.
        for q in range(chunk, n_queries, n_chunks):
            lo, hi = q_offsets[q], q_offsets[q + 1]
            score_query(term_offsets, posting_docs, posting_weights, q_terms[lo:hi], q_weights[lo:hi],
                        scores, touched, seen, heap_scores, heap_rows, out_scores[q], out_rows[q])


def search(arrays, n_docs: int, queries, k: int, params: SearchParams):
    out_scores, out_rows = empty_results(len(queries), k)
    search_batch(arrays["term_offsets"], arrays["posting_docs"], arrays["posting_weights"], n_docs,
                 queries.offsets, queries.terms, queries.weights, thread_chunks(len(queries)), out_scores, out_rows)
    return out_scores, out_rows
