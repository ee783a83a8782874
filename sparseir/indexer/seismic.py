"""Seismic index (Bruch, Nardini, Rulli, Venturini, SIGIR 2024).

Posting lists are statically pruned with one global weight threshold (`n_postings` kept
per non-empty list on average, at most `max_fraction` x `n_postings` in any one), then split
into blocks of similar documents; every block carries a summary (the coordinate-wise
max of its documents, pruned to `summary_energy` of its L1 mass, 8-bit quantized) that
upper-bounds, approximately, the score of anything inside it. Clustering and summaries
read the documents from the forward index the build stores (float16 weights by default):
the weights search scores, and a copy small enough to stay in memory when the collection
itself does not (an out-of-core build, ``sparseir.workspace``). In a binary collection every
maximum is 1: a summary keeps the terms most of the block's documents share, to
`summary_energy` of their counts, and stores no values. Documents are scored
exactly from a forward index. The arrays are declared in ``sparseir.layout.seismic`` and
``sparseir.layout.forward``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from ..errors import ParameterError, require
from ..layout import UNIT_WEIGHTS
from ..layout.forward import FORWARD_DTYPES, read_doc, term_dtype
from ..layout.seismic import block_field_widths, largest_reads, record_layout, record_vectors
from ..kernels import heaviest_terms, offsets_of, smallest_uint, thread_chunks
from ..params import OrderedBuild
from ..vectors import SparseVectors
from ..workspace import IN_MEMORY, NONZERO_BYTES, Workspace
from .inversion import ALL_WEIGHTS, invert, term_counts
from .forward import forward_index

CLUSTERINGS = ("clustered", "fixed")
# MS MARCO passage (8.8M documents) is where the paper's n_postings = 3500 comes from.
MSMARCO_DOCS = 8_841_823
MSMARCO_POSTINGS = 3500
MIN_AUTO_POSTINGS = 1000
SUMMARY_BUCKETS = 256
logger = logging.getLogger(__name__)
# Block records hold a document once per block it sits in, so they outgrow the forward index
# by about the kept lists per document: a handful on a large, pruned collection, hundreds on a
# small one whose lists keep every posting, where memory="disk" has nothing to save. The
# bound lets the first through and stops the second before it fills a disk.
DEFAULT_MAX_RECORD_RATIO = 16.0


@dataclass(frozen=True)
class BuildParams(OrderedBuild):
    """Build knobs of the Seismic index (names as in the paper).

    Pruning keeps the heaviest postings of the whole collection, n_postings per non-empty
    list on average, and at most max_fraction * n_postings in one list: a global threshold
    gives the lists of heavy terms more room than a fixed cut would. Default n_postings
    (None) scales with the collection: 3500 * sqrt(n_docs / 8.8M), and at least 1000,
    i.e. 3500 on MS MARCO, ~1200 at 1M documents, and no pruning at all on collections
    whose lists are all shorter than 1000 * max_fraction. The square root keeps the kept
    fraction of a list growing as collections shrink, where one posting list covers a
    larger share of the relevant documents.
    """

    n_postings: int | None = field(default=None, metadata={
        "help": "mean postings kept per term, heaviest first (default: 3500*sqrt(n_docs/8.8M), at least 1000)"})
    max_fraction: float = field(default=1.5, metadata={
        "help": "no list keeps more than max_fraction * n_postings postings"})
    clustering: str = field(default="clustered", metadata={
        "help": "block making: 'clustered' (documents to the most similar centroid) or 'fixed' (block_size runs)"})
    centroid_fraction: float = field(default=0.1, metadata={
        "help": "clustered: centroids per list as a fraction of its postings"})
    min_cluster_size: int = field(default=2, metadata={
        "help": "clustered: clusters of at most this many documents are merged into the others"})
    block_size: int = field(default=32, metadata={"help": "fixed: documents per block"})
    doc_cut: int = field(default=15, metadata={
        "help": "clustered: heaviest terms of each document used to compare it with the centroids"})
    summary_energy: float = field(default=0.4, metadata={
        "help": "share of a summary's L1 mass kept, heaviest terms first (1 = unpruned)"})
    forward_dtype: str = field(default="float16", metadata={
        "help": "forward index weights: 'float16' (half the bytes) or 'float32' (bit-exact scores)"})
    n_knn: int = field(default=0, metadata={"help": "nearest neighbours stored per document for refinement (0: none)"})
    disk_blocks: bool = field(default=False, metadata={
        "help": "also store each block's documents side by side, for load_index(memory='disk'): one read per "
                "visited block, at about (blocks per document) x the forward index in disk bytes"})
    max_record_ratio: float = field(default=DEFAULT_MAX_RECORD_RATIO, metadata={
        "help": "disk_blocks: refuse to build when the block records would exceed this many times the forward "
                "index's bytes (inf: no bound)"})

    def __post_init__(self):
        super().__post_init__()
        require(self.n_postings is None or (isinstance(self.n_postings, int) and self.n_postings >= 1),
                f"n_postings must be an integer >= 1 or None, got {self.n_postings!r}")
        require(self.max_fraction > 0.0, f"max_fraction must be > 0, got {self.max_fraction!r}")
        require(self.clustering in CLUSTERINGS,
                f"clustering must be one of {', '.join(CLUSTERINGS)}, got {self.clustering!r}")
        require(0.0 < self.centroid_fraction <= 1.0,
                f"centroid_fraction must lie in (0, 1], got {self.centroid_fraction!r}")
        require(isinstance(self.min_cluster_size, int) and self.min_cluster_size >= 0,
                f"min_cluster_size must be an integer >= 0, got {self.min_cluster_size!r}")
        require(isinstance(self.block_size, int) and self.block_size >= 1,
                f"block_size must be an integer >= 1, got {self.block_size!r}")
        require(isinstance(self.doc_cut, int) and self.doc_cut >= 1,
                f"doc_cut must be an integer >= 1, got {self.doc_cut!r}")
        require(0.0 < self.summary_energy <= 1.0, f"summary_energy must lie in (0, 1], got {self.summary_energy!r}")
        require(self.forward_dtype in FORWARD_DTYPES,
                f"forward_dtype must be one of {', '.join(FORWARD_DTYPES)}, got {self.forward_dtype!r}")
        require(isinstance(self.n_knn, int) and self.n_knn >= 0, f"n_knn must be an integer >= 0, got {self.n_knn!r}")
        require(isinstance(self.disk_blocks, bool), f"disk_blocks must be true or false, got {self.disk_blocks!r}")
        require(isinstance(self.max_record_ratio, (int, float)) and not isinstance(self.max_record_ratio, bool)
                and self.max_record_ratio > 0, f"max_record_ratio must be a number > 0, got {self.max_record_ratio!r}")

    def postings_for(self, n_docs: int) -> int:
        """The effective n_postings for a collection of n_docs documents."""
        if self.n_postings is not None:
            return self.n_postings
        return max(MIN_AUTO_POSTINGS, math.ceil(MSMARCO_POSTINGS * math.sqrt(n_docs / MSMARCO_DOCS)))


# --- static pruning ---------------------------------------------------------------


def kept_list_sizes(docs: SparseVectors, list_sizes: np.ndarray, n_postings: int, max_fraction: float,
                    workspace: Workspace = IN_MEMORY) -> tuple[np.ndarray, float, np.ndarray]:
    """How many postings each list keeps: those above one global weight threshold, capped per list.

    The threshold keeps n_postings per non-empty list on average (the heaviest postings
    of the collection, ties included); no list keeps more than max_fraction * n_postings.
    Returns (kept per list, the threshold (ALL_WEIGHTS: no pruning), postings per list at or
    above it).
    """
    budget = n_postings * int(np.count_nonzero(list_sizes))
    threshold, above = ALL_WEIGHTS, list_sizes
    if budget < docs.nnz:
        threshold = kth_smallest(docs, docs.nnz - budget, workspace)
        above = term_counts(docs, workspace, threshold)
    return np.minimum(above, max(1, int(n_postings * max_fraction))), threshold, above


def kth_smallest(docs: SparseVectors, rank: int, workspace: Workspace) -> np.float32:
    """The weight at position `rank` of the sorted weights (as np.partition gives it), found by
    radix selection on the float bits in two streamed passes: no copy of the weights.

    Non-negative float32 values order as their bit patterns do (the sign bit, set only by
    -0.0, is masked off), so the top 16 bits pick a bucket and the low 16 bits the value.
    """
    bits = docs.weights.view(np.uint32)
    high_counts = np.zeros(1 << 16, dtype=np.int64)
    for lo, hi in workspace.row_ranges(docs.offsets, "pruning (1 of 2)", 4):
        count_bit_halves(bits, docs.offsets[lo], docs.offsets[hi], -1, high_counts)
    high = int(np.searchsorted(np.cumsum(high_counts), rank, side="right"))
    low_counts = np.zeros(1 << 16, dtype=np.int64)
    for lo, hi in workspace.row_ranges(docs.offsets, "pruning (2 of 2)", 4):
        count_bit_halves(bits, docs.offsets[lo], docs.offsets[hi], high, low_counts)
    below = int(high_counts[:high].sum())
    low = int(np.searchsorted(np.cumsum(low_counts), rank - below, side="right"))
    return np.array([(high << 16) | low], dtype=np.uint32).view(np.float32)[0]


@njit(cache=True)
def count_bit_halves(bits, lo, hi, high, counts):
    """Histogram of bits[lo:hi] (sign masked off): of the top 16 bits (high < 0), else of the
    low 16 bits of the values whose top 16 bits are `high`."""
    for p in range(lo, hi):
        value = bits[p] & 0x7FFFFFFF
        if high < 0:
            counts[value >> 16] += 1
        elif value >> 16 == high:
            counts[value & 0xFFFF] += 1


@njit(parallel=True, cache=True)
def prune_postings(term_lo, term_hi, term_offsets, posting_docs, posting_weights, kept_offsets, n_chunks, kept_docs):
    """Per term of term_lo:term_hi: keep the kept_offsets[t+1]-kept_offsets[t] heaviest postings, rows ascending."""
    for chunk in prange(n_chunks):
        for term in range(term_lo + chunk, term_hi, n_chunks):
            lo, hi = term_offsets[term], term_offsets[term + 1]
            out_lo, out_hi = kept_offsets[term], kept_offsets[term + 1]
            if out_hi - out_lo == hi - lo:
                kept_docs[out_lo:out_hi] = posting_docs[lo:hi]
                continue
            heaviest = np.argsort(-posting_weights[lo:hi], kind="mergesort")[:out_hi - out_lo]
            kept_docs[out_lo:out_hi] = np.sort(posting_docs[lo:hi][heaviest])


@njit(parallel=True, cache=True)
def doc_heads(row_lo, row_hi, doc_offsets, doc_terms, doc_weights, term_gaps, max_doc, doc_cut, head_offsets,
              n_chunks, head_terms, head_weights):
    """Each document of row_lo:row_hi (of the forward index): its doc_cut heaviest terms (what clustering compares)."""
    for chunk in prange(n_chunks):
        picked = np.empty(doc_cut, dtype=np.int64)
        terms = np.empty(max_doc, dtype=np.int64)
        weights = np.empty(max_doc, dtype=np.float32)
        for doc in range(row_lo + chunk, row_hi, n_chunks):
            length = read_doc(doc_offsets, doc_terms, doc_weights, term_gaps, doc, terms, weights)
            n = heaviest_terms(terms[:length], weights[:length], doc_cut, picked)
            out = head_offsets[doc]
            for i in range(n):
                head_terms[out + i] = terms[picked[i]]
                head_weights[out + i] = weights[picked[i]]


# --- blocking -----------------------------------------------------------------------


@njit(cache=True)
def nearest_centroid(doc, head_offsets, head_terms, head_weights, entry_head, entry_next, entry_centroid,
                     entry_weight, dropped, fallback, dots, dot_touched):
    """The centroid not dropped with the highest dot product with the doc's head terms (fallback if none meets it)."""
    n_dots = 0
    for p in range(head_offsets[doc], head_offsets[doc + 1]):
        entry = entry_head[head_terms[p]]
        while entry >= 0:
            c = entry_centroid[entry]
            if dots[c] == 0.0:
                dot_touched[n_dots] = c
                n_dots += 1
            dots[c] += head_weights[p] * entry_weight[entry]
            entry = entry_next[entry]
    best = fallback
    best_dot = np.float32(0.0)
    for j in range(n_dots):
        c = dot_touched[j]
        if not dropped[c] and (dots[c] > best_dot or (dots[c] == best_dot and c < best)):
            best, best_dot = c, dots[c]
        dots[c] = 0.0
    return best


