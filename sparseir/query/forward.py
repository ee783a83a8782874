"""Scoring documents exactly from the forward index (``layout.forward``): what Seismic, SINDI
and directly scored filters do with their candidates."""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import overload

from ..kernels import prefetch, prefetch_lines, weight_at
from .allow import is_allowed
from .reads import DAMAGED, mark_failed, read_range
from .scratch import is_index, term_slot
from .topk import heap_push, is_worse

# Documents ahead of the one scored whose lines are prefetched.
DOCS_AHEAD = 4


# Reassociation lets LLVM vectorize the dot product into gathers (AVX2 / AVX-512), which
# scalar partial sums cannot. score_doc stays a function of its own, since numba's inlining
# would give it its caller's strict flags. No flag assumes finite values.
VECTORIZE = {"reassoc", "nsz", "contract"}


@njit(cache=True, fastmath=VECTORIZE)
def score_doc(doc_offsets, doc_terms, doc_weights, term_gaps, doc, dense_query):
    """Exact dot product of a document (forward index) with the dense query (``new_dense_query``)."""
    score = np.float32(0.0)
    lo, hi = np.int64(doc_offsets[doc]), np.int64(doc_offsets[doc + 1])
    n_slots = dense_query.shape[0]
    if term_gaps:  # a running sum, which keeps this loop from vectorizing: only where ids need it
        term = np.int64(0)
        for p in range(lo, hi):
            term += doc_terms[p]
            score += dense_query[term_slot(term, n_slots)] * weight_at(doc_weights, p)
        return score
    for p in range(lo, hi):
        score += dense_query[term_slot(doc_terms[p], n_slots)] * weight_at(doc_weights, p)
    return score


@njit(cache=True, inline="always")
def prefetch_doc(doc_offsets, doc_terms, doc_weights, doc):
    """Prefetch every cache line of one document's forward-index entries."""
    lo, hi = np.int64(doc_offsets[doc]), np.int64(doc_offsets[doc + 1])
    prefetch_lines(doc_terms, lo, hi)
    prefetch_lines(doc_weights, lo, hi)


def vector_row(candidates, p, in_record):
    """The row of (doc_offsets, doc_terms, doc_weights) holding candidate p's vector: candidates[p]
    in the forward index (in_record None), p itself in a block record."""
    return candidates[p] if in_record is None else p


@overload(vector_row, inline="always")
def _vector_row(candidates, p, in_record):
    if isinstance(in_record, types.NoneType):  # resolved at compile time: no cost in the forward index
        return lambda candidates, p, in_record: candidates[p]
    return lambda candidates, p, in_record: p


@njit(cache=True)
def score_candidates(candidates, lo, hi, in_record, n_docs, doc_offsets, doc_terms, doc_weights, term_gaps,
                     prefetch_docs, dense_query, visited, touched, n_touched, heap_scores, heap_rows, size, allowed):
    """Score each of candidates[lo:hi] that `allowed` (a filter's bitset, empty: all) lets through and
    that is not yet scored in this query; returns (n_touched, heap size). The vectors are
    (doc_offsets, doc_terms, doc_weights): the forward index (in_record None), or a block
    record's, in the candidates' order (``vector_row``). A candidate that is no row of the
    n_docs (read from a damaged index's blocks, graph or records) is passed over.

    One call per block rather than per document: a call passing this many arrays costs
    about as much as scoring a short document.
    """
    # Documents lie scattered in the forward index, reached through doc_offsets: fetch every
    # candidate's offsets and visited flag first, then each document's lines DOCS_AHEAD
    # documents before it is scored. (A prefetch never faults; prefetch_doc reads offsets.)
    if prefetch_docs:
        for p in range(lo, hi):
            prefetch(doc_offsets, vector_row(candidates, p, in_record))
            prefetch(visited, candidates[p] >> 6)
        for p in range(lo, min(hi, lo + DOCS_AHEAD)):
            if is_index(candidates[p], n_docs):
                prefetch_doc(doc_offsets, doc_terms, doc_weights, vector_row(candidates, p, in_record))
    for p in range(lo, hi):
        if prefetch_docs and p + DOCS_AHEAD < hi and is_index(candidates[p + DOCS_AHEAD], n_docs):
            prefetch_doc(doc_offsets, doc_terms, doc_weights,
                         vector_row(candidates, p + DOCS_AHEAD, in_record))
        doc = candidates[p]
        if not is_index(doc, n_docs):
            continue
        word, bit = doc >> 6, np.uint64(1) << np.uint64(doc & 63)
        if not visited[word] & bit and is_allowed(allowed, doc):
            visited[word] |= bit
            touched[n_touched] = doc
            n_touched += 1
            score = score_doc(doc_offsets, doc_terms, doc_weights, term_gaps, vector_row(candidates, p, in_record),
                              dense_query)
            # Most candidates lose to the root: test here and spare them the call, which an
            # inlined heap_push would not (its code would grow every caller's loop).
            if size < heap_scores.shape[0] or is_worse(heap_scores[0], heap_rows[0], score, doc):
                size = heap_push(heap_scores, heap_rows, size, score, doc)
    return n_touched, size


@njit(cache=True)
def score_read_candidates(candidates, lo, hi, n_docs, doc_offsets, term_gaps, term_file, weight_file, failed,
                          row_offsets, terms, weights, dense_query, visited, touched, n_touched, heap_scores, heap_rows,
                          size, allowed):
    """score_candidates over candidates[lo:hi] whose forward-index rows are read from their files
    (``query.reads``: term_file, weight_file) instead of memory, under load_index(memory="disk").

    As many rows as the `terms` and `weights` buffers hold are read side by side, as a block
    record holds them (row_offsets: at least hi - lo + 1 entries), then scored; and so on. A
    candidate already scored in this query, disallowed or no row is not read. A row longer than
    the buffers, which no index that passed its checks holds, is not read and marks `failed`.
    """
    start = lo
    while start < hi:
        filled = 0
        end = start
        row_offsets[0] = 0
        while end < hi:
            doc = candidates[end]
            first = last = np.int64(0)
            if is_index(doc, n_docs) and not visited[doc >> 6] & (np.uint64(1) << np.uint64(doc & 63)) \
                    and is_allowed(allowed, doc):
                first, last = np.int64(doc_offsets[doc]), np.int64(doc_offsets[doc + 1])
            if last - first > terms.shape[0]:
                mark_failed(failed, term_file, DAMAGED)
                first = last
            if filled + last - first > terms.shape[0]:
                break  # the buffers are full: score what they hold
            read_range(term_file, first, last, terms[filled:], failed)
            read_range(weight_file, first, last, weights[filled:], failed)
            filled += last - first
            end += 1
            row_offsets[end - start] = filled
        n_touched, size = score_candidates(candidates[start:end], 0, end - start, True, n_docs, row_offsets, terms,
                                           weights, term_gaps, False, dense_query, visited, touched, n_touched,
                                           heap_scores, heap_rows, size, allowed)
        start = end
    return n_touched, size
