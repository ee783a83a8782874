"""Block-max index (BMP; Mallia, Suel, Tonellotto, SIGIR 2024): block maxima over fixed
ranges of consecutive documents, and every posting grouped by block for exact scoring.

Blocks of consecutive rows are only as tight as the collection's order is clustered:
``reorder="bp"``, this kind's default (see ``sparseir.reorder``), makes documents sharing
terms share blocks. The arrays are declared in ``sparseir.layout.blockmax``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from ..errors import require
from ..kernels import count_bits
from ..layout.blockmax import MAX_BLOCK_SIZE, MAX_CODE, mask_dtype
from ..params import OrderedBuild
from ..layout import UNIT_WEIGHTS, stored_weights
from ..vectors import SparseVectors
from ..workspace import IN_MEMORY, Workspace
from .inversion import invert, transpose, unit_weights


@dataclass(frozen=True)
class BuildParams(OrderedBuild):
    reorder: str = field(default="bp", metadata={
        "help": "document order before building: bp (recursive graph bisection: tight blocks) or none"})
    block_size: int = field(default=8, metadata={
        "help": f"documents per block (1..{MAX_BLOCK_SIZE}): smaller blocks bound tighter, "
                "but a query bounds more of them"})

    def __post_init__(self):
        super().__post_init__()
        require(isinstance(self.block_size, int) and 1 <= self.block_size <= MAX_BLOCK_SIZE,
                f"block_size must be an integer in 1..{MAX_BLOCK_SIZE}, got {self.block_size!r}")


@njit(parallel=True, cache=True)
def count_runs(offsets, keys, divisor):
    """Per list, the number of distinct keys // divisor among its (ascending) keys."""
    n_lists = offsets.shape[0] - 1
    counts = np.zeros(n_lists, dtype=np.int64)
    for t in prange(n_lists):
        last = -1
        for p in range(offsets[t], offsets[t + 1]):
            if keys[p] // divisor != last:
                counts[t] += 1
                last = keys[p] // divisor
    return counts


@njit(parallel=True, cache=True)
def fill_runs(offsets, keys, divisor, run_offsets, run_keys, run_first):
    """Each run's key // divisor and its first position; runs are numbered list by list."""
    for t in prange(offsets.shape[0] - 1):
        r = run_offsets[t] - 1
        last = -1
        for p in range(offsets[t], offsets[t + 1]):
            if keys[p] // divisor != last:
                r += 1
                last = keys[p] // divisor
                run_keys[r] = last
                run_first[r] = p


def runs(offsets: np.ndarray, keys: np.ndarray, divisor: int):
    """Group each list's ascending keys by key // divisor: (run offsets per list, run keys, run starts + end)."""
    run_offsets = np.zeros(len(offsets), dtype=np.int64)
    np.cumsum(count_runs(offsets, keys, divisor), out=run_offsets[1:])
    run_keys = np.empty(run_offsets[-1], dtype=np.int32)
    run_first = np.empty(run_offsets[-1] + 1, dtype=np.int64)
    run_first[-1] = len(keys)
    fill_runs(offsets, keys, divisor, run_offsets, run_keys, run_first)
    return run_offsets, run_keys, run_first


@njit(parallel=True, cache=True)
def rounded_up_codes(offsets, weights, term_scales):
    """Each weight's smallest code whose value (code x its term's scale, in float32) is at least the weight."""
    codes = np.empty(weights.shape[0], dtype=np.uint8)
    for t in prange(offsets.shape[0] - 1):
        scale = term_scales[t]
        for p in range(offsets[t], offsets[t + 1]):
            code = min(MAX_CODE, max(0, np.int64(np.ceil(np.float64(weights[p]) / np.float64(scale)))))
            while code < MAX_CODE and np.float32(code) * scale < weights[p]:
                code += 1
            codes[p] = code
    return codes


def run_maxima(values: np.ndarray, run_first: np.ndarray) -> np.ndarray:
    if len(run_first) == 1:
        return np.empty(0, dtype=values.dtype)
    return np.maximum.reduceat(values, run_first[:-1])


