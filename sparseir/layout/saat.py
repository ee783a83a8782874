"""The arrays of a score-at-a-time (JASS) impact index.

Each term's postings are split into segments of one integer impact each, highest impact
first, documents ascending within a segment.

    term_segments    int64, n_terms + 1: term t owns segments term_segments[t]:term_segments[t + 1]
    segment_impacts  int32: the impact shared by every posting of a segment (descending per term)
    segment_offsets  int64, n_segments + 1: segment s owns posting_docs[segment_offsets[s]:segment_offsets[s + 1]]
    posting_docs     int32: document rows, ascending within each segment
    term_scales      float32, n_terms: the quantization scale of each term
    bits             int32, [1]: impact precision, which queries are quantized at too
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..quantize import MAX_BITS
from .checks import Guarded, Ids, Length, Offsets, Scalar

LAYOUT_VERSION = 1
# What generic code may ask of this kind (``sparseir.kinds.CAPABILITIES``).
CAPABILITIES = frozenset({"filters", "tuning"})
ON_DISK = ("posting_docs",)  # the bulk, left on disk by load_index(memory="summaries")
# What every open checks (``layout.checks``).
CHECKS = (
    Scalar("bits", low=1, high=MAX_BITS, param="bits"),
    Length("term_scales", "n_terms"),
    Offsets("term_segments", length="n_terms + 1", last="len(segment_impacts)"),
    Ids("segment_impacts", below="2 ** value(bits)", low=1),
    Offsets("segment_offsets", length="len(segment_impacts) + 1", last="len(posting_docs)"),
    Guarded("posting_docs", "rows: each checked below n_docs where it is added"),
)


class Segments(NamedTuple):
    term_segments: np.ndarray
    segment_impacts: np.ndarray
    segment_offsets: np.ndarray
    posting_docs: np.ndarray


def impact_bits(arrays) -> int:
    return int(arrays["bits"][0])
