"""One Index shape for every kind: build, search, save, load.

Kinds come from the one registry, ``sparseir.kinds``; every shape answers the
``sparseir.searchable.Searchable`` interface.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from . import storage
from .errors import IndexFormatError, ParameterError, require
from .filters import Allowed, direct_queries, filter_rows, resolve as resolve_filters
from .kinds import (DEFAULT_KIND, GROUND_TRUTH_BUILD, GROUND_TRUTH_KIND, KINDS, Kind, get_kind, kind_names,
                    make_params)
from .layout import frozen_arrays
from .layout.checks import Length, Rule, check_arrays, read_whole
from .searchable import SearchableBase, as_queries, check_k, prepare_queries
from .indexer.inversion import term_counts
from .vectors import SparseVectors
from .workspace import IN_MEMORY, Workspace

__all__ = ["KINDS", "Index", "Kind", "as_queries", "build_index", "get_kind", "make_params"]

PARAMS_CACHE_SIZE = 64
# What every open checks beside the kind's layout (``layout.checks``): the ids, which place every
# result and so are hashed whatever their size, and the per-term counts that IDF reads.
INDEX_CHECKS = (
    Rule("doc_ids", lambda arrays: np.array(arrays["doc_ids"].ndim == 1), "ids must form one column"),
    Length("doc_frequency", "n_terms", optional=True),
)


def is_hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


class Index(SearchableBase):
    """A built (or loaded) index of one kind; see ``build_index`` and ``sparseir.load_index``."""

    def __init__(self, kind: str, arrays: dict[str, np.ndarray], doc_ids: np.ndarray, vocab,
                 build_params, search_defaults: Mapping[str, Any] | None = None, info: Mapping | None = None,
                 path: Path | None = None, attributes=None):
        self.kind = kind
        self._kind = get_kind(kind)
        self.arrays = arrays
        # The kernels take every array read-only (layout.frozen): the views are made once here
        # rather than on every search.
        self._kernel_arrays = frozen_arrays(arrays)
        self.doc_ids = doc_ids
        self.vocab = vocab
        self.build_params = build_params
        self.search_defaults = search_defaults or {}
        self.info = dict(info or {})
        self.path = path
        self.attributes = attributes  # a pyarrow Table, one row per document, or None

    # --- construction -------------------------------------------------------------

    @classmethod
    def build(cls, docs: SparseVectors, kind: str = DEFAULT_KIND, attributes=None, workspace: Workspace = IN_MEMORY,
              **params) -> "Index":
        """`workspace` holds the build's large arrays: in memory (default) or out of core
        (``sparseir.workspace``, as ``build_index_from`` sets it up); the index is the same."""
        spec = get_kind(kind)
        build_params = make_params(spec.BuildParams, params, f"{kind} build")
        require(len(docs) > 0, "cannot build an index over zero documents")
        require(attributes is None or len(attributes) == len(docs),
                f"attributes have {0 if attributes is None else len(attributes)} rows for {len(docs)} documents")
        started = time.perf_counter()
        docs, attributes = in_build_order(docs, attributes, build_params.reorder)
        arrays = spec.build(docs, build_params, workspace)
        # Every kind keeps per-term document counts: IDF for inference-free queries needs them.
        arrays["doc_frequency"] = term_counts(docs, workspace).astype(np.int32)
        info = {"n_docs": len(docs), "n_terms": len(docs.vocab), "nnz": docs.nnz,
                "build_seconds": round(time.perf_counter() - started, 3)}
        return cls(kind, arrays, docs.ids, docs.vocab, build_params, info=info, attributes=attributes)

    @classmethod
    def load(cls, path: str | os.PathLike, verify: bool = False, memory: str = "mapped") -> "Index":
        """Open a saved index; `memory` says what is read into RAM (``storage.load_arrays``):
        "summaries" leaves the kind's bulk (``layout.<kind>.ON_DISK``) on disk; "disk" (kinds
        with the disk_mode capability) also what its DISK_MODE reads as queries need it."""
        manifest = storage.read_manifest(path)
        storage.check_entries(Path(path), manifest)
        kind = manifest.get("kind")
        spec = get_kind(kind)
        layout = manifest.get("layout_version", 1)
        if layout != spec.layout_version:
            raise IndexFormatError(f"{path}: a {kind} index of array layout {layout}, which this sparseir does not read "
                                   f"(it reads layout {spec.layout_version}); rebuild the index")
        disk = spec.disk_mode
        if memory == "disk":
            if disk is None:
                served = ", ".join(name for name in kind_names() if get_kind(name).supports("disk_mode"))
                raise ParameterError(f"{path}: memory='disk' serves indexes of kind {served}; this {kind} index can "
                                     "leave its bulk on disk with memory='summaries'")
            lacking = [name for name in disk.needs if name not in manifest["arrays"]]
            if lacking:
                raise ParameterError(f"{path}: memory='disk' reads {', '.join(lacking)}, which this index lacks: "
                                     f"{disk.rebuild}, or use memory='summaries'")
        disk_reads, disk_only, disk_runs = (disk.reads, disk.only, disk.runs) if disk is not None else ((), (), ())
        checks = (*INDEX_CHECKS, *spec.checks)
        bulk = {*spec.on_disk, *disk_reads, *disk_only}
        arrays, vocab = storage.load_arrays(path, manifest, verify=verify, memory=memory,
                                            on_disk=spec.on_disk, disk_reads=disk_reads, disk_only=disk_only,
                                            disk_runs=disk_runs,
                                            hashed=storage.hashed_at_open(manifest, bulk, read_whole(checks)))
        try:
            build_params = make_params(spec.BuildParams, manifest.get("build_params", {}), f"{kind} build")
        except ParameterError as e:
            raise IndexFormatError(f"{Path(path) / storage.MANIFEST}: {e}") from None
        n_docs = len(arrays["doc_ids"]) if "doc_ids" in arrays else 0
        check_arrays(path, {name: entry["file"] for name, entry in manifest["arrays"].items()}, arrays, checks,
                     n_docs, len(vocab), dataclasses.asdict(build_params))
        storage.check_counts(path, manifest, n_docs, len(vocab))
        doc_ids = arrays.pop("doc_ids")
        attributes = None
        if "attributes" in manifest:
            from .attributes import load_attributes

            entry = manifest["attributes"]
            small = isinstance(entry, dict) and entry.get("bytes", 0) <= storage.HASHED_AT_OPEN_BYTES
            attributes = load_attributes(path, entry, verify or small)
        return cls(kind, arrays, doc_ids, vocab, build_params, manifest.get("search_defaults"),
                   manifest.get("info"), Path(path), attributes)

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        from . import __version__

        manifest = {"kind": self.kind, "layout_version": self._kind.layout_version, "sparseir_version": __version__,
                    "build_params": dataclasses.asdict(self.build_params),
                    "search_defaults": self.search_defaults, "info": self.info}
        extra_files = None
        if self.attributes is not None:
            from .attributes import save_attributes

            extra_files = lambda directory: {"attributes": save_attributes(self.attributes, directory)}  # noqa: E731
        storage.write_index_dir(path, {**self.arrays, "doc_ids": self.doc_ids}, self.vocab, manifest, overwrite,
                                extra_files)
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

    def __repr__(self) -> str:
        return f"Index(kind={self.kind!r}, n_docs={self.n_docs}, {self.vocab!r})"

    def doc_frequency(self) -> np.ndarray:
        """Documents per term (every kind stores them: IDF for inference-free queries)."""
        if "doc_frequency" not in self.arrays:
            raise ParameterError("this index stores no document frequencies (an older build); rebuild it")
        return np.asarray(self.arrays["doc_frequency"])

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

    def search(self, queries, k: int = 10, threads: int | None = None, filter=None, filters=None,
               **knobs) -> tuple[np.ndarray, np.ndarray]:
        """Top-k for a batch of queries: (scores float32, rows int64), each (n_queries, k).

        Rows index the collection (``doc_ids[row]`` is the external id); missing
        results are padded with score -inf and row -1. Ties go to the lower row.
        filter= restricts every query to the documents it allows, filters= each query to
        its own (see ``sparseir.filters``).
        """
        k = check_k(k)
        params = self.search_params(**knobs)
        queries = prepare_queries(queries, self.vocab)
        resolved = resolve_filters(self, len(queries), filter, filters)
        # One query runs serially in every kind: the thread count matters only to a batch.
        with threads_limit(threads, apply=len(queries) > 1):
            if resolved is None:
                return self._kind.search(self._kernel_arrays, self.n_docs, queries, k, params)
            return self._filtered_search(queries, k, params, resolved)

    def _filtered_search(self, queries: SparseVectors, k: int, params, resolved) -> tuple[np.ndarray, np.ndarray]:
        """Selective filters score their few documents directly (kinds with a forward index);
        the others run the kind's kernel, which skips disallowed documents."""
        of_query = resolved.allowed.of_query
        if self._kind.supports("forward_index"):
            is_direct = direct_queries(resolved, self.n_docs)
        else:
            is_direct = np.zeros(len(queries), dtype=bool)
        if not is_direct.any():
            return self._kind.search(self._kernel_arrays, self.n_docs, queries, k, params, resolved.allowed)
        if is_direct.all():  # one query, typically: no split to pay for
            return self._direct_search(queries, k, resolved, of_query)
        from .query.topk import empty_results

        scores, rows = empty_results(len(queries), k)
        kernel_rows, direct_rows = np.flatnonzero(~is_direct), np.flatnonzero(is_direct)
        scores[kernel_rows], rows[kernel_rows] = self._kind.search(
            self._kernel_arrays, self.n_docs, queries.take(kernel_rows), k, params,
            Allowed(resolved.allowed.bits, of_query[kernel_rows]))
        scores[direct_rows], rows[direct_rows] = self._direct_search(queries.take(direct_rows), k, resolved,
                                                                     of_query[direct_rows])
        return scores, rows

    def _direct_search(self, queries: SparseVectors, k: int, resolved, of_query: np.ndarray):
        from .layout.forward import read_forward
        from .query import direct

        offsets, allowed_rows = filter_rows(resolved)
        return direct.search(read_forward(self._kernel_arrays), len(self.vocab), queries, k, offsets, allowed_rows, of_query)

    def stored_vectors(self, workspace: Workspace = IN_MEMORY) -> SparseVectors:
        """The documents as the index holds them, in its rows (ids, vocabulary): read from the
        forward index, or from the kind's own arrays (``stored_vectors`` of its indexer); a
        quantized kind gives the weights its impacts stand for. Out of core, into `workspace`'s files."""
        if self._kind.supports("forward_index"):
            from .indexer.forward import forward_vectors

            offsets, terms, weights = forward_vectors(self.arrays, workspace)
        elif self._kind.stored_vectors is not None:
            offsets, terms, weights = self._kind.stored_vectors(self.arrays, self.n_docs, workspace)
        else:
            raise ParameterError(f"a {self.kind} index keeps no document vectors to read back")
        return SparseVectors(offsets, terms, weights, self.doc_ids, self.vocab, validate=False)

    def to_ciff(self, path: str | os.PathLike, scale: float | None = None, bits: int | None = None,
                description: str | None = None, memory_budget: int | str | None = None, overwrite: bool = False,
                progress: bool = False) -> str:
        """Write the stored vectors as a CIFF file (``sparseir.formats.ciff``; .gz compresses), their
        weights quantized to integer impacts by `scale` (impact = rint(weight x scale)) or `bits`
        (the largest weight gets 2^bits - 1). Returns the header's description, which states the
        rule. memory_budget ("1G"): the inversion works out of core beside `path`, touching at
        most that much at once."""
        from . import __version__
        from .fileio import check_output
        from .formats.ciff import Quantization, write_ciff

        quantization = Quantization(scale, bits)
        check_output(path, inputs=[] if self.path is None else [self.path], overwrite=overwrite, kind="file")
        if description is None:
            description = f"sparseir {__version__}: {self.kind} index of {self.n_docs} documents"
        workspace = (Workspace(progress=progress) if memory_budget is None
                     else Workspace.beside(path, memory_budget, progress))
        with workspace:
            workspace.follow(self.arrays.values())
            return write_ciff(self.stored_vectors(workspace), path, quantization, description, workspace, overwrite)

    def part_of_row(self, row: int) -> tuple["Index", int]:
        """The single index holding row `row`, and the row there: itself."""
        return self, row

    def attribute_mask(self, expression: str) -> np.ndarray:
        """The documents whose stored attributes satisfy `expression` (``sparseir.attributes``)."""
        if self.attributes is None:
            raise ParameterError("this index stores no document attributes to filter on (build it with "
                                 "attributes, e.g. sparseir index --attributes lang,year)")
        from .attributes import predicate_mask

        return predicate_mask(self.attributes, expression)

    def tune(self, queries, target_recall: float = 0.95, k: int = 10, reference: "Index | None" = None,
             docs: SparseVectors | None = None, store: bool = False, **options):
        """The fastest query setting whose recall@k against exact search meets target_recall.

        Ground truth comes from `reference` (an exact index) or is built from `docs`.
        store=True makes the setting this saved index's default. See ``sparseir.tune``.
        """
        from .tune import TuneConfig, store_tuning, tune

        if reference is None:
            require(docs is not None, "tuning needs the exact ground truth: pass reference= (an exact index) or docs=")
            reference = ground_truth_index(in_rows_of(docs, self.doc_ids))
        require(reference.n_docs == self.n_docs, f"reference has {reference.n_docs} documents, the index {self.n_docs}")
        result = tune(self, prepare_queries(queries, self.vocab), reference,
                      TuneConfig(target_recall=target_recall, k=k, **options))
        if store:
            store_tuning(self, result)
        return result

    # --- updates ------------------------------------------------------------------

    def add(self, docs, upsert: bool = False):
        raise self._not_segmented("add to")

    def delete(self, ids):
        raise self._not_segmented("delete from")

    def compact(self):
        raise self._not_segmented("compact")

    def _not_segmented(self, action: str) -> ParameterError:
        where = self.path if self.path is not None else "INDEX_DIR"
        return ParameterError(f"cannot {action} this index, which is built once: make it a segmented index first, "
                              f"whose first segment it becomes (sparseir.make_segmented({str(where)!r}, vectors) / "
                              f"sparseir segment {where} --vectors VECTORS, with the vectors it was built from)")


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


