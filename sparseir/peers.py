"""Adapters for peer engines, one interface for benchmarking them beside sparseir.

Each class in ``PEERS`` builds over ``SparseVectors`` and answers ``search(queries, k,
threads, **knobs) -> (scores float32 (nq, k), rows int64 (nq, k))`` padded with -inf /
-1, rows indexing the documents given to ``build``. ``build`` records
``build_seconds`` (ingest + build, as the peer's own API needs it) and ``index_bytes``
(the size of the index file the peer saves). Peers are optional: ``available()``
tells whether the package imports, and nothing is imported before it is asked.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import ParameterError
from .query.topk import empty_results
from .vectors import SparseVectors

MAX_IMPACT = 255  # bmp's largest integer term weight


class Peer:
    """Shared plumbing: a scratch directory for the peer's files, measured once built, and the
    timing protocol's steps (``sparseir.timing``) that each peer fills in:

    - ``resolve_knobs(knobs)``: defaults filled, unknown names refused, once per setting;
    - ``prepare(queries)`` / ``prepare_one(queries)``: inputs in the peer's own types;
    - ``search_prepared(prepared, k, threads, knobs)`` / ``search_one(one, k, knobs)``: the peer's calls;
    - ``collect(raw, n_queries, k)`` / ``collect_one(raw, k)``: outputs as padded (scores, rows).

    A peer without a batch call answers ``search_prepared`` with a loop over its single-query call.
    """

    name = ""
    module = ""
    knobs: dict[str, Any] = {}  # every search knob with its default

    @classmethod
    def available(cls) -> bool:
        import importlib.util

        return importlib.util.find_spec(cls.module) is not None

    def __init__(self, **params):
        self.params = params
        self.build_seconds = float("nan")
        self.index_bytes = 0
        self.workdir = Path(tempfile.mkdtemp(prefix=f"sparseir-{self.name}-"))

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __del__(self):
        self.close()

    def resolve_knobs(self, knobs: Mapping[str, Any]) -> dict:
        unknown = sorted(set(knobs) - set(self.knobs))
        if unknown:
            raise ParameterError(f"unknown {self.name} search parameter(s) {', '.join(unknown)} "
                                 f"(known: {', '.join(self.knobs)})")
        return {**self.knobs, **knobs}

    def prepare(self, queries: SparseVectors):
        return self.prepare_one(queries)

    def search_prepared(self, prepared, k: int, threads: int, knobs: dict):
        if threads <= 1 or len(prepared) < 2:
            return [self.search_one(one, k, knobs) for one in prepared]
        # Python threads over interleaved slices: they run in parallel as far as the peer's
        # calls release the GIL, and not at all otherwise (the figures show which).
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(lambda part: [self.search_one(one, k, knobs) for one in prepared[part::threads]],
                                  range(threads)))
        raw = [None] * len(prepared)
        for part, answers in enumerate(parts):
            raw[part::threads] = answers
        return raw

    def collect(self, raw, n_queries: int, k: int):
        scores, rows = empty_results(n_queries, k)
        for q, one in enumerate(raw):
            scores[q], rows[q] = self.collect_one(one, k)
        return scores, rows

    def search(self, queries: SparseVectors, k: int, threads: int = 1, **knobs):
        """The protocol's steps in one call, for use outside timing."""
        prepared = self.prepare(queries)
        return self.collect(self.search_prepared(prepared, k, threads, self.resolve_knobs(knobs)), len(queries), k)


def padded(scores, rows, k: int):
    """One query's hits as fixed (k,) arrays, padded with -inf / -1."""
    out_scores, out_rows = empty_results(1, k)
    n = min(k, len(rows))
    out_scores[0, :n] = scores[:n]
    out_rows[0, :n] = rows[:n]
    return out_scores[0], out_rows[0]


