"""What the server does, behind plain methods: search batches, explain, writes, passages.

Generations: searches read ``self.reader``, one index object holding one generation; a
batch takes it once and resolves its queries' terms, filters and result ids against that
object alone. A write runs on ``self.writer`` (a segmented index, one write at a time), and
once its generation is committed, a copy of the writer becomes the reader in one reference
assignment, before the write is acknowledged: a search sees the old generation or the new
one, never a mix, and every search that starts after an acknowledgement sees its write.
The old object stays valid for the batches still using it (a segment's files stay mapped
after a merge removes them).
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from typing import Hashable

import numpy as np

from .. import __version__
from ..errors import ParameterError, SparseirError
from ..kinds import get_kind, make_params
from ..vectors import SparseVectors, Vocabulary, VectorBuilder
from .batcher import Batcher
from .config import ServeConfig
from .metrics import Metrics


class WritesOff(SparseirError):
    """Writes asked of a server that takes none (answered 403)."""


class NotWritable(SparseirError):
    """A write to an index that is built once (answered 409)."""


class QueryItem:
    """One query of a request: its id and {term: weight}; `known_only`: drop terms the index
    lacks (encoded text) rather than refuse them (vectors over a fixed vocabulary)."""

    __slots__ = ("id", "vector", "known_only")

    def __init__(self, query_id, vector: dict, known_only: bool = False):
        self.id, self.vector, self.known_only = query_id, vector, known_only


def shape_of(index) -> str:
    from ..segments import SegmentedIndex
    from ..sharded import ShardedIndex

    if isinstance(index, SegmentedIndex):
        return "segmented"
    return "sharded" if isinstance(index, ShardedIndex) else "index"


def query_rows(items: list[QueryItem], vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sizes, terms, weights) of the queries over `vocab`, terms ascending within each.

    A term an open vocabulary lacks matches no document and is dropped (as
    ``searchable.prepare_queries`` drops it); one a fixed vocabulary lacks is an error,
    unless the query is encoded text.
    """
    sizes = np.zeros(len(items), dtype=np.int64)
    all_terms, all_weights = [], []
    for q, item in enumerate(items):
        terms, weights = [], []
        for term, weight in item.vector.items():
            term_id = vocab.get(term)
            if term_id is None:
                if vocab.open or item.known_only:
                    continue
                label = f"{vocab.name} " if vocab.name else ""
                raise ParameterError(f"query {item.id!r}: unknown term {term!r} (not in the index's fixed "
                                     f"{label}vocabulary)")
            if weight > 0:  # zero weights are kept out, as every reader does
                terms.append(term_id)
                weights.append(weight)
        order = np.argsort(np.asarray(terms, dtype=np.int64), kind="stable")
        all_terms.append(np.asarray(terms, dtype=np.int32)[order])
        all_weights.append(np.asarray(weights, dtype=np.float32)[order])
        sizes[q] = len(terms)
    if not items:
        return sizes, np.empty(0, dtype=np.int32), np.empty(0, dtype=np.float32)
    return sizes, np.concatenate(all_terms), np.concatenate(all_weights)


