"""Score-at-a-time search over impact segments, anytime (JASS).

A query gathers the segments of its terms, orders them by query impact x segment impact
(highest first, ties by segment id), and adds each segment's contribution into integer
accumulators until ``rho`` postings have been processed (all of them when unset: then
the result is exact search over the quantized vectors).

The top-k is kept during accumulation, as in JASS: a heap holds the k best documents so
far, and since scores only grow, a document enters when it beats the heap's root and a
document already inside moves down towards the best. Nothing is scanned at the end.
Accumulators are reset by walking the postings just processed again: no per-posting
"first touch" test in the hot loop, and the reset costs at most the postings processed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from ..errors import require
from ..layout import frozen, read
from ..layout.saat import Segments, impact_bits
from ..quantize import levels, quantize, quantize_queries
from .allow import allowed_row, everything, is_allowed
from ..kernels import thread_chunks
from .scratch import is_index
from .topk import empty_results, heap_drain, is_worse

UNLIMITED = np.iinfo(np.int64).max


@dataclass(frozen=True)
class SearchParams:
    rho: int | None = field(default=None, metadata={
        "help": "anytime budget: process at most this many postings per query, highest impacts first "
                "(default: all, exact over the quantized vectors)"})

    def __post_init__(self):
        require(self.rho is None or (not isinstance(self.rho, bool) and isinstance(self.rho, (int, np.integer))
                                     and self.rho >= 1), f"rho must be a positive integer or None, got {self.rho!r}")


@njit(cache=True)
def _sift_up(heap_scores, heap_rows, positions, i):
    while i > 0:
        parent = (i - 1) >> 1
        if not is_worse(heap_scores[i], heap_rows[i], heap_scores[parent], heap_rows[parent]):
            return
        _swap(heap_scores, heap_rows, positions, i, parent)
        i = parent


@njit(cache=True)
def _sift_down(heap_scores, heap_rows, positions, i, size):
    while True:
        child = 2 * i + 1
        if child >= size:
            return
        if child + 1 < size and is_worse(heap_scores[child + 1], heap_rows[child + 1],
                                         heap_scores[child], heap_rows[child]):
            child += 1
        if not is_worse(heap_scores[child], heap_rows[child], heap_scores[i], heap_rows[i]):
            return
        _swap(heap_scores, heap_rows, positions, i, child)
        i = child


@njit(cache=True, inline="always")
def _swap(heap_scores, heap_rows, positions, i, j):
    heap_scores[i], heap_scores[j] = heap_scores[j], heap_scores[i]
    heap_rows[i], heap_rows[j] = heap_rows[j], heap_rows[i]
    positions[heap_rows[i]] = i
    positions[heap_rows[j]] = j


@njit(cache=True)
def add_segment(posting_docs, lo, hi, contribution, allowed, accumulators,
                heap_scores, heap_rows, positions, size):
    """Add `contribution` to each document of postings [lo, hi), keeping the heap the top-k of all scores.

    While the heap has room every touched document is in it; once full, a document is
    in it exactly when its score, before this addition, did not lose to the root.
    Returns the new heap size.
    """
    k = heap_scores.shape[0]
    n_docs = accumulators.shape[0]
    for p in range(lo, hi):
        doc = posting_docs[p]
        # A filtered-out document never scores, nor enters the heap; nor does a row past the collection.
        if not is_index(doc, n_docs) or not is_allowed(allowed, doc):
            continue
        old = accumulators[doc]
        new = old + contribution
        accumulators[doc] = new
        if size < k:
            if old == 0:
                heap_scores[size] = new
                heap_rows[size] = doc
                positions[doc] = size
                size += 1
                _sift_up(heap_scores, heap_rows, positions, size - 1)
            else:
                heap_scores[positions[doc]] = new
                _sift_down(heap_scores, heap_rows, positions, positions[doc], size)
        elif is_worse(heap_scores[0], heap_rows[0], new, doc):
            if is_worse(old, doc, heap_scores[0], heap_rows[0]):
                heap_rows[0] = doc  # enters, pushing out the k-th best
                positions[doc] = 0
            heap_scores[positions[doc]] = new
            _sift_down(heap_scores, heap_rows, positions, positions[doc], size)
    return size


RADIX_BITS = 8


@njit(cache=True)
def sort_by_priority(keys, buffer, counts, n, shift, priority_bits):
    """Stable LSD radix sort of keys[:n] on bits [shift, shift + priority_bits); returns the sorted array.

    Linear in n: a query has thousands of segments, which a comparison sort would pay
    n log n for.
    """
    mask = (1 << RADIX_BITS) - 1
    end = shift + priority_bits
    while shift < end:
        counts[:] = 0
        for i in range(n):
            counts[(keys[i] >> shift) & mask] += 1
        total = 0
        for digit in range(mask + 1):
            total, counts[digit] = total + counts[digit], total
        for i in range(n):
            digit = (keys[i] >> shift) & mask
            buffer[counts[digit]] = keys[i]
            counts[digit] += 1
        keys, buffer = buffer, keys
        shift += RADIX_BITS
    return keys


@njit(cache=True, inline="always")
def _span(key, segments, index_mask, segment_offsets, budget):
    """The postings [lo, hi) of the segment a sorted key names, at most `budget` of them."""
    segment = segments[key & index_mask]
    lo = segment_offsets[segment]
    return lo, lo + min(segment_offsets[segment + 1] - lo, budget)


@njit(cache=True)
def score_query(term_segments, segment_impacts, segment_offsets, posting_docs, q_terms, q_impacts, allowed, top,
                priority_bits, rho, keys, buffer, counts, segments, accumulators, heap_scores, heap_rows, positions,
                out_scores, out_rows):
    """Top-k of one query into out_*; returns the number of postings processed."""
    # Key = (top - priority) above the segment's gather index: a stable sort on the high bits
    # orders segments by priority descending, ties in gather order (ascending segment id).
    index_bits = 63 - priority_bits
    index_mask = (np.int64(1) << index_bits) - 1
    n_keys = 0
    for j in range(q_terms.shape[0]):
        term = q_terms[j]
        for s in range(term_segments[term], term_segments[term + 1]):
            keys[n_keys] = ((top - np.int64(q_impacts[j]) * segment_impacts[s]) << index_bits) | n_keys
            segments[n_keys] = s
            n_keys += 1
    order = sort_by_priority(keys, buffer, counts, n_keys, index_bits, priority_bits)
    processed = 0
    size = 0
    n_visited = 0
    while n_visited < n_keys and processed < rho:
        lo, hi = _span(order[n_visited], segments, index_mask, segment_offsets, rho - processed)
        size = add_segment(posting_docs, lo, hi, top - (order[n_visited] >> index_bits), allowed, accumulators,
                           heap_scores, heap_rows, positions, size)
        processed += hi - lo
        n_visited += 1
    heap_drain(heap_scores, heap_rows, size, out_scores, out_rows)
    # The same postings again, to reset their accumulators.
    remaining = processed
    n_docs = accumulators.shape[0]
    for i in range(n_visited):
        lo, hi = _span(order[i], segments, index_mask, segment_offsets, remaining)
        for p in range(lo, hi):
            if is_index(posting_docs[p], n_docs):
                accumulators[posting_docs[p]] = 0
        remaining -= hi - lo
    return processed


@njit(cache=True, nogil=True)
def search_chunk(segments_of, q_offsets, q_terms, q_impacts, allowed, top, priority_bits, rho, accumulators, n_keys,
                 chunk, n_chunks, out_scores, out_rows, out_processed):
    """Queries chunk, chunk + n_chunks, ... with one set of scratch arrays (accumulators: this chunk's row;
    segments_of: layout.saat.Segments)."""
    n_docs = accumulators.shape[0]
    k = out_scores.shape[1]
    keys = np.empty(n_keys, dtype=np.int64)
    buffer = np.empty(n_keys, dtype=np.int64)
    counts = np.empty(1 << RADIX_BITS, dtype=np.int64)
    segments = np.empty(n_keys, dtype=np.int64)
    # Zeros, not garbage: every position then lies in the heap, even where a damaged index (a row
    # repeated until its integer score wraps) breaks the invariant that says which are current.
    positions = np.zeros(n_docs, dtype=np.int32)
    heap_scores = np.empty(k, dtype=np.int64)
    heap_rows = np.empty(k, dtype=np.int64)
    # Interleaved queries balance chunks when query costs drift along the batch.
    for q in range(chunk, q_offsets.shape[0] - 1, n_chunks):
        lo, hi = q_offsets[q], q_offsets[q + 1]
        out_processed[q] = score_query(segments_of.term_segments, segments_of.segment_impacts,
                                       segments_of.segment_offsets, segments_of.posting_docs, q_terms[lo:hi],
                                       q_impacts[lo:hi], allowed_row(allowed, q), top, priority_bits, rho, keys,
                                       buffer,
                                       counts, segments, accumulators, heap_scores, heap_rows,
                                       positions, out_scores[q], out_rows[q])


@njit(parallel=True, cache=True, nogil=True)
def search_batch(segments_of, q_offsets, q_terms, q_impacts, allowed, top, priority_bits, rho, accumulators, n_keys,
                 out_scores, out_rows, out_processed):
    n_chunks = accumulators.shape[0]
    for chunk in prange(n_chunks):
        search_chunk(segments_of, q_offsets, q_terms, q_impacts, allowed, top, priority_bits, rho, accumulators[chunk],
                     n_keys, chunk, n_chunks, out_scores, out_rows, out_processed)


def search_impacts(arrays, n_docs: int, queries, k: int, rho: int | None = None, allowed=None):
    """Integer top-k: (impact scores int64, rows int64, query scales float32, postings processed int64)."""
    bits = impact_bits(arrays)
    segments_of = read(Segments, arrays)
    q_impacts, query_scales = quantize_queries(queries.offsets, queries.terms, queries.weights,
                                               frozen(arrays["term_scales"]), bits)
    n_queries = len(queries)
    term_segments = segments_of.term_segments
    segments_before = np.zeros(queries.nnz + 1, dtype=np.int64)
    np.cumsum(term_segments[queries.terms + 1] - term_segments[queries.terms], out=segments_before[1:])
    n_keys = int(np.max(np.diff(segments_before[queries.offsets]), initial=0))
    query_lengths = np.diff(queries.offsets)
    # A score is at most levels^2 per query term: int32 accumulators whenever that cannot overflow.
    top = levels(bits) ** 2
    widest = top * int(np.max(query_lengths, initial=0))
    accumulator_dtype = np.int32 if widest <= np.iinfo(np.int32).max else np.int64
    n_chunks = thread_chunks(n_queries)
    accumulators = np.zeros((n_chunks, n_docs), dtype=accumulator_dtype)
    impact_scores = np.zeros((n_queries, k), dtype=np.int64)
    _, rows = empty_results(n_queries, k)
    processed = np.zeros(n_queries, dtype=np.int64)
    args = (segments_of, queries.offsets, queries.terms, q_impacts,
            everything(n_queries) if allowed is None else allowed, top, top.bit_length(),
            UNLIMITED if rho is None else int(rho))
    if n_chunks == 1:  # one query, or one thread: no parallel region to launch (its threads may share a core)
        search_chunk(*args, accumulators[0], n_keys, 0, 1, impact_scores, rows, processed)
    else:
        search_batch(*args, accumulators, n_keys, impact_scores, rows, processed)
    return impact_scores, rows, query_scales, processed


def search(arrays, n_docs: int, queries, k: int, params: SearchParams, allowed=None):
    """Top-k with float scores = integer score x the query's scale (see ``sparseir.quantize``)."""
    impact_scores, rows, query_scales, _ = search_impacts(arrays, n_docs, queries, k, params.rho, allowed)
    scores = impact_scores * query_scales[:, None].astype(np.float64)
    return np.where(rows >= 0, scores, -np.inf).astype(np.float32), rows


