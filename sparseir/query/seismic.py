"""Seismic query processing: block skipping by quantized summaries, exact scoring from the forward index.

Per query: scatter the full query into a dense vector; take its `query_cut` heaviest
terms; for each of their posting lists, bound every block by its summary dot product
(the first list's blocks are visited best bound first); a block whose bound is below
`heap_factor` x the heap threshold is skipped (as in the paper: summaries pruned by
energy can fall below a document's score, so heap_factor < 1 keeps blocks that a strict
test would drop), the others have each of their documents scored exactly (once per
query: a visited bitmap, reset only where touched). Optionally the
neighbours of the final top-k in the kNN graph are scored too (`n_knn`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ..errors import require
from ..kernels import bits_of_float32, float32_from_bits, heaviest_terms, prefetch, weight_at
from ..layout import frozen, read
from ..layout.forward import read_forward
from ..layout.seismic import DISK_READS, Blocks, DiskReads, Summaries, record_layout, record_vectors
from .allow import allowed_row, everything
from .forward import score_candidates
from .reads import DAMAGED, disk_reads, mark_failed, raise_failed_reads, read_range
from .scratch import new_dense_query, run_chunks, term_slot
from .topk import empty_results, heap_drain, heap_threshold


NO_KNN = np.empty((0, 0), dtype=np.int32)
# A list's summary directory is scanned, not searched, below this many terms per query term
# (binary searches miss the cache at every step, a scan reads on: docs/seismic.md has the measurements).
SCAN_TERMS_PER_QUERY_TERM = 128


@dataclass(frozen=True)
class SearchParams:
    """Query knobs of the Seismic processor (names as in the paper)."""

    query_cut: int = field(default=8, metadata={"help": "posting lists visited: the query's heaviest terms"})
    heap_factor: float = field(default=0.8, metadata={
        "help": "skip a block when its summary bound < heap_factor * threshold (lower: fewer skips)"})
    n_knn: int = field(default=0, metadata={"help": "kNN neighbours of each result scored at the end (0: none)"})

    def __post_init__(self):
        require(isinstance(self.query_cut, int) and self.query_cut >= 1,
                f"query_cut must be an integer >= 1, got {self.query_cut!r}")
        require(0.0 < self.heap_factor <= 1.0, f"heap_factor must lie in (0, 1], got {self.heap_factor!r}")
        require(isinstance(self.n_knn, int) and self.n_knn >= 0, f"n_knn must be an integer >= 0, got {self.n_knn!r}")


@njit(cache=True)
def find(sorted_values, lo, hi, value):
    """Position of value in sorted_values[lo:hi], or -1."""
    i = lo + np.searchsorted(sorted_values[lo:hi], value)
    return i if i < hi and sorted_values[i] == value else -1


@njit(cache=True, inline="always")
def add_entries(block_bits, width, entry_codes, lo, hi, weight, base, coded):
    """Add one query term's weight x the list's summary entries lo:hi to their blocks' partial bounds
    (an entry naming a block past the list, in a damaged index, bounds nothing)."""
    for e in range(lo, hi):
        block = entry_block(block_bits, 0, width, e)
        if block < base.shape[0]:
            base[block] += weight
            coded[block] += weight * weight_at(entry_codes, e)


@njit(cache=True, inline="always")
def add_term(section, i, weight, base, coded):
    """add_entries for the entries of the list's i-th multi-block term, kept within the list's."""
    _, list_terms, term_entries, block_bits, width, entry_codes, n_entries = section
    end = term_entries[i + 1] if i + 1 < list_terms.shape[0] else n_entries
    lo, hi = min(np.int64(term_entries[i]), n_entries), min(np.int64(end), n_entries)
    add_entries(block_bits, width, entry_codes, lo, hi, weight, base, coded)


@njit(cache=True)
def bound_list(summaries, disk, term, buffers, first, q_terms, q_weights, dense_query, base, coded, block_keys):
    """list_bounds of `term`'s list, its summaries sliced from the arrays in memory or, with
    `disk` (``layout.seismic.DiskReads``), read into `buffers`."""
    ranges = list_ranges(summaries, term)
    if disk is None:  # pruned at compile time where disk is None; each branch keeps its own array types
        section = section_of(ranges, summaries.single_terms, summaries.list_terms, summaries.term_entries,
                             summaries.entry_block_bits, summaries.entry_codes)
        list_bounds(section, first, summaries.summary_min, summaries.summary_scale, q_terms, q_weights, dense_query,
                    base, coded, block_keys)
    else:
        section = read_section(ranges, disk, buffers)
        list_bounds(section, first, summaries.summary_min, summaries.summary_scale, q_terms, q_weights, dense_query,
                    base, coded, block_keys)


@njit(cache=True)
def list_ranges(summaries, term):
    """Where `term`'s list lies in single_terms, list_terms (and term_entries), entry_block_bits
    (the two words past its end included: a field is read as a pair) and entry_codes; its field width."""
    s = summaries
    return ((s.list_single_offsets[term], s.list_single_offsets[term + 1]),
            (s.list_term_offsets[term], s.list_term_offsets[term + 1]),
            (s.list_block_words[term], s.list_block_words[term + 1] + 2),
            (s.list_entries[term], s.list_entries[term + 1]),
            np.int64(s.list_block_width[term]))


@njit(cache=True)
def section_of(ranges, single_terms, list_terms, term_entries, entry_block_bits, entry_codes):
    singles, multis, words, entries, width = ranges
    return (single_terms[singles[0]:singles[1]], list_terms[multis[0]:multis[1]],
            term_entries[multis[0]:multis[1]], entry_block_bits[words[0]:words[1]], width,
            entry_codes[entries[0]:entries[1]], entries[1] - entries[0])


@njit(cache=True)
def read_section(ranges, disk, buffers):
    singles, multis, words, entries, width = ranges
    return (read_range(disk.files[0], singles[0], singles[1], buffers[0], disk.failed),
            read_range(disk.files[1], multis[0], multis[1], buffers[1], disk.failed),
            read_range(disk.files[2], multis[0], multis[1], buffers[2], disk.failed),
            read_range(disk.files[3], words[0], words[1], buffers[3], disk.failed), width,
            read_range(disk.files[4], entries[0], entries[1], buffers[4], disk.failed), entries[1] - entries[0])


@njit(cache=True)
def list_bounds(section, first, summary_min, summary_scale, q_terms, q_weights, dense_query, base, coded, block_keys):
    """Summary dot products of every block of one list, as sortable keys (bound bits, block).
    section: the list's summaries, indexed from its start (``section_of``: single-block terms,
    multi-block terms, where each one's entries start, block-number words, their field width,
    codes, entries); its blocks are first, first + 1, ...

    Summaries are stored term-major per list, so only the entries of the query's own
    terms are read: base[b] sums the query weights met, coded[b] the weight x code
    products, and the bound is min * base + scale * coded. Bounds are >= 0, so their
    float32 bit patterns order like the values.
    """
    single_terms, list_terms, _, block_bits, width, entry_codes, _ = section
    n_single, n_multi = single_terms.shape[0], list_terms.shape[0]
    n_slots = dense_query.shape[0]
    if n_single + n_multi < SCAN_TERMS_PER_QUERY_TERM * q_terms.shape[0]:
        # A long query against a short directory: one sequential pass over the directory,
        # testing the dense query, beats two binary searches per query term.
        for i in range(n_single):
            weight = dense_query[term_slot(single_terms[i], n_slots)]
            if weight != 0.0:
                add_entries(block_bits, width, entry_codes, i, i + 1, weight, base, coded)
        for i in range(n_multi):
            weight = dense_query[term_slot(list_terms[i], n_slots)]
            if weight != 0.0:
                add_term(section, i, weight, base, coded)
    else:
        for j in range(q_terms.shape[0]):
            i = find(single_terms, 0, n_single, q_terms[j])
            if i >= 0:
                add_entries(block_bits, width, entry_codes, i, i + 1, q_weights[j], base, coded)
            i = find(list_terms, 0, n_multi, q_terms[j])
            if i >= 0:
                add_term(section, i, q_weights[j], base, coded)
    for b in range(base.shape[0]):
        bound = summary_min[first + b] * base[b] + summary_scale[first + b] * coded[b]
        block_keys[b] = (np.int64(bits_of_float32(bound)) << 32) | np.int64(b)
        base[b] = 0.0
        coded[b] = 0.0


@njit(cache=True)
def score_record(blocks, forward, disk, block, buffers, dense_query, visited, touched, n_touched, heap_scores,
                 heap_rows, size, allowed):
    """score_candidates over a block's documents from its record (memory="disk"): one read, then
    the documents' vectors side by side in a buffer."""
    m = blocks.block_offsets[block + 1] - blocks.block_offsets[block]
    record = read_range(disk.files[5], disk.block_record_offsets[block], disk.block_record_offsets[block + 1],
                        buffers[5], disk.failed)
    weight_itemsize = forward.doc_weights.itemsize if forward.doc_weights.size else 0
    if not record_fits(record, m, forward.doc_terms.itemsize, weight_itemsize):
        mark_failed(disk.failed, disk.files[5], DAMAGED)
        return n_touched, size
    rows, entry_offsets, terms, weights = read_record(record, m, forward.doc_terms, forward.doc_weights,
                                                      weight_itemsize)
    return score_candidates(rows, 0, m, True, forward.doc_offsets.shape[0] - 1, entry_offsets, terms, weights,
                            forward.term_gaps, False, dense_query, visited, touched, n_touched, heap_scores, heap_rows,
                            size, allowed)


