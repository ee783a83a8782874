"""SINDI-style search: windowed accumulation of value-carrying postings, then exact rescoring.

Per query: leave out the query's lightest terms, up to ``query_prune_ratio`` of its weight
mass; window by window, add each kept term's postings (row in the window, value) into a
window-sized accumulator, then collect the ``n_candidate`` best first-pass scores: the
maxima of groups of accumulators are taken first (vectorized), a floor is seeded from them,
and only groups whose maximum reaches the floor are read. Last, the candidates are
rescored exactly from the forward index into the top-k. The first pass never reads the
forward index, and the rescoring reads it only ``n_candidate`` times.

Under ``load_index(memory="disk")`` the same kernels read each kept term's lists of a run of
windows (one read per term: the layout keeps a term's lists side by side), and then the
candidates' forward-index rows, with pread into buffers of each thread's own
(``query.reads``), instead of from arrays in memory.

With ``doc_prune_ratio=0`` at build, ``query_prune_ratio=0`` and ``n_candidate`` at least
the number of documents sharing a term with the query, every such document is rescored
and the results are those of exact search.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ..errors import require
from ..kernels import bits_of_float32, thread_chunks, weight_at
from .allow import allowed_row, everything, is_allowed
from .scratch import new_dense_query
from ..layout.forward import read_forward
from ..layout import read
from ..layout.sindi import DISK_READS, MAX_WINDOW, DiskReads, Postings, window_size as stored_window_size
from .forward import score_candidates, score_read_candidates
from .reads import DAMAGED, disk_reads, mark_failed, raise_failed_reads, read_range
from .topk import empty_results, heap_drain

SCAN_GROUP = 16  # accumulators tested at once against the candidate threshold
# The largest key of a zero score (``candidate_key``): the lowest floor, which only positive scores beat.
ZERO_SCORES = np.int64(0xFFFFFFFF)
# Postings a memory="disk" search reads ahead, per thread: each kept term's lists of as many
# consecutive windows as fit, one read per term, so that calls stay few whatever the windows.
# Read at every search (tests shrink it to reach every path).
READ_POSTINGS = 1 << 20
# Forward-index entries read at once for rescoring under memory="disk" (at least a vocabulary's,
# the most one document holds): the candidates' rows of a typical query in one buffer-full.
READ_ENTRIES = 1 << 14


@dataclass(frozen=True)
class SearchParams:
    """Query knobs (names as in the SINDI paper)."""

    query_prune_ratio: float = field(default=0.2, metadata={
        "help": "share of the query's weight mass, lightest terms first, left out of the first pass"})
    n_candidate: int = field(default=100, metadata={
        "help": "first-pass best documents rescored exactly (at least k are)"})

    def __post_init__(self):
        require(isinstance(self.query_prune_ratio, (int, float)) and not isinstance(self.query_prune_ratio, bool)
                and 0.0 <= self.query_prune_ratio < 1.0,
                f"query_prune_ratio must lie in [0, 1), got {self.query_prune_ratio!r}")
        require(isinstance(self.n_candidate, (int, np.integer)) and not isinstance(self.n_candidate, bool)
                and self.n_candidate >= 1, f"n_candidate must be an integer >= 1, got {self.n_candidate!r}")


@njit(cache=True)
def heaviest_terms(q_weights, q_factors, prune_ratio, order):
    """Write the query's positions into order, heaviest first; returns how many are kept: all but the
    lightest, whose weights add up to at most prune_ratio of the query's sum. A term without
    postings (factor 0) weighs nothing here: it can neither be kept nor spend the budget."""
    n = q_weights.shape[0]
    total = 0.0
    for j in range(n):  # insertion sort: queries are short and nothing is allocated
        w = q_weights[j] if q_factors[j] > 0 else 0.0
        total += w
        i = j
        while i > 0 and (q_weights[order[i - 1]] if q_factors[order[i - 1]] > 0 else 0.0) < w:
            order[i] = order[i - 1]
            i -= 1
        order[i] = j
    budget = prune_ratio * total
    dropped = 0.0
    while n > 0:
        last = order[n - 1]
        dropped += q_weights[last] if q_factors[last] > 0 else 0.0
        if dropped > budget:
            break
        n -= 1
    return n


@njit(cache=True, inline="always")
def add_postings(docs, values, lo, hi, factor, accumulator):
    """Add postings lo:hi of one list, value x factor (query weight x term step), into the accumulator.
    A row is 16-bit and the accumulator holds 2^16: no row, even a damaged index's, writes past it."""
    for p in range(lo, hi):
        accumulator[docs[p]] += factor * weight_at(values, p)