def code_scales(term_offsets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per term, the code step: its largest weight / MAX_CODE, nudged up until MAX_CODE steps reach it."""
    n_terms = len(term_offsets) - 1
    largest = np.zeros(n_terms, dtype=np.float32)
    present = np.flatnonzero(np.diff(term_offsets) > 0)
    if len(present):
        largest[present] = np.maximum.reduceat(weights, term_offsets[present])
    scales = (largest / np.float32(MAX_CODE)).astype(np.float32)
    short = np.float32(MAX_CODE) * scales < largest  # the division rounded down
    scales[short] = np.nextafter(scales[short], np.float32(np.inf))
    return np.where(largest > 0, scales, np.float32(1.0)).astype(np.float32)


def build(docs: SparseVectors, params: BuildParams, workspace: Workspace = IN_MEMORY) -> dict[str, np.ndarray]:
    inverted = invert(docs, workspace)
    term_offsets, posting_docs, weights = (inverted[name] for name in ("term_offsets", "posting_docs",
                                                                        "posting_weights"))
    size = params.block_size
    term_entries, entry_blocks, entry_postings = runs(term_offsets, posting_docs, size)
    mask = mask_dtype(size).type
    masks = mask(1) << (posting_docs % size).astype(mask)
    masks = np.bitwise_or.reduceat(masks, entry_postings[:-1]) if len(masks) else masks
    binary = docs.is_binary
    if binary:  # every block maximum and weight is 1: the masks are the postings
        scales, maxima = np.ones(len(term_offsets) - 1, dtype=np.float32), UNIT_WEIGHTS
        entry_postings = np.empty(0, dtype=np.uint32)
    else:
        scales = code_scales(term_offsets, weights)
        maxima = run_maxima(rounded_up_codes(term_offsets, weights, scales), entry_postings)
        entry_postings = entry_postings.astype(np.uint32 if len(weights) <= np.iinfo(np.uint32).max else np.int64)
    return {"term_entries": term_entries, "entry_blocks": entry_blocks, "entry_maxima": maxima, "term_scales": scales,
            "entry_masks": masks, "entry_postings": entry_postings, "posting_weights": stored_weights(weights, binary),
            "block_size": np.array([size], dtype=np.int32)}


@njit(cache=True)
def mask_sizes(entry_masks, sizes):
    """Each entry's number of postings: its mask's set bits."""
    for e in range(entry_masks.shape[0]):
        sizes[e] = count_bits(np.uint64(entry_masks[e]))


@njit(cache=True)
def mask_rows(entry_blocks, entry_masks, block_size, rows):
    """Every posting's row, entry by entry (a block's documents in the order of its mask's bits)."""
    p = 0
    for e in range(entry_masks.shape[0]):
        mask = np.uint64(entry_masks[e])
        base = np.int64(entry_blocks[e]) * block_size
        slot = 0
        while mask:
            if mask & np.uint64(1):
                rows[p] = base + slot
                p += 1
            mask >>= np.uint64(1)
            slot += 1


def stored_vectors(arrays, n_docs: int, workspace: Workspace = IN_MEMORY):
    """The documents the postings hold, as CSR (offsets, terms, weights): each entry's mask
    gives its block's rows, the weights follow in that order; the postings transposed."""
    masks, term_entries = np.asarray(arrays["entry_masks"]), np.asarray(arrays["term_entries"])
    per_entry = np.zeros(len(masks) + 1, dtype=np.int64)
    mask_sizes(masks, per_entry[1:])
    np.cumsum(per_entry, out=per_entry)
    rows = workspace.empty(per_entry[-1], np.int32)
    mask_rows(np.asarray(arrays["entry_blocks"]), masks, int(arrays["block_size"][0]), rows)
    weights = arrays["posting_weights"]
    if not len(weights) and len(rows):  # a binary collection: every weight 1
        weights = unit_weights(len(rows), workspace)
    return transpose(per_entry[term_entries], rows, weights, n_docs, workspace)
