"""The arrays of a block-max (BMP) index.

Documents are cut into blocks of ``block_size`` consecutive rows.

Bounds: per term, one entry for each block the term occurs in, with the term's largest
weight in that block, quantized to 8 bits and rounded up so that it never falls below a
weight it stands for.

    term_entries     int64, n_terms + 1: term t's entries are term_entries[t]:term_entries[t + 1]
    entry_blocks     int32: the entry's block, ascending within a term
    entry_maxima     uint8: the block-max code; code x term_scales[t] >= every weight it covers
    term_scales      float32, n_terms: the value of one code step, per term

A binary collection (every weight 1) stores neither maxima nor weights (``layout.UNIT_WEIGHTS``;
its scales are 1).

Postings: every posting, grouped by entry, so that scoring a block reads only the
query terms' postings inside it.

    entry_masks      uint8/16/32/64 (the narrowest holding block_size bits): bit s is set
                     when the block's document s (row = block x block_size + s) holds the term
    entry_postings   uint32 (int64 past 2^32 postings), n_entries + 1: where an entry's
                     weights start, in the order of its mask's set bits
    posting_weights  float32: the document's exact weight
    block_size       int32, [1]: rows per block (at most 64: a block's documents fit one mask)

A binary collection stores neither weights nor where they start (both zero-length): its
postings are the masks alone, a bitset per term and block. The postings together are the
whole, unpruned collection.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .checks import Guarded, Length, Offsets, Scalar, Weights

LAYOUT_VERSION = 2
# What generic code may ask of this kind (``sparseir.kinds.CAPABILITIES``).
CAPABILITIES = frozenset({"filters", "tuning"})
# The bulk, left on disk by load_index(memory="summaries"): bounds stay in memory, postings are read per block.
ON_DISK = ("entry_masks", "entry_postings", "posting_weights")
MAX_CODE = 255
MAX_BLOCK_SIZE = 64
# What every open checks (``layout.checks``). The entries' blocks are as many as the postings'
# runs, too many to read at every open: the kernel checks each where it bounds a block.
CHECKS = (
    Scalar("block_size", low=1, high=MAX_BLOCK_SIZE, param="block_size"),
    Length("term_scales", "n_terms"),
    Offsets("term_entries", length="n_terms + 1", last="len(entry_blocks)"),
    Weights("entry_maxima", count="len(entry_blocks)"),
    Length("entry_masks", "len(entry_blocks)"),
    Length("entry_postings", "len(entry_blocks) + 1", or_none=True),
    Weights("posting_weights", count="last(entry_postings)"),
    Guarded("entry_blocks", "blocks: each checked below the block count where it is bounded"),
    Guarded("entry_masks", "a block's documents as bits: those past block_size are dropped"),
    Guarded("entry_postings", "where an entry's weights start: checked against posting_weights' length"),
)


class Bounds(NamedTuple):
    term_entries: np.ndarray
    entry_blocks: np.ndarray
    entry_maxima: np.ndarray
    term_scales: np.ndarray


class Postings(NamedTuple):
    entry_masks: np.ndarray
    entry_postings: np.ndarray
    posting_weights: np.ndarray


def mask_dtype(size: int) -> np.dtype:
    """The narrowest unsigned integer with a bit for each of a block's `size` documents."""
    return np.dtype(next(dtype for dtype in (np.uint8, np.uint16, np.uint32, np.uint64)
                         if np.iinfo(dtype).bits >= size))


def block_size(arrays) -> int:
    return int(arrays["block_size"][0])