class PySeismic(Peer):
    """pyseismic-lsr, the Rust Seismic (``import seismic``).

    Build params are passed to ``SeismicIndex.build_from_dataset`` (n_postings,
    centroid_fraction, summary_energy, ...); search knobs: query_cut, heap_factor, n_knn,
    sorted. Components are the term ids, as decimal strings on the query side. Its batch
    call is ``batch_search``; its threads start whatever ``num_threads`` says, so pin the
    process for single-core figures.
    """

    name = "pyseismic"
    module = "seismic"
    knobs = {"query_cut": 10, "heap_factor": 0.7, "n_knn": 0, "sorted": True}

    def build(self, docs: SparseVectors) -> None:
        import seismic

        self.n_docs = len(docs)
        self.string_dtype = seismic.get_seismic_string()
        started = time.perf_counter()
        dataset = seismic.SeismicDataset()
        # Row numbers as ids, so that results map back to rows whatever the external ids are.
        dataset.add_documents_by_id(np.arange(len(docs)).astype(str).tolist(), docs.terms.astype(np.int64),
                                    docs.weights, docs.offsets)
        self.index = seismic.SeismicIndex.build_from_dataset(dataset, **self.params)
        self.build_seconds = time.perf_counter() - started
        prefix = self.workdir / "index"
        self.index.save(str(prefix))
        self.index_bytes = sum(f.stat().st_size for f in self.workdir.iterdir())

    def prepare(self, queries: SparseVectors):
        ids = np.arange(len(queries)).astype(self.string_dtype)
        components = [row_terms.astype(str).astype(self.string_dtype)
                      for row_terms in np.split(queries.terms, queries.offsets[1:-1])]
        return ids, components, np.split(queries.weights, queries.offsets[1:-1])

    def prepare_one(self, queries: SparseVectors):
        return list(zip(*self.prepare(queries)))

    def search_prepared(self, prepared, k: int, threads: int, knobs: dict):
        ids, components, values = prepared
        return self.index.batch_search(ids, components, values, k, knobs["query_cut"], knobs["heap_factor"],
                                       knobs["n_knn"], knobs["sorted"], num_threads=threads)

    def search_one(self, one, k: int, knobs: dict):
        query_id, components, values = one
        return self.index.search(query_id, components, values, k, knobs["query_cut"], knobs["heap_factor"],
                                 knobs["n_knn"], knobs["sorted"])

    def collect(self, raw, n_queries: int, k: int):
        scores, rows = empty_results(n_queries, k)
        for hits in raw:
            # Batches may come back in any order: each hit names its query.
            for rank, (query, score, doc) in enumerate(hits[:k]):
                scores[int(query), rank] = score
                rows[int(query), rank] = int(doc)
        return scores, rows

    def collect_one(self, raw, k: int):
        return padded([score for _, score, _ in raw], [int(doc) for _, _, doc in raw], k)


class PyVsag(Peer):
    """SINDI in VSAG (``import pyvsag``; Li et al., arXiv 2509.08395), over the same vectors.

    Build params (its ``index_param``): doc_prune_ratio (0), window_size (50,000; VSAG takes
    10,000-60,000), use_reorder (True: candidates rescored from full-precision vectors),
    use_quantization (False). Search knobs: query_prune_ratio, term_prune_ratio, n_candidate.
    It has no batch call: a batch is a loop over its single-query ``knn_search``, which
    returns distances 1 - inner product.
    """

    name = "pyvsag"
    module = "pyvsag"
    knobs = {"query_prune_ratio": 0.0, "term_prune_ratio": 0.0, "n_candidate": 100}
    build_defaults = {"doc_prune_ratio": 0.0, "window_size": 50_000, "use_reorder": True, "use_quantization": False}

    def build(self, docs: SparseVectors) -> None:
        import json

        import pyvsag

        n_terms = len(docs.vocab)
        unknown = sorted(set(self.params) - set(self.build_defaults))
        if unknown:
            raise ParameterError(f"unknown pyvsag build parameter(s) {', '.join(unknown)} "
                                 f"(known: {', '.join(self.build_defaults)})")
        params = {**self.build_defaults, **self.params, "term_id_limit": n_terms + 1,
                  "avg_doc_term_length": max(1, round(docs.nnz / max(len(docs), 1)))}
        offsets, terms, weights = (docs.offsets.astype(np.uint32), docs.terms.astype(np.uint32),
                                   docs.weights.astype(np.float32))
        ids = np.arange(len(docs), dtype=np.int64)
        started = time.perf_counter()
        self.index = pyvsag.Index("sindi", json.dumps({"dtype": "sparse", "metric_type": "ip", "dim": n_terms,
                                                       "index_param": params}))
        self.index.build(offsets, terms, weights, ids)
        self.build_seconds = time.perf_counter() - started
        path = self.workdir / "index"
        self.index.save(str(path))
        self.index_bytes = os.path.getsize(path)

    def resolve_knobs(self, knobs: Mapping[str, Any]) -> dict:
        import json

        return {"json": json.dumps({"sindi": super().resolve_knobs(knobs)})}

    def prepare_one(self, queries: SparseVectors):
        return [(np.array([0, hi - lo], dtype=np.uint32), queries.terms[lo:hi].astype(np.uint32),
                 queries.weights[lo:hi].astype(np.float32))
                for lo, hi in zip(queries.offsets[:-1].tolist(), queries.offsets[1:].tolist())]

    def search_one(self, one, k: int, knobs: dict):
        return self.index.knn_search(*one, k, knobs["json"])

    def collect_one(self, raw, k: int):
        ids, distances = raw
        return padded(1.0 - np.asarray(distances[0], dtype=np.float32), np.asarray(ids[0], dtype=np.int64), k)