@njit(cache=True, inline="always")
def list_range(posting_offsets, n_windows, term, window):
    """Where term's list of window lies in the postings (``layout.sindi``: term-major)."""
    at = term * n_windows + window
    return posting_offsets[at], posting_offsets[at + 1]


@njit(cache=True, inline="always")
def list_length(posting_offsets, n_windows, term, window):
    lo, hi = list_range(posting_offsets, n_windows, term, window)
    return hi - lo


@njit(cache=True)
def accumulate_window(postings, disk, buffers, n_windows, window, q_terms, q_factors, order, c_lo, c_hi, accumulator):
    """Add kept terms order[c_lo:c_hi]'s postings in one window into the accumulator, in that order:
    sliced from the arrays in memory or, with `disk` (``layout.sindi.DiskReads``), from where
    ``read_lists`` put them in `buffers`."""
    for c in range(c_lo, c_hi):
        j = order[c]
        lo, hi = list_range(postings.posting_offsets, n_windows, q_terms[j], window)
        if disk is None:  # pruned at compile time where disk is None
            add_postings(postings.posting_docs, postings.posting_values, lo, hi, q_factors[j], accumulator)
        else:
            shift = buffers[5][c]
            add_postings(buffers[0], buffers[1], lo + shift, hi + shift, q_factors[j], accumulator)


@njit(cache=True)
def read_lists(posting_offsets, disk, buffers, n_windows, first, end, q_terms, order, c_lo, c_hi):
    """Read kept terms order[c_lo:c_hi]'s lists of windows first:end side by side into the buffers,
    one read per term and file (a term's lists of consecutive windows are adjacent), and note in
    buffers[5][c] how far each landed from its offsets. The caller keeps them within the buffers."""
    shift = buffers[5]
    at = 0
    for c in range(c_lo, c_hi):
        base = q_terms[order[c]] * n_windows
        lo, hi = posting_offsets[base + first], posting_offsets[base + end]
        if hi > lo:  # an empty range costs no read
            read_range(disk.files[0], lo, hi, buffers[0][at:], disk.failed)
            read_range(disk.files[1], lo, hi, buffers[1][at:], disk.failed)
        shift[c] = at - lo
        at += hi - lo


@njit(cache=True)
def accumulate_read(postings, disk, buffers, n_windows, window, run_end, q_terms, q_factors, order, n_kept,
                    accumulator):
    """memory="disk": add window's postings of the kept terms into the accumulator; returns the
    window up to which the buffers hold every kept term's lists.

    Past the windows read (window >= run_end), every kept term's lists of as many windows as
    the buffers hold are read at once. When even this window's lists overflow them, the
    window is read and added a group of terms at a time (each list fits: at most window_size
    postings, which the buffers hold), in query order as in memory, so scores stay identical."""
    posting_offsets = postings.posting_offsets
    capacity = buffers[0].shape[0]
    if window >= run_end:
        run_end, total = window, 0
        while run_end < n_windows:
            size = 0
            for c in range(n_kept):
                size += list_length(posting_offsets, n_windows, q_terms[order[c]], run_end)
            if total + size > capacity:
                break
            total += size
            run_end += 1
        if run_end > window:
            read_lists(posting_offsets, disk, buffers, n_windows, window, run_end, q_terms, order, 0, n_kept)
    if run_end > window:
        accumulate_window(postings, disk, buffers, n_windows, window, q_terms, q_factors, order, 0, n_kept,
                          accumulator)
        return run_end
    c_lo = 0
    while c_lo < n_kept:
        c_hi, total = c_lo, 0
        while c_hi < n_kept:
            size = list_length(posting_offsets, n_windows, q_terms[order[c_hi]], window)
            if total + size > capacity:
                break
            total += size
            c_hi += 1
        if c_hi == c_lo:  # a list longer than its window: refused at open, so never read past the buffers
            mark_failed(disk.failed, disk.files[0], DAMAGED)
            break
        read_lists(posting_offsets, disk, buffers, n_windows, window, window + 1, q_terms, order, c_lo, c_hi)
        accumulate_window(postings, disk, buffers, n_windows, window, q_terms, q_factors, order, c_lo, c_hi,
                          accumulator)
        c_lo = c_hi
    return run_end


