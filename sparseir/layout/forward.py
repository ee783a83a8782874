"""The forward index: each document's terms and weights, for exact rescoring of candidates.

    doc_offsets  uint32 (int64 past 2^32 entries), n_docs + 1: a document's entries
    doc_terms    uint16 (int32 above 65,536 terms): term ids, ascending within a document
    doc_weights  float32, or float16 bits stored as uint16 (``forward_dtype="float16"``), or
                 nothing for a binary collection (``layout.UNIT_WEIGHTS``)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

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
    prefetch: bool  # whether kernels prefetch documents (the index is larger than the cache)


def term_dtype(n_terms: int):
    return np.uint16 if n_terms <= 1 << 16 else np.int32


def forward_index(docs: SparseVectors, forward_dtype: str) -> dict[str, np.ndarray]:
    """The forward-index arrays of `docs`, as a builder stores them."""
    return {
        # uint32 halves the one array every candidate reads at random (12-13% faster on pypi-summaries).
        "doc_offsets": docs.offsets.astype(np.uint32 if docs.nnz <= np.iinfo(np.uint32).max else np.int64),
        "doc_terms": docs.terms.astype(term_dtype(len(docs.vocab))),
        "doc_weights": (UNIT_WEIGHTS if docs.is_binary
                        else docs.weights.astype(np.float16).view(np.uint16) if forward_dtype == "float16"
                        else docs.weights),
    }


def read_forward(arrays) -> Forward:
    """The forward index of a built or loaded index, as its kernels take it."""
    doc_terms, doc_weights = arrays["doc_terms"], arrays["doc_weights"]
    return Forward(arrays["doc_offsets"], doc_terms, doc_weights,
                   doc_terms.nbytes + doc_weights.nbytes > PREFETCH_ABOVE_BYTES)
