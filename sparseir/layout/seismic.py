"""The arrays of a Seismic index (layout 4), beside the forward index of ``layout.forward``.

Blocks: each term's statically pruned posting list, clustered into blocks.

    term_blocks       int64, n_terms + 1: a term's blocks are term_blocks[t]:term_blocks[t + 1]
    block_offsets     int64, n_blocks + 1: a block's documents in block_docs
    block_docs        int32: document rows

Summaries: each block's pruned, 8-bit quantized summary vector, stored per posting list
and term-major within it, so that a query reads only its own terms' entries. A summary
value is summary_min[b] + summary_scale[b] * code.

    list_entries         int64, n_terms + 1: a list's entries (entry_codes, packed block numbers)
    list_single_offsets  int64, n_terms + 1: the list's terms found in one block only ...
    single_terms         uint16 / int32: ... ascending, one entry each, in order
    list_term_offsets    int64, n_terms + 1: the list's terms found in several blocks ...
    list_terms           uint16 / int32: ... ascending ...
    term_entries         narrowest uint: ... and where each one's entries start, counted from
                         the list's first entry (they end where the next one's start)
    list_block_words     int64, n_terms + 1: first uint32 word of a list's packed block numbers
    list_block_width     uint8, n_terms: bits per block number in that list (0 for one block)
    entry_block_bits     uint32: the packed block numbers (within the list), two spare words
    entry_codes          uint8: summary codes (none for a binary collection, whose summary
                         values are all 1: summary_min 1, summary_scale 0)
    summary_scale, summary_min  float32, n_blocks

Block records, with ``disk_blocks=True``: each block's documents once more, their forward
vectors side by side, so that under ``load_index(memory="disk")`` a visited block is one read.
Each part of a record starts 4-byte aligned; a block of m documents holding n entries has

    block_record_offsets  int64, n_blocks + 1: a block's bytes in block_records
    block_records         uint8: rows int32 x m; entry offsets uint32 x (m + 1), from 0;
                          terms x n (doc_terms' dtype); weights x n (doc_weights' dtype, none if binary)
    largest_reads         int64, [5]: the most one read fetches, to size buffers: a list's
                          single-block terms, its multi-block terms (and as many term_entries),
                          its entries (codes), its block-number words (two spare included),
                          and a record's bytes

Also ``max_list_blocks`` (int64, [1]) and, with n_knn > 0, ``knn`` (int32, n_docs x n_knn).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ..kernels import offsets_of
from . import DiskMode
from .checks import Derived, Guarded, Length, Offsets, Param, Rule, Weights
from .forward import CHECKS as FORWARD_CHECKS, ON_DISK as FORWARD_ON_DISK

# Bumped whenever the arrays change shape or meaning: an older index must be rebuilt.
LAYOUT_VERSION = 4
# What generic code may ask of this kind (``sparseir.kinds.CAPABILITIES``).
CAPABILITIES = frozenset({"filters", "forward_index", "disk_mode", "tuning"})
# The bulk, left on disk by load_index(memory="summaries"): summaries and directories stay in
# memory; a visited block's documents and their forward vectors are read from disk.
ON_DISK = ("block_docs", "knn", *FORWARD_ON_DISK)
# Read range by range under load_index(memory="disk"), which also leaves ON_DISK alone: the
# summaries of a query's lists and the records of its visited blocks; the rest stays in RAM.
DISK_READS = ("single_terms", "list_terms", "term_entries", "entry_block_bits", "entry_codes", "block_records")
# Read by memory="disk" alone, through its file: in every other mode it stays mapped, untouched.
DISK_ONLY = ("block_records",)
DISK_MODE = DiskMode(reads=DISK_READS, only=DISK_ONLY, needs=("block_records", "block_record_offsets", "largest_reads"),
                     build={"disk_blocks": True, "max_record_ratio": float("inf")},
                     rebuild="rebuild it with disk_blocks=True (sparseir index --disk-blocks)")


class Blocks(NamedTuple):
    term_blocks: np.ndarray
    block_offsets: np.ndarray
    block_docs: np.ndarray


class DiskReads(NamedTuple):
    """What a memory="disk" search reads from disk. files[i] locates DISK_READS[i] (fd, byte
    where its data starts, elements: ``query.reads``); the fields named like the arrays are
    empty arrays of their dtypes. The block records' offsets and largest_reads stay in RAM.
    failed (``query.reads.new_failed``) records a read that failed."""

    files: np.ndarray
    failed: np.ndarray
    single_terms: np.ndarray
    list_terms: np.ndarray
    term_entries: np.ndarray
    entry_block_bits: np.ndarray
    entry_codes: np.ndarray
    block_records: np.ndarray
    block_record_offsets: np.ndarray
    largest_reads: np.ndarray


class Summaries(NamedTuple):
    list_entries: np.ndarray
    list_single_offsets: np.ndarray
    single_terms: np.ndarray
    list_term_offsets: np.ndarray
    list_terms: np.ndarray
    term_entries: np.ndarray
    list_block_words: np.ndarray
    list_block_width: np.ndarray
    entry_block_bits: np.ndarray
    entry_codes: np.ndarray
    summary_scale: np.ndarray
    summary_min: np.ndarray


# --- block numbers, bit-packed per list ------------------------------------------------

def block_field_widths(list_blocks: np.ndarray) -> np.ndarray:
    """Bits per entry's block number in each list: the fewest that hold its blocks (0 for one block)."""
    widths = np.zeros(len(list_blocks), dtype=np.uint8)
    for width in range(32, 0, -1):
        widths[list_blocks <= 1 << width] = width
    widths[list_blocks <= 1] = 0
    return widths


