"""sparseir in PyTerrier pipelines: encoder, indexer and retriever transformers.

    import pyterrier as pt
    from sparseir.pyterrier import SparseirEncoder, SparseirIndex

    encoder = SparseirEncoder("default")                 # any model load_encoder takes
    index = SparseirIndex("scifact.sparseir")
    (encoder.doc_encoder() >> index.indexer(kind="sindi")).index(dataset.get_corpus_iter())
    retrieve = encoder.query_encoder() >> index.retriever(k=1000, query_prune_ratio=0.2)
    pt.Experiment([retrieve], topics, qrels, eval_metrics=[pt.measures.RR @ 10, pt.measures.nDCG @ 10])

Columns follow PyTerrier's conventions (as pyterrier-splade and pyterrier-pisa use them):
documents carry ``docno`` and ``text`` or ``toks`` (a {term: weight} dict); queries carry
``qid`` and ``query`` or ``query_toks``. A retriever returns PyTerrier's result frame: the
query columns, then ``docid`` (the row in the index), ``docno``, ``rank`` (from 0) and
``score``, ranked within each query in input order. Batching is done inside; text is
encoded with the given encoder, or the embedded model when none is given.
"""

from __future__ import annotations

import itertools
import os
from typing import Iterable, Iterator

import numpy as np

from .encoder import batched
from .errors import ParameterError
from .extras import require_extra

require_extra("pyterrier", "sparseir.pyterrier")

import pandas as pd  # noqa: E402  (after the check: pyterrier brings pandas)
import pyterrier as pt  # noqa: E402

__all__ = ["FusionTransformer", "SparseirEncoder", "SparseirIndex", "SparseirIndexer", "SparseirRetriever", "fuse"]

# Records per batch when streaming documents through an encoder.
ENCODE_BATCH = 1024
RESULT_COLUMNS = ["docid", "docno", "rank", "score"]


class SparseirEncoder:
    """A sparseir encoder as PyTerrier transformers: documents get ``toks``, queries ``query_toks``.

    encoder: an `Encoder`, or a model for `load_encoder` ("default": the embedded model),
    loaded on first use with `kind`, `query_model` and the `EncoderOptions` in `options`.
    """

    def __init__(self, encoder="default", kind: str = "splade", query_model=None, batch_size: int = 32,
                 **options):
        self._encoder = None if isinstance(encoder, (str, os.PathLike)) else encoder
        self._load = (encoder, kind, query_model, options)
        self.batch_size = batch_size

    @property
    def encoder(self):
        if self._encoder is None:
            from .encoder import load_encoder

            model, kind, query_model, options = self._load
            self._encoder = load_encoder(model, kind=kind, query_model=query_model, **options)
        return self._encoder

    def doc_encoder(self, text_field: str = "text") -> "TextEncoder":
        return TextEncoder(self, "docno", text_field, "toks", query=False)

    def query_encoder(self) -> "TextEncoder":
        return TextEncoder(self, "qid", "query", "query_toks", query=True)

    def term_dicts(self, texts: list[str], ids: list[str], query: bool) -> list[dict]:
        encode = self.encoder.encode_queries if query else self.encoder.encode_documents
        vectors = encode(texts, ids=ids, batch_size=self.batch_size)
        return [vector.as_dict(vectors.vocab) for vector in vectors]


class TextEncoder(pt.Transformer):
    """Adds a {term: weight} column (`output_field`) encoded from a text column."""

    def __init__(self, encoder: SparseirEncoder, id_field: str, text_field: str, output_field: str, query: bool):
        self.encoder = encoder
        self.id_field, self.text_field, self.output_field = id_field, text_field, output_field
        self.query = query

    def __repr__(self) -> str:
        return f"TextEncoder({self.text_field!r} -> {self.output_field!r})"

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        require_columns(inp, [self.id_field, self.text_field], self)
        out = inp.copy()
        out[self.output_field] = self.encoder.term_dicts(out[self.text_field].tolist(),
                                                         out[self.id_field].astype(str).tolist(), self.query)
        return out

    def transform_iter(self, inp: Iterable[dict]) -> Iterator[dict]:
        # Streams (indexing a corpus): one batch of records in memory at a time.
        for batch in batched(inp, ENCODE_BATCH):
            require_columns(batch[0], [self.id_field, self.text_field], self)
            dicts = self.encoder.term_dicts([record[self.text_field] for record in batch],
                                            [str(record[self.id_field]) for record in batch], self.query)
            for record, terms in zip(batch, dicts):
                yield {**record, self.output_field: terms}


