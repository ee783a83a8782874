"""The pipeline every encoder shares: tokenize a chunk ahead (truncating over-long texts), sort
by length, pad each batch only to its own longest text, weight the terms, restore the input
order, prune or quantise, and return `SparseVectors`, or stream them to a file."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from ..errors import InputError, ParameterError, require
from ..progress import Progress
from ..vectors import SparseVectors, Vocabulary
from ._base import EncoderOptions, TermWeighter, _is_int
from .output import vector_writer

# Texts sorted by length together: large enough that batches are nearly uniform in
# length, small enough to stream any collection in bounded memory.
CHUNK_BATCHES = 64

logger = logging.getLogger("sparseir.encoder")


class Encoder:
    """Encodes documents and queries into `SparseVectors` over one vocabulary."""

    def __init__(self, documents: TermWeighter | None, queries: TermWeighter | None = None,
                 options: EncoderOptions | None = None):
        queries = queries if queries is not None else documents
        require(queries is not None, "an encoder needs a document or a query model")
        if documents is not None and documents.vocab != queries.vocab:
            raise ParameterError(f"the document model uses {documents.vocab!r} but the query model "
                                 f"{queries.vocab!r}; both must share one tokenizer vocabulary")
        self.documents = documents
        self.queries = queries
        self.options = options if options is not None else EncoderOptions()

    @property
    def vocab(self) -> Vocabulary:
        return self.queries.vocab

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.vocab!r}, {self.options})"

    def encode_documents(self, texts: Sequence[str] | Iterable[str], ids: Sequence[str] | None = None,
                         batch_size: int = 32, progress: bool = False) -> SparseVectors:
        """One vector per text, in input order, ids carried along (default "0", "1", ...)."""
        return self._encode_all(self._document_weighter(), texts, ids, batch_size, progress,
                                self.options.doc_max_length)

    def encode_queries(self, texts: Sequence[str] | Iterable[str], ids: Sequence[str] | None = None,
                       batch_size: int = 32, progress: bool = False) -> SparseVectors:
        return self._encode_all(self.queries, texts, ids, batch_size, progress, self.options.query_max_length)

    def encode_file(self, path: str | os.PathLike, output_path: str | os.PathLike, query: bool = False,
                    batch_size: int = 32, progress: bool = False, overwrite: bool = False) -> int:
        """Stream an `id<TAB>text` file (.gz allowed), or an ``irds:<dataset id>``'s documents
        (queries with `query`), into a .jsonl(.gz) or .parquet file.

        The output appears only once every text is encoded. Returns the number written.
        """
        from ..formats import read_documents, read_queries

        weighter = self.queries if query else self._document_weighter()
        max_length = self.options.query_max_length if query else self.options.doc_max_length
        read = read_queries if query else read_documents
        records = ((record.id, record.text) for record in read(path))
        count = 0
        with vector_writer(output_path, self.vocab, overwrite) as write:
            for vectors, texts in self._encode_chunks(weighter, records, batch_size, progress, max_length, path):
                write(vectors, texts)
                count += len(vectors)
        return count

    # --- internals ------------------------------------------------------------------

    def _document_weighter(self) -> TermWeighter:
        if self.documents is None:
            raise ParameterError("this encoder only encodes queries (inference-free); load a document model with "
                                 "load_encoder(model, kind='idf', idf=...)")
        return self.documents

    def _encode_all(self, weighter, texts, ids, batch_size, progress, max_length) -> SparseVectors:
        if isinstance(texts, str):
            raise ParameterError("texts must be a sequence of strings, not one string")
        if ids is None:
            records = ((str(row), text) for row, text in enumerate(texts))
        else:
            texts = texts if hasattr(texts, "__len__") else list(texts)
            if len(ids) != len(texts):
                raise ParameterError(f"{len(ids)} ids for {len(texts)} texts")
            records = zip((str(i) for i in ids), texts)
        parts = [vectors for vectors, _ in self._encode_chunks(weighter, records, batch_size, progress, max_length)]
        if not parts:
            return SparseVectors(np.zeros(1, np.int64), [], [], np.empty(0, str), self.vocab, validate=False)
        return SparseVectors.concatenate(parts)

    def _encode_chunks(self, weighter, records: Iterable[tuple[str, str]], batch_size: int, progress: bool,
                       max_length: int, source=None) -> Iterator[tuple[SparseVectors, list[str]]]:
        require(_is_int(batch_size) and batch_size >= 1, f"batch_size must be a positive integer, got {batch_size!r}")
        total = truncated = 0

        def tokenize(chunk: tuple[list[str], list[str]]) -> TokenizedChunk:
            return tokenize_chunk(weighter, *chunk, max_length, source)

        with progress_bar(progress) as advance:
            # The next chunk is tokenized on a background thread while this one runs the model.
            for chunk in computed_ahead(tokenize, _chunks(records, batch_size * CHUNK_BATCHES)):
                vectors = self._weigh_chunk(weighter, chunk, batch_size)
                total += len(chunk.texts)
                truncated += chunk.truncated
                advance(len(chunk.texts))
                yield vectors, chunk.texts
        if truncated:
            logger.warning("truncated %d of %d texts to %d tokens", truncated, total, max_length)

    def _weigh_chunk(self, weighter, chunk: "TokenizedChunk", batch_size: int) -> SparseVectors:
        lengths = np.fromiter(map(len, chunk.token_ids), dtype=np.int64, count=len(chunk.token_ids))
        # Longest first: similar lengths share a batch (little padding) and a batch that
        # does not fit in memory fails at once.
        order = np.argsort(-lengths, kind="stable")
        sizes, terms, weights = [], [], []
        for rows in batch_rows(order, lengths, batch_size, self.options.batch_tokens):
            dense = weighter.term_weights([chunk.token_ids[row] for row in rows])
            batch_sizes, batch_terms, batch_weights = sparsify(dense, self.options)
            sizes.append(batch_sizes)
            terms.append(batch_terms)
            weights.append(batch_weights)
        offsets = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(np.concatenate(sizes), out=offsets[1:])
        by_length = SparseVectors(offsets, np.concatenate(terms), np.concatenate(weights),
                                  np.asarray(chunk.ids)[order], self.vocab, validate=False)
        return by_length.take(np.argsort(order))


class TokenizedChunk(NamedTuple):
    ids: list[str]
    texts: list[str]
    token_ids: list[np.ndarray]
    truncated: int  # how many texts were cut to max_length


def tokenize_chunk(weighter: TermWeighter, ids: list[str], texts: list[str], max_length: int,
                   source) -> TokenizedChunk:
    """Check and tokenize one chunk; an empty text is an error naming its id (and file)."""
    for vector_id, text in zip(ids, texts):
        if not isinstance(text, str):
            raise ParameterError(f"text {vector_id!r} is {type(text).__name__}, not a string")
    token_ids, truncated = weighter.tokenize(texts, max_length)
    n_special = weighter.n_special_tokens()
    for vector_id, ids_of_text in zip(ids, token_ids):
        if len(ids_of_text) <= n_special:
            message = f"empty text (id {vector_id!r})"
            raise InputError(message, source) if source is not None else ParameterError(message)
    return TokenizedChunk(ids, texts, token_ids, truncated)


def batch_rows(order: np.ndarray, lengths: np.ndarray, batch_size: int,
               batch_tokens: int | None) -> Iterator[np.ndarray]:
    """Consecutive runs of `order` (longest text first): batch_size texts each, or, with a
    token budget, as many texts as fit in batch_tokens padded tokens (at least one)."""
    if batch_tokens is None:
        for start in range(0, len(order), batch_size):
            yield order[start:start + batch_size]
        return
    start = 0
    while start < len(order):
        # Sorted longest first, so a batch is padded to its first text's length.
        stop = start + max(1, batch_tokens // int(lengths[order[start]]))
        yield order[start:stop]
        start = stop


def computed_ahead(function: Callable, items: Iterable) -> Iterator:
    """function(item) for each item, in order; the next item's result is computed on a
    background thread while the caller works on the current one."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sparseir-tokenize") as worker:
        pending = None
        for item in items:
            submitted = worker.submit(function, item)
            if pending is not None:
                yield pending.result()
            pending = submitted
        if pending is not None:
            yield pending.result()


