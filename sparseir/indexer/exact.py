"""Exact index: the full, unpruned inverted index (term -> docs ascending, float32 weights).

It is the ground truth every approximate kind is checked against. The arrays are declared
in ``sparseir.layout.exact``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ..kinds import OrderedBuild
from ..layout import stored_weights
from ..vectors import SparseVectors


@dataclass(frozen=True)
class BuildParams(OrderedBuild):
    """The exact index has no build knobs."""


@njit(cache=True)
def _scatter_postings(doc_offsets, doc_terms, doc_weights, term_offsets, posting_docs, posting_weights):
    """Counting-sort placement: rows are visited in order, so each list ends up row-ascending."""
    cursor = term_offsets[:-1].copy()
    for row in range(doc_offsets.shape[0] - 1):
        for p in range(doc_offsets[row], doc_offsets[row + 1]):
            slot = cursor[doc_terms[p]]
            posting_docs[slot] = row
            posting_weights[slot] = doc_weights[p]
            cursor[doc_terms[p]] = slot + 1


def invert(docs: SparseVectors) -> dict[str, np.ndarray]:
    """CSR docs x terms -> per-term posting lists, in memory linear in the non-zeros (no sort)."""
    counts = np.bincount(docs.terms, minlength=len(docs.vocab))
    term_offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=term_offsets[1:])
    posting_docs = np.empty(docs.nnz, dtype=np.int32)
    posting_weights = np.empty(docs.nnz, dtype=np.float32)
    _scatter_postings(docs.offsets, docs.terms, docs.weights, term_offsets, posting_docs, posting_weights)
    return {"term_offsets": term_offsets, "posting_docs": posting_docs, "posting_weights": posting_weights}


def build(docs: SparseVectors, params: BuildParams) -> dict[str, np.ndarray]:
    inverted = invert(docs)
    inverted["posting_weights"] = stored_weights(inverted["posting_weights"], docs.is_binary)
    return inverted
