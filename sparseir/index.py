"""One Index shape for every kind: build, search, save, load.

A kind is a pair of modules, ``sparseir.indexer.<kind>`` (``BuildParams``, ``build``)
and ``sparseir.query.<kind>`` (``SearchParams``, ``search``); adding one to ``KINDS``
is all it takes for the API, the manifest and the CLI to know it.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from . import storage
from .errors import IndexFormatError, ParameterError, require
from .vectors import SparseVectors

KINDS = ("exact", "seismic", "saat", "sindi")
PARAMS_CACHE_SIZE = 64


def is_hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


@dataclass(frozen=True)
class Kind:
    name: str
    BuildParams: type
    build: Any
    SearchParams: type
    search: Any
    layout_version: int  # of the kind's arrays; an index saved under another must be rebuilt


def get_kind(name: str) -> Kind:
    if name not in KINDS:
        raise ParameterError(f"unknown index kind {name!r}; choose one of {', '.join(KINDS)}")
    indexer = importlib.import_module(f"sparseir.indexer.{name}")
    query = importlib.import_module(f"sparseir.query.{name}")
    return Kind(name, indexer.BuildParams, indexer.build, query.SearchParams, query.search,
                getattr(indexer, "LAYOUT_VERSION", 1))


def make_params(cls: type, values: Mapping[str, Any], what: str):
    """Instantiate a params dataclass, naming any unknown key in the error."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        known = ", ".join(sorted(names)) or "none"
        raise ParameterError(f"unknown {what} parameter(s) {', '.join(unknown)} (known: {known})")
    return cls(**values)


def as_queries(queries, vocab) -> SparseVectors:
    """Accept SparseVectors, one {term: weight} dict, or a list of them."""
    if isinstance(queries, SparseVectors):
        return queries
    if isinstance(queries, Mapping):
        queries = [queries]
    if isinstance(queries, (list, tuple)):
        return SparseVectors.from_dicts(queries, vocab=vocab)
    if hasattr(queries, "tocsr"):
        return SparseVectors.from_scipy(queries, vocab=vocab)
    raise ParameterError(f"queries must be SparseVectors, dicts or a scipy sparse matrix, got {type(queries).__name__}")


