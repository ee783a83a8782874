"""Document reordering by recursive graph bisection (BP; Dhulipala et al., "Compressing Graphs
and Indexes with Recursive Graph Bisection", KDD 2016; as in PISA's ``reorder-docids
--recursive-graph-bisection``).

Numbering documents that share terms next to each other shrinks the d-gaps of the posting
lists (smaller compressed postings) and gathers similar documents into the same blocks
(block-max pruning skips more). BP splits the collection in two halves, swaps documents
between them while that lowers the estimated log-gap cost, and recurses on both halves.

Every part of one level is independent, so a level is one parallel kernel over its parts
(no Python recursion per part). Before each level the documents' term ids are gathered
into a CSR in the current order, so a part's documents are contiguous in memory and a
document is named by its position at the level's start. Within each part the documents
are kept in ascending row order between levels: each split starts from the collection's
order, and ties in the gain sort go to the lower row.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .errors import require
from .vectors import SparseVectors


@njit(cache=True)
def _log_gap_cost(degree, log2_size, log2_of):
    """The paper's estimate of a term's bits in one half: d * log2(n / (d + 1))."""
    return degree * (log2_size - log2_of[degree + 1])


@njit(parallel=True, cache=True)
def _gather_rows(doc_offsets, doc_terms, order, level_offsets, level_terms):
    """level_terms[level_offsets[i]:level_offsets[i + 1]] = the term ids of row order[i]."""
    for position in prange(order.shape[0]):
        source = doc_offsets[order[position]]
        start = level_offsets[position]
        for k in range(level_offsets[position + 1] - start):
            level_terms[start + k] = doc_terms[source + k]


@njit(cache=True)
def _move_terms(offsets, terms, doc, degrees_from, degrees_to):
    for p in range(offsets[doc], offsets[doc + 1]):
        degrees_from[terms[p]] -= 1
        degrees_to[terms[p]] += 1


@njit(cache=True)
def _bisect_part(offsets, terms, order, lo, hi, iterations, log2_of, in_right, slots, slot_changes,
                 degrees_left, degrees_right, change_to_right, change_to_left, part_terms):
    """Split positions [lo, hi) in two and refine the halves; then write order[lo:hi] as the
    left half's rows, then the right half's, each ascending.

    Documents are named by position (offsets/terms are the level's CSR); the degree and
    per-term arrays are this worker's, the degrees all zero on entry and on exit. A move's
    cost change is the negated gain of the paper: documents are sorted by it ascending and
    pairs swapped while their summed change is negative.
    """
    mid = lo + (hi - lo) // 2
    n_terms_seen = 0
    for doc in range(lo, hi):
        right = doc >= mid
        in_right[doc] = right
        for p in range(offsets[doc], offsets[doc + 1]):
            term = terms[p]
            if degrees_left[term] == 0 and degrees_right[term] == 0:
                part_terms[n_terms_seen] = term
                n_terms_seen += 1
            if right:
                degrees_right[term] += 1
            else:
                degrees_left[term] += 1
    log2_left, log2_right = log2_of[mid - lo], log2_of[hi - mid]
    for _ in range(iterations):
        # A document's cost change is a sum of per-term changes, which depend on the degrees only.
        for k in range(n_terms_seen):
            term = part_terms[k]
            left, right = degrees_left[term], degrees_right[term]
            cost = _log_gap_cost(left, log2_left, log2_of) + _log_gap_cost(right, log2_right, log2_of)
            if left > 0:
                change_to_right[term] = (_log_gap_cost(left - 1, log2_left, log2_of)
                                         + _log_gap_cost(right + 1, log2_right, log2_of) - cost)
            if right > 0:
                change_to_left[term] = (_log_gap_cost(left + 1, log2_left, log2_of)
                                        + _log_gap_cost(right - 1, log2_right, log2_of) - cost)
        # slots[lo:mid] lists the left half's documents and slots[mid:hi] the right's, each ascending.
        next_left, next_right = lo, mid
        for doc in range(lo, hi):
            change = 0.0
            if in_right[doc]:
                for p in range(offsets[doc], offsets[doc + 1]):
                    change += change_to_left[terms[p]]
                slots[next_right] = doc
                slot_changes[next_right] = change
                next_right += 1
            else:
                for p in range(offsets[doc], offsets[doc + 1]):
                    change += change_to_right[terms[p]]
                slots[next_left] = doc
                slot_changes[next_left] = change
                next_left += 1
        # Stable sorts of ascending lists: equal changes keep the lower position (= row) first.
        left_ranks = np.argsort(slot_changes[lo:mid], kind="mergesort")
        right_ranks = np.argsort(slot_changes[mid:hi], kind="mergesort")
        n_swapped = 0
        for i in range(min(mid - lo, hi - mid)):
            left_slot, right_slot = lo + left_ranks[i], mid + right_ranks[i]
            if slot_changes[left_slot] + slot_changes[right_slot] >= 0.0:
                break
            a, b = slots[left_slot], slots[right_slot]
            in_right[a] = True
            in_right[b] = False
            _move_terms(offsets, terms, a, degrees_left, degrees_right)
            _move_terms(offsets, terms, b, degrees_right, degrees_left)
            n_swapped += 1
        if n_swapped == 0:
            break
    for k in range(n_terms_seen):
        degrees_left[part_terms[k]] = 0
        degrees_right[part_terms[k]] = 0
    next_left, next_right = lo, mid
    for doc in range(lo, hi):
        if in_right[doc]:
            slots[next_right] = order[doc]
            next_right += 1
        else:
            slots[next_left] = order[doc]
            next_left += 1
    order[lo:hi] = slots[lo:hi]


@njit(parallel=True, cache=True)
def _bisect_level(offsets, terms, order, parts, iterations, log2_of, in_right, slots, slot_changes,
                  degrees_left, degrees_right, change_to_right, change_to_left, part_terms):
    """Bisect every part [parts[j, 0], parts[j, 1]); worker w takes parts w, w + W, ...
    (a level's parts differ in size by one document at most)."""
    n_workers = degrees_left.shape[0]
    for worker in prange(n_workers):
        for j in range(worker, parts.shape[0], n_workers):
            _bisect_part(offsets, terms, order, parts[j, 0], parts[j, 1], iterations, log2_of, in_right, slots,
                         slot_changes, degrees_left[worker], degrees_right[worker], change_to_right[worker],
                         change_to_left[worker], part_terms[worker])


def _check_int(value, name: str, minimum: int) -> None:
    require(isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum,
            f"{name} must be an integer >= {minimum}, got {value!r}")


def bp_order(docs: SparseVectors, iterations: int = 20, leaf_size: int = 16, depth: int | None = None) -> np.ndarray:
    """int64 permutation: position i of the reordered collection holds document row order[i].

    Only term ids count (weights are ignored). A part of at most `leaf_size` documents is
    not split; `depth` caps the number of levels (None: until every part is a leaf).
    Deterministic, whatever the thread count. Memory: the collection's term ids once more
    (the level CSR), a few arrays of n_docs, and 5 arrays of n_terms per numba thread.
    """
    _check_int(iterations, "iterations", 1)
    _check_int(leaf_size, "leaf_size", 1)
    if depth is not None:
        _check_int(depth, "depth", 1)
    n_docs = len(docs)
    order = np.arange(n_docs, dtype=np.int64)
    if n_docs <= leaf_size:
        return order
    n_terms = int(docs.terms.max()) + 1 if docs.nnz else 1
    n_workers = numba.get_num_threads()
    degrees_left = np.zeros((n_workers, n_terms), dtype=np.int32)
    degrees_right = np.zeros((n_workers, n_terms), dtype=np.int32)
    change_to_right = np.zeros((n_workers, n_terms), dtype=np.float64)
    change_to_left = np.zeros((n_workers, n_terms), dtype=np.float64)
    part_terms = np.empty((n_workers, n_terms), dtype=np.int32)
    log2_of = np.log2(np.maximum(np.arange(n_docs + 2), 1))  # degrees and sizes <= n_docs: log2 by lookup
    in_right = np.empty(n_docs, dtype=np.bool_)
    slots = np.empty(n_docs, dtype=np.int64)
    slot_changes = np.empty(n_docs, dtype=np.float64)
    sizes = np.diff(docs.offsets)
    level_offsets = np.zeros(n_docs + 1, dtype=np.int64)
    level_terms = np.empty(docs.nnz, dtype=np.int32)
    parts = np.array([[0, n_docs]], dtype=np.int64)
    level = 0
    while len(parts) and (depth is None or level < depth):
        np.cumsum(sizes[order], out=level_offsets[1:])
        _gather_rows(docs.offsets, docs.terms, order, level_offsets, level_terms)
        _bisect_level(level_offsets, level_terms, order, parts, iterations, log2_of, in_right, slots, slot_changes,
                      degrees_left, degrees_right, change_to_right, change_to_left, part_terms)
        mids = parts[:, 0] + (parts[:, 1] - parts[:, 0]) // 2
        halves = np.stack([parts[:, 0], mids, mids, parts[:, 1]], axis=1).reshape(-1, 2)
        parts = halves[halves[:, 1] - halves[:, 0] > leaf_size]
        level += 1
    return order


@njit(cache=True)
def _log_gap_bits_total(doc_offsets, doc_terms, order, n_terms):
    previous = np.zeros(n_terms, dtype=np.int64)  # a list's first gap is its first position
    total = 0.0
    for position in range(order.shape[0]):
        row = order[position]
        for p in range(doc_offsets[row], doc_offsets[row + 1]):
            term = doc_terms[p]
            total += np.log2(position - previous[term] + 1.0)
            previous[term] = position
    return total


def log_gap_bits(docs: SparseVectors, order: np.ndarray | None = None) -> float:
    """Average bits per posting of the collection's d-gaps (sum over postings of log2(gap+1)) / nnz
    under `order` (None: as stored): the cost BP minimises, reported by benches.

    A posting list's first gap is its first position (0-based), the others the distance
    to the previous posting, so postings in consecutive documents cost 1 bit each.
    """
    n_docs = len(docs)
    if order is None:
        order = np.arange(n_docs, dtype=np.int64)
    order = np.asarray(order)
    require(order.ndim == 1 and len(order) == n_docs and np.issubdtype(order.dtype, np.integer)
            and np.array_equal(np.sort(order), np.arange(n_docs)),
            f"order must be a permutation of the {n_docs} document rows")
    if docs.nnz == 0:
        return 0.0
    n_terms = int(docs.terms.max()) + 1
    return float(_log_gap_bits_total(docs.offsets, docs.terms, order.astype(np.int64), n_terms) / docs.nnz)
