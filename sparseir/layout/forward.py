"""The forward index: each document's terms and weights, for exact rescoring of candidates.

    doc_offsets  uint32 (int64 past 2^32 entries), n_docs + 1: a document's entries
    doc_terms    uint16: term ids, ascending within a document; above 65,536 terms, each term's
                 gap from the document's previous term (the first's from 0) while every gap
                 fits 16 bits (as with binary codes over many dimensions), else int32 ids
    doc_term_gaps  bool, [1]: whether doc_terms holds gaps
    doc_weights  float32, or float16 bits stored as uint16 (``forward_dtype="float16"``), or
                 nothing for a binary collection (``layout.UNIT_WEIGHTS``)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ..query.bits import weight_at
from ..vectors import SparseVectors
from ..workspace import IN_MEMORY, Workspace
from . import UNIT_WEIGHTS
from .checks import Guarded, Length, Offsets, Weights

FORWARD_DTYPES = ("float16", "float32")
ON_DISK = ("doc_terms", "doc_weights")  # under load_index(memory="summaries"): read per candidate
# Prefetching pays once the forward index outgrows the last-level cache; below that its
# instructions only cost (measured crossover between 11 and 21 MiB, on a 32 MiB L3).
PREFETCH_ABOVE_BYTES = 16 << 20
# What every open checks (``layout.checks``), in the layouts that include a forward index.
CHECKS = (
    Offsets("doc_offsets", length="n_docs + 1", last="len(doc_terms)"),
    Weights("doc_weights", count="len(doc_terms)"),
    Length("doc_term_gaps", "1"),
    Guarded("doc_terms", "term ids, or gaps adding up to them: read through query.scratch.term_slot"),
)


class Forward(NamedTuple):
    doc_offsets: np.ndarray
    doc_terms: np.ndarray
    doc_weights: np.ndarray
    term_gaps: bool  # doc_terms holds gaps, not ids
    prefetch: bool  # whether kernels prefetch documents (the index is larger than the cache)


def term_dtype(n_terms: int):
    return np.uint16 if n_terms <= 1 << 16 else np.int32


@njit(cache=True)
def write_gaps(row_lo, row_hi, doc_offsets, doc_terms, gaps):
    """Each term's gap from its document's previous term (the first's from 0), its low 16
    bits into gaps, for rows row_lo:row_hi; returns the largest gap, which says whether they all fit."""
    largest = 0
    for doc in range(row_lo, row_hi):
        previous = 0
        for p in range(doc_offsets[doc], doc_offsets[doc + 1]):
            gap = doc_terms[p] - previous
            largest = max(largest, gap)
            gaps[p] = gap & 0xFFFF
            previous = doc_terms[p]
    return largest


def forward_index(docs: SparseVectors, forward_dtype: str, workspace: Workspace = IN_MEMORY) -> dict[str, np.ndarray]:
    """The forward-index arrays of `docs`, as a builder stores them, converted a chunk of rows
    at a time. Terms: 16-bit ids, else 16-bit gaps where every gap fits, else int32 ids."""
    gaps = len(docs.vocab) > 1 << 16
    doc_terms = np.empty(docs.nnz, dtype=np.uint16 if gaps else term_dtype(len(docs.vocab)))
    doc_weights = (UNIT_WEIGHTS if docs.is_binary
                   else np.empty(docs.nnz, dtype=np.uint16 if forward_dtype == "float16" else np.float32))
    largest_gap = 0
    for lo, hi in workspace.row_ranges(docs.offsets, "forward index"):
        start, end = docs.offsets[lo], docs.offsets[hi]
        if gaps:
            largest_gap = max(largest_gap, write_gaps(lo, hi, docs.offsets, docs.terms, doc_terms))
        else:
            doc_terms[start:end] = docs.terms[start:end]
        if doc_weights.dtype == np.uint16:
            doc_weights[start:end] = docs.weights[start:end].astype(np.float16).view(np.uint16)
        elif doc_weights is not UNIT_WEIGHTS:
            doc_weights[start:end] = docs.weights[start:end]
    if largest_gap >= 1 << 16:  # some gap does not fit: plain ids
        doc_terms, gaps = np.empty(docs.nnz, dtype=np.int32), False
        for lo, hi in workspace.row_ranges(docs.offsets, "forward index ids"):
            doc_terms[docs.offsets[lo]:docs.offsets[hi]] = docs.terms[docs.offsets[lo]:docs.offsets[hi]]
    return {
        # uint32 halves the one array every candidate reads at random (12-13% faster on pypi-summaries).
        "doc_offsets": docs.offsets.astype(np.uint32 if docs.nnz <= np.iinfo(np.uint32).max else np.int64),
        "doc_terms": doc_terms,
        "doc_term_gaps": np.array([gaps]),
        "doc_weights": doc_weights,
    }


@njit(cache=True)
def read_doc(doc_offsets, doc_terms, doc_weights, term_gaps, doc, terms, weights):
    """Document `doc` of a forward index decoded into terms (ids) and weights (float32); returns its length."""
    lo = np.int64(doc_offsets[doc])
    n = np.int64(doc_offsets[doc + 1]) - lo
    term = np.int64(0)
    for i in range(n):
        term = term + doc_terms[lo + i] if term_gaps else np.int64(doc_terms[lo + i])
        terms[i] = term
        weights[i] = weight_at(doc_weights, lo + i)
    return n


def read_forward(arrays) -> Forward:
    """The forward index of a built or loaded index, as its kernels take it."""
    doc_terms, doc_weights = arrays["doc_terms"], arrays["doc_weights"]
    return Forward(arrays["doc_offsets"], doc_terms, doc_weights, bool(arrays["doc_term_gaps"][0]),
                   doc_terms.nbytes + doc_weights.nbytes > PREFETCH_ABOVE_BYTES)
