"""Block-max pruning (BMP): bound every block, score the best-bounded blocks exactly, stop early.

Per query: add each query term's weight x its block-max values into one bound per block;
then take blocks best bound first, in rounds that locate the query terms' entries in one
pass, score each block's documents exactly from its postings, and stop once the next bound
cannot beat the k-th score. With ``alpha = 1`` and ``beta = 1`` that is rank-safe: the
result is exactly the exact top-k, scores bit for bit, since a block's documents are
scored term at a time in query order, as the exact kernel does. ``alpha < 1`` stops when
alpha x the bound falls below the k-th score (BMP's threshold overestimation); ``beta < 1``
keeps only the heaviest query terms holding that share of the query's weight (BMP's query
term pruning).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

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
# A thread's scratch (make_scratch) holds one round of located entries: ROUND_ENTRIES int32 values
# in at most ROUND_BLOCKS blocks. The first round takes FIRST_ROUND blocks; each next one doubles.
ROUND_ENTRIES = 1 << 20
ROUND_BLOCKS = 1 << 14
FIRST_ROUND = 64
# Blocks are ranked by buckets of their bound, sorted only where a query reaches them.
N_BUCKETS = 1024
# A term with more than this many entries per block of a round is searched for the round's
# blocks rather than read whole.
SEARCH_RATIO = 16


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


@njit(cache=True)
def bound_blocks(bounds_arrays, terms, weights, n_terms, bounds):
    """Every block's upper bound over the query terms; returns the largest. An entry whose block
    lies past the collection (a damaged index) bounds nothing."""
    n_blocks = bounds.shape[0]
    bounds[:] = 0.0
    for i in range(n_terms):
        t = terms[i]
        step = max(weights[i], np.float32(0.0)) * bounds_arrays.term_scales[t]
        for e in range(bounds_arrays.term_entries[t], bounds_arrays.term_entries[t + 1]):
            b = bounds_arrays.entry_blocks[e]
            if is_index(b, n_blocks):
                bounds[b] += step * weight_at(bounds_arrays.entry_maxima, e)
    return bounds.max() if n_blocks else np.float32(0.0)


@njit(cache=True)
def list_blocks(bounds, top, ends, listed):
    """Lists the blocks bounded above 0 in `listed`, best bucket of bounds first, and returns their
    count. Bucket j holds the bounds whose x N / top rounds down to N - 1 - j (N buckets; top, the
    largest bound, goes in bucket 0), and ends at listed[ends[j]]. Within a bucket blocks are in
    block order: order_bucket sorts one when the search reaches it, so only the buckets a query
    visits are sorted."""
    n_buckets = ends.shape[0]
    ends[:] = 0
    if top <= 0.0:
        return 0
    scale = n_buckets / np.float64(top)
    for b in range(bounds.shape[0]):
        if bounds[b] > 0.0:
            ends[bucket_of(bounds[b], scale, n_buckets)] += 1
    start = 0
    for j in range(n_buckets):  # where each bucket starts, advanced to where it ends as it is filled
        start, ends[j] = start + ends[j], start
    for b in range(bounds.shape[0]):
        if bounds[b] > 0.0:
            j = bucket_of(bounds[b], scale, n_buckets)
            listed[ends[j]] = b
            ends[j] += 1
    return start


@njit(cache=True, inline="always")
def bucket_of(bound, scale, n_buckets):
    """A positive bound's bucket in list_blocks: 0 for the largest bounds, n_buckets - 1 for the smallest."""
    return n_buckets - 1 - min(np.int64(bound * scale), n_buckets - 1)


@njit(cache=True)
def order_bucket(bounds, listed, start, end):
    """Sorts listed[start:end] best bound first."""
    if end - start > 1:
        bucket = listed[start:end]
        bucket[:] = bucket[np.argsort(-bounds[bucket])]


@njit(cache=True, inline="always")
def first_at_least(values, lo, hi, value):
    """The first position in values[lo:hi] holding at least value (hi if none), searching from lo
    by doubling steps, then halving: cheap when the answer lies near lo."""
    step = 1
    below = lo  # values[:below] are known to be < value
    probe = lo
    while probe < hi and values[probe] < value:
        below = probe + 1
        probe = below + step
        step *= 2
    hi = min(probe, hi)
    while below < hi:
        middle = (below + hi) >> 1
        if values[middle] < value:
            below = middle + 1
        else:
            hi = middle
    return below


