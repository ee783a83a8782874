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

from ..vectors import SparseVectors
from . import UNIT_WEIGHTS

FORWARD_DTYPES = ("float16", "float32")
ON_DISK = ("doc_terms", "doc_weights")  # under load_index(memory="summaries"): read per candidate
# Prefetching pays once the forward index outgrows the last-level cache; below that its
# instructions only cost (measured crossover between 11 and 21 MiB, on a 32 MiB L3).
PREFETCH_ABOVE_BYTES = 16 << 20


class Forward(NamedTuple):
    doc_offsets: np.ndarray
    doc_terms: np.ndarray
    doc_weights: np.ndarray
    term_gaps: bool  # doc_terms holds gaps, not ids
    prefetch: bool  # whether kernels prefetch documents (the index is larger than the cache)


def term_dtype(n_terms: int):
    return np.uint16 if n_terms <= 1 << 16 else np.int32


@njit(cache=True)
def write_gaps(doc_offsets, doc_terms, gaps):
    """Each term's gap from its document's previous term (the first's from 0), its low 16
    bits into gaps; returns the largest gap, which says whether they all fit."""
    largest = 0
    for doc in range(doc_offsets.shape[0] - 1):
        previous = 0
        for p in range(doc_offsets[doc], doc_offsets[doc + 1]):
            gap = doc_terms[p] - previous
            largest = max(largest, gap)
            gaps[p] = gap & 0xFFFF
            previous = doc_terms[p]
    return largest


def stored_terms(docs: SparseVectors) -> tuple[np.ndarray, bool]:
    """(doc_terms as stored, whether they are gaps): 16-bit ids, else 16-bit gaps where
    every gap fits, else int32 ids."""
    if len(docs.vocab) <= 1 << 16:
        return docs.terms.astype(np.uint16), False
    gaps = np.empty(docs.nnz, dtype=np.uint16)
    if write_gaps(docs.offsets, docs.terms, gaps) >= 1 << 16:
        return docs.terms.astype(np.int32), False
    return gaps, True


def forward_index(docs: SparseVectors, forward_dtype: str) -> dict[str, np.ndarray]:
    """The forward-index arrays of `docs`, as a builder stores them."""
    doc_terms, term_gaps = stored_terms(docs)
    return {
        # uint32 halves the one array every candidate reads at random (12-13% faster on pypi-summaries).
        "doc_offsets": docs.offsets.astype(np.uint32 if docs.nnz <= np.iinfo(np.uint32).max else np.int64),
        "doc_terms": doc_terms,
        "doc_term_gaps": np.array([term_gaps]),
        "doc_weights": (UNIT_WEIGHTS if docs.is_binary
                        else docs.weights.astype(np.float16).view(np.uint16) if forward_dtype == "float16"
                        else docs.weights),
    }


def read_forward(arrays) -> Forward:
    """The forward index of a built or loaded index, as its kernels take it."""
    doc_terms, doc_weights = arrays["doc_terms"], arrays["doc_weights"]
    return Forward(arrays["doc_offsets"], doc_terms, doc_weights, bool(arrays["doc_term_gaps"][0]),
                   doc_terms.nbytes + doc_weights.nbytes > PREFETCH_ABOVE_BYTES)