@njit(cache=True)
def group_maxima(accumulator_bits, n_groups, group_max):
    """The largest accumulator (as int32 bits) of each group.

    Group g holds accumulators g, g + n_groups, g + 2 n_groups, ...: a group's maximum is a
    fixed chain of SCAN_GROUP loads, which LLVM unrolls, so that the loop over groups is the
    innermost one and vectorizes across neighbouring groups, each maximum held in a register
    until it is stored once. A maximum over 16 neighbours was one chain of dependent
    compares, and a pass per row reloaded and stored every maximum 16 times.
    """
    for g in range(n_groups):
        m = accumulator_bits[g]
        for r in range(1, SCAN_GROUP):
            m = max(m, accumulator_bits[r * n_groups + g])
        group_max[g] = m


@njit(cache=True, inline="always")
def candidate_key(score, row):
    """Candidates as int64 keys that order as (score, -row): score bits high, the row's complement low."""
    return (np.int64(bits_of_float32(score)) << 32) | (np.int64(0xFFFFFFFF) - row)


@njit(cache=True)
def keep_best(keys, count, n_keep):
    """Move the n_keep largest of keys[:count] to its front; returns n_keep (or count, when smaller)."""
    if count <= n_keep:
        return count
    best = np.partition(keys[:count], count - n_keep)[count - n_keep:]
    keys[:n_keep] = best
    return n_keep


@njit(cache=True, inline="always")
def offer_group(accumulator, g, n_groups, first_row, n_cand, keys, count, floor):
    """Offer group g's accumulators that beat the floor (at least ``ZERO_SCORES``: zeros never
    do); returns (count, floor). A full buffer keeps its n_cand best, whose worst key becomes
    the floor. Each key is written past the kept ones and kept by counting it: whether an
    accumulator beats the floor is close to a coin toss, which a branch would mispredict."""
    for i in range(g, SCAN_GROUP * n_groups, n_groups):
        key = candidate_key(accumulator[i], first_row + i)
        keys[count] = key
        count += key > floor
        if count == keys.shape[0]:
            count = keep_best(keys, count, n_cand)
            floor = keys[:count].min()
    return count, floor


