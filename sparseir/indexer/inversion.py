"""Inverting a collection into posting lists, which every kind's build starts from: per-term
counts, then each posting scattered into its list, a workspace chunk of rows at a time."""

from __future__ import annotations

import numpy as np
from numba import njit

from ..vectors import SparseVectors
from ..workspace import IN_MEMORY, Workspace


ALL_WEIGHTS = -np.inf  # as min_weight: every posting, zero weights included


@njit(cache=True)
def count_postings(row_lo, row_hi, doc_offsets, doc_terms, doc_weights, min_weight, counts):
    """Add to counts[t] the postings of rows row_lo:row_hi with term t and weight >= min_weight."""
    for p in range(doc_offsets[row_lo], doc_offsets[row_hi]):
        if doc_weights[p] >= min_weight:
            counts[doc_terms[p]] += 1


@njit(cache=True)
def scatter_postings(row_lo, row_hi, doc_offsets, doc_terms, doc_weights, min_weight, cursor, posting_docs,
                     posting_weights):
    """Counting-sort placement of rows row_lo:row_hi (postings of weight >= min_weight): rows
    are visited in order and cursor carries over between calls, so each list ends up row-ascending."""
    for row in range(row_lo, row_hi):
        for p in range(doc_offsets[row], doc_offsets[row + 1]):
            if doc_weights[p] >= min_weight:
                slot = cursor[doc_terms[p]]
                posting_docs[slot] = row
                posting_weights[slot] = doc_weights[p]
                cursor[doc_terms[p]] = slot + 1


def term_counts(docs: SparseVectors, workspace: Workspace = IN_MEMORY, min_weight: float = ALL_WEIGHTS,
                phase: str = "counting terms", n_terms: int | None = None) -> np.ndarray:
    """Postings per term (int64) with weight >= min_weight, reading the rows chunk by chunk.
    n_terms: the number of columns when it is not the vocabulary's size (a transposed matrix)."""
    counts = np.zeros(len(docs.vocab) if n_terms is None else n_terms, dtype=np.int64)
    for lo, hi in workspace.row_ranges(docs.offsets, phase):
        count_postings(lo, hi, docs.offsets, docs.terms, docs.weights, np.float32(min_weight), counts)
    return counts


def invert(docs: SparseVectors, workspace: Workspace = IN_MEMORY, min_weight: float = ALL_WEIGHTS,
           counts: np.ndarray | None = None, n_terms: int | None = None) -> dict[str, np.ndarray]:
    """CSR docs x terms -> per-term posting lists (of weight >= min_weight), in memory linear in
    the postings (no sort); out of core, written chunk by chunk into the workspace's files.
    counts: term_counts(docs, workspace, min_weight), when the caller has them already.
    Inverting posting lists (rows: terms, columns: documents, n_terms: the number of documents)
    gives the documents back, each with its terms ascending."""
    if counts is None:
        counts = term_counts(docs, workspace, min_weight, n_terms=n_terms)
    term_offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=term_offsets[1:])
    posting_docs = workspace.empty(term_offsets[-1], np.int32)
    posting_weights = workspace.empty(term_offsets[-1], np.float32)
    cursor = term_offsets[:-1].copy()
    for lo, hi in workspace.row_ranges(docs.offsets, "inverting"):
        scatter_postings(lo, hi, docs.offsets, docs.terms, docs.weights, np.float32(min_weight), cursor, posting_docs,
                         posting_weights)
    return {"term_offsets": term_offsets, "posting_docs": posting_docs, "posting_weights": posting_weights}


def transpose(offsets: np.ndarray, columns: np.ndarray, weights: np.ndarray, n_columns: int,
              workspace: Workspace = IN_MEMORY) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets, columns, weights) of a CSR matrix's transpose, each row's columns ascending:
    posting lists back into documents, or the reverse; `invert`'s passes, with its memory."""
    from ..vectors import Vocabulary

    rows = SparseVectors(offsets, columns, weights, np.zeros(len(offsets) - 1, dtype="<U1"), Vocabulary([]),
                         validate=False)
    inverted = invert(rows, workspace, n_terms=n_columns)
    return inverted["term_offsets"], inverted["posting_docs"], inverted["posting_weights"]


def unit_weights(n: int, workspace: Workspace = IN_MEMORY) -> np.ndarray:
    """n weights of 1 (float32): the weights of a binary collection, which indexes do not store."""
    weights = workspace.empty(n, np.float32)
    weights[:] = 1
    return weights