def ground_truth_index(docs: SparseVectors) -> Index:
    """An index whose search is exact search, rows as in `docs`: block-max in safe mode, which
    returns exactly the exact top-k (scores bit for bit, ties by row) several times faster."""
    return build_index(docs, kind=GROUND_TRUTH_KIND, **GROUND_TRUTH_BUILD)


def in_rows_of(docs: SparseVectors, doc_ids: np.ndarray) -> SparseVectors:
    """`docs` in the order of `doc_ids` (an index's rows, which reordering may have changed)."""
    if np.array_equal(docs.ids, doc_ids):
        return docs
    require(len(docs) == len(doc_ids), f"the vectors have {len(docs)} documents, the index {len(doc_ids)}")
    position = {doc_id: row for row, doc_id in enumerate(docs.ids.tolist())}
    try:
        return docs.take(np.fromiter((position[doc_id] for doc_id in doc_ids.tolist()), np.int64, len(doc_ids)))
    except KeyError as e:
        raise ParameterError(f"document {e.args[0]!r} of the index is not among the vectors") from None


def in_build_order(docs: SparseVectors, attributes, reorder: str):
    """The documents (and their attribute rows) in the order `reorder` gives them rows."""
    if reorder == "none":
        return docs, attributes
    from .reorder import bp_order

    order = bp_order(docs)
    return docs.take(order), None if attributes is None else attributes.take(order)