# --- decoding, for tests and inspection --------------------------------------------------


# --- block records (disk_blocks) ------------------------------------------------------------

@njit(cache=True, inline="always")
def aligned(nbytes):
    return (nbytes + 3) & ~3


@njit(cache=True, inline="always")
def record_layout(m, n, term_itemsize, weight_itemsize):
    """Byte offsets within a record of m documents and n entries: (entry offsets, terms, weights, end)."""
    offsets_at = 4 * m
    terms_at = offsets_at + 4 * (m + 1)
    weights_at = terms_at + aligned(n * term_itemsize)
    return offsets_at, terms_at, weights_at, weights_at + aligned(n * weight_itemsize)


def largest_reads(arrays) -> np.ndarray:
    """The most that one read fetches, in the order the module docstring gives."""
    return np.array([np.diff(arrays["list_single_offsets"]).max(initial=0),
                     np.diff(arrays["list_term_offsets"]).max(initial=0),
                     np.diff(arrays["list_entries"]).max(initial=0),
                     np.diff(arrays["list_block_words"]).max(initial=0) + 2,
                     np.diff(arrays["block_record_offsets"]).max(initial=0)], dtype=np.int64)


# --- what every open checks (``layout.checks``) ------------------------------------------

def list_blocks(arrays) -> np.ndarray:
    return np.diff(arrays["term_blocks"])


def block_words(arrays) -> np.ndarray:
    """Each list's first word of packed block numbers, as packed_entry_blocks lays them out."""
    return offsets_of(-(-np.diff(arrays["list_entries"]) * arrays["list_block_width"].astype(np.int64) // 32))


CHECKS = (
    Offsets("block_offsets", last="len(block_docs)"),
    Offsets("term_blocks", length="n_terms + 1", last="len(block_offsets) - 1"),
    Derived("max_list_blocks", lambda a: np.array([max(1, int(list_blocks(a).max(initial=0)))]),
            "term_blocks' longest list"),
    Length("summary_scale", "len(block_offsets) - 1"),
    Length("summary_min", "len(block_offsets) - 1"),
    Offsets("list_entries", length="n_terms + 1", last=None),
    Weights("entry_codes", count="last(list_entries)"),
    Offsets("list_single_offsets", length="n_terms + 1", last="len(single_terms)"),
    Offsets("list_term_offsets", length="n_terms + 1", last="len(list_terms)"),
    Length("term_entries", "len(list_terms)"),
    Rule("list_single_offsets", lambda a: np.diff(a["list_single_offsets"]) <= np.diff(a["list_entries"]),
         "a list with more single-block terms than summary entries"),
    Derived("list_block_width", lambda a: block_field_widths(list_blocks(a)), "term_blocks' list lengths"),
    Derived("list_block_words", block_words, "list_entries and list_block_width"),
    Length("entry_block_bits", "last(list_block_words) + 2"),
    Guarded("single_terms", "term ids: read through query.scratch.term_slot"),
    Guarded("list_terms", "term ids: read through query.scratch.term_slot"),
    Guarded("term_entries", "where a term's entries start in its list: clamped to the list"),
    Guarded("entry_block_bits", "blocks within a list: each checked below the list's block count"),
    Guarded("block_docs", "rows: each candidate checked below n_docs"),
    Length("knn", "n_docs", optional=True),
    Param("n_knn", "columns(knn)"),
    Guarded("knn", "rows: each candidate checked below n_docs", optional=True),
    Param("disk_blocks", "has(block_records)"),
    Param("disk_blocks", "has(block_record_offsets)"),
    Param("disk_blocks", "has(largest_reads)"),
    Offsets("block_record_offsets", length="len(block_offsets)", last="len(block_records)", optional=True),
    Derived("largest_reads", largest_reads, "the offsets of lists and records", optional=True),
    Guarded("block_records", "records: the reader checks a record's entry offsets, then each row", optional=True),
    *FORWARD_CHECKS,
)


@njit(cache=True, inline="always")
def record_vectors(record, terms_at, weights_at, n, doc_terms, doc_weights, weight_itemsize):
    """A record's terms and weights, as views of the forward index's dtypes (weights empty if binary)."""
    return (record[terms_at:terms_at + n * doc_terms.itemsize].view(doc_terms.dtype),
            record[weights_at:weights_at + n * weight_itemsize].view(doc_weights.dtype))
