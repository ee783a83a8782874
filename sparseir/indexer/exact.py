"""Exact index: the full, unpruned inverted index (term -> docs ascending, float32 weights).

It is the ground truth every approximate kind is checked against. The arrays are declared
in ``sparseir.layout.exact``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..params import OrderedBuild
from ..layout import stored_weights
from ..vectors import SparseVectors
from ..workspace import IN_MEMORY, Workspace
from .inversion import invert, transpose, unit_weights


@dataclass(frozen=True)
class BuildParams(OrderedBuild):
    """The exact index has no build knobs."""


def build(docs: SparseVectors, params: BuildParams, workspace: Workspace = IN_MEMORY) -> dict[str, np.ndarray]:
    inverted = invert(docs, workspace)
    inverted["posting_weights"] = stored_weights(inverted["posting_weights"], docs.is_binary)
    return inverted


def stored_vectors(arrays, n_docs: int, workspace: Workspace = IN_MEMORY):
    """The documents the postings hold, as CSR (offsets, terms, weights): the postings transposed."""
    weights = arrays["posting_weights"]
    if not len(weights) and len(arrays["posting_docs"]):
        weights = unit_weights(len(arrays["posting_docs"]), workspace)
    return transpose(arrays["term_offsets"], arrays["posting_docs"], weights, n_docs, workspace)