def build_index(docs: SparseVectors, kind: str = DEFAULT_KIND, attributes=None, workspace: Workspace = IN_MEMORY,
                **params) -> Index:
    """Build an index of `kind` (one of ``KINDS``) over `docs`; `attributes` (a pyarrow Table, one
    row per document, see ``sparseir.attributes``) are stored for filtered search."""
    return Index.build(docs, kind, attributes, workspace, **params)


def build_index_from(vectors: str | os.PathLike, output: str | os.PathLike, kind: str = DEFAULT_KIND,
                     memory_budget: int | str = "1G", format: str | None = None, vocab="auto", bad_lines=None,
                     attributes=None, overwrite: bool = False, progress: bool = False, **params) -> Index:
    """Build an index over a vectors file (or a directory or glob of parts) out of core, save it
    at `output` and return it opened there.

    The input is spooled to a scratch directory beside `output`, and every phase works
    through it in chunks that touch at most `memory_budget` bytes ("1G", "512M"), so resident
    memory stays near the index's own size plus the budget, whatever the collection's. The
    index equals ``build_index`` over the same vectors. A killed build leaves no index; its
    scratch directory goes at the next write of `output`. progress: bars with an ETA on stderr.
    """
    from .fileio import check_output
    from .formats import read_vectors
    check_output(output, inputs=[vectors], overwrite=overwrite, kind="directory")
    with Workspace.beside(output, memory_budget, progress) as workspace:
        docs = read_vectors(vectors, format, vocab, bad_lines, workspace=workspace)
        Index.build(docs, kind, attributes, workspace, **params).save(output, overwrite=overwrite)
    return Index.load(output)