@njit(cache=True)
def collect_window(accumulator, accumulator_bits, n_rows, first_row, n_cand, keys, count, group_max, super_max):
    """Offer every positive accumulator of a window as a candidate, then zero them; returns the candidate count.

    Candidates append to a buffer of 2 x n_cand keys; a full buffer keeps its n_cand best,
    whose worst key becomes the floor to beat (amortized O(1) per candidate, where a heap
    costs a sift of log n_cand). Scores are non-negative, so their bit patterns order as
    int32: a group whose maximum is below the floor's score is passed with one test, and
    a group of groups (SCAN_GROUP of them, g, g + n_super, ...) whose maximum is below it
    with one test too, so that the scan of a window under a high floor reads its maxima,
    not each group's. The accumulator is padded to whole groups, with zeros past the
    window's rows.
    """
    n_groups = -(-n_rows // SCAN_GROUP)
    group_maxima(accumulator_bits, n_groups, group_max)
    floor = ZERO_SCORES
    if count >= n_cand:
        floor = keys[:count].min()  # kept keys all beat ZERO_SCORES
    n_super = n_groups // SCAN_GROUP
    group_maxima(group_max, n_super, super_max)
    if n_super >= n_cand:
        # Group maxima are scores of distinct documents, and so are the maxima of groups of
        # groups: n_cand of those at or above a value v make any score below v a loser.
        # Seeding the floor so spares the scan most appends (and their strided reads).
        seed = np.partition(super_max[:n_super], n_super - n_cand)[n_super - n_cand]
        floor = max(floor, (np.int64(seed) << 32) - 1)
    # A key's ties break by row, so a score equal to the floor's may still enter.
    for s in range(n_super):
        if super_max[s] >= np.int32(floor >> 32) and super_max[s] > 0:
            for g in range(s, SCAN_GROUP * n_super, n_super):
                if group_max[g] >= np.int32(floor >> 32) and group_max[g] > 0:
                    count, floor = offer_group(accumulator, g, n_groups, first_row, n_cand, keys, count, floor)
    for g in range(SCAN_GROUP * n_super, n_groups):  # the groups past the last whole group of groups
        if group_max[g] >= np.int32(floor >> 32) and group_max[g] > 0:
            count, floor = offer_group(accumulator, g, n_groups, first_row, n_cand, keys, count, floor)
    accumulator_bits[:SCAN_GROUP * n_groups] = 0
    return count


@njit(cache=True)
def drop_disallowed(accumulator, allowed, first_row, n_rows):
    """Zero the window's accumulators of documents the filter leaves out, before they compete for
    the n_cand candidate places."""
    for i in range(n_rows):
        if not is_allowed(allowed, first_row + i):
            accumulator[i] = 0.0


@njit(cache=True)
def search_one(postings, forward, disk, window_size, q_terms, q_weights, prune_ratio, n_cand, allowed,
               accumulator, group_max, super_max, dense_query, visited, touched, order, q_factors, keys, cand_rows,
               heap_scores, heap_rows, buffers):
    """One query into (heap_scores, heap_rows); returns the heap size. Scratch is left clean.
    disk: None in memory, else what a memory="disk" index reads into `buffers` (``disk_buffers``)."""
    term_scales = postings.term_scales
    doc_offsets, doc_terms, doc_weights, prefetch_docs = (forward.doc_offsets, forward.doc_terms,
                                                          forward.doc_weights, forward.prefetch)
    n_docs = doc_offsets.shape[0] - 1
    for j in range(q_terms.shape[0]):
        q_factors[j] = q_weights[j] * term_scales[q_terms[j]]
    n_kept = heaviest_terms(q_weights, q_factors, prune_ratio, order)
    accumulator_bits = accumulator.view(np.int32)
    count = 0
    scanned = -(-min(window_size, n_docs) // SCAN_GROUP) * SCAN_GROUP
    n_windows = -(-n_docs // window_size)
    run_end = 0
    for first_row in range(0, n_docs, window_size):
        window = first_row // window_size
        if disk is None:  # pruned at compile time where disk is None
            accumulate_window(postings, disk, buffers, n_windows, window, q_terms, q_factors, order, 0, n_kept,
                              accumulator)
        else:
            run_end = accumulate_read(postings, disk, buffers, n_windows, window, run_end, q_terms, q_factors, order,
                                      n_kept, accumulator)
        if first_row + window_size > n_docs:
            # The last window is shorter than the others: a damaged index's row past its end
            # would leave an accumulator that its scan neither reads nor clears, for a later
            # query's full window to read. Clearing what a scan can reach costs less than a
            # test on every posting.
            accumulator[n_docs - first_row:scanned].fill(0)
        if allowed.shape[0] > 0:
            drop_disallowed(accumulator, allowed, first_row, min(window_size, n_docs - first_row))
        count = collect_window(accumulator, accumulator_bits, min(window_size, n_docs - first_row), first_row, n_cand,
                               keys, count, group_max, super_max)
    count = keep_best(keys, count, n_cand)
    for i in range(count):
        cand_rows[i] = np.int64(0xFFFFFFFF) - (keys[i] & 0xFFFFFFFF)
    for j in range(q_terms.shape[0]):
        dense_query[q_terms[j]] = q_weights[j]
    if disk is None:  # pruned at compile time where disk is None
        n_touched, n_results = score_candidates(cand_rows, 0, count, None, n_docs, doc_offsets, doc_terms,
                                                doc_weights, forward.term_gaps, prefetch_docs, dense_query, visited,
                                                touched, 0, heap_scores, heap_rows, 0, allowed)
    else:
        n_touched, n_results = score_read_candidates(cand_rows, 0, count, n_docs, doc_offsets, forward.term_gaps,
                                                     disk.files[2], disk.files[3], disk.failed, buffers[2],
                                                     buffers[3], buffers[4], dense_query, visited, touched, 0,
                                                     heap_scores, heap_rows, 0, allowed)
    for i in range(n_touched):
        visited[touched[i] >> 6] = 0
    for j in range(q_terms.shape[0]):
        dense_query[q_terms[j]] = 0.0
    return n_results


@njit(cache=True)
def new_scratch(n_docs, n_terms, window_size, n_candidate, k):
    """(accumulator, group_max, super_max, dense_query, visited, touched, order, q_factors, keys, cand_rows, heap_scores,
    heap_rows).

    Queries leave the accumulator, dense query and visited bits clean, so one set serves
    any number of queries (a query has at most n_terms distinct terms).
    """
    n_groups = -(-window_size // SCAN_GROUP)
    # Every 16-bit row has an accumulator, whatever the window: rows are read from the postings.
    return (np.zeros(max(n_groups * SCAN_GROUP, MAX_WINDOW), dtype=np.float32), np.empty(n_groups, dtype=np.int32),
            np.empty(n_groups // SCAN_GROUP + 1, dtype=np.int32),
            new_dense_query(n_terms),
            np.zeros((n_docs + 63) >> 6, dtype=np.uint64), np.empty(n_candidate, dtype=np.int32),
            np.empty(n_terms, dtype=np.int64), np.empty(n_terms, dtype=np.float32),
            np.empty(2 * n_candidate, dtype=np.int64), np.empty(n_candidate, dtype=np.int64),
            np.empty(k, dtype=np.float32), np.empty(k, dtype=np.int64))


def disk_buffers(disk, window_size, n_terms, n_candidate, read_postings):
    """Scratch for a memory="disk" search to read into (``new_disk_buffers``): None in memory."""
    return None if disk is None else new_disk_buffers(disk, window_size, n_terms, n_candidate, read_postings)


@overload(disk_buffers)
def _disk_buffers(disk, window_size, n_terms, n_candidate, read_postings):
    if isinstance(disk, types.NoneType):
        return lambda disk, window_size, n_terms, n_candidate, read_postings: None
    return lambda disk, window_size, n_terms, n_candidate, read_postings: new_disk_buffers(
        disk, window_size, n_terms, n_candidate, read_postings)


@njit(cache=True)
def new_disk_buffers(disk, window_size, n_terms, n_candidate, read_postings):
    """(list rows, list values, row offsets, row terms, row weights, where each kept term's lists
    landed): room for read_postings postings but at least window_size, the most one list holds,
    and for a document's entries (at most n_terms; both bounds are checked at every open); none
    for values or weights not stored (a binary collection's)."""
    n_postings = max(window_size, read_postings)
    n_entries = max(n_terms, READ_ENTRIES)
    return (np.empty(n_postings, disk.posting_docs.dtype),
            np.empty(n_postings if disk.files[1, 2] else 0, disk.posting_values.dtype),
            np.empty(n_candidate + 1, np.int64), np.empty(n_entries, disk.doc_terms.dtype),
            np.empty(n_entries if disk.files[3, 2] else 0, disk.doc_weights.dtype), np.empty(n_terms, np.int64))


@njit(cache=True, nogil=True)
def search_chunk(postings, forward, disk, window_size, q_offsets, q_terms, q_weights, prune_ratio,
                 n_candidate, allowed, scratch, buffers, chunk, n_chunks, out_scores, out_rows):
    """Queries chunk, chunk + n_chunks, ... with one set of scratch arrays (and read buffers)."""
    (accumulator, group_max, super_max, dense_query, visited, touched, order, q_factors, keys, cand_rows, heap_scores,
     heap_rows) = scratch
    for q in range(chunk, q_offsets.shape[0] - 1, n_chunks):
        lo, hi = q_offsets[q], q_offsets[q + 1]
        size = search_one(postings, forward, disk, window_size, q_terms[lo:hi], q_weights[lo:hi],
                          prune_ratio, n_candidate, allowed_row(allowed, q), accumulator, group_max, super_max,
                          dense_query, visited, touched, order, q_factors, keys, cand_rows, heap_scores, heap_rows,
                          buffers)
        heap_drain(heap_scores, heap_rows, size, out_scores[q], out_rows[q])


@njit(parallel=True, cache=True, nogil=True)
def search_batch(postings, forward, disk, window_size, q_offsets, q_terms, q_weights, prune_ratio,
                 n_candidate, allowed, n_terms, read_postings, n_chunks, out_scores, out_rows):
    n_docs = forward.doc_offsets.shape[0] - 1
    for chunk in prange(n_chunks):
        scratch = new_scratch(n_docs, n_terms, window_size, n_candidate, out_scores.shape[1])
        buffers = disk_buffers(disk, window_size, n_terms, n_candidate, read_postings)
        search_chunk(postings, forward, disk, window_size, q_offsets, q_terms, q_weights, prune_ratio,
                     n_candidate, allowed, scratch, buffers, chunk, n_chunks, out_scores, out_rows)


# Serial calls reuse one scratch set per thread and shape: allocating and zeroing it (the
# accumulator alone is 256 KiB) costs several microseconds per call.
_scratch = threading.local()
MAX_SCRATCH_SETS = 8


def serial_scratch(n_docs: int, n_terms: int, window_size: int, n_candidate: int, k: int, disk=None,
                   read_postings: int = 0):
    """This thread's scratch and read buffers (None in memory) for these shapes (any index of
    the same shapes and dtypes may share them)."""
    sets = getattr(_scratch, "sets", None)
    if sets is None:
        sets = _scratch.sets = {}
    shape = (n_docs, n_terms, window_size, n_candidate, k)
    reads = None if disk is None else (tuple(disk.files[:, 2] > 0), read_postings,
                                       *(array.dtype for array in disk[2:]))
    if (shape, reads) not in sets:
        if len(sets) >= MAX_SCRATCH_SETS:
            sets.clear()
        sets[shape, reads] = (new_scratch(*shape),
                              None if disk is None else new_disk_buffers(disk, window_size, n_terms, n_candidate,
                                                                               read_postings))
    return sets[shape, reads]


def search(arrays, n_docs: int, queries, k: int, params: SearchParams, allowed=None):
    out_scores, out_rows = empty_results(len(queries), k)
    n_candidate = max(int(params.n_candidate), k)
    postings = read(Postings, arrays)
    n_terms, window_size = len(postings.term_scales), stored_window_size(arrays)
    forward, disk = read_forward(arrays), disk_reads(DiskReads, arrays, DISK_READS)
    if disk is not None:  # rows are read into buffers, not prefetched
        forward = forward._replace(prefetch=False)
    args = (postings, forward, disk, window_size, queries.offsets, queries.terms, queries.weights,
            np.float32(params.query_prune_ratio), n_candidate, everything(len(queries)) if allowed is None else allowed)
    n_chunks = thread_chunks(len(queries))
    if n_chunks == 1:  # one query, or one thread: no parallel region to launch
        scratch, buffers = serial_scratch(n_docs, n_terms, window_size, n_candidate, k, disk, READ_POSTINGS)
        search_chunk(*args, scratch, buffers, 0, 1, out_scores, out_rows)
    else:
        search_batch(*args, n_terms, READ_POSTINGS, n_chunks, out_scores, out_rows)
    if disk is not None:
        raise_failed_reads(disk, arrays, DISK_READS)
    return out_scores, out_rows


def exhaustive(n_docs: int) -> tuple[dict, dict]:
    """Nothing pruned, float32 values and weights, every document a candidate."""
    return ({"doc_prune_ratio": 0.0, "value_dtype": "float32", "forward_dtype": "float32"},
            {"query_prune_ratio": 0.0, "n_candidate": max(1, n_docs)})


def tuning_grid(arrays, n_docs: int) -> dict[str, list]:
    """Each knob from cheap to accurate (see sparseir.tune)."""
    return {"query_prune_ratio": [0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0],
            "n_candidate": [20, 50, 100, 200, 500, 1000, 2000]}
