"""Filtered search: which documents each query may return, and how the search honours it.

A filter is any of:

- a boolean mask over the collection's rows (length n_docs);
- an allow-list of rows (integers) or of external ids (strings);
- a predicate over the document attributes stored in the index (a string such as
  ``"lang = 'en' and year >= 2020"``, see ``sparseir.expressions``);
- a ``Filter``, any of the above resolved once (``index.prepare_filter(spec)``) to reuse
  across searches.

``search(queries, k, filter=F)`` applies one filter to every query; ``filters=[F0, F1, ...]``
gives each query its own (None: unfiltered). Strategy by selectivity: a query whose filter
allows at most ``DIRECT_FRACTION`` of the collection has those documents scored exactly
from the forward index, where the kind has one (Seismic, SINDI); every other filtered
query runs the kind's own kernel, which skips the disallowed documents.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from .errors import ParameterError
from .query.allow import Allowed

# Share of the collection up to which the allowed documents are scored directly. Scoring
# a document costs about as much as one kernel visit of a candidate, and the kernels of the
# approximate kinds visit a few percent of the collection at their usual settings.
DIRECT_FRACTION = 0.02


class Filter:
    """A filter resolved once against one index, to reuse across searches (as faiss's ID
    selectors are): ``f = index.prepare_filter(spec)``, then ``index.search(q, filter=f)``.
    A raw filter given to search is resolved on every call (for one query, that resolving
    can cost more than the search)."""

    def __init__(self, index, spec):
        self.mask = filter_mask(index, spec)
        self.n_docs = index.n_docs
        self.count = int(np.count_nonzero(self.mask))
        self.bits = pack([self.mask])[0]
        self._rows: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"Filter({self.count} of {self.n_docs} documents)"

    @property
    def rows(self) -> np.ndarray:
        """The allowed rows, ascending."""
        if self._rows is None:
            self._rows = np.flatnonzero(self.mask).astype(np.int64)
        return self._rows


def as_filter(index, spec) -> Filter:
    if isinstance(spec, Filter):
        if spec.n_docs != index.n_docs:
            raise ParameterError(f"this filter was prepared for {spec.n_docs} documents, the index has {index.n_docs}")
        return spec
    return Filter(index, spec)


class ResolvedFilters(NamedTuple):
    allowed: Allowed        # bitsets, for the kernels
    counts: np.ndarray      # int64 (n_filters,): documents each filter allows
    filters: list[Filter]   # row f of the bitsets is filters[f]

    @property
    def masks(self) -> list[np.ndarray]:
        return [f.mask for f in self.filters]


def filter_mask(index, spec) -> np.ndarray:
    """One filter as a boolean mask over the index's rows."""
    n_docs = index.n_docs
    if isinstance(spec, str):
        return index.attribute_mask(spec)
    values = np.asarray(spec)
    if values.dtype == bool:
        if values.shape != (n_docs,):
            raise ParameterError(f"a boolean filter needs one value per document ({n_docs}), got shape {values.shape}")
        return values
    mask = np.zeros(n_docs, dtype=bool)
    if values.size == 0:
        return mask
    if values.ndim != 1:
        raise ParameterError(f"a filter list must be one-dimensional, got shape {values.shape}")
    if np.issubdtype(values.dtype, np.integer):
        if values.min() < 0 or values.max() >= n_docs:
            bad = values[(values < 0) | (values >= n_docs)][0]
            raise ParameterError(f"filter row {int(bad)} outside the collection (0..{n_docs - 1})")
        mask[values] = True
        return mask
    if values.dtype.kind in "US" or values.dtype == object:
        rows = index.rows_of_ids([str(value) for value in values])
        mask[rows] = True
        return mask
    raise ParameterError(f"a filter is a boolean mask, rows, external ids or an attribute predicate; "
                         f"got an array of {values.dtype}")


def pack(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Boolean masks -> uint64 bitsets, bit r of a row's word r // 64 standing for document r."""
    n_docs = len(masks[0])
    n_words = -(-n_docs // 64)
    bits = np.zeros((len(masks), n_words * 8), dtype=np.uint8)
    for row, mask in enumerate(masks):
        packed = np.packbits(mask, bitorder="little")
        bits[row, :len(packed)] = packed
    return bits.view("<u8").astype(np.uint64, copy=False)


def resolve(index, n_queries: int, filter=None, filters=None) -> ResolvedFilters | None:
    """The filters of a search call, or None when nothing is filtered."""
    if filter is not None and filters is not None:
        raise ParameterError("pass filter= (one for every query) or filters= (one per query), not both")
    if filter is None and filters is None:
        return None
    if filter is not None:
        resolved, of_query = [as_filter(index, filter)], np.zeros(n_queries, dtype=np.int64)
    else:
        if isinstance(filters, (str, bytes)) or len(filters) != n_queries:
            raise ParameterError(f"filters= takes one filter per query ({n_queries}), "
                                 f"got {'a string' if isinstance(filters, (str, bytes)) else len(filters)}")
        resolved, of_query = [], np.empty(n_queries, dtype=np.int64)
        # Queries given the same filter object share one bitset; None allows everything.
        seen: dict[int, int] = {}
        for q, spec in enumerate(filters):
            key = id(spec)
            if key not in seen:
                seen[key] = len(resolved)
                resolved.append(as_filter(index, np.ones(index.n_docs, dtype=bool) if spec is None else spec))
            of_query[q] = seen[key]
    bits = resolved[0].bits[None, :] if len(resolved) == 1 else np.stack([f.bits for f in resolved])
    counts = np.array([f.count for f in resolved], dtype=np.int64)
    return ResolvedFilters(Allowed(bits, of_query), counts, resolved)


def split_per_query(resolved: ResolvedFilters, select, keep: np.ndarray | None = None) -> list[np.ndarray]:
    """Each query's filter restricted to the rows `select` (a slice or rows: one shard or segment's
    part of the collection), and to `keep` there when given. Queries sharing a filter share one
    array, so that the part is packed once."""
    parts = [mask[select] if keep is None else mask[select] & keep for mask in resolved.masks]
    return [parts[f] for f in resolved.allowed.of_query]


def direct_queries(resolved: ResolvedFilters, n_docs: int) -> np.ndarray:
    """Per query, whether its filter is selective enough to score its documents directly."""
    return resolved.counts[resolved.allowed.of_query] <= DIRECT_FRACTION * n_docs


def filter_rows(resolved: ResolvedFilters) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, rows): each filter's allowed rows, CSR."""
    rows = [f.rows for f in resolved.filters]
    if len(rows) == 1:  # the usual case: no copy of the rows
        return np.array([0, len(rows[0])], dtype=np.int64), rows[0]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    return offsets, np.concatenate(rows)