def disk_buffers(disk):
    """Scratch for bound_list and score_record to read into: None in memory."""
    if disk is None:
        return None
    return new_disk_buffers(disk)


@overload(disk_buffers)
def _disk_buffers(disk):
    if isinstance(disk, types.NoneType):
        return lambda disk: None
    return lambda disk: new_disk_buffers(disk)


@njit(cache=True)
def new_disk_buffers(disk):
    """One buffer per read, as largest_reads sizes them."""
    largest = disk.largest_reads
    return (np.empty(largest[0], disk.single_terms.dtype), np.empty(largest[1], disk.list_terms.dtype),
            np.empty(largest[1], disk.term_entries.dtype), np.empty(largest[3], disk.entry_block_bits.dtype),
            np.empty(largest[2], disk.entry_codes.dtype), np.empty(largest[4], disk.block_records.dtype))


@njit(cache=True)
def search_one(blocks, summaries, forward, disk, knn, n_knn, q_terms, q_weights, query_cut, heap_factor, allowed,
               dense_query, visited, touched, cut_terms, base, coded, block_keys, heap_scores, heap_rows, buffers):
    """One query into (heap_scores, heap_rows); returns the heap size. Scratch is left clean.

    blocks, summaries and forward are the layout's NamedTuples (sparseir.layout); disk is
    None in memory, else what a memory="disk" index reads (its lists' summaries and visited
    blocks) into `buffers`.
    """
    term_blocks, block_offsets, block_docs = blocks.term_blocks, blocks.block_offsets, blocks.block_docs
    doc_offsets, doc_terms, doc_weights = forward.doc_offsets, forward.doc_terms, forward.doc_weights
    term_gaps, prefetch_docs = forward.term_gaps, forward.prefetch
    n_docs = doc_offsets.shape[0] - 1
    for j in range(q_terms.shape[0]):
        dense_query[q_terms[j]] = q_weights[j]
    n_cut = heaviest_terms(q_terms, q_weights, query_cut, cut_terms)
    size = 0
    n_touched = 0
    for c in range(n_cut):
        term = q_terms[cut_terms[c]]
        first, last = term_blocks[term], term_blocks[term + 1]
        n_blocks = last - first
        bound_list(summaries, disk, term, buffers, first, q_terms, q_weights, dense_query, base[:n_blocks],
                   coded[:n_blocks], block_keys)
        # The first list's blocks go best bound first, so that the threshold rises early. Later
        # lists meet a threshold already high: sorting their bounds costs more than the order
        # saves, so their blocks go in stored order, each tested on its own.
        best_first = c == 0
        if best_first:
            block_keys[:n_blocks].sort()
        for i in range(n_blocks - 1, -1, -1):
            bound = float32_from_bits(np.uint32(block_keys[i] >> 32))
            if bound < heap_factor * heap_threshold(heap_scores, size):
                if best_first:
                    break  # every later block is bounded lower still
                continue
            block = first + (block_keys[i] & 0xFFFFFFFF)
            if prefetch_docs and i > 0:
                # The next block's offsets, so that its first documents need not wait for them.
                following = first + (block_keys[i - 1] & 0xFFFFFFFF)
                for p in range(block_offsets[following], block_offsets[following + 1]):
                    prefetch(doc_offsets, block_docs[p])
            if disk is None:  # pruned at compile time where disk is None
                n_touched, size = score_candidates(block_docs, block_offsets[block], block_offsets[block + 1],
                                                   None, n_docs, doc_offsets, doc_terms, doc_weights, term_gaps,
                                                   prefetch_docs, dense_query, visited, touched, n_touched,
                                                   heap_scores, heap_rows, size, allowed)
            else:
                n_touched, size = score_record(blocks, forward, disk, block, buffers, dense_query, visited, touched,
                                               n_touched, heap_scores, heap_rows, size, allowed)
    if n_knn > 0:
        n_results = size
        # Snapshot the results: the heap changes while their neighbours are scored.
        for r in range(n_results):
            cut_terms[r] = heap_rows[r]
        for r in range(n_results):
            neighbours = knn[cut_terms[r]]
            n_touched, size = score_candidates(neighbours, 0, n_knn, None, n_docs, doc_offsets, doc_terms,
                                               doc_weights, term_gaps, prefetch_docs, dense_query, visited, touched,
                                               n_touched, heap_scores, heap_rows, size, allowed)
    for i in range(n_touched):
        visited[touched[i] >> 6] = 0  # touched documents hold every set bit
    for j in range(q_terms.shape[0]):
        dense_query[q_terms[j]] = 0.0
    return size


