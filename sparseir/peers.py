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

import numpy as np

from .errors import ParameterError
from .query.topk import empty_results
from .vectors import SparseVectors

MAX_IMPACT = 255  # bmp's largest integer term weight


class Peer:
    """Shared plumbing: a scratch directory for the peer's files, measured once built."""

    name = ""
    module = ""

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

    def check_knobs(self, knobs: dict, known: tuple[str, ...]) -> dict:
        unknown = sorted(set(knobs) - set(known))
        if unknown:
            raise ParameterError(f"unknown {self.name} search parameter(s) {', '.join(unknown)} "
                                 f"(known: {', '.join(known)})")
        return knobs


class PySeismic(Peer):
    """pyseismic-lsr, the Rust Seismic (``import seismic``).

    Build params are passed to ``SeismicIndex.build_from_dataset`` (n_postings,
    centroid_fraction, summary_energy, ...); search knobs: query_cut, heap_factor, n_knn,
    sorted. Components are the term ids, as decimal strings on the query side.
    """

    name = "pyseismic"
    module = "seismic"
    knobs = ("query_cut", "heap_factor", "n_knn", "sorted")

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

    def search(self, queries: SparseVectors, k: int, threads: int = 1, **knobs):
        knobs = {"query_cut": 10, "heap_factor": 0.7, **self.check_knobs(knobs, self.knobs)}
        ids = np.arange(len(queries)).astype(self.string_dtype)
        components = [row_terms.astype(str).astype(self.string_dtype)
                      for row_terms in np.split(queries.terms, queries.offsets[1:-1])]
        values = np.split(queries.weights, queries.offsets[1:-1])
        if len(queries) == 1:
            results = [self.index.search(ids[0], components[0], values[0], k, knobs["query_cut"],
                                         knobs["heap_factor"], knobs.get("n_knn", 0), knobs.get("sorted", True))]
        else:
            results = self.index.batch_search(ids, components, values, k, knobs["query_cut"], knobs["heap_factor"],
                                              knobs.get("n_knn", 0), knobs.get("sorted", True), num_threads=threads)
        scores, rows = empty_results(len(queries), k)
        for hits in results:
            # Batches may come back in any order: each hit names its query.
            for rank, (query, score, doc) in enumerate(hits[:k]):
                scores[int(query), rank] = score
                rows[int(query), rank] = int(doc)
        return scores, rows


class BMP(Peer):
    """bmp, block-max pruning (``import bmp``): integer-quantized weights, one query per call.

    Build params: bsize (docs per block, 32), compress_range (False), scale (weights are
    stored as round(weight * scale), at least 1; default 255 / the largest weight, since
    bmp keeps 8-bit impacts). Queries are quantized the same way on their own scale.
    Search knobs: alpha (block threshold factor), beta (query term pruning); 1 = exact.
    Scores are in its integer units. Its Python API runs one query at a time, so `threads`
    is ignored (one core).
    """

    name = "bmp"
    module = "bmp"
    knobs = ("alpha", "beta")

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

    def search(self, queries: SparseVectors, k: int, threads: int = 1, **knobs):
        knobs = {"alpha": 1.0, "beta": 1.0, **self.check_knobs(knobs, self.knobs)}
        scores, rows = empty_results(len(queries), k)
        names = queries.terms.astype(str)
        quantized = quantize(queries.weights, MAX_IMPACT / max(float(queries.weights.max(initial=0)), 1e-9))
        for q in range(len(queries)):
            lo, hi = queries.offsets[q], queries.offsets[q + 1]
            if hi == lo:
                continue
            docnos, hit_scores = self.searcher.search(dict(zip(names[lo:hi].tolist(), quantized[lo:hi].tolist())),
                                                      k=k, alpha=knobs["alpha"], beta=knobs["beta"])
            n = min(k, len(docnos))
            rows[q, :n] = np.asarray(docnos[:n], dtype=np.int64)
            scores[q, :n] = hit_scores[:n]
        return scores, rows


def quantize(weights: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.rint(weights * scale), 1, MAX_IMPACT).astype(np.int64)


PEERS: dict[str, type] = {"pyseismic": PySeismic, "bmp": BMP}
