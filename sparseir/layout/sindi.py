"""The arrays of a SINDI-style windowed index (layout 3), beside the forward index of
``layout.forward`` that rescores its candidates.

Documents are cut into windows of ``window_size`` consecutive rows.

    posting_offsets  int64, n_terms * n_windows + 1: term t's postings in window w are
                     posting_offsets[t * n_windows + w] : posting_offsets[t * n_windows + w + 1],
                     term-major so that a term's lists of consecutive windows lie side by
                     side: under memory="disk" one read fetches a term's lists of a run of
                     windows, where a window-major layout needs one read per window
    posting_docs     uint16: each posting's row within its window, ascending per list
    posting_values   uint8 (value ~ code * term_scales[t], rounded to nearest, at least 1)
                     or float32 (value_dtype="float32": the document's weight as is), or
                     nothing for a binary collection (``layout.UNIT_WEIGHTS``; scales 1)
    term_scales      float32, n_terms: the uint8 step of each term (1 with float32 values),
                     0 for a term without postings, which the query side reads as "absent"
    window_size      int64, [1]

Every list holds at most window_size postings (a document's terms are distinct) and every
document at most n_terms entries; every open checks both, so that the buffers of
``memory="disk"``, of those sizes, hold whatever one read fetches.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import DiskMode
from .checks import Guarded, Length, Offsets, Rule, Scalar, Weights
from .forward import CHECKS as FORWARD_CHECKS, ON_DISK as FORWARD_ON_DISK

# Bumped whenever the arrays change shape or meaning: an older index must be rebuilt.
LAYOUT_VERSION = 3
# What generic code may ask of this kind (``sparseir.kinds.CAPABILITIES``).
CAPABILITIES = frozenset({"filters", "forward_index", "disk_mode", "tuning"})
# The bulk, left on disk by load_index(memory="summaries").
ON_DISK = ("posting_docs", "posting_values", *FORWARD_ON_DISK)
# Read range by range under load_index(memory="disk"): each kept query term's lists of a run of
# windows, and the forward-index rows of the candidates. The list and document offsets, the
# term scales and the ids stay in RAM; no copy of the postings does. Every index has them.
DISK_READS = ON_DISK
# A query reads each kept term's lists of a run of windows front to back; rows of candidates at random.
DISK_MODE = DiskMode(reads=DISK_READS, only=(), needs=(), runs=("posting_docs", "posting_values"))
MAX_WINDOW = 1 << 16  # rows within a window are uint16
CODE_LEVELS = 255
# What every open checks (``layout.checks``).
CHECKS = (
    Scalar("window_size", low=1, high=MAX_WINDOW, param="window_size"),
    Length("term_scales", "n_terms"),
    Offsets("posting_offsets", length="n_terms * -(-n_docs // value(window_size)) + 1", last="len(posting_docs)"),
    Weights("posting_values", count="len(posting_docs)"),
    Rule("posting_offsets", lambda a: np.diff(a["posting_offsets"]) <= window_size(a),
         "a list holds more postings than its window has rows"),
    Guarded("posting_docs", "rows within a window: 16 bits, which the accumulator's 2^16 slots all hold"),
    *FORWARD_CHECKS,
    Rule("doc_offsets", lambda a: np.diff(a["doc_offsets"]) <= len(a["term_scales"]),
         "a document holds more entries than the vocabulary has terms"),
)


class DiskReads(NamedTuple):
    """What a memory="disk" search reads from disk (``query.reads.disk_reads``): files[i]
    locates DISK_READS[i]; the fields named like the arrays are empty arrays of their dtypes."""

    files: np.ndarray
    failed: np.ndarray
    posting_docs: np.ndarray
    posting_values: np.ndarray
    doc_terms: np.ndarray
    doc_weights: np.ndarray


class Postings(NamedTuple):
    posting_offsets: np.ndarray
    posting_docs: np.ndarray
    posting_values: np.ndarray
    term_scales: np.ndarray


def window_size(arrays) -> int:
    return int(arrays["window_size"][0])
