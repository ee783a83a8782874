"""Linear quantization of sparse weights into integer impacts (the ``saat`` index and its queries).

With ``levels = 2**bits - 1``, a weight ``w > 0`` of term ``t`` becomes the impact

    impact = clip(rint(w / scale[t]), 1, levels)

so every non-zero stays non-zero (the quantized vectors keep their support) and the
largest weight the scale was fitted to maps to ``levels``. Documents use one scale per
term, fitted at build time:

- ``scaling="global"``: the same scale for every term, ``max weight / levels`` (JASS,
  and the "Wacky Weights" setting): impacts stay comparable across terms.
- ``scaling="term"``: ``scale[t] = max weight of t / levels``: every term uses all its
  levels, so rare terms with small weights lose less precision.

A query weight ``q`` of term ``t`` multiplies document weights ``w ~ impact * scale[t]``,
so the query side quantizes ``v = q * scale[t]`` with the same rule, under one scale per
query, ``max v / levels`` (every query uses all levels whatever its overall magnitude).
The integer score ``sum query_impact * doc_impact`` times that query scale approximates
the float dot product; it is the score search returns.
"""

from __future__ import annotations

import numpy as np

from .errors import require

SCALINGS = ("global", "term")
MAX_BITS = 16  # impacts x impacts must fit comfortably in int64 accumulators


def levels(bits: int) -> int:
    """The largest impact at `bits` of precision."""
    return (1 << bits) - 1


def check_bits(bits) -> None:
    require(not isinstance(bits, bool) and isinstance(bits, (int, np.integer)) and 1 <= bits <= MAX_BITS,
            f"bits must be an integer in [1, {MAX_BITS}], got {bits!r}")


def quantize(weights: np.ndarray, scales: np.ndarray, bits: int) -> np.ndarray:
    """Impacts (int32) of positive float32 `weights` under `scales` (one per weight, or one for all)."""
    scaled = np.asarray(weights, dtype=np.float32) / np.asarray(scales, dtype=np.float32)
    return np.clip(np.rint(scaled), 1, levels(bits)).astype(np.int32)


def term_scales(term_offsets: np.ndarray, posting_weights: np.ndarray, bits: int, scaling: str) -> np.ndarray:
    """One float32 scale per term from its postings (term-grouped); 0 for terms without postings."""
    require(scaling in SCALINGS, f"scaling must be one of {', '.join(SCALINGS)}, got {scaling!r}")
    n_terms = len(term_offsets) - 1
    present = np.diff(term_offsets) > 0
    term_max = np.zeros(n_terms, dtype=np.float32)
    if present.any():
        term_max[present] = np.maximum.reduceat(posting_weights, term_offsets[:-1][present])
    if scaling == "global":
        term_max[present] = term_max.max()
    return term_max / np.float32(levels(bits))


def quantize_queries(offsets: np.ndarray, terms: np.ndarray, weights: np.ndarray, scales: np.ndarray,
                     bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(impacts int32 per query non-zero, scale float32 per query) for CSR queries."""
    n_queries = len(offsets) - 1
    values = weights.astype(np.float32) * scales[terms]
    lengths = np.diff(offsets)
    rows = np.repeat(np.arange(n_queries), lengths)
    query_max = np.zeros(n_queries, dtype=np.float32)
    nonempty = lengths > 0
    if nonempty.any():
        query_max[nonempty] = np.maximum.reduceat(values, offsets[:-1][nonempty])
    # A query whose terms no document holds scores nothing; any positive scale will do.
    query_scales = np.where(query_max > 0, query_max / np.float32(levels(bits)), np.float32(1)).astype(np.float32)
    return quantize(values, query_scales[rows], bits), query_scales
