"""Exact top-k: term-at-a-time accumulation over the full inverted index."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from ..layout import read
from ..layout.exact import Postings
from .allow import allowed_row, everything, is_allowed
from .scratch import accumulate_postings, new_accumulator, run_chunks
from .topk import empty_results, heap_drain, heap_push


@dataclass(frozen=True)
class SearchParams:
    """Exact search has no query knobs."""


@njit(cache=True)
def score_query(term_offsets, posting_docs, posting_weights, q_terms, q_weights, allowed,
                scores, touched, seen, heap_scores, heap_rows, out_scores, out_rows):
    n_touched = 0
    for j in range(q_terms.shape[0]):
        n_touched = accumulate_postings(term_offsets, posting_docs, posting_weights, q_terms[j], q_weights[j],
                                        scores, touched, n_touched, seen)
    size = 0
    for i in range(n_touched):
        doc = touched[i]
        if is_allowed(allowed, doc):
            size = heap_push(heap_scores, heap_rows, size, scores[doc], doc)
        scores[doc] = 0.0
        seen[doc] = False
    heap_drain(heap_scores, heap_rows, size, out_scores, out_rows)


@njit(cache=True, nogil=True)
def search_chunk(postings, n_docs, q_offsets, q_terms, q_weights, allowed, chunk, n_chunks, out_scores, out_rows):
    """Queries chunk, chunk + n_chunks, ... with one set of scratch arrays (postings: layout.exact.Postings)."""
    scores, touched, seen = new_accumulator(n_docs)
    heap_scores = np.empty(out_scores.shape[1], dtype=np.float32)
    heap_rows = np.empty(out_scores.shape[1], dtype=np.int64)
    # Interleaved queries balance chunks when query costs drift along the batch.
    for q in range(chunk, q_offsets.shape[0] - 1, n_chunks):
        lo, hi = q_offsets[q], q_offsets[q + 1]
        score_query(postings.term_offsets, postings.posting_docs, postings.posting_weights, q_terms[lo:hi],
                    q_weights[lo:hi], allowed_row(allowed, q), scores, touched, seen, heap_scores, heap_rows,
                    out_scores[q], out_rows[q])


@njit(parallel=True, cache=True, nogil=True)
def search_batch(postings, n_docs, q_offsets, q_terms, q_weights, allowed, n_chunks, out_scores, out_rows):
    for chunk in prange(n_chunks):
        search_chunk(postings, n_docs, q_offsets, q_terms, q_weights, allowed, chunk, n_chunks, out_scores, out_rows)


def exhaustive(n_docs: int) -> tuple[dict, dict]:
    """Exact search is exhaustive as it is."""
    return {}, {}


def search(arrays, n_docs: int, queries, k: int, params: SearchParams, allowed=None):
    out_scores, out_rows = empty_results(len(queries), k)
    args = (read(Postings, arrays), n_docs, queries.offsets, queries.terms, queries.weights,
            everything(len(queries)) if allowed is None else allowed)
    return run_chunks(search_chunk, search_batch, args, len(queries), out_scores, out_rows)
