"""Block-max pruning (BMP): bound every block, score the best-bounded blocks exactly, stop early.

Per query: add each query term's weight x its block-max values into one bound per block
(remembering, per term and block, where the term's postings in that block are); then
take blocks best bound first, score each of their documents exactly from the block's
postings, and stop once the next bound cannot beat the k-th score. With ``alpha = 1``
and ``beta = 1`` that is rank-safe: the result is exactly the exact top-k, scores bit for
bit, since a block's documents are scored term at a time in query order, as the exact
kernel does. ``alpha < 1`` stops when alpha x the bound falls below the k-th score
(BMP's threshold overestimation); ``beta < 1`` keeps only the heaviest query terms
holding that share of the query's weight (BMP's query term pruning).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from ..errors import require
from ..layout import read
from ..layout.blockmax import Bounds, Postings, block_size
from ..kernels import count_bits, lowest_bit, stores_weights, weight_at
from .allow import allowed_row, everything, is_allowed
from .scratch import is_index, run_chunks
from .topk import empty_results, heap_drain, heap_push, heap_threshold

FLOAT32_EPSILON = 2.0 ** -23


@dataclass(frozen=True)
class SearchParams:
    """Query knobs of block-max pruning (names as in BMP); both at 1: exact top-k."""

    alpha: float = field(default=1.0, metadata={
        "help": "stop when alpha x the next block's bound < the k-th score (1: rank-safe, lower: faster)"})
    beta: float = field(default=1.0, metadata={
        "help": "keep the heaviest query terms holding this share of the query's weight (1: all)"})

    def __post_init__(self):
        require(0.0 < self.alpha <= 1.0, f"alpha must lie in (0, 1], got {self.alpha!r}")
        require(0.0 < self.beta <= 1.0, f"beta must lie in (0, 1], got {self.beta!r}")


@njit(cache=True)
def kept_terms(q_terms, q_weights, beta, kept_terms_out, kept_weights_out):
    """The query terms beta keeps, in query order (the exact kernel's order of addition); returns their count."""
    n = q_terms.shape[0]
    keep = np.ones(n, dtype=np.bool_)
    if beta < 1.0:
        keep[:] = False
        total = 0.0
        for j in range(n):
            total += max(q_weights[j], 0.0)
        held = 0.0
        for j in np.argsort(-q_weights, kind="mergesort"):  # stable: ties by query order
            keep[j] = True
            held += max(q_weights[j], 0.0)
            if held >= beta * total:
                break
    count = 0
    for j in range(n):
        if keep[j]:
            kept_terms_out[count] = q_terms[j]
            kept_weights_out[count] = q_weights[j]
            count += 1
    return count


@njit(cache=True, inline="always")
def _sift_down(heap, bounds, i, size):
    """Max-heap of block numbers keyed by their bound."""
    while True:
        child = 2 * i + 1
        if child >= size:
            return
        if child + 1 < size and bounds[heap[child + 1]] > bounds[heap[child]]:
            child += 1
        if bounds[heap[child]] <= bounds[heap[i]]:
            return
        heap[i], heap[child] = heap[child], heap[i]
        i = child


@njit(cache=True)
def bound_blocks(bounds_arrays, terms, weights, n_terms, bounds, heap, where):
    """Every block's upper bound over the query terms; lists the blocks bounded above 0 in `heap`
    and returns their count.

    where[i x n_blocks + b] is term i's entry for block b, counted from the term's first
    entry. It is never cleared: a value is trusted only where that entry's block is b,
    which stale values from earlier queries fail. An entry whose block lies past the
    collection (a damaged index) bounds nothing.
    """
    n_blocks = bounds.shape[0]
    bounds[:] = 0.0
    for i in range(n_terms):
        t = terms[i]
        step = max(weights[i], np.float32(0.0)) * bounds_arrays.term_scales[t]
        first = bounds_arrays.term_entries[t]
        row = where[i * n_blocks:(i + 1) * n_blocks]
        for e in range(first, bounds_arrays.term_entries[t + 1]):
            b = bounds_arrays.entry_blocks[e]
            if not is_index(b, n_blocks):
                continue
            bounds[b] += step * weight_at(bounds_arrays.entry_maxima, e)
            row[b] = e - first
    n_listed = 0
    for b in range(n_blocks):
        if bounds[b] > 0.0:
            heap[n_listed] = b
            n_listed += 1
    return n_listed


@njit(cache=True)
def score_block(bounds_arrays, postings, size, n_docs, b, terms, weights, n_terms, where, allowed, scores,
                heap_scores, heap_rows, heap_size):
    """Score every document of block b that shares a query term, term at a time in query order
    (the exact kernel's order of addition); returns the new heap size.

    A damaged index's mask bits past the block size are dropped, and an entry whose weights
    would lie past posting_weights is skipped."""
    n_blocks = where.shape[0] // n_terms
    slots = np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(64 - size)  # the block's documents, as bits
    n_weights = postings.posting_weights.shape[0]
    touched = np.uint64(0)
    for i in range(n_terms):
        t = terms[i]
        first = bounds_arrays.term_entries[t]
        r = where[i * n_blocks + b]
        if r < 0 or r >= bounds_arrays.term_entries[t + 1] - first or bounds_arrays.entry_blocks[first + r] != b:
            continue  # the term does not occur in this block
        w = weights[i]
        e = first + r
        mask = np.uint64(postings.entry_masks[e]) & slots
        p = np.int64(postings.entry_postings[e]) if postings.entry_postings.shape[0] else 0  # binary: no weights
        if stores_weights(postings.posting_weights) and not (0 <= p and p + count_bits(mask) <= n_weights):
            continue
        touched |= mask
        while mask:
            scores[lowest_bit(mask)] += w * weight_at(postings.posting_weights, p)
            p += 1
            mask &= mask - np.uint64(1)
    start = b * size
    for slot in range(size):
        if (touched >> np.uint64(slot)) & np.uint64(1):
            row = start + slot
            if row < n_docs and is_allowed(allowed, row):  # a damaged mask may name slots past the last row
                heap_size = heap_push(heap_scores, heap_rows, heap_size, scores[slot], row)
            scores[slot] = 0.0
    return heap_size


@njit(cache=True)
def search_query(bounds_arrays, postings, size, n_docs, q_terms, q_weights, alpha, beta, allowed, terms, weights,
                 bounds, heap, where, scores, heap_scores, heap_rows, out_scores, out_rows):
    n_terms = kept_terms(q_terms, q_weights, beta, terms, weights)
    n_listed = bound_blocks(bounds_arrays, terms, weights, n_terms, bounds, heap, where[:n_terms * bounds.shape[0]])
    # Bounds and scores are float32 sums of up to n_terms products each: a margin of their
    # rounding keeps a block whose exact bound ties with the k-th score.
    margin = np.float32((1.0 + (n_terms + 2) * FLOAT32_EPSILON) * alpha)
    for i in range(n_listed // 2 - 1, -1, -1):
        _sift_down(heap, bounds, i, n_listed)
    remaining = n_listed
    heap_size = 0
    while remaining > 0:
        b = heap[0]
        if bounds[b] * margin < heap_threshold(heap_scores, heap_size):
            break  # no block left can place a document in the top-k
        remaining -= 1
        heap[0] = heap[remaining]
        _sift_down(heap, bounds, 0, remaining)
        heap_size = score_block(bounds_arrays, postings, size, n_docs, b, terms, weights, n_terms,
                                where[:n_terms * bounds.shape[0]], allowed, scores, heap_scores, heap_rows, heap_size)
    heap_drain(heap_scores, heap_rows, heap_size, out_scores, out_rows)


@njit(cache=True, nogil=True)
def search_chunk(bounds_arrays, postings, size, n_docs, q_offsets, q_terms, q_weights, alpha, beta, allowed, chunk,
                 n_chunks, out_scores, out_rows):
    """Queries chunk, chunk + n_chunks, ... with one set of scratch arrays
    (bounds_arrays, postings: layout.blockmax.Bounds, Postings)."""
    longest = 0
    for q in range(chunk, q_offsets.shape[0] - 1, n_chunks):
        longest = max(longest, q_offsets[q + 1] - q_offsets[q])
    terms = np.empty(longest, dtype=q_terms.dtype)
    weights = np.empty(longest, dtype=np.float32)
    n_blocks = (n_docs + size - 1) // size
    bounds = np.empty(n_blocks, dtype=np.float32)
    heap = np.empty(n_blocks, dtype=np.int32)
    where = np.empty(longest * n_blocks, dtype=np.int32)  # never cleared: see bound_blocks
    scores = np.zeros(size, dtype=np.float32)
    heap_scores = np.empty(out_scores.shape[1], dtype=np.float32)
    heap_rows = np.empty(out_scores.shape[1], dtype=np.int64)
    for q in range(chunk, q_offsets.shape[0] - 1, n_chunks):
        lo, hi = q_offsets[q], q_offsets[q + 1]
        search_query(bounds_arrays, postings, size, n_docs, q_terms[lo:hi], q_weights[lo:hi], alpha, beta,
                     allowed_row(allowed, q), terms, weights, bounds, heap, where, scores, heap_scores, heap_rows,
                     out_scores[q], out_rows[q])


@njit(parallel=True, cache=True, nogil=True)
def search_batch(bounds_arrays, postings, size, n_docs, q_offsets, q_terms, q_weights, alpha, beta, allowed, n_chunks,
                 out_scores, out_rows):
    for chunk in prange(n_chunks):
        search_chunk(bounds_arrays, postings, size, n_docs, q_offsets, q_terms, q_weights, alpha, beta, allowed, chunk,
                     n_chunks, out_scores, out_rows)


def search(arrays, n_docs: int, queries, k: int, params: SearchParams, allowed=None):
    out_scores, out_rows = empty_results(len(queries), k)
    args = (read(Bounds, arrays), read(Postings, arrays), block_size(arrays), n_docs, queries.offsets, queries.terms, queries.weights,
            float(params.alpha), float(params.beta), everything(len(queries)) if allowed is None else allowed)
    return run_chunks(search_chunk, search_batch, args, len(queries), out_scores, out_rows)


def exhaustive(n_docs: int) -> tuple[dict, dict]:
    """Safe mode (the defaults) returns exact search's top-k."""
    return {}, {}


def tuning_grid(arrays, n_docs: int) -> dict[str, list]:
    """Each knob from cheap to accurate (see sparseir.tune)."""
    return {"alpha": [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0], "beta": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]}
