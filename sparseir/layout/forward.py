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

from ..kernels import weight_at
from . import frozen
from .checks import Guarded, Length, Offsets, Weights

FORWARD_DTYPES = ("float16", "float32")
ON_DISK = ("doc_terms", "doc_weights")  # under load_index(memory="summaries"): read per candidate
# Prefetching pays once the forward index outgrows the last-level cache; below that its
# instructions only cost. The bound sits below a common last-level cache's size.
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
    doc_terms, doc_weights = frozen(arrays["doc_terms"]), frozen(arrays["doc_weights"])
    return Forward(frozen(arrays["doc_offsets"]), doc_terms, doc_weights, bool(arrays["doc_term_gaps"][0]),
                   doc_terms.nbytes + doc_weights.nbytes > PREFETCH_ABOVE_BYTES)