def exhaustive(n_docs: int) -> tuple[dict, dict]:
    """Every posting processed (rho unset): exact over the quantized vectors (scored_vectors)."""
    return {}, {"rho": None}


def scored_vectors(arrays, docs, queries):
    """The documents and queries as a search scores them: their quantized impacts as weights."""
    from ..vectors import SparseVectors

    bits, scales = int(arrays["bits"][0]), np.asarray(arrays["term_scales"])
    doc_impacts = quantize(docs.weights, scales[docs.terms], bits).astype(np.float32)
    query_impacts, _ = quantize_queries(queries.offsets, queries.terms, queries.weights, scales, bits)
    return (SparseVectors(docs.offsets, docs.terms, doc_impacts, docs.ids, docs.vocab, validate=False),
            SparseVectors(queries.offsets, queries.terms, query_impacts.astype(np.float32), queries.ids, queries.vocab,
                          validate=False))


def tuning_grid(arrays, n_docs: int) -> dict[str, list]:
    """rho from cheap to exhaustive, geometric steps up to the collection's posting count (see sparseir.tune)."""
    total = int(arrays["posting_docs"].shape[0])
    steps = np.unique(np.geomspace(1000, max(total, 1001), 24).astype(np.int64))
    return {"rho": [int(rho) for rho in steps if rho < total] + [None]}