@njit(cache=True)
def locate_entries(bounds_arrays, terms, n_terms, slot, order, n_round, table):
    """For each block of a round, each query term's entry in it: table[s x n_terms + i] is term i's
    entry for order[s], the round's s-th block (slot[order[s]] = s, and -1 outside the round),
    counted from the term's first entry, or -1 where the term does not occur in the block.

    A term with far more entries than the round has blocks is searched for each block, in block
    order; any other is read whole. A damaged index's entries out of block order may be missed
    by the search, never read past the term's own."""
    n_blocks = slot.shape[0]
    by_block = order[n_round:2 * n_round]
    by_block[:] = np.sort(order[:n_round])
    for i in range(n_terms):
        t = terms[i]
        first, end = bounds_arrays.term_entries[t], bounds_arrays.term_entries[t + 1]
        if end - first > SEARCH_RATIO * n_round:
            e = first
            for b in by_block:
                e = first_at_least(bounds_arrays.entry_blocks, e, end, b)
                if e == end:
                    break
                if bounds_arrays.entry_blocks[e] == b:
                    table[slot[b] * n_terms + i] = e - first
                    e += 1
            continue
        for e in range(first, end):
            b = bounds_arrays.entry_blocks[e]
            if is_index(b, n_blocks) and slot[b] >= 0:
                table[slot[b] * n_terms + i] = e - first


@njit(cache=True)
def score_block(bounds_arrays, postings, size, n_docs, b, terms, weights, n_terms, entries, allowed, scores,
                found_masks, found_starts, found_terms, heap_scores, heap_rows, heap_size):
    """Score every document of block b that shares a query term, term at a time in query order
    (the exact kernel's order of addition); `entries` holds each term's entry in the block
    (locate_entries). Returns the new heap size.

    A damaged index's mask bits past the block size are dropped, and an entry whose weights
    would lie past posting_weights is skipped."""
    slots = np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(64 - size)  # the block's documents, as bits
    n_weights = postings.posting_weights.shape[0]
    touched = np.uint64(0)
    # Every term's mask and weights are looked up before any is added, so that the lookups,
    # independent of each other, overlap.
    n_found = 0
    for i in range(n_terms):
        if entries[i] < 0:
            continue  # the term does not occur in this block
        e = bounds_arrays.term_entries[terms[i]] + entries[i]
        found_masks[n_found] = np.uint64(postings.entry_masks[e]) & slots
        found_starts[n_found] = np.int64(postings.entry_postings[e]) if postings.entry_postings.shape[0] else 0
        found_terms[n_found] = i
        n_found += 1
    for f in range(n_found):
        mask = found_masks[f]
        p = found_starts[f]  # binary: no weights
        if stores_weights(postings.posting_weights) and not (0 <= p and p + count_bits(mask) <= n_weights):
            continue
        w = weights[found_terms[f]]
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


class Scratch(NamedTuple):
    """One thread's buffers for queries of at most `longest` terms (make_scratch)."""
    terms: np.ndarray  # the query terms beta keeps, and their weights
    weights: np.ndarray
    bounds: np.ndarray  # per block: its bound
    ends: np.ndarray  # where each bucket of bounds ends in `listed`
    listed: np.ndarray  # the blocks bounded above 0, by bucket
    slot: np.ndarray  # per block: its row in the current round, -1 outside it
    order: np.ndarray  # the round's blocks best bound first, then the same in block order
    table: np.ndarray  # per block of the round and query term: the term's entry there
    scores: np.ndarray  # one block's documents' scores
    found_masks: np.ndarray  # per query term found in a block: its mask, its weights' start, which term
    found_starts: np.ndarray
    found_terms: np.ndarray
    heap_scores: np.ndarray  # the top-k so far
    heap_rows: np.ndarray


@njit(cache=True)
def make_scratch(n_docs, size, longest, k, q_terms):
    """Buffers bounded by the blocks (a few int32 or float32 per block) and by one round's table:
    ROUND_ENTRIES values in at most ROUND_BLOCKS blocks (fewer where that many blocks take less),
    or one block's worth for a query of more terms. Never by blocks x query terms."""
    n_blocks = (n_docs + size - 1) // size
    most_blocks = min(ROUND_BLOCKS, max(n_blocks, 1))
    return Scratch(np.empty(longest, dtype=q_terms.dtype), np.empty(longest, dtype=np.float32),
                   np.empty(n_blocks, dtype=np.float32), np.empty(N_BUCKETS, dtype=np.int64),
                   np.empty(n_blocks, dtype=np.int32), np.full(n_blocks, -1, dtype=np.int32),
                   np.empty(2 * most_blocks, dtype=np.int32),
                   np.empty(max(longest, min(ROUND_ENTRIES, most_blocks * longest)), dtype=np.int32),
                   np.zeros(size, dtype=np.float32), np.empty(longest, dtype=np.uint64),
                   np.empty(longest, dtype=np.int64), np.empty(longest, dtype=np.int32),
                   np.empty(k, dtype=np.float32), np.empty(k, dtype=np.int64))