@njit(cache=True)
def assign_to_centroids(docs, n_centroids, doc_offsets, doc_terms, doc_weights, term_gaps, head_offsets, head_terms,
                        head_weights, min_cluster_size, entry_head, entry_next, entry_centroid, entry_weight, dots,
                        dot_touched, dropped, cluster_sizes, assignment, terms, weights):
    """Each doc to the centroid with the highest dot product between its head terms and the centroid.

    Centroids are documents of the list evenly strided in row order (a deterministic
    stand-in for the paper's random sample), compared on their full vectors. They are
    inverted into per-term chains (entry_head[term] -> entries), so a document only
    meets the centroids it shares a term with; one sharing none goes to centroid 0.
    Clusters of at most min_cluster_size documents are then dissolved into the others
    (as in the paper's implementation): tiny blocks cost a summary each and bound little.
    """
    n = docs.shape[0]
    n_entries = 0
    for c in range(n_centroids):
        length = read_doc(doc_offsets, doc_terms, doc_weights, term_gaps, docs[(c * n) // n_centroids], terms, weights)
        for i in range(length):
            term = terms[i]
            entry_centroid[n_entries] = c
            entry_weight[n_entries] = weights[i]
            entry_next[n_entries] = entry_head[term]
            entry_head[term] = n_entries
            n_entries += 1
    dropped[:n_centroids] = False
    cluster_sizes[:n_centroids] = 0
    for i in range(n):
        assignment[i] = nearest_centroid(docs[i], head_offsets, head_terms, head_weights, entry_head, entry_next,
                                         entry_centroid, entry_weight, dropped, 0, dots, dot_touched)
        cluster_sizes[assignment[i]] += 1
    fallback = -1
    for c in range(n_centroids - 1, -1, -1):
        dropped[c] = cluster_sizes[c] <= min_cluster_size
        if not dropped[c]:
            fallback = c
    if fallback >= 0:  # else every cluster is tiny: keep them as they are
        for i in range(n):
            if dropped[assignment[i]]:
                assignment[i] = nearest_centroid(docs[i], head_offsets, head_terms, head_weights, entry_head,
                                                 entry_next, entry_centroid, entry_weight, dropped, fallback, dots,
                                                 dot_touched)
    for c in range(n_centroids):
        length = read_doc(doc_offsets, doc_terms, doc_weights, term_gaps, docs[(c * n) // n_centroids], terms, weights)
        for i in range(length):
            entry_head[terms[i]] = -1


@njit(parallel=True, cache=True)
def make_blocks(term_lo, term_hi, kept_offsets, kept_docs, block_slots, clustered, block_size, min_cluster_size,
                n_terms_total, doc_offsets, doc_terms, doc_weights, term_gaps, max_doc, head_offsets, head_terms,
                head_weights, max_list, max_slots, max_entries, n_chunks, block_docs, slot_sizes):
    """Partition the pruned lists of term_lo:term_hi into blocks: rows regrouped in block_docs, sizes in slot_sizes.

    block_slots[t]:block_slots[t+1] are term t's candidate blocks (one per centroid);
    empty ones keep size 0 and are dropped afterwards. Rows stay ascending in a block.
    """
    for chunk in prange(n_chunks):
        entry_head = np.full(n_terms_total, -1, dtype=np.int32)
        entry_next = np.empty(max_entries, dtype=np.int32)
        entry_centroid = np.empty(max_entries, dtype=np.int32)
        entry_weight = np.empty(max_entries, dtype=np.float32)
        dots = np.zeros(max_slots, dtype=np.float32)
        dot_touched = np.empty(max_slots, dtype=np.int32)
        dropped = np.empty(max_slots, dtype=np.bool_)
        cluster_sizes = np.empty(max_slots, dtype=np.int64)
        assignment = np.empty(max_list, dtype=np.int32)
        fill = np.empty(max_slots + 1, dtype=np.int64)
        terms = np.empty(max_doc, dtype=np.int64)
        weights = np.empty(max_doc, dtype=np.float32)
        for term in range(term_lo + chunk, term_hi, n_chunks):
            lo, hi = kept_offsets[term], kept_offsets[term + 1]
            n = hi - lo
            n_slots = block_slots[term + 1] - block_slots[term]
            if n == 0:
                continue
            docs = kept_docs[lo:hi]
            if clustered:
                assign_to_centroids(docs, n_slots, doc_offsets, doc_terms, doc_weights, term_gaps, head_offsets,
                                    head_terms, head_weights, min_cluster_size, entry_head, entry_next,
                                    entry_centroid, entry_weight, dots, dot_touched, dropped, cluster_sizes,
                                    assignment, terms, weights)
            else:
                for i in range(n):
                    assignment[i] = i // block_size
            # Counting sort by block, stable: rows stay ascending within each block.
            sizes = slot_sizes[block_slots[term]:block_slots[term + 1]]
            for i in range(n):
                sizes[assignment[i]] += 1
            fill[0] = lo
            for c in range(n_slots):
                fill[c + 1] = fill[c] + sizes[c]
            for i in range(n):
                c = assignment[i]
                block_docs[fill[c]] = docs[i]
                fill[c] += 1


# --- summaries ----------------------------------------------------------------------


@njit(cache=True)
def block_max(block_docs, lo, hi, doc_offsets, doc_terms, doc_weights, term_gaps, by_count, dense, touched, terms,
              weights):
    """Coordinate-wise max of the block's documents into dense (by_count: how many of them
    hold each term); its terms into touched; returns their count."""
    n_touched = 0
    for p in range(lo, hi):
        length = read_doc(doc_offsets, doc_terms, doc_weights, term_gaps, block_docs[p], terms, weights)
        for i in range(length):
            term = terms[i]
            if dense[term] == 0.0:
                touched[n_touched] = term
                n_touched += 1
            dense[term] = dense[term] + np.float32(1.0) if by_count else max(dense[term], weights[i])
    return n_touched


@njit(cache=True)
def energy_floor(dense, touched, n_touched, summary_energy, bucket_mass):
    """A floor such that the entries >= it hold at least summary_energy of the L1 mass.

    Entries are bucketed by value (len(bucket_mass) buckets up to the max) and buckets
    kept from the top until the share is reached: linear time instead of a sort, and
    never less than the requested mass (at most one bucket's worth more).
    """
    n_buckets = bucket_mass.shape[0]
    top = np.float32(0.0)
    total = np.float32(0.0)
    for i in range(n_touched):
        top = max(top, dense[touched[i]])
        total += dense[touched[i]]
    bucket_mass[:] = 0.0
    for i in range(n_touched):
        value = dense[touched[i]]
        bucket_mass[min(n_buckets - 1, int(value / top * n_buckets))] += value
    kept = np.float32(0.0)
    for bucket in range(n_buckets - 1, 0, -1):
        kept += bucket_mass[bucket]
        if kept >= summary_energy * total:
            return top * np.float32(bucket) / np.float32(n_buckets)
    return np.float32(0.0)


@njit(parallel=True, cache=True)
def summarize(block_lo, block_hi, block_offsets, block_docs, doc_offsets, doc_terms, doc_weights, term_gaps, max_doc,
              n_terms, summary_energy, by_count, counting, summary_offsets, n_chunks, summary_floor, summary_terms,
              summary_codes, summary_scale, summary_min):
    """Summaries of the blocks block_lo:block_hi, in two passes over the same deterministic block maxima.

    The first (counting) sets each block's floor in summary_floor and its
    entry count in summary_offsets[block + 1]; the second writes the entries. Memory
    stays at the output size. by_count (binary collections, where every maximum is 1 and
    the energy share would keep every term) ranks terms by how many of the block's
    documents hold them instead; the values kept are still all 1.
    """
    for chunk in prange(n_chunks):
        dense = np.zeros(n_terms, dtype=np.float32)
        touched = np.empty(n_terms, dtype=np.int32)
        bucket_mass = np.empty(SUMMARY_BUCKETS, dtype=np.float32)
        terms = np.empty(max_doc, dtype=np.int64)
        weights = np.empty(max_doc, dtype=np.float32)
        for block in range(block_lo + chunk, block_hi, n_chunks):
            n_touched = block_max(block_docs, block_offsets[block], block_offsets[block + 1], doc_offsets, doc_terms,
                                  doc_weights, term_gaps, by_count, dense, touched, terms, weights)
            if counting:
                floor = energy_floor(dense, touched, n_touched, summary_energy, bucket_mass)
                summary_floor[block] = floor
                size = 0
                for i in range(n_touched):
                    if dense[touched[i]] >= floor:
                        size += 1
                    dense[touched[i]] = 0.0
                summary_offsets[block + 1] = size
                continue
            floor = summary_floor[block]
            top = floor
            low = np.float32(np.inf)
            for i in range(n_touched):
                value = dense[touched[i]]
                top = max(top, value)
                if value >= floor:
                    low = min(low, value)
            # Round the range outwards in float32 and codes up: a summary value is never below its max.
            low = np.nextafter(low, np.float32(0.0))
            scale = np.nextafter(np.float32((np.float64(top) - low) / 255.0), np.float32(np.inf))
            summary_min[block] = low
            summary_scale[block] = scale
            out = summary_offsets[block]
            for i in range(n_touched):
                term = touched[i]
                value = dense[term]
                dense[term] = 0.0
                if value >= floor:
                    summary_terms[out] = term
                    summary_codes[out] = min(255, math.ceil((np.float64(value) - low) / scale))
                    out += 1


@njit(parallel=True, cache=True)
def transpose_summaries(list_lo, list_hi, term_blocks, summary_offsets, summary_terms, summary_codes, n_terms, counting,
                        list_single_offsets, list_term_offsets, n_chunks, single_terms, list_terms, term_entries,
                        entry_blocks, entry_codes):
    """Per posting list of list_lo:list_hi, regroup its summaries by term: term -> (block within the list, code) entries.

    A query then meets only the summary entries of its own terms. Within a list's range
    of entries (summary_offsets[first block]:summary_offsets[last block]) come first the
    terms met in one block only, one entry each in the order of single_terms, which is
    therefore all their directory; then the other terms' entries, in the order of
    list_terms, each term's starting at term_entries (counted from the list's first
    entry, so that a narrow dtype holds it). Over half the (list, term) pairs are
    singletons, so this saves them a start offset each. The first call (counting) puts
    each list's counts of both kinds of terms in the offsets at t + 1; the second writes.
    """
    for chunk in prange(n_chunks):
        cursor = np.zeros(n_terms, dtype=np.int64)
        touched = np.empty(n_terms, dtype=np.int32)
        for t in range(list_lo + chunk, list_hi, n_chunks):
            first, last = term_blocks[t], term_blocks[t + 1]
            lo, hi = summary_offsets[first], summary_offsets[last]
            n_touched = 0
            for e in range(lo, hi):
                term = summary_terms[e]
                if cursor[term] == 0:
                    touched[n_touched] = term
                    n_touched += 1
                cursor[term] += 1
            n_single = 0
            for i in range(n_touched):
                n_single += cursor[touched[i]] == 1
            if counting:
                list_single_offsets[t + 1] = n_single
                list_term_offsets[t + 1] = n_touched - n_single
                for i in range(n_touched):
                    cursor[touched[i]] = 0
                continue
            touched[:n_touched].sort()
            single = list_single_offsets[t]
            multi = list_term_offsets[t]
            start = lo + n_single
            for i in range(n_touched):
                term = touched[i]
                count = cursor[term]
                if count == 1:
                    single_terms[single] = term
                    cursor[term] = lo + single - list_single_offsets[t]
                    single += 1
                    continue
                list_terms[multi] = term
                term_entries[multi] = start - lo
                multi += 1
                cursor[term] = start
                start += count
            for block in range(first, last):
                for e in range(summary_offsets[block], summary_offsets[block + 1]):
                    term = summary_terms[e]
                    entry_blocks[cursor[term]] = block - first
                    entry_codes[cursor[term]] = summary_codes[e]
                    cursor[term] += 1
            for i in range(n_touched):
                cursor[touched[i]] = 0


# --- assembly -----------------------------------------------------------------------


def build(docs: SparseVectors, params: BuildParams, workspace: Workspace = IN_MEMORY) -> dict[str, np.ndarray]:
    """Out of core, every phase runs in chunks of rows, lists or blocks sized to the
    workspace's budget, with the mapped collection and scratch arrays released after each."""
    n_terms = len(docs.vocab)
    chunks = thread_chunks(max(len(docs), n_terms))
    # Clustering and summaries read documents at random: from the forward index, which is in
    # memory (part of the index) and holds the very weights that search scores.
    forward = forward_index(docs, params.forward_dtype, workspace)
    max_doc = int(np.diff(docs.offsets).max(initial=0))
    stored = (forward["doc_offsets"], forward["doc_terms"], forward["doc_weights"], bool(forward["doc_term_gaps"][0]),
              max_doc)
    kept, threshold, above = kept_list_sizes(docs, term_counts(docs, workspace), params.postings_for(len(docs)),
                                             params.max_fraction, workspace)
    # Only the postings that pass the threshold are inverted: the full inverted copy of the
    # collection is never made. A list's heaviest postings among them are its heaviest overall.
    inverted = invert(docs, workspace, threshold, above)
    term_offsets = inverted["term_offsets"]
    kept_offsets = offsets_of(kept)
    kept_docs = np.empty(kept_offsets[-1], dtype=np.int32)
    for lo, hi in workspace.ranges(np.diff(term_offsets) * NONZERO_BYTES, "pruning lists"):
        prune_postings(lo, hi, term_offsets, inverted["posting_docs"], inverted["posting_weights"], kept_offsets,
                       chunks, kept_docs)
    del inverted

    list_sizes = np.diff(kept_offsets)
    clustered = params.clustering == "clustered"
    if clustered:
        slots = np.ceil(list_sizes * params.centroid_fraction).astype(np.int64)  # >= 1 for a non-empty list
        head_offsets = offsets_of(np.minimum(np.diff(docs.offsets), params.doc_cut))
        head_terms = np.empty(head_offsets[-1], dtype=np.int32)
        head_weights = np.empty(head_offsets[-1], dtype=np.float32)
        for lo, hi in workspace.steps(len(docs), "document heads"):
            doc_heads(lo, hi, *stored, params.doc_cut, head_offsets, chunks, head_terms, head_weights)
    else:
        slots = -(-list_sizes // params.block_size)
        head_offsets = np.zeros(1, dtype=np.int64)
        head_terms, head_weights = np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float32)
    block_slots = offsets_of(slots)
    block_docs = np.empty_like(kept_docs)
    slot_sizes = np.zeros(block_slots[-1], dtype=np.int64)
    max_slots = int(slots.max(initial=0))
    max_entries = max_slots * max_doc if clustered else 0
    for lo, hi in workspace.steps(len(list_sizes), "clustering"):
        make_blocks(lo, hi, kept_offsets, kept_docs, block_slots, clustered, params.block_size,
                    params.min_cluster_size, n_terms, *stored, head_offsets, head_terms, head_weights,
                    int(list_sizes.max(initial=0)), max_slots, max_entries, chunks, block_docs, slot_sizes)
    del kept_docs, head_terms, head_weights

    nonempty = slot_sizes > 0
    block_offsets = offsets_of(slot_sizes[nonempty])
    term_blocks = offsets_of(blocks_per_term(nonempty, block_slots))
    n_blocks = len(block_offsets) - 1
    # Sized, and refused if too large, before the long work that follows.
    records_at = record_offsets(block_offsets, block_docs, forward) if params.disk_blocks else None
    if records_at is not None:
        check_record_bytes(int(records_at[-1]), forward, len(block_docs), len(docs), params.max_record_ratio)

    small_terms = term_dtype(n_terms)
    binary = docs.is_binary
    summary_offsets = np.zeros(n_blocks + 1, dtype=np.int64)
    summary_floor = np.empty(n_blocks, dtype=np.float32)
    summary_scale = np.empty(n_blocks, dtype=np.float32)
    summary_min = np.empty(n_blocks, dtype=np.float32)
    summary_terms = np.empty(0, dtype=small_terms)
    summary_codes = np.empty(0, dtype=np.uint8)
    for lo, hi in workspace.steps(n_blocks, "summaries (1 of 2)"):
        summarize(lo, hi, block_offsets, block_docs, *stored, n_terms, params.summary_energy, binary, True,
                  summary_offsets, chunks, summary_floor, summary_terms, summary_codes, summary_scale, summary_min)
    np.cumsum(summary_offsets, out=summary_offsets)
    # Block by block, then regrouped by term below: out of core, the first copy stays on disk.
    summary_terms = workspace.empty(summary_offsets[-1], small_terms)
    summary_codes = workspace.empty(summary_offsets[-1], np.uint8)
    for lo, hi in workspace.ranges(np.diff(summary_offsets) * (summary_terms.itemsize + 1), "summaries (2 of 2)"):
        summarize(lo, hi, block_offsets, block_docs, *stored, n_terms, params.summary_energy, binary, False,
                  summary_offsets, chunks, summary_floor, summary_terms, summary_codes, summary_scale, summary_min)

    max_list_blocks = max(1, int(np.diff(term_blocks).max()))
    list_single_offsets = np.zeros(n_terms + 1, dtype=np.int64)
    list_term_offsets = np.zeros(n_terms + 1, dtype=np.int64)
    no_terms = np.empty(0, dtype=small_terms)
    # Regrouped here, then bit-packed below: out of core, the unpacked copy stays on disk.
    entry_blocks = workspace.empty(len(summary_codes), smallest_uint(max_list_blocks - 1))
    entry_codes = np.empty(len(summary_codes), dtype=np.uint8)
    list_entries = summary_offsets[term_blocks]
    list_costs = np.diff(list_entries) * (summary_terms.itemsize + 1 + entry_blocks.itemsize)
    for lo, hi in workspace.ranges(list_costs, "regrouping (1 of 2)"):
        transpose_summaries(lo, hi, term_blocks, summary_offsets, summary_terms, summary_codes, n_terms, True,
                            list_single_offsets, list_term_offsets, chunks, no_terms, no_terms,
                            np.empty(0, dtype=np.uint8), entry_blocks, entry_codes)
    np.cumsum(list_single_offsets, out=list_single_offsets)
    np.cumsum(list_term_offsets, out=list_term_offsets)
    single_terms = np.empty(list_single_offsets[-1], dtype=small_terms)
    list_terms = np.empty(list_term_offsets[-1], dtype=small_terms)
    term_entries = np.empty(list_term_offsets[-1], dtype=smallest_uint(int(np.diff(list_entries).max())))
    for lo, hi in workspace.ranges(list_costs, "regrouping (2 of 2)"):
        transpose_summaries(lo, hi, term_blocks, summary_offsets, summary_terms, summary_codes, n_terms, False,
                            list_single_offsets, list_term_offsets, chunks, single_terms, list_terms, term_entries,
                            entry_blocks, entry_codes)
    del summary_offsets, summary_terms, summary_codes
    list_block_width, list_block_words, entry_block_bits = packed_entry_blocks(np.diff(term_blocks), list_entries,
                                                                               entry_blocks, workspace)
    del entry_blocks
    if binary:  # every summary value is 1: a bound is the query weight its terms meet, no codes stored
        entry_codes, summary_min, summary_scale = UNIT_WEIGHTS, np.ones_like(summary_min), np.zeros_like(summary_scale)

    arrays = {
        "term_blocks": term_blocks, "block_offsets": block_offsets, "block_docs": block_docs,
        "list_entries": list_entries, "list_single_offsets": list_single_offsets, "single_terms": single_terms,
        "list_term_offsets": list_term_offsets, "list_terms": list_terms, "term_entries": term_entries,
        "list_block_words": list_block_words, "list_block_width": list_block_width,
        "entry_block_bits": entry_block_bits, "entry_codes": entry_codes,
        "summary_scale": summary_scale, "summary_min": summary_min,
        **forward,
        "max_list_blocks": np.array([max_list_blocks], dtype=np.int64),
    }
    if params.disk_blocks:
        arrays.update(block_records(records_at, block_offsets, block_docs, forward, workspace))
        arrays["largest_reads"] = largest_reads(arrays)
    return arrays  # the kNN graph (n_knn > 0) is added by the query side, which can search


def check_record_bytes(record_bytes: int, forward: dict, block_rows: int, n_docs: int, max_ratio: float) -> None:
    """Report the block records' size against the forward index, refusing it above max_ratio."""
    forward_bytes = sum(array.nbytes for array in forward.values())
    ratio = record_bytes / max(forward_bytes, 1)
    what = (f"block records of {record_bytes / 1e6:,.1f} MB, {ratio:,.1f}x the forward index "
            f"({forward_bytes / 1e6:,.1f} MB): each document sits in {block_rows / max(n_docs, 1):,.1f} blocks on "
            "average")
    if ratio > max_ratio:
        raise ParameterError(f"disk_blocks would write {what}, above max_record_ratio={max_ratio:g}; prune harder "
                             "(a smaller n_postings), raise max_record_ratio (--max-record-ratio), or serve the "
                             "index without records (memory='summaries')")
    logger.info("disk_blocks: %s", what)


def blocks_per_term(nonempty: np.ndarray, block_slots: np.ndarray) -> np.ndarray:
    """How many of each term's candidate blocks are non-empty."""
    filled = offsets_of(nonempty.astype(np.int64))
    return filled[block_slots[1:]] - filled[block_slots[:-1]]


@njit(parallel=True, cache=True)
def pack_entry_blocks(list_lo, list_hi, list_entries, list_block_words, list_block_width, entry_blocks,
                      entry_block_bits):
    """Write the entry block numbers of lists list_lo:list_hi as list_block_width-bit fields, from
    each one's first uint32 word on."""
    for t in prange(list_lo, list_hi):
        width = np.int64(list_block_width[t])
        first = list_entries[t]
        for e in range(first, list_entries[t + 1]):
            bit = (e - first) * width
            word = list_block_words[t] + (bit >> 5)
            field = np.uint64(entry_blocks[e]) << np.uint64(bit & 31)
            entry_block_bits[word] |= np.uint32(field & np.uint64(0xFFFFFFFF))
            if field >> np.uint64(32):  # straddles: never touch the next list's first word for nothing
                entry_block_bits[word + 1] |= np.uint32(field >> np.uint64(32))


def packed_entry_blocks(list_blocks: np.ndarray, list_entries: np.ndarray, entry_blocks: np.ndarray,
                        workspace: Workspace = IN_MEMORY):
    """(list_block_width, list_block_words, entry_block_bits): every entry's block number, bit-packed per list
    (read from entry_blocks a workspace chunk of lists at a time)."""
    widths = block_field_widths(list_blocks)
    words = offsets_of(-(-np.diff(list_entries) * widths // 32))
    # Two spare words: a field is read as a pair of words, and a list of one block (width 0),
    # which has none, still reads the pair at its start.
    bits = np.zeros(words[-1] + 2, dtype=np.uint32)
    for lo, hi in workspace.ranges(np.diff(list_entries) * entry_blocks.itemsize, "packing blocks"):
        pack_entry_blocks(lo, hi, list_entries, words, widths, entry_blocks, bits)
    return widths, words, bits


@njit(parallel=True, cache=True)
def record_sizes(block_offsets, block_docs, doc_offsets, term_itemsize, weight_itemsize, sizes):
    """Bytes of each block's record into sizes."""
    for b in prange(len(sizes)):
        n = 0
        for p in range(block_offsets[b], block_offsets[b + 1]):
            n += np.int64(doc_offsets[block_docs[p] + 1]) - np.int64(doc_offsets[block_docs[p]])
        sizes[b] = record_layout(block_offsets[b + 1] - block_offsets[b], n, term_itemsize, weight_itemsize)[3]


@njit(parallel=True, cache=True)
def write_records(block_lo, block_hi, block_offsets, block_docs, doc_offsets, doc_terms, doc_weights,
                  weight_itemsize, record_offsets, records):
    """The records of blocks block_lo:block_hi (see the module docstring)."""
    for b in prange(block_lo, block_hi):
        first, m = block_offsets[b], block_offsets[b + 1] - block_offsets[b]
        record = records[record_offsets[b]:record_offsets[b + 1]]
        offsets_at, terms_at, _, _ = record_layout(m, 0, 1, 1)
        rows = record[:offsets_at].view(np.int32)
        entry_offsets = record[offsets_at:terms_at].view(np.uint32)
        entry_offsets[0] = 0
        for i in range(m):
            doc = block_docs[first + i]
            rows[i] = doc
            entry_offsets[i + 1] = entry_offsets[i] + np.uint32(doc_offsets[doc + 1] - doc_offsets[doc])
        n = np.int64(entry_offsets[m])
        _, terms_at, weights_at, end = record_layout(m, n, doc_terms.itemsize, weight_itemsize)
        terms, weights = record_vectors(record, terms_at, weights_at, n, doc_terms, doc_weights, weight_itemsize)
        for i in range(m):
            lo, hi = np.int64(doc_offsets[rows[i]]), np.int64(doc_offsets[rows[i] + 1])
            at = np.int64(entry_offsets[i])
            terms[at:at + hi - lo] = doc_terms[lo:hi]
            if weight_itemsize:
                weights[at:at + hi - lo] = doc_weights[lo:hi]
        record[terms_at + n * doc_terms.itemsize:weights_at] = 0  # alignment padding: files equal byte for byte
        record[weights_at + n * weight_itemsize:end] = 0


def record_offsets(block_offsets: np.ndarray, block_docs: np.ndarray, forward: dict) -> np.ndarray:
    """block_record_offsets: where each block's record starts, and (last) the records' bytes."""
    doc_weights = forward["doc_weights"]
    sizes = np.empty(len(block_offsets) - 1, dtype=np.int64)
    record_sizes(block_offsets, block_docs, forward["doc_offsets"], forward["doc_terms"].itemsize,
                 doc_weights.itemsize if doc_weights.size else 0, sizes)
    return offsets_of(sizes)


def block_records(offsets: np.ndarray, block_offsets: np.ndarray, block_docs: np.ndarray, forward: dict,
                  workspace: Workspace = IN_MEMORY) -> dict[str, np.ndarray]:
    """block_record_offsets (`offsets`, from record_offsets) and block_records, written a
    workspace chunk of blocks at a time (out of core, into a file that saving the index links
    instead of copying)."""
    doc_terms, doc_weights = forward["doc_terms"], forward["doc_weights"]
    weight_itemsize = doc_weights.itemsize if doc_weights.size else 0
    records = workspace.empty(offsets[-1], np.uint8, whole_file=True)
    for lo, hi in workspace.ranges(np.diff(offsets), "block records"):
        write_records(lo, hi, block_offsets, block_docs, forward["doc_offsets"], doc_terms, doc_weights,
                      weight_itemsize, offsets, records)
    return {"block_record_offsets": offsets, "block_records": records}
