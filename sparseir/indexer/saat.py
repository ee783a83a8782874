"""Score-at-a-time impact index (JASS): per term, postings grouped into segments of equal impact.

Weights are quantized to integer impacts (``sparseir.quantize``). Each term's postings
are split into segments of one impact each, highest impact first, documents ascending
within a segment, so a query can visit the segments of all its terms in order of
query impact x document impact and stop whenever its budget runs out.

The arrays are declared in ``sparseir.layout.saat``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import require
from ..quantize import SCALINGS, check_bits, levels, quantize, term_scales
from ..params import OrderedBuild
from ..vectors import SparseVectors
from ..workspace import IN_MEMORY, Workspace
from .inversion import invert, transpose


@dataclass(frozen=True)
class BuildParams(OrderedBuild):
    bits: int = field(default=8, metadata={"help": "impact precision: weights become integers in [1, 2^bits - 1]"})
    scaling: str = field(default="global", metadata={
        "help": "global: one quantization scale for all terms; term: each term's largest weight gets the top impact"})

    def __post_init__(self):
        super().__post_init__()
        check_bits(self.bits)
        require(self.scaling in SCALINGS, f"scaling must be one of {', '.join(SCALINGS)}, got {self.scaling!r}")


def build(docs: SparseVectors, params: BuildParams, workspace: Workspace = IN_MEMORY) -> dict[str, np.ndarray]:
    inverted = invert(docs, workspace)
    term_offsets = inverted["term_offsets"]
    n_terms = len(term_offsets) - 1
    scales = term_scales(term_offsets, inverted["posting_weights"], params.bits, params.scaling)
    posting_terms = np.repeat(np.arange(n_terms, dtype=np.int64), np.diff(term_offsets))
    impacts = quantize(inverted["posting_weights"], scales[posting_terms], params.bits)
    # Stable sort on (term, impact descending) keeps documents ascending within each segment.
    order = np.argsort(posting_terms * (levels(params.bits) + 1) + (levels(params.bits) - impacts), kind="stable")
    posting_terms, impacts = posting_terms[order], impacts[order]
    starts = np.flatnonzero(np.concatenate([[True], (posting_terms[1:] != posting_terms[:-1])
                                            | (impacts[1:] != impacts[:-1])])) if len(order) else np.empty(0, np.int64)
    term_segments = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(np.bincount(posting_terms[starts], minlength=n_terms), out=term_segments[1:])
    return {"term_segments": term_segments,
            "segment_impacts": impacts[starts].astype(np.int32),
            "segment_offsets": np.append(starts, len(order)).astype(np.int64),
            "posting_docs": inverted["posting_docs"][order].astype(np.int32),
            "term_scales": scales,
            "bits": np.array([params.bits], dtype=np.int32)}


def stored_vectors(arrays, n_docs: int, workspace: Workspace = IN_MEMORY):
    """The documents as the index holds them, CSR (offsets, terms, weights): each posting's
    impact times its term's scale (the weight it stands for), the postings transposed."""
    term_segments, segment_offsets = np.asarray(arrays["term_segments"]), np.asarray(arrays["segment_offsets"])
    segment_impacts, scales = np.asarray(arrays["segment_impacts"]), np.asarray(arrays["term_scales"])
    term_postings = segment_offsets[term_segments]
    weights = workspace.empty(len(arrays["posting_docs"]), np.float32)
    for lo, hi in workspace.ranges(np.diff(term_postings) * 8, "impacts to weights"):
        first, last = term_segments[lo], term_segments[hi]
        segment_scales = np.repeat(scales[lo:hi], np.diff(term_segments[lo:hi + 1]))
        values = segment_impacts[first:last].astype(np.float32) * segment_scales
        weights[segment_offsets[first]:segment_offsets[last]] = np.repeat(values, np.diff(segment_offsets[first:last + 1]))
    return transpose(term_postings, arrays["posting_docs"], weights, n_docs, workspace)