@njit(cache=True, nogil=True)
def search_chunk(blocks, summaries, forward, disk, knn, n_knn, max_blocks, n_terms, q_offsets, q_terms, q_weights,
                 query_cut, heap_factor, allowed, chunk, n_chunks, out_scores, out_rows):
    """Queries chunk, chunk + n_chunks, ... with one set of scratch arrays."""
    n_docs = forward.doc_offsets.shape[0] - 1
    n_queries = q_offsets.shape[0] - 1
    k = out_scores.shape[1]
    dense_query = new_dense_query(n_terms)
    # One bit per document, not a bool: an eighth of the cache for the same flags.
    visited = np.zeros((n_docs + 63) >> 6, dtype=np.uint64)
    touched = np.empty(n_docs, dtype=np.int32)
    cut_terms = np.empty(max(query_cut, k), dtype=np.int64)
    block_keys = np.empty(max_blocks, dtype=np.int64)
    base = np.zeros(max_blocks, dtype=np.float32)
    coded = np.zeros(max_blocks, dtype=np.float32)
    heap_scores = np.empty(k, dtype=np.float32)
    heap_rows = np.empty(k, dtype=np.int64)
    buffers = disk_buffers(disk)
    # Interleaved queries balance chunks when query costs drift along the batch.
    for q in range(chunk, n_queries, n_chunks):
        lo, hi = q_offsets[q], q_offsets[q + 1]
        size = search_one(blocks, summaries, forward, disk, knn, n_knn, q_terms[lo:hi], q_weights[lo:hi], query_cut,
                          heap_factor, allowed_row(allowed, q), dense_query, visited, touched, cut_terms, base, coded,
                          block_keys, heap_scores, heap_rows, buffers)
        heap_drain(heap_scores, heap_rows, size, out_scores[q], out_rows[q])