class Service:
    def __init__(self, index, config: ServeConfig = ServeConfig(), encoder=None, passages=None,
                 api_key: str | None = None, defaults: dict | None = None):
        self.config = config
        self.shape = shape_of(index)
        self.writer = index if self.shape == "segmented" else None
        self.reader = copy.copy(index) if self.writer is not None else index
        self.encoder = encoder
        self.passages = passages
        self.api_key = api_key
        self.defaults = dict(defaults or {})
        self.metrics = Metrics()
        self.batcher = Batcher(self._run_searches, config.max_batch, config.max_wait_us, config.queue_size,
                               self.metrics.batch)
        self._write_lock = threading.Lock()
        self._encode_lock = threading.Lock()
        if self.defaults:
            self.check_knobs({})

    def close(self) -> None:
        self.batcher.close()

    # --- facts --------------------------------------------------------------------

    @property
    def generation(self) -> int | None:
        return getattr(self.reader, "generation", None)

    @property
    def n_live(self) -> int:
        reader = self.reader
        return int(reader.n_live) if self.shape == "segmented" else int(reader.n_docs)

    def info(self) -> dict:
        reader = self.reader
        has_vocab = getattr(reader, "has_vocab", True)
        vocab = reader.vocab if has_vocab else None
        build = getattr(reader, "build_params", None)
        if build is None and self.shape == "segmented":  # the stored parameters over the kind's defaults
            build = make_params(get_kind(reader.kind).BuildParams, reader.manifest.get("build_params", {}),
                                f"{reader.kind} build")
        elif build is None:
            build = reader.shards[0].build_params
        return {"version": __version__, "kind": reader.kind, "shape": self.shape, "documents": self.n_live,
                "generation": self.generation,
                "vocabulary": None if vocab is None else {"name": vocab.name, "terms": len(vocab), "open": vocab.open},
                "settings": {"search": dataclasses.asdict(reader.search_params(**self.defaults)),
                             "build": dataclasses.asdict(build)},
                "writes": self.api_key is not None and self.writer is not None,
                "text_queries": self.encoder is not None, "passages": self.passages is not None,
                "limits": self.config.limits(), "batching": self.config.batching()}

    def gauges(self) -> dict[str, tuple[str, float]]:
        return {"sparseir_documents": ("Live documents of the generation searched.", self.n_live),
                "sparseir_generation": ("The generation searched (0: an index built once).", self.generation or 0),
                "sparseir_queue_depth": ("Requests waiting for the search thread.", self.batcher.queued)}

    # --- queries ------------------------------------------------------------------

    def knobs(self, params: dict) -> dict:
        return {**self.defaults, **params}

    def check_knobs(self, params: dict) -> dict:
        """The request's settings over the server's defaults, checked (ParameterError names a bad one)."""
        knobs = self.knobs(params)
        self.reader.search_params(**knobs)
        return knobs

    def encode_queries(self, texts: list[str]) -> list[dict]:
        """Texts -> {term: weight} with the query encoder (as ``encode_queries`` gives them for this list)."""
        if self.encoder is None:
            raise ParameterError("text queries need a query encoder, and this server has none (start it with the "
                                 "encode extra installed, --model or --query-encoder idf), or send vectors")
        with self._encode_lock:
            vectors = self.encoder.encode_queries(texts)
        return [vectors[row].as_dict(vectors.vocab) for row in range(len(vectors))]

    def encode_documents(self, texts: list[str]) -> list[dict]:
        if self.encoder is None or getattr(self.encoder, "documents", None) is None:
            raise ParameterError("documents as text need a document encoder, and this server has none; send vectors")
        with self._encode_lock:
            vectors = self.encoder.encode_documents(texts)
        return [vectors[row].as_dict(vectors.vocab) for row in range(len(vectors))]

    async def search(self, items: list[QueryItem], k: int, knobs: dict, filter_spec, arrival=None
                     ) -> tuple[list, int | None]:
        """[(query id, [(doc id, score)...])...] and the generation searched, through the batcher."""
        filter_key = None if filter_spec is None else (type(filter_spec).__name__, filter_spec if isinstance(
            filter_spec, str) else tuple(filter_spec))
        key = ("search", k, tuple(sorted((name, type(value).__name__, value) for name, value in knobs.items())),
               filter_key)
        return await self.batcher.submit(key, (items, filter_spec), len(items), arrival)

    def _run_searches(self, key: Hashable, payloads: list) -> list:
        """The worker's batch: every payload's queries in one search call on one generation."""
        _, k, knob_items, _ = key
        knobs = {name: value for name, _, value in knob_items}
        reader = self.reader
        generation = getattr(reader, "generation", None)
        if not getattr(reader, "has_vocab", True):  # an empty segmented index: nothing to find
            return [([(item.id, []) for item in items], generation) for items, _ in payloads]
        outcomes: list = [None] * len(payloads)
        parts = []
        for number, (items, _) in enumerate(payloads):
            try:
                parts.append((number, items, query_rows(items, reader.vocab)))
            except SparseirError as error:
                outcomes[number] = error
        if not parts:
            return outcomes
        filter_spec = payloads[parts[0][0]][1]
        try:
            allowed = None if filter_spec is None else reader.prepare_filter(
                filter_spec if isinstance(filter_spec, str) else [str(doc_id) for doc_id in filter_spec])
            sizes = np.concatenate([rows[0] for _, _, rows in parts])
            offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
            np.cumsum(sizes, out=offsets[1:])
            queries = SparseVectors(offsets, np.concatenate([rows[1] for _, _, rows in parts]),
                                    np.concatenate([rows[2] for _, _, rows in parts]), None, reader.vocab,
                                    validate=False)
            scores, rows = reader.search(queries, k=k, filter=allowed, **knobs)
        except SparseirError as error:
            for number, _, _ in parts:
                outcomes[number] = error
            return outcomes
        doc_ids = reader.doc_ids
        at = 0
        for number, items, _ in parts:
            results = []
            for item in items:
                found = rows[at] >= 0
                results.append((item.id, list(zip(doc_ids[rows[at][found]].tolist(), scores[at][found].tolist()))))
                at += 1
            outcomes[number] = (results, generation)
        return outcomes

    async def explain(self, item: QueryItem, doc_id, knobs: dict, arrival=None) -> dict:
        def run():
            reader = self.reader
            if not getattr(reader, "has_vocab", True):
                raise ParameterError(f"id {str(doc_id)!r} is not in the index (it is empty)")
            sizes, terms, weights = query_rows([item], reader.vocab)
            query = SparseVectors(np.array([0, sizes[0]]), terms, weights, None, reader.vocab, validate=False)
            return reader.explain(query, doc_id, **knobs).as_dict()

        return await self.batcher.call(run, arrival)

    def texts(self, doc_ids: list[str]) -> list[str | None]:
        if self.passages is None:
            return [None] * len(doc_ids)
        return [self.passages.text(doc_id) for doc_id in doc_ids]

    # --- writes -------------------------------------------------------------------

    def _writable(self):
        if self.api_key is None:
            raise WritesOff("writes are off: start sparseir serve with --api-key-file to take them")
        if self.writer is None:
            where = getattr(self.reader, "path", None) or "INDEX_DIR"
            raise NotWritable(f"this {self.shape} index is built once and takes no writes: serve a segmented index "
                              f"(sparseir index --segmented, or sparseir segment {where} --vectors VECTORS)")
        return self.writer

    def _write(self, operation) -> dict:
        """Run one write on the writer; whatever it committed (all of it, or a part before a
        failure) becomes the generation searched, in one assignment, before this returns."""
        with self._write_lock:
            writer = self._writable()
            try:
                operation(writer)
            finally:
                if writer.generation != self.reader.generation:
                    self.reader = copy.copy(writer)
            return {"generation": writer.generation, "documents": int(writer.n_live), "segments": len(writer.segments)}

    def add(self, documents: list[tuple[str, dict]], upsert: bool = False) -> dict:
        """Add (or with upsert, replace) documents given as (id, {term: weight}); returns once committed."""
        def operation(writer):
            if writer.has_vocab and not writer.vocab.open:
                builder = VectorBuilder(writer.vocab, unknown_term_hint=", which is fixed")
            elif writer.has_vocab:
                builder = VectorBuilder(Vocabulary.growing())  # mapped onto the index's by string when added
            else:  # the first documents set the vocabulary, as vocab="auto" does for a file
                builder = VectorBuilder(Vocabulary.default(), open_on_unknown_term=True)
            for doc_id, vector in documents:
                try:
                    builder.add(str(doc_id), vector)
                except ParameterError as e:
                    raise ParameterError(f"document {str(doc_id)!r}: {e}") from None
            writer.add(builder.build(), upsert=upsert)

        return self._write(operation)

    def delete(self, ids: list) -> dict:
        return self._write(lambda writer: writer.delete([str(doc_id) for doc_id in ids]))

    def compact(self) -> dict:
        return self._write(lambda writer: writer.compact())