class SparseirIndex:
    """An index directory, as PyTerrier artifacts are: `indexer()` writes it, `retriever()` reads it."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._index = None

    def __repr__(self) -> str:
        return f"SparseirIndex({self.path!r})"

    @property
    def index(self):
        if self._index is None:
            from .loading import load_index

            self._index = load_index(self.path)
        return self._index

    def indexer(self, kind: str = "sindi", encoder: SparseirEncoder | None = None, vocab: str = "auto",
                overwrite: bool = False, **build_params) -> "SparseirIndexer":
        return SparseirIndexer(self, kind, encoder, vocab, overwrite, build_params)

    def retriever(self, k: int = 1000, encoder: SparseirEncoder | None = None, threads: int | None = None,
                  **search_params) -> "SparseirRetriever":
        return SparseirRetriever(self, k, encoder, threads, search_params)


class SparseirIndexer(pt.Indexer):
    """Builds any kind from documents with ``docno`` and ``toks``, or ``text`` (encoded here)."""

    def __init__(self, target: SparseirIndex, kind: str, encoder: SparseirEncoder | None, vocab: str,
                 overwrite: bool, build_params: dict):
        from .formats.vocabs import check_vocab

        check_vocab(vocab)
        self.target, self.kind, self.encoder = target, kind, encoder
        self.vocab, self.overwrite, self.build_params = vocab, overwrite, build_params

    def __repr__(self) -> str:
        return f"SparseirIndexer({self.target.path!r}, kind={self.kind!r})"

    def index(self, iter: Iterable[dict], **kwargs) -> SparseirIndex:
        from .fileio import refuse_existing
        from .formats.vocabs import is_auto, resolve_vocab
        from .index import build_index
        from .vectors import VectorBuilder

        refuse_existing(self.target.path, self.overwrite)  # before encoding a whole corpus
        builder = VectorBuilder(resolve_vocab(self.vocab), open_on_unknown_term=is_auto(self.vocab))
        for record in self._with_toks(iter):
            try:
                builder.add(str(record["docno"]), record["toks"])
            except ParameterError as e:
                raise ParameterError(f"document {record['docno']!r}: {e}") from None
        if not len(builder):
            raise ParameterError("no documents to index")
        build_index(builder.build(), kind=self.kind, **self.build_params).save(self.target.path, self.overwrite)
        self.target._index = None  # a retriever made earlier reads the new index
        return self.target

    def _with_toks(self, records: Iterable[dict]) -> Iterator[dict]:
        records = iter(records)
        first = next(records, None)
        if first is None:
            return
        records = itertools.chain([first], records)
        if "toks" in first:
            yield from records
            return
        require_columns(first, ["docno", "text"], self, "or `toks`")
        yield from (self.encoder or SparseirEncoder()).doc_encoder().transform_iter(records)


class SparseirRetriever(pt.Transformer):
    """Queries (``qid`` with ``query_toks``, or ``query`` encoded here) -> top-k results."""

    def __init__(self, source: SparseirIndex, k: int, encoder: SparseirEncoder | None, threads: int | None,
                 search_params: dict):
        self.source, self.k, self.encoder = source, k, encoder
        self.threads, self.search_params = threads, search_params

    def __repr__(self) -> str:
        return f"SparseirRetriever({self.source.path!r}, k={self.k})"

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        from .formats.vocabs import resolve_vocab
        from .vectors import SparseVectors

        index = self.source.index
        query_columns = pt.model.query_columns(inp)  # the input's; terms encoded here are not added
        if "query_toks" in inp.columns:
            term_dicts = inp["query_toks"].tolist()
        else:
            require_columns(inp, ["qid", "query"], self, "or `query_toks`")
            term_dicts = (self.encoder or SparseirEncoder()).term_dicts(
                inp["query"].tolist(), inp["qid"].astype(str).tolist(), query=True)
        # A copy: an open vocabulary grows with unseen query terms (which match nothing).
        queries = SparseVectors.from_dicts(term_dicts, vocab=resolve_vocab(index.vocab))
        k = min(self.k, index.n_docs)
        scores, rows = index.search(queries, k=k, threads=self.threads, **self.search_params)
        found = rows >= 0
        query_rows = np.repeat(np.arange(len(inp)), found.sum(axis=1))
        result = inp[query_columns].iloc[query_rows].reset_index(drop=True)
        result["docid"] = rows[found].astype(np.int64)
        result["docno"] = np.asarray(index.doc_ids, dtype=object)[rows[found]]
        # Results come best first within each query, so ranks are positions.
        result["rank"] = np.broadcast_to(np.arange(k), rows.shape)[found].astype(np.int64)
        result["score"] = scores[found].astype(np.float64)
        return result[query_columns + RESULT_COLUMNS] if len(result) else empty_result(query_columns)


class FusionTransformer(pt.Transformer):
    """Queries -> each transformer's results, fused into one ranking (``sparseir.fusion``: ranx's
    rrf, combsum, combmnz or wsum over normalized scores). The result frame carries the query
    columns, ``docno``, ``rank`` (from 0) and ``score``, best first within each query.

        hybrid = fuse(encoder.query_encoder() >> SparseirIndex("idx").retriever(), dense_retriever, method="rrf")
    """

    def __init__(self, *transformers, method: str = "rrf", norm: str = "minmax", weights=None, rrf_k: int = 60,
                 depth: int | None = 1000):
        from .fusion import FusionConfig

        self.transformers = list(transformers)
        self.config = FusionConfig(method, norm, None if weights is None else tuple(weights), rrf_k, depth,
                                   len(self.transformers))

    def __repr__(self) -> str:
        return f"FusionTransformer({', '.join(map(repr, self.transformers))}, method={self.config.method!r})"

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        from .formats import ScoredDoc
        from .fusion import fuse_prepared, prepare

        require_columns(inp, ["qid"], self)
        query_columns = pt.model.query_columns(inp)
        runs = []
        for transformer in self.transformers:
            result = transformer.transform(inp)
            require_columns(result, ["qid", "docno", "score"], transformer)
            # Rank order first: among equal scores, the order the transformer ranked them in.
            ordered = result.sort_values("rank", kind="stable") if "rank" in result.columns else result
            runs.append([ScoredDoc(str(q), str(d), float(s)) for q, d, s in
                         zip(ordered["qid"], ordered["docno"], ordered["score"])])
        if not any(runs):
            return empty_result(query_columns).drop(columns=["docid"])
        fused = fuse_prepared(prepare(runs), self.config)
        frame = pd.DataFrame({"qid": [s.query_id for s in fused], "docno": [s.doc_id for s in fused],
                              "score": [s.score for s in fused]})
        frame["rank"] = frame.groupby("qid", sort=False).cumcount().astype(np.int64)
        queries = inp[query_columns].assign(qid=inp["qid"].astype(str)).drop_duplicates("qid")
        return queries.merge(frame, on="qid", how="inner")[query_columns + ["docno", "rank", "score"]]


def fuse(*transformers, **options) -> FusionTransformer:
    """A transformer fusing the results of `transformers` (``FusionTransformer``)."""
    return FusionTransformer(*transformers, **options)


def empty_result(query_columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({**{column: pd.Series(dtype=object) for column in query_columns},
                         "docid": pd.Series(dtype=np.int64), "docno": pd.Series(dtype=object),
                         "rank": pd.Series(dtype=np.int64), "score": pd.Series(dtype=np.float64)})


def require_columns(frame, columns: list[str], transformer, alternative: str = "") -> None:
    """A one-line error naming the transformer and the missing columns."""
    present = frame.columns if isinstance(frame, pd.DataFrame) else frame.keys()
    missing = [column for column in columns if column not in present]
    if missing:
        raise ParameterError(f"{transformer!r} needs column(s) {', '.join(map(repr, missing))}"
                             f"{' ' + alternative if alternative else ''}; got {', '.join(map(repr, present))}")


