"""Filters inside the kernels: which documents a query may return.

A filter reaches a kernel as ``Allowed``: one bitset row per distinct filter (bit r of a
row set: document row r is allowed) and, per query, the row it uses. An unfiltered
search passes ``everything(n_queries)``, whose rows are empty: every document allowed,
at the cost of one test that does not change within a query.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..filters import Allowed


def everything(n_queries: int) -> Allowed:
    return Allowed(np.zeros((1, 0), dtype=np.uint64), np.zeros(n_queries, dtype=np.int64))


@njit(cache=True, inline="always")
def allowed_row(allowed, q):
    """Query q's bitset; empty when nothing is filtered."""
    if allowed.bits.shape[1] == 0:
        return allowed.bits[0]
    return allowed.bits[allowed.of_query[q]]


@njit(cache=True, inline="always")
def is_allowed(row, doc):
    return row.shape[0] == 0 or ((row[doc >> 6] >> np.uint64(doc & 63)) & np.uint64(1)) != 0
