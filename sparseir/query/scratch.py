"""Per-thread dense accumulators over the collection, reset only where touched."""

import numpy as np
from numba import njit

from .bits import weight_at


@njit(cache=True)
def accumulate_postings(term_offsets, posting_docs, posting_weights, term, query_weight,
                        scores, touched, n_touched, seen):
    """Add query_weight x each posting of `term` into scores; returns the new touched count."""
    for p in range(term_offsets[term], term_offsets[term + 1]):
        doc = posting_docs[p]
        if not seen[doc]:
            seen[doc] = True
            touched[n_touched] = doc
            n_touched += 1
        scores[doc] += query_weight * weight_at(posting_weights, p)
    return n_touched


def run_chunks(search_chunk, search_batch, args: tuple, n_queries: int, out_scores, out_rows):
    """A kind's kernels over a batch, results into out_*: search_chunk(*args, chunk, n_chunks, out_*)
    serially when there is one chunk (one query, or one thread: no parallel region to launch,
    whose threads may share a core), else search_batch(*args, n_chunks, out_*) in parallel."""
    n_chunks = thread_chunks(n_queries)
    if n_chunks == 1:
        search_chunk(*args, 0, 1, out_scores, out_rows)
    else:
        search_batch(*args, n_chunks, out_scores, out_rows)
    return out_scores, out_rows


def thread_chunks(n_queries: int) -> int:
    """How many interleaved chunks of queries to run in parallel (one scratch each)."""
    if n_queries <= 1:  # asking numba for its thread count takes locks: a single query need not
        return 1
    import numba

    return max(1, min(n_queries, numba.get_num_threads()))


@njit(cache=True)
def new_accumulator(n_docs):
    """(scores, touched, seen): allocated once per thread, never per query."""
    return np.zeros(n_docs, dtype=np.float32), np.empty(n_docs, dtype=np.int32), np.zeros(n_docs, dtype=np.bool_)
