"""Block-max pruning (BMP): bound every block, score the best-bounded blocks exactly, stop early.

Per query: add each query term's weight x its block-max values into one bound per block
(noting, per term and group of blocks, where the term's entries for the group start); then
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
from ..kernels import count_bits, find, lowest_bit, stores_weights, weight_at
from .allow import allowed_row, everything, is_allowed
from .scratch import is_index, run_chunks
from .topk import empty_results, heap_drain, heap_push, heap_threshold

FLOAT32_EPSILON = 2.0 ** -23
# A term's rank row has at most one group per GROUP_ENTRIES of its entries (bound_blocks): finding
# a block's entry searches about that many, and the row takes 4 bytes per that many entries.
GROUP_ENTRIES = 16


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
def term_range(term_entries, t, n_blocks):
    """(first entry, entry count) of term t. A term holds at most one entry per block: a longer run
    (a damaged index) is cut there, which also keeps every rank below the block count."""
    first = term_entries[t]
    return first, min(term_entries[t + 1] - first, n_blocks)


@njit(cache=True)
def group_shift(n_entries, n_blocks):
    """log2 of the blocks per group of a term's rank row (see bound_blocks): the smallest power of
    two that leaves at most one group per GROUP_ENTRIES of the term's entries, and at least one."""
    shift = 0
    while ((n_blocks - 1) >> shift) + 1 > max(1, n_entries // GROUP_ENTRIES):
        shift += 1
    return shift


@njit(cache=True)
def query_scratch(term_entries, q_terms, n_blocks):
    """(entries, ranks): the entries that the query's terms hold, and the length of their rank rows."""
    entries = 0
    ranks = 0
    for t in q_terms:
        n_entries = term_range(term_entries, t, n_blocks)[1]
        entries += n_entries
        ranks += ((n_blocks - 1) >> group_shift(n_entries, n_blocks)) + 2
    return entries, ranks


@njit(cache=True)
def new_scratch(n_blocks, longest, entries, ranks, size, k, q_terms):
    """One thread's buffers for queries of at most `longest` terms holding at most `entries` entries
    and `ranks` rank-row slots (query_scratch), in SCRATCH's order. Only the bounds grow with the
    collection; the rest grows with the entries a query touches."""
    return (np.empty(longest, dtype=q_terms.dtype), np.empty(longest, dtype=np.float32),
            np.empty(longest, dtype=np.int64), np.empty(longest, dtype=np.int64),
            np.empty(n_blocks, dtype=np.float32), np.empty(min(n_blocks, entries), dtype=np.int32),
            np.empty(ranks, dtype=np.int32), np.zeros(size, dtype=np.float32),
            np.empty(k, dtype=np.float32), np.empty(k, dtype=np.int64))


SCRATCH = ("terms", "weights", "row_starts", "row_shifts", "bounds", "heap", "ranks", "scores", "heap_scores",
           "heap_rows")


@njit(cache=True)
def bound_blocks(bounds_arrays, terms, weights, n_terms, bounds, heap, row_starts, row_shifts, ranks):
    """Every block's upper bound over the query terms; lists the blocks bounded above 0 in `heap`
    and returns their count.

    Meanwhile each term gets a rank row, so that scoring finds its entry for a block with a short
    search and no per-block table: the term's blocks are cut into groups of 2^shift
    (group_shift: about GROUP_ENTRIES entries each), and ranks[row_starts[i] + g] is the first
    of term i's entries (counted from its first) whose block lies in group g or later; the row
    ends with the term's entry count. An entry whose block lies past the collection (a damaged
    index) bounds nothing and is found by no search; out-of-order blocks leave the row ascending.
    """
    n_blocks = bounds.shape[0]
    bounds[:] = 0.0
    row = 0
    for i in range(n_terms):
        t = terms[i]
        first, n_entries = term_range(bounds_arrays.term_entries, t, n_blocks)
        shift = group_shift(n_entries, n_blocks)
        row_starts[i] = row
        row_shifts[i] = shift
        step = max(weights[i], np.float32(0.0)) * bounds_arrays.term_scales[t]
        group = 0  # the next group whose first entry is still to be noted
        for r in range(n_entries):
            b = bounds_arrays.entry_blocks[first + r]
            if not is_index(b, n_blocks):
                continue
            bounds[b] += step * weight_at(bounds_arrays.entry_maxima, first + r)
            while group <= b >> shift:
                ranks[row + group] = r
                group += 1
        n_groups = ((n_blocks - 1) >> shift) + 1
        ranks[row + group:row + n_groups + 1] = n_entries
        row += n_groups + 1
    n_listed = 0
    for b in range(n_blocks):
        if bounds[b] > 0.0:
            heap[n_listed] = b
            n_listed += 1
    return n_listed


@njit(cache=True)
def score_block(bounds_arrays, postings, size, n_docs, b, terms, weights, n_terms, row_starts, row_shifts, ranks,
                allowed, scores, heap_scores, heap_rows, heap_size):
    """Score every document of block b that shares a query term, term at a time in query order
    (the exact kernel's order of addition); returns the new heap size.

    A term's entry for the block is searched among those of the block's group in its rank row.
    A damaged index's mask bits past the block's documents are dropped, and an entry whose
    weights would lie past posting_weights is skipped."""
    start = np.int64(b) * size
    # The block's documents, as bits: the last block may hold fewer than size.
    slots = np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(64 - min(size, n_docs - start))
    n_weights = postings.posting_weights.shape[0]
    touched = np.uint64(0)
    for i in range(n_terms):
        group = row_starts[i] + (b >> row_shifts[i])
        lo, hi = ranks[group], ranks[group + 1]
        if lo == hi:
            continue  # the term has no entry in the block's group
        first = bounds_arrays.term_entries[terms[i]]
        e = find(bounds_arrays.entry_blocks, first + lo, first + hi, b)
        if e < 0:
            continue  # the term does not occur in this block
        w = weights[i]
        mask = np.uint64(postings.entry_masks[e]) & slots
        p = np.int64(postings.entry_postings[e]) if postings.entry_postings.shape[0] else 0  # binary: no weights
        if stores_weights(postings.posting_weights) and not (0 <= p and p + count_bits(mask) <= n_weights):
            continue
        touched |= mask
        while mask:
            scores[lowest_bit(mask)] += w * weight_at(postings.posting_weights, p)
            p += 1
            mask &= mask - np.uint64(1)
    while touched:
        slot = lowest_bit(touched)
        if is_allowed(allowed, start + slot):
            heap_size = heap_push(heap_scores, heap_rows, heap_size, scores[slot], start + slot)
        scores[slot] = 0.0
        touched &= touched - np.uint64(1)
    return heap_size


@njit(cache=True)
def search_query(bounds_arrays, postings, size, n_docs, q_terms, q_weights, alpha, beta, allowed, scratch,
                 out_scores, out_rows):
    terms, weights, row_starts, row_shifts, bounds, heap, ranks, scores, heap_scores, heap_rows = scratch
    n_terms = kept_terms(q_terms, q_weights, beta, terms, weights)
    n_listed = bound_blocks(bounds_arrays, terms, weights, n_terms, bounds, heap, row_starts, row_shifts, ranks)
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
        heap_size = score_block(bounds_arrays, postings, size, n_docs, b, terms, weights, n_terms, row_starts,
                                row_shifts, ranks, allowed, scores, heap_scores, heap_rows, heap_size)
    heap_drain(heap_scores, heap_rows, heap_size, out_scores, out_rows)


@njit(cache=True)
def search_chunk(bounds_arrays, postings, size, n_docs, q_offsets, q_terms, q_weights, alpha, beta, allowed, chunk,
                 n_chunks, out_scores, out_rows):
    """Queries chunk, chunk + n_chunks, ... with one set of scratch arrays, sized for the largest
    (bounds_arrays, postings: layout.blockmax.Bounds, Postings)."""
    n_blocks = (n_docs + size - 1) // size
    longest = 0
    most_entries = 0
    most_ranks = 0
    for q in range(chunk, q_offsets.shape[0] - 1, n_chunks):
        lo, hi = q_offsets[q], q_offsets[q + 1]
        entries, ranks = query_scratch(bounds_arrays.term_entries, q_terms[lo:hi], n_blocks)
        longest = max(longest, hi - lo)
        most_entries = max(most_entries, entries)
        most_ranks = max(most_ranks, ranks)
    scratch = new_scratch(n_blocks, longest, most_entries, most_ranks, size, out_scores.shape[1], q_terms)
    for q in range(chunk, q_offsets.shape[0] - 1, n_chunks):
        lo, hi = q_offsets[q], q_offsets[q + 1]
        search_query(bounds_arrays, postings, size, n_docs, q_terms[lo:hi], q_weights[lo:hi], alpha, beta,
                     allowed_row(allowed, q), scratch, out_scores[q], out_rows[q])


@njit(parallel=True, cache=True)
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


def scratch_bytes(term_entries: np.ndarray, q_terms: np.ndarray, n_docs: int, block_size: int, k: int) -> dict:
    """The bytes of each buffer (SCRATCH) that one thread holds for a query of `q_terms`, over an
    index whose term_entries are given: what search_chunk allocates for it. term_entries may be
    made up (``kernels.offsets_of`` of entry counts) to size a collection not built."""
    n_blocks = -(-n_docs // block_size)
    q_terms = np.asarray(q_terms)
    entries, ranks = query_scratch(term_entries, q_terms, n_blocks)
    buffers = new_scratch(n_blocks, len(q_terms), entries, ranks, block_size, k, q_terms)
    return dict(zip(SCRATCH, (buffer.nbytes for buffer in buffers)))


def exhaustive(n_docs: int) -> tuple[dict, dict]:
    """Safe mode (the defaults) returns exact search's top-k."""
    return {}, {}


def tuning_grid(arrays, n_docs: int) -> dict[str, list]:
    """Each knob from cheap to accurate (see sparseir.tune)."""
    return {"alpha": [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0], "beta": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]}
