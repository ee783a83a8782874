"""Exact index: the full, unpruned inverted index (term -> docs ascending, float32 weights).

It is the ground truth every approximate kind is checked against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..vectors import SparseVectors


@dataclass(frozen=True)
class BuildParams:
    """The exact index has no build knobs."""


def invert(docs: SparseVectors) -> dict[str, np.ndarray]:
    """CSR docs x terms -> CSC: per-term posting lists, documents ascending within each."""
    n_terms = len(docs.vocab)
    counts = np.bincount(docs.terms, minlength=n_terms)
    term_offsets = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(counts, out=term_offsets[1:])
    order = np.argsort(docs.terms, kind="stable")  # stable: rows stay ascending per term
    rows = np.repeat(np.arange(len(docs), dtype=np.int32), np.diff(docs.offsets))
    return {"term_offsets": term_offsets, "posting_docs": rows[order], "posting_weights": docs.weights[order]}


def build(docs: SparseVectors, params: BuildParams) -> dict[str, np.ndarray]:
    return invert(docs)