@njit(parallel=True, cache=True, nogil=True)
def search_batch(blocks, summaries, forward, disk, knn, n_knn, max_blocks, n_terms, q_offsets, q_terms, q_weights,
                 query_cut, heap_factor, allowed, n_chunks, out_scores, out_rows):
    for chunk in prange(n_chunks):
        search_chunk(blocks, summaries, forward, disk, knn, n_knn, max_blocks, n_terms, q_offsets, q_terms, q_weights,
                     query_cut, heap_factor, allowed, chunk, n_chunks, out_scores, out_rows)


def search_arrays(arrays, queries, k: int, params: SearchParams, allowed=None):
    """Run the batch kernel over an index's arrays (built or loaded); (scores, rows) padded."""
    knn = frozen(arrays.get("knn", NO_KNN))
    require(params.n_knn <= knn.shape[1],
            f"n_knn={params.n_knn} exceeds the {knn.shape[1]} neighbours stored at build (build with n_knn >= it)")
    out_scores, out_rows = empty_results(len(queries), k)
    forward, disk = read_forward(arrays), disk_reads(DiskReads, arrays, DISK_READS)
    if disk is not None:  # documents come from block records, already in cache once read
        forward = forward._replace(prefetch=False)
    args = (read(Blocks, arrays), read(Summaries, arrays), forward, disk, knn, params.n_knn,
            int(arrays["max_list_blocks"][0]),
            len(arrays["term_blocks"]) - 1, queries.offsets, queries.terms, queries.weights, params.query_cut,
            np.float32(params.heap_factor), everything(len(queries)) if allowed is None else allowed)
    run_chunks(search_chunk, search_batch, args, len(queries), out_scores, out_rows)
    if disk is not None:
        raise_failed_reads(disk, arrays, DISK_READS)
    return out_scores, out_rows


def search(arrays, n_docs: int, queries, k: int, params: SearchParams, allowed=None):
    return search_arrays(arrays, queries, k, params, allowed)