def scratch_bytes(n_docs: int, block_size: int, longest: int, k: int = 10) -> int:
    """What one search thread allocates for queries of at most `longest` terms."""
    arrays = make_scratch(n_docs, block_size, longest, k, np.empty(0, dtype=np.int32))
    return sum(array.nbytes for array in arrays)


@njit(cache=True)
def search_query(bounds_arrays, postings, size, n_docs, q_terms, q_weights, alpha, beta, allowed, scratch, out_scores,
                 out_rows):
    (terms, weights, bounds, ends, listed, slot, order, table, scores, found_masks, found_starts, found_terms,
     heap_scores, heap_rows) = scratch
    n_terms = kept_terms(q_terms, q_weights, beta, terms, weights)
    top = bound_blocks(bounds_arrays, terms, weights, n_terms, bounds)
    n_listed = list_blocks(bounds, top, ends, listed)
    # Bounds and scores are float32 sums of up to n_terms products each: a margin of their
    # rounding keeps a block whose exact bound ties with the k-th score.
    margin = np.float32((1.0 + (n_terms + 2) * FLOAT32_EPSILON) * alpha)
    # Blocks are scored best bound first, in rounds: a round takes the next blocks that can still
    # place a document, finds their entries in one pass over the query terms' entries, and scores
    # them. Rounds double in size up to what the table holds, so a query's memory stays bounded
    # while most queries need a single pass.
    most = max(1, min(order.shape[0] // 2, table.shape[0] // max(n_terms, 1)))
    round_size = min(FIRST_ROUND, most)
    position = 0  # the next listed block
    ordered = 0  # listed[:ordered] is best bound first
    bucket = 0
    heap_size = 0
    while position < n_listed:
        threshold = heap_threshold(heap_scores, heap_size)
        n_round = 0
        while position < n_listed and n_round < round_size:
            if position == ordered:
                while ends[bucket] == ordered:
                    bucket += 1
                order_bucket(bounds, listed, ordered, ends[bucket])
                ordered = ends[bucket]
            b = listed[position]
            if bounds[b] * margin < threshold:
                n_listed = position  # no block from here on can place a document in the top-k
                break
            slot[b] = n_round
            order[n_round] = b
            n_round += 1
            position += 1
        if n_round == 0:
            break
        table[:n_round * n_terms] = -1
        locate_entries(bounds_arrays, terms, n_terms, slot, order, n_round, table)
        for s in range(n_round):
            slot[order[s]] = -1
        for s in range(n_round):
            b = order[s]
            if bounds[b] * margin < heap_threshold(heap_scores, heap_size):
                n_listed = position  # this block and every later one are bounded below the k-th score
                break
            heap_size = score_block(bounds_arrays, postings, size, n_docs, b, terms, weights, n_terms,
                                    table[s * n_terms:(s + 1) * n_terms], allowed, scores, found_masks, found_starts,
                                    found_terms, heap_scores, heap_rows, heap_size)
        round_size = min(2 * round_size, most)
    heap_drain(heap_scores, heap_rows, heap_size, out_scores, out_rows)


@njit(cache=True, nogil=True)
def search_chunk(bounds_arrays, postings, size, n_docs, q_offsets, q_terms, q_weights, alpha, beta, allowed, chunk,
                 n_chunks, out_scores, out_rows):
    """Queries chunk, chunk + n_chunks, ... with one set of scratch arrays
    (bounds_arrays, postings: layout.blockmax.Bounds, Postings)."""
    longest = 0
    for q in range(chunk, q_offsets.shape[0] - 1, n_chunks):
        longest = max(longest, q_offsets[q + 1] - q_offsets[q])
    scratch = make_scratch(n_docs, size, longest, out_scores.shape[1], q_terms)
    for q in range(chunk, q_offsets.shape[0] - 1, n_chunks):
        lo, hi = q_offsets[q], q_offsets[q + 1]
        search_query(bounds_arrays, postings, size, n_docs, q_terms[lo:hi], q_weights[lo:hi], alpha, beta,
                     allowed_row(allowed, q), scratch, out_scores[q], out_rows[q])


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
