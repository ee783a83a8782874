"""Filters inside the kernels: which documents a query may return.

A filter reaches a kernel as ``Allowed``: one bitset row per distinct filter (bit r of a
row set: document row r is allowed) and, per query, the row it uses. An unfiltered
search passes ``everything(n_queries)``, whose rows are empty: every document allowed,
at the cost of one test that does not change within a query.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit


class Allowed(NamedTuple):
    """A search's filters as the kernels take them."""

    bits: np.ndarray      # uint64 (n_filters, n_words), or (1, 0) when nothing is filtered
    of_query: np.ndarray  # int64 (n_queries,): each query's row of bits


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


def allowed_masks(allowed, n_queries: int, n_docs: int) -> np.ndarray:
    """Each query's allowed documents as booleans (n_queries, n_docs), for a kind searching in
    numpy rather than in a kernel; every document where `allowed` is None or unfiltered."""
    if allowed is None or allowed.bits.shape[1] == 0:
        return np.ones((n_queries, n_docs), dtype=bool)
    rows = np.unpackbits(allowed.bits.view(np.uint8), axis=1, bitorder="little")[:, :n_docs].astype(bool)
    return rows[allowed.of_query]

