"""The one search interface every index shape offers, and its one argument check.

``Index`` (one kind), ``ShardedIndex`` (shards in turn) and ``DistributedIndex`` (Ray
actors) are all ``Searchable``: callers (the CLI, tuning, the bench, PyTerrier) use only
this surface, never another shape's arrays or private methods.
"""

from __future__ import annotations

import time
from typing import Mapping, Protocol, runtime_checkable

import numpy as np

from .errors import ParameterError
from .vectors import SparseVectors, Vocabulary


@runtime_checkable
class Searchable(Protocol):
    kind: str
    vocab: Vocabulary

    @property
    def n_docs(self) -> int: ...

    @property
    def doc_ids(self) -> np.ndarray: ...

    def search(self, queries, k: int = 10, threads: int | None = None,
               **knobs) -> tuple[np.ndarray, np.ndarray]: ...

    def search_params(self, **knobs): ...

    def doc_frequency(self) -> np.ndarray: ...

    def warmup(self) -> float: ...

    def close(self) -> None: ...


class SearchableBase:
    """What every shape shares on top of its own search: len, warm-up, a context manager."""

    def __len__(self) -> int:
        return self.n_docs

    def warmup(self) -> float:
        """Compile (or load from the on-disk cache) the query kernels, the one-query path and the
        batch one, so that no later search waits for a compiler; returns the seconds taken."""
        started = time.perf_counter()
        for n in (1, 2):
            probe = SparseVectors(np.arange(n + 1), np.zeros(n, dtype=np.int32), np.ones(n, dtype=np.float32),
                                  [f"warmup-{i}" for i in range(n)], self.vocab, validate=False)
            self.search(probe, k=1)
        return time.perf_counter() - started

    def rows_of_ids(self, ids) -> np.ndarray:
        """The rows of external ids (a one-line error names an unknown one)."""
        row_of_id = self.__dict__.get("_row_of_id")
        if row_of_id is None:  # built on first use: most searches never name ids
            row_of_id = self.__dict__["_row_of_id"] = {str(doc_id): row for row, doc_id in enumerate(self.doc_ids)}
        try:
            return np.fromiter((row_of_id[str(doc_id)] for doc_id in ids), dtype=np.int64)
        except KeyError as e:
            raise ParameterError(f"id {e.args[0]!r} is not in the index") from None

    def explain(self, query, doc_id, **knobs):
        """Why document `doc_id` scores what it does for one query: each shared term's query weight,
        document weight and contribution, which add up to its exact score, beside the kind's own
        score with these settings (``sparseir.explain``)."""
        from .explain import explain

        return explain(self, query, doc_id, **knobs)

    def prepare_filter(self, spec):
        """A filter (mask, rows, ids or attribute predicate) resolved once, to pass as filter= to
        many searches (``sparseir.filters``)."""
        from .filters import Filter

        return Filter(self, spec)

    def close(self) -> None:
        """Release what the index holds; memory-mapped arrays need nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False


def check_k(k) -> int:
    """The one check of a result count (True is not a count)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError(f"k must be a positive integer, got {k!r}")
    return int(k)


def as_queries(queries, vocab: Vocabulary) -> SparseVectors:
    """Accept SparseVectors, one {term: weight} dict, or a list of them."""
    if isinstance(queries, SparseVectors):
        return queries
    if isinstance(queries, Mapping):
        queries = [queries]
    if isinstance(queries, (list, tuple)):
        # An open vocabulary grows with the queries' unseen terms: grow a copy, never the index's.
        return SparseVectors.from_dicts(queries, vocab=Vocabulary(vocab.terms, vocab.name, open=True)
                                        if vocab.open else vocab)
    if hasattr(queries, "tocsr"):
        return SparseVectors.from_scipy(queries, vocab=vocab)
    raise ParameterError(f"queries must be SparseVectors, dicts or a scipy sparse matrix, got {type(queries).__name__}")


def prepare_queries(queries, vocab: Vocabulary) -> SparseVectors:
    """Queries over the index's vocabulary, checked once for any shape.

    Terms an open vocabulary met only in queries (ids past the index's terms) match no
    document and are dropped; another vocabulary is an error.
    """
    queries = as_queries(queries, vocab)
    n_terms = len(vocab)
    # Digests are computed once per vocabulary: comparing 30k-term lists on every call
    # would cost more than a small search.
    same = queries.vocab is vocab or (len(queries.vocab) == n_terms and queries.vocab.sha256() == vocab.sha256())
    if not same and (len(queries.vocab) < n_terms or queries.vocab.terms[:n_terms] != vocab.terms):
        raise ParameterError(f"queries use {queries.vocab!r} but the index {vocab!r}; "
                             "read queries with vocab=index.vocab")
    if len(queries.terms) and queries.terms.max() >= n_terms:
        rows = np.repeat(np.arange(len(queries)), np.diff(queries.offsets))
        keep = queries.terms < n_terms
        offsets = np.zeros(len(queries) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows[keep], minlength=len(queries)), out=offsets[1:])
        return SparseVectors(offsets, queries.terms[keep], queries.weights[keep], queries.ids, vocab,
                             validate=False)
    return queries
