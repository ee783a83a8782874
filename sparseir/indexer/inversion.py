"""Inverting a collection into posting lists, which every kind's build starts from: per-list
counts, then each posting scattered into its list, a workspace chunk of rows at a time.

The kernels serve every layout of lists: one list per term (row numbers as they are), or
one per (window of ``window_size`` rows, term) holding rows within the window (SINDI's,
term-major): list (w, t) is ``w * window_stride + t * term_stride``. Which entries become
postings is a weight threshold, or a mask over the entries (SINDI's per-document pruning);
values are the weights, codes on each term's step, or nothing (a binary collection's unit
weights).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import overload

from ..vectors import SparseVectors
from ..workspace import IN_MEMORY, Workspace


ALL_WEIGHTS = -np.inf  # as min_weight: every posting, zero weights included


def is_kept(keep, doc_weights, p):
    """Whether entry p becomes a posting: keep is a weight threshold (weights at or above it), or a
    mask over the entries."""
    return keep[p] if isinstance(keep, np.ndarray) else doc_weights[p] >= keep


@overload(is_kept, inline="always")
def _is_kept(keep, doc_weights, p):
    if isinstance(keep, types.Array):  # resolved at compile time: one test per signature
        return lambda keep, doc_weights, p: keep[p]
    return lambda keep, doc_weights, p: doc_weights[p] >= keep


def store_value(values, slot, weight, codes, term):
    """values[slot] = the posting's value: the weight (codes None), its code on the term's step
    (codes = (steps, levels): rounded to nearest, at least 1, so that a kept entry never
    vanishes, at most levels), or nothing for unit weights (``layout.UNIT_WEIGHTS``)."""
    if values.dtype == np.bool_:
        return
    if codes is None:
        values[slot] = weight
    else:
        steps, levels = codes
        values[slot] = min(max(np.rint(weight / steps[term]), 1), levels)


@overload(store_value, inline="always")
def _store_value(values, slot, weight, codes, term):
    if values.dtype == types.boolean:
        return lambda values, slot, weight, codes, term: None
    if isinstance(codes, types.NoneType):
        def plain(values, slot, weight, codes, term):
            values[slot] = weight
        return plain

    def coded(values, slot, weight, codes, term):
        steps, levels = codes
        values[slot] = min(max(np.rint(weight / steps[term]), 1), levels)
    return coded


@njit(cache=True)
def count_postings(row_lo, row_hi, doc_offsets, doc_terms, doc_weights, keep, window_size, window_stride,
                   term_stride, counts):
    """Add to counts[w * window_stride + t * term_stride] the postings of rows row_lo:row_hi in
    window w with term t that `keep` keeps (``is_kept``)."""
    for row in range(row_lo, row_hi):
        base = (row // window_size) * window_stride
        for p in range(doc_offsets[row], doc_offsets[row + 1]):
            if is_kept(keep, doc_weights, p):
                counts[base + doc_terms[p] * term_stride] += 1


@njit(cache=True)
def scatter_postings(row_lo, row_hi, doc_offsets, doc_terms, doc_weights, keep, window_size, window_stride,
                     term_stride, codes, cursor, posting_docs, posting_values):
    """Counting-sort placement of rows row_lo:row_hi (the postings `keep` keeps), each as its row
    within its window and its value (``store_value``): rows are visited in order and cursor
    carries over between calls, so each list ends up row-ascending."""
    for row in range(row_lo, row_hi):
        base = (row // window_size) * window_stride
        for p in range(doc_offsets[row], doc_offsets[row + 1]):
            if is_kept(keep, doc_weights, p):
                at = base + doc_terms[p] * term_stride
                slot = cursor[at]
                posting_docs[slot] = row % window_size
                store_value(posting_values, slot, doc_weights[p], codes, doc_terms[p])
                cursor[at] = slot + 1


def one_window(docs: SparseVectors) -> int:
    """A window_size under which every row lies in window 0, as itself: lists per term."""
    return max(1, len(docs))


def term_counts(docs: SparseVectors, workspace: Workspace = IN_MEMORY, min_weight: float = ALL_WEIGHTS,
                phase: str = "counting terms", n_terms: int | None = None) -> np.ndarray:
    """Postings per term (int64) with weight >= min_weight, reading the rows chunk by chunk.
    n_terms: the number of columns when it is not the vocabulary's size (a transposed matrix)."""
    counts = np.zeros(len(docs.vocab) if n_terms is None else n_terms, dtype=np.int64)
    for lo, hi in workspace.row_ranges(docs.offsets, phase):
        count_postings(lo, hi, docs.offsets, docs.terms, docs.weights, np.float32(min_weight), one_window(docs),
                       0, 1, counts)
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
        scatter_postings(lo, hi, docs.offsets, docs.terms, docs.weights, np.float32(min_weight), one_window(docs),
                         0, 1, None, cursor, posting_docs, posting_weights)
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
