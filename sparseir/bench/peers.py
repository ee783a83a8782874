"""Adapters for peer engines, one interface for benchmarking them beside sparseir.

Each class in ``PEERS`` builds over ``SparseVectors`` and answers ``search(queries, k,
threads, **knobs) -> (scores float32 (nq, k), rows int64 (nq, k))`` padded with -inf /
-1, rows indexing the documents given to ``build``. ``build`` records
``build_seconds`` (ingest + build, as the peer's own API needs it) and ``index_bytes``
(the size of the index file the peer saves). Peers are optional: ``available()``
tells whether the package imports, and nothing is imported before it is asked.

pisa and pyvsag cannot share a process: pyterrier-pisa's ``_pisathon`` and pyvsag's
``libvsag`` each bundle their own spdlog, whose registry singleton is a GNU unique symbol
that the dynamic linker binds to whichever library came first, so the second engine reads
it with the wrong layout and crashes the interpreter. Each one's ``build`` refuses, with a
ParameterError, once the other's library is loaded: benchmark them in separate runs.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ParameterError
from ..query.topk import empty_results
from ..vectors import SparseVectors

MAX_IMPACT = 255  # bmp's largest integer term weight


class Peer:
    """Shared plumbing: a scratch directory for the peer's files, measured once built, and the
    timing protocol's steps (``sparseir.bench.timing``) that each peer fills in:

    - ``resolve_knobs(knobs)``: defaults filled, unknown names refused, once per setting;
    - ``prepare(queries)`` / ``prepare_one(queries)``: inputs in the peer's own types;
    - ``search_prepared(prepared, k, threads, knobs)`` / ``search_one(one, k, knobs)``: the peer's calls;
    - ``collect(raw, n_queries, k)`` / ``collect_one(raw, k)``: outputs as padded (scores, rows).

    A peer without a batch call answers ``search_prepared`` with a loop over its single-query call.
    """

    name = ""
    module = ""
    knobs: ClassVar[dict[str, Any]] = {}  # every search knob with its default
    conflicts: ClassVar[tuple[tuple[str, str], ...]] = ()  # (module, peer): a loaded module that makes this peer crash

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

    def refuse_conflicts(self) -> None:
        """A ParameterError, not a crash, when a peer whose library clashes with this one's is loaded."""
        for module, peer in self.conflicts:
            if module in sys.modules:
                raise ParameterError(f"{self.name} cannot run in a process where {peer} has been loaded (their "
                                     f"native libraries bundle clashing spdlog copies): run it in a separate process")

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
    knobs: ClassVar[dict[str, Any]] = {"query_cut": 10, "heap_factor": 0.7, "n_knn": 0, "sorted": True}

    def build(self, docs: SparseVectors) -> None:
        import seismic

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

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PySeismic":
        """An index saved by ``SeismicIndex.save`` (built elsewhere, e.g. in a process of its
        own at scale) over documents whose ids are their row numbers."""
        import seismic

        peer = cls()
        peer.string_dtype = seismic.get_seismic_string()
        peer.index = seismic.SeismicIndex.load(os.fspath(path))
        peer.index_bytes = Path(path).stat().st_size
        return peer

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
    knobs: ClassVar[dict[str, Any]] = {"query_prune_ratio": 0.0, "term_prune_ratio": 0.0, "n_candidate": 100}
    build_defaults: ClassVar[dict[str, Any]] = {"doc_prune_ratio": 0.0, "window_size": 50_000, "use_reorder": True,
                                                "use_quantization": False}
    conflicts = (("pyterrier_pisa._pisathon", "pisa"),)

    def build(self, docs: SparseVectors) -> None:
        self.build_arrays(docs.offsets, docs.terms, docs.weights, len(docs.vocab))

    def build_arrays(self, offsets, terms, weights, n_terms: int) -> None:
        """Build over CSR arrays (offsets, terms, weights), ids = row numbers, and save the index
        with the description that `load` needs beside it."""
        import json

        self.refuse_conflicts()
        import pyvsag

        unknown = sorted(set(self.params) - set(self.build_defaults))
        if unknown:
            raise ParameterError(f"unknown pyvsag build parameter(s) {', '.join(unknown)} "
                                 f"(known: {', '.join(self.build_defaults)})")
        n_docs = len(offsets) - 1
        params = {**self.build_defaults, **self.params, "term_id_limit": n_terms + 1,
                  "avg_doc_term_length": max(1, round(len(terms) / max(n_docs, 1)))}
        description = json.dumps({"dtype": "sparse", "metric_type": "ip", "dim": n_terms, "index_param": params})
        offsets, terms, weights = (np.asarray(offsets, dtype=np.uint32), np.asarray(terms, dtype=np.uint32),
                                   np.asarray(weights, dtype=np.float32))
        ids = np.arange(n_docs, dtype=np.int64)
        started = time.perf_counter()
        self.index = pyvsag.Index("sindi", description)
        self.index.build(offsets, terms, weights, ids)
        self.build_seconds = time.perf_counter() - started
        path = self.workdir / "index"
        self.index.save(str(path))
        Path(f"{path}.json").write_text(description)
        self.index_bytes = os.path.getsize(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PyVsag":
        """An index saved by `build_arrays` (built elsewhere, e.g. in a process of its own at scale)."""
        import pyvsag

        peer = cls()
        peer.refuse_conflicts()
        peer.index = pyvsag.Index("sindi", Path(f"{os.fspath(path)}.json").read_text())
        peer.index.load(os.fspath(path))
        peer.index_bytes = Path(path).stat().st_size
        return peer

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
    knobs: ClassVar[dict[str, Any]] = {"alpha": 1.0, "beta": 1.0}

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
        return quantized_dicts(queries)

    def search_one(self, one, k: int, knobs: dict):
        if not one:
            return [], []
        return self.searcher.search(one, k=k, alpha=knobs["alpha"], beta=knobs["beta"])

    def collect_one(self, raw, k: int):
        docnos, hit_scores = raw
        return padded(np.asarray(hit_scores, dtype=np.float32), np.asarray(docnos, dtype=np.int64), k)


class PISA(Peer):
    """PISA through pyterrier-pisa (``import pyterrier_pisa``), over the integer weights bmp indexes.

    Documents and queries are quantized exactly as for the bmp peer: stored weights are
    round(weight * scale) clipped to 1..255 (scale, default 255 / the largest weight), and
    queries are quantized likewise on their own scale. Documents go in as term dicts through
    ``PisaIndex(stemmer='none', stops='none').toks_indexer(scale=1)`` (learned sparse
    indexing: no tokenizing, stemming or stopwords), PISA docid = row; search uses PISA's
    ``quantized`` scorer with weighted queries, so a score is the plain dot product of the
    integer weights, in those units (pyterrier-pisa passes a query weight w as the term
    repeated w times, which PISA counts back into w). Every algorithm offered is rank-safe:
    its top k equals exact search over these integer vectors, up to the order of equal scores.

    Build params: scale; block_size (docs per block of the block-max score data, 64);
    encoding (posting codec, ``block_simdbp``); batch_size (documents per inverted batch,
    100,000). ``build_seconds`` covers the toks indexer (pyterrier-pisa inverts in Python)
    and the retrieval context, which writes the block-max data and compresses the index;
    ``index_bytes`` counts what search maps: compressed index, block-max data, term and docno
    lexicons. pyterrier-pisa exposes no docid reordering (PISA's ``reorder-docids``), so
    docs stay in collection order.

    Search knob: algorithm, one of PISA's rank-safe disjunctive algorithms: block_max_wand
    (default), maxscore, block_max_maxscore, wand, ranked_or (exhaustive). Timed call:
    ``_pisathon.retrieve``, the C++ function under ``PisaRetrieve.transform`` (which adds
    DataFrame checks and construction around it), called with a list of (query number, term
    dict) pairs prepared before the timer; inside the timer are only the allocation of its
    four result arrays (k entries per query) and that call, which looks the terms up in the
    lexicon (expanding a weight w into w copies of the term, which PISA counts back), runs the
    algorithm, sorts the top k and makes a docno string per hit.
    ``search_one`` makes one such call per query; ``search_prepared`` one call for the batch,
    over ``threads`` TBB threads that take queries in turn (each holds the GIL only to read
    its query and write its hits).
    """

    name = "pisa"
    module = "pyterrier_pisa"
    knobs: ClassVar[dict[str, Any]] = {"algorithm": "block_max_wand"}
    algorithms = ("block_max_wand", "maxscore", "block_max_maxscore", "wand", "ranked_or")
    build_defaults: ClassVar[dict[str, Any]] = {"scale": None, "block_size": 64, "encoding": "block_simdbp",
                                                "batch_size": 100_000}
    conflicts = (("pyvsag", "pyvsag"),)

    def build(self, docs: SparseVectors) -> None:
        self.refuse_conflicts()
        import pyterrier_pisa
        from pyterrier_pisa import _pisathon

        unknown = sorted(set(self.params) - set(self.build_defaults))
        if unknown:
            raise ParameterError(f"unknown pisa build parameter(s) {', '.join(unknown)} "
                                 f"(known: {', '.join(self.build_defaults)})")
        params = {**self.build_defaults, **self.params}
        self.scale = float(params["scale"] or MAX_IMPACT / max(float(docs.weights.max(initial=0)), 1e-9))
        quantized = quantize(docs.weights, self.scale)
        names = docs.terms.astype(str)
        offsets = docs.offsets.tolist()

        def documents():
            for row in range(len(docs)):
                lo, hi = offsets[row], offsets[row + 1]
                yield {"docno": str(row), "toks": dict(zip(names[lo:hi].tolist(), quantized[lo:hi].tolist()))}

        path = self.workdir / "index"
        started = time.perf_counter()
        index = pyterrier_pisa.PisaIndex(str(path), stemmer="none", stops="none", index_encoding=params["encoding"],
                                         batch_size=int(params["batch_size"]))
        index.toks_indexer(scale=1.0).index(documents())
        self.retriever = pyterrier_pisa.PisaRetrieve(index, scorer="quantized", stops="none", query_weighted=True,
                                                     toks_scale=1.0, block_size=int(params["block_size"]))
        self.context, self.call = self.retriever._ctxt, _pisathon.retrieve
        self.build_seconds = time.perf_counter() - started
        wand_data = f"quantized.q0.bmw.{int(params['block_size'])}"  # the file names _pisathon gives them
        searched = [wand_data, f"{wand_data}.{params['encoding']}", "fwd.termlex", "fwd.doclex"]
        self.index_bytes = sum(os.path.getsize(path / name) for name in searched)

    def resolve_knobs(self, knobs: Mapping[str, Any]) -> dict:
        knobs = super().resolve_knobs(knobs)
        # An algorithm _pisathon does not know would crash the process, not raise.
        if knobs["algorithm"] not in self.algorithms:
            raise ParameterError(f"pisa algorithm must be one of {', '.join(self.algorithms)}, "
                                 f"not {knobs['algorithm']!r}")
        return knobs

    def prepare(self, queries: SparseVectors):
        # The term weights as floats: _pisathon reads them with PyFloat_AS_DOUBLE.
        return [(q, {term: float(weight) for term, weight in one.items()})
                for q, one in enumerate(quantized_dicts(queries))]

    def prepare_one(self, queries: SparseVectors):
        return [[(0, one)] for _, one in self.prepare(queries)]

    def retrieve(self, inputs, k: int, threads: int, algorithm: str):
        n = len(inputs) * k
        qidxs, docnos = np.empty(n, dtype=np.int32), np.empty(n, dtype=object)
        ranks, scores = np.empty(n, dtype=np.int32), np.empty(n, dtype=np.float32)
        size = self.call(self.context, algorithm, inputs, k=k, threads=threads, query_weighted=1,
                                  pretokenised=True, result_qidxs=qidxs, result_docnos=docnos, result_ranks=ranks,
                                  result_scores=scores)
        return size, qidxs, ranks, docnos, scores

    def search_prepared(self, prepared, k: int, threads: int, knobs: dict):
        return self.retrieve(prepared, k, max(1, threads), knobs["algorithm"])

    def search_one(self, one, k: int, knobs: dict):
        return self.retrieve(one, k, 1, knobs["algorithm"])

    def collect(self, raw, n_queries: int, k: int):
        size, qidxs, ranks, docnos, hit_scores = raw
        scores, rows = empty_results(n_queries, k)
        # Each hit names its query and rank: with threads, queries come back in any order.
        scores[qidxs[:size], ranks[:size]] = hit_scores[:size]
        rows[qidxs[:size], ranks[:size]] = docnos[:size].astype(np.int64)
        return scores, rows

    def collect_one(self, raw, k: int):
        size, _, _, docnos, hit_scores = raw
        return padded(hit_scores[:size], docnos[:size].astype(np.int64), k)


def quantize(weights: np.ndarray, scale: float) -> np.ndarray:
    return np.clip(np.rint(weights * scale), 1, MAX_IMPACT).astype(np.int64)


def quantized_dicts(queries: SparseVectors) -> list[dict]:
    """Each query as {term id as str: integer weight}, quantized on the queries' own scale (255 / largest weight)."""
    names = queries.terms.astype(str)
    quantized = quantize(queries.weights, MAX_IMPACT / max(float(queries.weights.max(initial=0)), 1e-9))
    return [dict(zip(names[lo:hi].tolist(), quantized[lo:hi].tolist()))
            for lo, hi in zip(queries.offsets[:-1].tolist(), queries.offsets[1:].tolist())]


PEERS: dict[str, type] = {"pyseismic": PySeismic, "pyvsag": PyVsag, "bmp": BMP, "pisa": PISA}