def complete_build(arrays: dict[str, np.ndarray], docs, params) -> dict[str, np.ndarray]:
    """The build step that searches the index: each document's n_knn approximate nearest
    neighbours (by dot product), found with the index itself."""
    if params.n_knn == 0:
        return arrays
    _, rows = search_arrays(arrays, docs, params.n_knn + 1, SearchParams())
    # Drop each document itself (usually first); keep the n_knn best others.
    own = np.arange(len(docs))[:, None]
    others = np.where(rows == own, -1, rows)
    order = np.argsort(others < 0, axis=1, kind="stable")[:, :params.n_knn]
    neighbours = np.take_along_axis(others, order, axis=1)
    # A short list pads with the document itself: rescoring it is a no-op.
    arrays["knn"] = np.where(neighbours < 0, own, neighbours).astype(np.int32)
    return arrays


def exhaustive(n_docs: int) -> tuple[dict, dict]:
    """Every posting kept, unpruned summaries, float32 weights, every list and block visited."""
    return ({"n_postings": 10**6, "summary_energy": 1.0, "forward_dtype": "float32"},
            {"query_cut": 10**6, "heap_factor": 1.0})


def tuning_grid(arrays, n_docs: int) -> dict[str, list]:
    """Each knob from cheap to accurate (see sparseir.tune); n_knn only when the index stores a graph."""
    grid = {"query_cut": [1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30, 50],
            "heap_factor": [1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.5]}
    if "knn" in arrays:
        stored = int(arrays["knn"].shape[1])
        grid["n_knn"] = sorted({0, *(n for n in (2, 5, 10, 20, 50) if n < stored), stored})
    return grid


@njit(cache=True, inline="always")
def entry_block(entry_block_bits, word, width, r):
    """Block within its list of a list's r-th summary entry: `width`-bit fields from uint32 `word` on."""
    bit = r * width
    at = word + (bit >> 5)
    # A field may straddle two words; read both (<= 31 + 32 bits fit in 64).
    pair = np.uint64(entry_block_bits[at]) | (np.uint64(entry_block_bits[at + 1]) << np.uint64(32))
    return np.int64((pair >> np.uint64(bit & 31)) & ((np.uint64(1) << np.uint64(width)) - np.uint64(1)))


def list_summary_entries(summaries: Summaries, term: int) -> list[tuple[int, int, int]]:
    """(entry, summary term, block within the list) of every summary entry of `term`'s list,
    in stored order: its single-block terms, then its multi-block terms' entries."""
    s = summaries
    base, end = int(s.list_entries[term]), int(s.list_entries[term + 1])
    word, width = int(s.list_block_words[term]), int(s.list_block_width[term])
    singles = s.single_terms[s.list_single_offsets[term]:s.list_single_offsets[term + 1]]
    multis = s.list_terms[s.list_term_offsets[term]:s.list_term_offsets[term + 1]]
    starts = base + s.term_entries[s.list_term_offsets[term]:s.list_term_offsets[term + 1]].astype(np.int64)
    owners = [*(int(t) for t in singles)]
    for i, summary_term in enumerate(multis):
        stop = int(starts[i + 1]) if i + 1 < len(starts) else end
        owners += [int(summary_term)] * (stop - int(starts[i]))
    if len(owners) != end - base:
        raise ValueError(f"list {term}: {len(owners)} entries named, {end - base} stored")
    return [(e, owners[e - base], int(entry_block(s.entry_block_bits, word, width, e - base)))
            for e in range(base, end)]


@njit(cache=True)
def record_fits(record, m, term_itemsize, weight_itemsize):
    """Whether a record read from disk is what read_record takes for m documents: entry offsets
    from 0, non-decreasing, and exactly the bytes they call for. A damaged record fails, and is
    never read past its end."""
    offsets_at, terms_at, _, _ = record_layout(m, 0, 1, 1)
    if record.shape[0] < terms_at:
        return False
    entry_offsets = record[offsets_at:terms_at].view(np.uint32)
    if entry_offsets[0] != 0:
        return False
    for i in range(m):
        if entry_offsets[i + 1] < entry_offsets[i]:
            return False
    return record_layout(m, np.int64(entry_offsets[m]), term_itemsize, weight_itemsize)[3] == record.shape[0]


@njit(cache=True, inline="always")
def read_record(record, m, doc_terms, doc_weights, weight_itemsize):
    """(rows, entry offsets, terms, weights) of a block record of m documents."""
    offsets_at, terms_at, _, _ = record_layout(m, 0, 1, 1)
    entry_offsets = record[offsets_at:terms_at].view(np.uint32)
    n = np.int64(entry_offsets[m])
    _, _, weights_at, _ = record_layout(m, n, doc_terms.itemsize, weight_itemsize)
    terms, weights = record_vectors(record, terms_at, weights_at, n, doc_terms, doc_weights, weight_itemsize)
    return record[:offsets_at].view(np.int32), entry_offsets, terms, weights
