"""Per-thread dense accumulators over the collection, reset only where touched, and the dense
query, with the bounds checks that keep kernels inside them whatever an index's bulk holds.

An index's offsets and directories are checked when it is opened (``layout.checks``), its
bulk is not: a row, term or block that a kernel reads from the bulk and indexes by goes
through ``is_index`` or ``term_slot`` first, so that a damaged file can change results,
which ``verify=True`` detects, but never make a kernel read or write outside its arrays.
"""

import numpy as np
from numba import njit
from numba.extending import overload

from ..kernels import thread_chunks, weight_at


def is_index(value, n):
    """Whether `value`, read from an index's bulk, indexes an array of n entries."""
    return 0 <= value < n


@overload(is_index, inline="always")
def _is_index(value, n):
    # One unsigned compare: a negative value wraps above any n.
    return lambda value, n: np.uint64(value) < np.uint64(n)


def term_slot(term, n_slots):
    """The entry of a dense query (of n_slots, from ``new_dense_query``) that a term id read from an
    index's bulk reads: the id itself, or, past the vocabulary (a damaged index), the last
    entry, which holds 0."""
    return term if 0 <= term < n_slots else n_slots - 1


@overload(term_slot, inline="always")
def _term_slot(term, n_slots):
    # One unsigned min, which vectorizes with the dot product: a negative id wraps past n_slots.
    return lambda term, n_slots: min(np.uint64(term), np.uint64(n_slots - 1))


@njit(cache=True)
def new_dense_query(n_terms):
    """Zeros for a query's weights by term id, and one entry past the vocabulary (``term_slot``).
    As small as the vocabulary allows: a single query allocates and zeroes it on every call."""
    return np.zeros(n_terms + 1, dtype=np.float32)


@njit(cache=True)
def accumulate_postings(term_offsets, posting_docs, posting_weights, term, query_weight,
                        scores, touched, n_touched, seen):
    """Add query_weight x each posting of `term` into scores; returns the new touched count."""
    n_docs = scores.shape[0]
    for p in range(term_offsets[term], term_offsets[term + 1]):
        doc = posting_docs[p]
        if not is_index(doc, n_docs):
            continue
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


@njit(cache=True)
def new_accumulator(n_docs):
    """(scores, touched, seen): allocated once per thread, never per query."""
    return np.zeros(n_docs, dtype=np.float32), np.empty(n_docs, dtype=np.int32), np.zeros(n_docs, dtype=np.bool_)