class Index:
    """A built (or loaded) index of one kind; see ``build_index`` and ``load_index``."""

    def __init__(self, kind: str, arrays: dict[str, np.ndarray], doc_ids: np.ndarray, vocab,
                 build_params, search_defaults: Mapping[str, Any] | None = None, info: Mapping | None = None,
                 path: Path | None = None):
        self.kind = kind
        self._kind = get_kind(kind)
        self.arrays = arrays
        self.doc_ids = doc_ids
        self.vocab = vocab
        self.build_params = build_params
        self.search_defaults = search_defaults or {}
        self.info = dict(info or {})
        self.path = path

    # --- construction -------------------------------------------------------------

    @classmethod
    def build(cls, docs: SparseVectors, kind: str = "exact", **params) -> "Index":
        spec = get_kind(kind)
        build_params = make_params(spec.BuildParams, params, f"{kind} build")
        require(len(docs) > 0, "cannot build an index over zero documents")
        started = time.perf_counter()
        arrays = spec.build(docs, build_params)
        # Every kind keeps per-term document counts: IDF for inference-free queries needs them.
        arrays["doc_frequency"] = np.bincount(docs.terms, minlength=len(docs.vocab)).astype(np.int32)
        info = {"n_docs": len(docs), "n_terms": len(docs.vocab), "nnz": docs.nnz,
                "build_seconds": round(time.perf_counter() - started, 3)}
        return cls(kind, arrays, docs.ids, docs.vocab, build_params, info=info)

    @classmethod
    def load(cls, path: str | os.PathLike, verify: bool = False) -> "Index":
        manifest = storage.read_manifest(path)
        kind = manifest.get("kind")
        spec = get_kind(kind)
        layout = manifest.get("layout_version", 1)
        if layout != spec.layout_version:
            raise IndexFormatError(f"{path}: a {kind} index of array layout {layout}, which this sparseir does not read "
                                   f"(it reads layout {spec.layout_version}); rebuild the index")
        arrays, vocab = storage.load_arrays(path, manifest, verify=verify)
        doc_ids = arrays.pop("doc_ids")
        build_params = make_params(spec.BuildParams, manifest.get("build_params", {}), f"{kind} build")
        return cls(kind, arrays, doc_ids, vocab, build_params, manifest.get("search_defaults"),
                   manifest.get("info"), Path(path))

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        from . import __version__

        manifest = {"kind": self.kind, "layout_version": self._kind.layout_version, "sparseir_version": __version__,
                    "build_params": dataclasses.asdict(self.build_params),
                    "search_defaults": self.search_defaults, "info": self.info}
        storage.write_index_dir(path, {**self.arrays, "doc_ids": self.doc_ids}, self.vocab, manifest, overwrite)
        self.path = Path(path)

    # --- search -------------------------------------------------------------------

    @property
    def search_defaults(self) -> dict[str, Any]:
        return self._search_defaults

    @search_defaults.setter
    def search_defaults(self, defaults: Mapping[str, Any]) -> None:
        self._search_defaults = dict(defaults)
        self._params_cache: dict = {}  # settings resolved under the old defaults

    @property
    def n_docs(self) -> int:
        return len(self.doc_ids)

    def __len__(self) -> int:
        return self.n_docs

    def __repr__(self) -> str:
        return f"Index(kind={self.kind!r}, n_docs={self.n_docs}, {self.vocab!r})"

    def search_params(self, **knobs):
        """The effective query settings: kind defaults < stored defaults < knobs."""
        try:
            # The type is part of the key: True == 1 and 2.0 == 2 hash alike but validate differently.
            key = tuple(sorted((name, type(value), value) for name, value in knobs.items()))
            return self._params_cache[key]
        except (KeyError, TypeError):  # not seen yet, or an unhashable value (validated, never cached)
            pass
        params = make_params(self._kind.SearchParams, {**self.search_defaults, **knobs}, f"{self.kind} search")
        if len(self._params_cache) < PARAMS_CACHE_SIZE and all(is_hashable(value) for value in knobs.values()):
            # Validating a dataclass costs microseconds: a single-query call should not pay it each time.
            self._params_cache[key] = params
        return params

    def search(self, queries, k: int = 10, threads: int | None = None, **knobs) -> tuple[np.ndarray, np.ndarray]:
        """Top-k for a batch of queries: (scores float32, rows int64), each (n_queries, k).

        Rows index the collection (``doc_ids[row]`` is the external id); missing
        results are padded with score -inf and row -1. Ties go to the lower row.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ParameterError(f"k must be a positive integer, got {k!r}")
        params = self.search_params(**knobs)
        queries = self._check_queries(as_queries(queries, self.vocab))
        # One query runs serially in every kind: the thread count matters only to a batch.
        with threads_limit(threads, apply=len(queries) > 1):
            return self._kind.search(self.arrays, self.n_docs, queries, int(k), params)

    def _check_queries(self, queries: SparseVectors) -> SparseVectors:
        n_terms = len(self.vocab)
        # Digests are computed once per vocabulary: comparing 30k-term lists on every call
        # would cost more than a small search.
        same = queries.vocab is self.vocab or (len(queries.vocab) == n_terms
                                               and queries.vocab.sha256() == self.vocab.sha256())
        if not same and (len(queries.vocab) < n_terms or queries.vocab.terms[:n_terms] != self.vocab.terms):
            raise ParameterError(f"queries use {queries.vocab!r} but the index {self.vocab!r}; "
                                 "read queries with vocab=index.vocab")
        if len(queries.terms) and queries.terms.max() >= n_terms:
            # Terms an open vocabulary met only in queries match no document.
            rows = np.repeat(np.arange(len(queries)), np.diff(queries.offsets))
            keep = queries.terms < n_terms
            offsets = np.zeros(len(queries) + 1, dtype=np.int64)
            np.cumsum(np.bincount(rows[keep], minlength=len(queries)), out=offsets[1:])
            return SparseVectors(offsets, queries.terms[keep], queries.weights[keep], queries.ids, self.vocab,
                                 validate=False)
        return queries

    def tune(self, queries, target_recall: float = 0.95, k: int = 10, reference: "Index | None" = None,
             docs: SparseVectors | None = None, store: bool = False, **options):
        """The fastest query setting whose recall@k against exact search meets target_recall.

        Ground truth comes from `reference` (an exact index) or is built from `docs`.
        store=True makes the setting this saved index's default. See ``sparseir.tune``.
        """
        from .tune import TuneConfig, store_tuning, tune

        if reference is None:
            require(docs is not None, "tuning needs the exact ground truth: pass reference= (an exact index) or docs=")
            reference = build_index(docs, kind="exact")
        require(reference.n_docs == self.n_docs, f"reference has {reference.n_docs} documents, the index {self.n_docs}")
        result = tune(self, self._check_queries(as_queries(queries, self.vocab)), reference,
                      TuneConfig(target_recall=target_recall, k=k, **options))
        if store:
            store_tuning(self, result)
        return result

    def warmup(self) -> float:
        """Compile (or load from the on-disk cache) the query kernels; returns the seconds taken."""
        started = time.perf_counter()
        probe = SparseVectors([0, 1], [0], [1.0], ["warmup"], self.vocab, validate=False)
        self.search(probe, k=1)
        return time.perf_counter() - started


class threads_limit:
    """Run a block with numba's thread count set to `threads` (None: all).

    With apply=False the argument is only checked: numba's thread calls take locks and
    cost microseconds, too much for a single query that runs no parallel region.
    """

    def __init__(self, threads: int | None, apply: bool = True):
        self.threads = threads
        self.apply = apply

    def __enter__(self):
        self.previous = None
        if self.threads is not None:
            import numba

            available = numba.config.NUMBA_NUM_THREADS
            if isinstance(self.threads, bool) or not isinstance(self.threads, int) or not 1 <= self.threads <= available:
                raise ParameterError(f"threads must be an integer in [1, {available}], got {self.threads!r}")
            if self.apply:
                current = numba.get_num_threads()
                if current != self.threads:  # make no thread call that changes nothing
                    self.previous = current
                    numba.set_num_threads(self.threads)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            import numba

            numba.set_num_threads(self.previous)
        return False


def build_index(docs: SparseVectors, kind: str = "exact", **params) -> Index:
    """Build an index of `kind` ("exact", "seismic", "saat") over `docs`."""
    return Index.build(docs, kind, **params)


def load_index(path: str | os.PathLike, verify: bool = False) -> Index:
    """Open a saved index (arrays memory-mapped). verify=True also checks sha256 of every file.

    A sharded index directory opens as a ``ShardedIndex`` with the same search interface.
    """
    from .sharded import is_sharded, load_sharded  # lazy: sharded builds on this module

    if is_sharded(path):
        return load_sharded(path, verify=verify)
    return Index.load(path, verify=verify)
