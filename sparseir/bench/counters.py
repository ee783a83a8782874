"""Work a search does besides its results, for benches that set work against recall and time."""

from __future__ import annotations

import numpy as np

from ..errors import require
from ..vectors import SparseVectors


def saat_postings_processed(index, queries: SparseVectors, k: int, rho: int | None = None) -> np.ndarray:
    """int64 (n_queries,): the postings a score-at-a-time index processes for each query at budget `rho`
    (None: all of the query's postings), running the same kernel as ``index.search(queries, k, rho=rho)``."""
    from ..query.saat import search_impacts

    require(index.kind == "saat", f"postings processed are counted by the saat kind, not {index.kind!r}")
    return search_impacts(index.arrays, index.n_docs, queries, k, rho)[3]
