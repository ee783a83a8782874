"""Building the forward index (``layout.forward``) that Seismic and SINDI rescore candidates from."""

from __future__ import annotations

import numpy as np
from numba import njit

from ..layout import UNIT_WEIGHTS
from ..layout.forward import read_doc, read_forward, term_dtype
from ..vectors import SparseVectors
from ..workspace import IN_MEMORY, Workspace


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
        # uint32 halves the one array every candidate reads at random.
        "doc_offsets": docs.offsets.astype(np.uint32 if docs.nnz <= np.iinfo(np.uint32).max else np.int64),
        "doc_terms": doc_terms,
        "doc_term_gaps": np.array([gaps]),
        "doc_weights": doc_weights,
    }


@njit(cache=True)
def decode_rows(row_lo, row_hi, doc_offsets, doc_terms, doc_weights, term_gaps, terms, weights):
    """Rows row_lo:row_hi of a forward index decoded into term ids (int32) and weights (float32)."""
    for doc in range(row_lo, row_hi):
        lo = np.int64(doc_offsets[doc])
        read_doc(doc_offsets, doc_terms, doc_weights, term_gaps, doc, terms[lo:], weights[lo:])


def forward_vectors(arrays, workspace: Workspace = IN_MEMORY):
    """The documents a forward index holds, as CSR (offsets, terms, weights), a chunk of rows at a time."""
    forward = read_forward(arrays)
    offsets = np.asarray(forward.doc_offsets, dtype=np.int64)
    terms, weights = workspace.empty(offsets[-1], np.int32), workspace.empty(offsets[-1], np.float32)
    for lo, hi in workspace.row_ranges(offsets, "reading the forward index"):
        decode_rows(lo, hi, forward.doc_offsets, forward.doc_terms, forward.doc_weights, forward.term_gaps, terms,
                    weights)
    return offsets, terms, weights