def sparsify(dense: np.ndarray, options: EncoderOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense (n, V) weights -> CSR row sizes, term ids and weights after pruning/quantising."""
    keep = dense > options.threshold
    n_terms = dense.shape[1]
    if options.top_k is not None and options.top_k < n_terms:
        largest = np.argpartition(dense, n_terms - options.top_k, axis=1)[:, n_terms - options.top_k:]
        in_top = np.zeros_like(keep)
        np.put_along_axis(in_top, largest, True, axis=1)
        keep &= in_top
    if options.quantize is not None:
        dense = np.rint(dense * np.float32(options.quantize))
        keep &= dense > 0
    rows, terms = np.nonzero(keep)  # row-major: terms come out ascending within each row
    sizes = np.bincount(rows, minlength=len(dense))
    weights = np.ones(len(terms), dtype=np.float32) if options.binary else dense[rows, terms].astype(np.float32)
    return sizes, terms.astype(np.int32), weights


def batched(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items (the last one shorter), streaming."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _chunks(records: Iterable[tuple[str, str]], size: int) -> Iterator[tuple[list[str], list[str]]]:
    for batch in batched(records, size):
        yield [vector_id for vector_id, _ in batch], [text for _, text in batch]


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[int], None]]:
    """Yield a function that advances a texts-per-second bar on stderr (or does nothing)."""
    with Progress("encoding", unit=" texts", enabled=enabled) as bar:
        yield bar.advance
