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

Also ``max_list_blocks`` (int64, [1]) and, with n_knn > 0, ``knn`` (int32, n_docs x n_knn).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from ..workspace import IN_MEMORY, Workspace
from .forward import ON_DISK as FORWARD_ON_DISK

# Bumped whenever the arrays change shape or meaning: an older index must be rebuilt.
LAYOUT_VERSION = 4
# The bulk, left on disk by load_index(memory="summaries"): summaries and directories stay in
# memory; a visited block's documents and their forward vectors are read from disk.
ON_DISK = ("block_docs", "knn", *FORWARD_ON_DISK)


class Blocks(NamedTuple):
    term_blocks: np.ndarray
    block_offsets: np.ndarray
    block_docs: np.ndarray


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


def offsets_of(sizes: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return offsets


def smallest_uint(largest: int):
    """The narrowest unsigned dtype holding 0..largest: index bytes are mostly such counters."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if largest <= np.iinfo(dtype).max:
            return dtype
    return np.int64


# --- block numbers, bit-packed per list ------------------------------------------------

def block_field_widths(list_blocks: np.ndarray) -> np.ndarray:
    """Bits per entry's block number in each list: the fewest that hold its blocks (0 for one block)."""
    widths = np.zeros(len(list_blocks), dtype=np.uint8)
    for width in range(32, 0, -1):
        widths[list_blocks <= 1 << width] = width
    widths[list_blocks <= 1] = 0
    return widths


@njit(parallel=True, cache=True)
def pack_entry_blocks(list_lo, list_hi, list_entries, list_block_words, list_block_width, entry_blocks,
                      entry_block_bits):
    """Write the entry block numbers of lists list_lo:list_hi as list_block_width-bit fields from each one's first uint32 word on."""
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


@njit(cache=True, inline="always")
def entry_block(entry_block_bits, word, width, r):
    """Block within its list of a list's r-th summary entry: `width`-bit fields from uint32 `word` on."""
    bit = r * width
    at = word + (bit >> 5)
    # A field may straddle two words; read both (<= 31 + 32 bits fit in 64).
    pair = np.uint64(entry_block_bits[at]) | (np.uint64(entry_block_bits[at + 1]) << np.uint64(32))
    return np.int64((pair >> np.uint64(bit & 31)) & ((np.uint64(1) << np.uint64(width)) - np.uint64(1)))


# --- decoding, for tests and inspection --------------------------------------------------

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
