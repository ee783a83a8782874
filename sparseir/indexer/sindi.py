"""SINDI-style windowed inverted index (Li et al., "SINDI: an efficient index for approximate
maximum inner product search on sparse vectors", arXiv 2509.08395).

Documents are cut into windows of ``window_size`` consecutive rows. Within a window, each
term's postings carry the document's row in the window (uint16) and the posting's value,
so a query adds a term's contributions into a window-sized accumulator that stays in
cache, without touching a forward index. Each document's lightest entries, up to
``doc_prune_ratio`` of its weight mass, are left out of the postings (they still count when
candidates are rescored from the forward index). The arrays are declared in
``sparseir.layout.sindi`` and ``sparseir.layout.forward``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from ..errors import require
from ..layout import UNIT_WEIGHTS
from ..layout.forward import FORWARD_DTYPES
from ..layout.sindi import CODE_LEVELS, MAX_WINDOW
from ..kernels import offsets_of, thread_chunks
from ..params import OrderedBuild
from ..vectors import SparseVectors
from ..workspace import IN_MEMORY, NONZERO_BYTES, Workspace
from .forward import forward_index
from .inversion import count_postings, scatter_postings

VALUE_DTYPES = ("uint8", "float32")
MIN_OFFSETS_BUDGET = 1 << 24  # list offsets allowed whatever the collection (128 MiB)


@dataclass(frozen=True)
class BuildParams(OrderedBuild):
    """Build knobs (names as in the SINDI paper)."""

    doc_prune_ratio: float = field(default=0.25, metadata={
        "help": "share of each document's weight mass, lightest entries first, left out of the postings"})
    window_size: int = field(default=MAX_WINDOW, metadata={
        "help": f"documents per window (at most {MAX_WINDOW}): the accumulator a query fills and scans; "
                "8192 keeps it in a first-level cache, faster on collections of millions"})
    value_dtype: str = field(default="uint8", metadata={
        "help": "posting values: 'uint8' (per-term scale) or 'float32' (exact first-pass scores)"})
    forward_dtype: str = field(default="float16", metadata={
        "help": "forward index weights for rescoring: 'float16' or 'float32' (bit-exact scores)"})

    def __post_init__(self):
        super().__post_init__()
        require(isinstance(self.doc_prune_ratio, (int, float)) and not isinstance(self.doc_prune_ratio, bool)
                and 0.0 <= self.doc_prune_ratio < 1.0, f"doc_prune_ratio must lie in [0, 1), got {self.doc_prune_ratio!r}")
        require(isinstance(self.window_size, (int, np.integer)) and not isinstance(self.window_size, bool)
                and 1 <= self.window_size <= MAX_WINDOW,
                f"window_size must be an integer in [1, {MAX_WINDOW}], got {self.window_size!r}")
        require(self.value_dtype in VALUE_DTYPES,
                f"value_dtype must be one of {', '.join(VALUE_DTYPES)}, got {self.value_dtype!r}")
        require(self.forward_dtype in FORWARD_DTYPES,
                f"forward_dtype must be one of {', '.join(FORWARD_DTYPES)}, got {self.forward_dtype!r}")


@njit(parallel=True, cache=True)
def kept_entries(row_lo, row_hi, doc_offsets, doc_weights, prune_ratio, n_chunks, kept):
    """Mark each document of rows row_lo:row_hi: every entry kept (True) but its lightest, whose
    weights add up to at most prune_ratio of its sum (False)."""
    for chunk in prange(n_chunks):
        for row in range(row_lo + chunk, row_hi, n_chunks):
            lo, hi = doc_offsets[row], doc_offsets[row + 1]
            weights = doc_weights[lo:hi]
            kept[lo:hi] = True
            order = np.argsort(weights, kind="mergesort")  # lightest first; ties: lower position dropped first
            budget = prune_ratio * weights.sum()
            dropped = 0.0
            for i in order:
                dropped += weights[i]
                if dropped > budget:
                    break
                kept[lo + i] = False


@njit(cache=True)
def kept_term_max(lo, hi, doc_terms, doc_weights, kept, term_max):
    """Raise term_max[t] to the largest kept weight of term t among entries lo:hi."""
    for p in range(lo, hi):
        if kept[p] and doc_weights[p] > term_max[doc_terms[p]]:
            term_max[doc_terms[p]] = doc_weights[p]


def build(docs: SparseVectors, params: BuildParams, workspace: Workspace = IN_MEMORY) -> dict[str, np.ndarray]:
    """Two streamed passes over the rows (pruning and counting, then inverting), a workspace
    chunk at a time: out of core, the collection and the mask of kept entries stay in files,
    and what is held in RAM is the index's own arrays and one list offset per (window, term)."""
    n_terms = len(docs.vocab)
    window_size = int(params.window_size)
    n_windows = -(-len(docs) // window_size)
    # One list offset per (term, window), term-major (``layout.sindi``): tiny windows over a real
    # vocabulary would need far more offsets than postings (window_size=1: one per document and
    # term of the vocabulary).
    require(n_windows * n_terms <= max(docs.nnz, MIN_OFFSETS_BUDGET),
            f"window_size={window_size} cuts {len(docs):,} documents into {n_windows:,} windows: "
            f"{n_windows * n_terms:,} list offsets for {docs.nnz:,} non-zeros; use a window_size of at least "
            f"{-(-len(docs) * n_terms // max(docs.nnz, MIN_OFFSETS_BUDGET))}")
    chunks = thread_chunks(len(docs))
    kept = workspace.empty(docs.nnz, np.bool_)
    term_max = np.zeros(n_terms, dtype=np.float32)
    counts = np.zeros(n_terms * n_windows, dtype=np.int64)
    for lo, hi in workspace.row_ranges(docs.offsets, "pruning documents", NONZERO_BYTES + kept.itemsize):
        kept_entries(lo, hi, docs.offsets, docs.weights, params.doc_prune_ratio, chunks, kept)
        kept_term_max(docs.offsets[lo], docs.offsets[hi], docs.terms, docs.weights, kept, term_max)
        count_postings(lo, hi, docs.offsets, docs.terms, docs.weights, kept, window_size, 1, n_windows, counts)
    posting_offsets = offsets_of(counts)
    del counts
    coded = params.value_dtype == "uint8" and not docs.is_binary
    if coded:
        scales = term_max / np.float32(CODE_LEVELS)
    else:  # float32 values, or a binary collection's: every kept value is the term's largest, 1
        scales = (term_max > 0).astype(np.float32)
    posting_docs = np.empty(posting_offsets[-1], dtype=np.uint16)
    if docs.is_binary:  # the scale alone carries the value
        values = UNIT_WEIGHTS
    else:
        values = np.empty(posting_offsets[-1], dtype=np.uint8 if coded else np.float32)
    cursor = posting_offsets[:-1].copy()
    for lo, hi in workspace.row_ranges(docs.offsets, "inverting", NONZERO_BYTES + kept.itemsize):
        scatter_postings(lo, hi, docs.offsets, docs.terms, docs.weights, kept, window_size, 1, n_windows,
                         (scales, CODE_LEVELS) if coded else None, cursor, posting_docs, values)
    del cursor, kept
    return {"posting_offsets": posting_offsets, "posting_docs": posting_docs, "posting_values": values,
            "term_scales": scales, "window_size": np.array([window_size], dtype=np.int64),
            **forward_index(docs, params.forward_dtype, workspace)}