class BMP(Peer):
    """bmp, block-max pruning (``import bmp``): integer-quantized weights, one query per call.

    Build params: bsize (docs per block, 32), compress_range (False), scale (weights are
    stored as round(weight * scale), at least 1; default 255 / the largest weight, since
    bmp keeps 8-bit impacts). Queries are quantized the same way on their own scale.
    Search knobs: alpha (block threshold factor), beta (query term pruning); 1 = exact.
    Scores are in its integer units. Its Python API runs one query at a time, so a batch
    is a loop on one thread.
    """

    name = "bmp"
    module = "bmp"
    knobs = {"alpha": 1.0, "beta": 1.0}

    def build(self, docs: SparseVectors) -> None:
        import bmp

        bsize = int(self.params.get("bsize", 32))
        self.scale = float(self.params.get("scale", MAX_IMPACT / max(float(docs.weights.max(initial=0)), 1e-9)))
        path = self.workdir / "index.bmp"
        started = time.perf_counter()
        indexer = bmp.Indexer(str(path), bsize, bool(self.params.get("compress_range", False)))
        quantized = quantize(docs.weights, self.scale)
        names = docs.terms.astype(str)
        for row in range(len(docs)):
            lo, hi = docs.offsets[row], docs.offsets[row + 1]
            indexer.add_document(str(row), dict(zip(names[lo:hi].tolist(), quantized[lo:hi].tolist())))
        indexer.finish()
        self.searcher = bmp.Searcher(str(path))
        self.build_seconds = time.perf_counter() - started
        self.index_bytes = os.path.getsize(path)

    def prepare_one(self, queries: SparseVectors):
        names = queries.terms.astype(str)
        quantized = quantize(queries.weights, MAX_IMPACT / max(float(queries.weights.max(initial=0)), 1e-9))
        return [dict(zip(names[lo:hi].tolist(), quantized[lo:hi].tolist()))
                for lo, hi in zip(queries.offsets[:-1].tolist(), queries.offsets[1:].tolist())]

    def search_one(self, one, k: int, knobs: dict):
        if not one:
            return [], []
        return self.searcher.search(one, k=k, alpha=knobs["alpha"], beta=knobs["beta"])

    def collect_one(self, raw, k: int):
        docnos, hit_scores = raw
        return padded(np.asarray(hit_scores, dtype=np.float32), np.asarray(docnos, dtype=np.int64), k)


def quantize(weights: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.rint(weights * scale), 1, MAX_IMPACT).astype(np.int64)


PEERS: dict[str, type] = {"pyseismic": PySeismic, "pyvsag": PyVsag, "bmp": BMP}
