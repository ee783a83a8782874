"""The arrays of an exact index: the full, unpruned inverted index.

    term_offsets     int64, n_terms + 1: term t's postings are term_offsets[t]:term_offsets[t + 1]
    posting_docs     int32: document rows, ascending within each list
    posting_weights  float32: the documents' weights
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .checks import Guarded, Offsets, Weights

LAYOUT_VERSION = 1
# What generic code may ask of this kind (``sparseir.kinds.CAPABILITIES``).
CAPABILITIES = frozenset({"filters"})
ON_DISK = ("posting_docs", "posting_weights")  # the bulk, left on disk by load_index(memory="summaries")
# What every open checks (``layout.checks``).
CHECKS = (
    Offsets("term_offsets", length="n_terms + 1", last="len(posting_docs)"),
    Weights("posting_weights", count="len(posting_docs)"),
    Guarded("posting_docs", "rows: each checked below n_docs where it is added"),
)


class Postings(NamedTuple):
    term_offsets: np.ndarray
    posting_docs: np.ndarray
    posting_weights: np.ndarray
