"""Parquet vectors: columns `id` (string), `terms` (list<int32>), `weights` (list<float32>).

The vocabulary travels in the schema metadata (its name when it is a known one, else
the term list), so term ids stay meaningful outside this process.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from ..errors import InputError
from ..fileio import atomic_file, check_readable
from ..workspace import IN_MEMORY
from ..vectors import DEFAULT_VOCAB_NAME, SparseVectors, Vocabulary
from .vocabs import vocab_for_term_ids

VOCAB_KEY = b"sparseir.vocab"
BATCH_ROWS = 65536


def vocab_metadata(vocab: Vocabulary) -> bytes:
    if vocab.name == DEFAULT_VOCAB_NAME and vocab == Vocabulary.default():
        return json.dumps({"name": vocab.name}).encode()
    return json.dumps({"name": vocab.name, "open": vocab.open, "terms": vocab.terms}).encode()


def _vocab_from_metadata(raw: bytes) -> Vocabulary:
    meta = json.loads(raw)
    if "terms" not in meta:
        return Vocabulary.default()
    return Vocabulary(meta["terms"], meta.get("name"), meta.get("open", False))


@contextlib.contextmanager
def parquet_writer(path: str | os.PathLike, vocab: Vocabulary, overwrite: bool = False) -> Iterator[Callable]:
    """Yield write(vectors), appending batches to one Parquet file written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("terms", pa.large_list(pa.int32())),
                        ("weights", pa.large_list(pa.float32()))], metadata={VOCAB_KEY: vocab_metadata(vocab)})

    with atomic_file(path, mode="wb", overwrite=overwrite) as f, pq.ParquetWriter(f, schema) as parquet:
        def write(vectors: SparseVectors) -> None:
            offsets = pa.array(vectors.offsets, type=pa.int64())
            parquet.write_table(pa.table({
                "id": pa.array(vectors.ids.astype(object), type=pa.string()),
                "terms": pa.LargeListArray.from_arrays(offsets, pa.array(vectors.terms, type=pa.int32())),
                "weights": pa.LargeListArray.from_arrays(offsets, pa.array(vectors.weights, type=pa.float32())),
            }, schema=schema), row_group_size=BATCH_ROWS)
        yield write


def write_parquet(vectors: SparseVectors, path: str | os.PathLike, overwrite: bool = False) -> None:
    with parquet_writer(path, vectors.vocab, overwrite) as write:
        write(vectors)


def read_parquet(paths: str | os.PathLike | Sequence[str | os.PathLike],
                 vocab: Vocabulary | str | None = "auto", workspace=None) -> SparseVectors:
    """One file, or the parts of one collection in order, streamed a row group at a time
    into arrays sized once from the files' metadata (an out-of-core `workspace`'s files).

    The vocabulary embedded in the files (the same in every part) wins over `vocab`, which
    serves files from elsewhere; with it, each batch is checked as it is read.
    """
    import pyarrow as pa

    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    files = [_open(path) for path in paths]
    embedded_vocab = _embedded_vocab(paths, files)
    n_rows = sum(parquet.metadata.num_rows for parquet in files)
    # Term ids keep a foreign file's wider integers until vocab_for_term_ids has renumbered them.
    wide = any(parquet.schema_arrow.field("terms").type.value_type != pa.int32() for parquet in files)
    offsets = np.zeros(n_rows + 1, dtype=np.int64)
    workspace = workspace if workspace is not None else IN_MEMORY
    known_vocab = None if embedded_vocab is None else _vocab_from_metadata(embedded_vocab)
    terms = workspace.empty(sum(_values(parquet, "terms") for parquet in files), np.int64 if wide else np.int32)
    weights = workspace.empty(len(terms), np.float32)
    del files  # an open file read through holds its data (a part's size in memory): one part at a time below
    ids: list = []
    seen: set = set()
    rows = nnz = 0
    bar = workspace.progress_bar("reading", n_rows)
    for path in paths:
        first_row = rows
        for batch in _open(path).iter_batches(batch_size=BATCH_ROWS, columns=["id", "terms", "weights"]):
            term_lists, weight_lists = batch.column("terms"), batch.column("weights")
            sizes = term_lists.value_lengths().fill_null(0).to_numpy()
            if not np.array_equal(sizes, weight_lists.value_lengths().fill_null(0).to_numpy()):
                raise InputError("terms and weights lists differ in length", path)
            term_values, weight_values = term_lists.flatten(), weight_lists.flatten()
            if term_values.null_count or weight_values.null_count:
                raise InputError("null term id or weight in a list", path)
            end = nnz + len(term_values)
            if end > len(terms):
                raise InputError("more list values than the file's metadata counts (corrupt file?)", path)
            terms[nnz:end] = term_values.to_numpy()  # Arrow's buffers, copied once
            weights[nnz:end] = weight_values.to_numpy()
            np.cumsum(sizes, out=offsets[rows + 1:rows + 1 + len(sizes)])
            offsets[rows + 1:rows + 1 + len(sizes)] += nnz
            ids.extend(batch.column("id").to_pylist())
            if known_vocab is not None:  # checked here, while the batch is in memory
                try:
                    SparseVectors(offsets[rows:rows + len(sizes) + 1] - nnz, terms[nnz:end], weights[nnz:end],
                                  ids[rows:], known_vocab)
                except ValueError as e:
                    raise InputError(str(e), path) from None
            workspace.release()
            rows, nnz = rows + len(sizes), end
            bar.advance_to(rows)
        if rows == first_row:
            raise InputError("no vectors found (empty file?)", path)
        seen.update(ids[first_row:])
        if len(seen) != rows:
            raise InputError("duplicate ids", path)
        del batch, term_lists, weight_lists, term_values, weight_values
        pa.default_memory_pool().release_unused()  # Arrow's allocator would keep the part's pages
    bar.close()
    terms, weights = terms[:nnz], weights[:nnz]
    source = paths[0] if len(paths) == 1 else os.path.commonpath([os.path.abspath(path) for path in paths])
    try:
        if known_vocab is not None:
            return SparseVectors(offsets, terms, weights, ids, known_vocab, validate=False)
        vocab, terms = vocab_for_term_ids(terms, offsets, vocab)
        return SparseVectors(offsets, terms, weights, ids, vocab)
    except ValueError as e:
        raise InputError(str(e), source) from None


def _open(path: str | os.PathLike):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = check_readable(path)
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"not a Parquet file: {e}", path) from None
    missing = {"id", "terms", "weights"} - set(parquet.schema_arrow.names)
    if missing:
        raise InputError(f"missing column(s) {sorted(missing)}; expected id, terms, weights", path)
    integers = pa.types.is_integer
    for column, values, what in (("terms", integers, "integers"),
                                 ("weights", lambda kind: integers(kind) or pa.types.is_floating(kind), "numbers")):
        kind = parquet.schema_arrow.field(column).type
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or not values(kind.value_type):
            raise InputError(f"column {column!r} is {kind}, expected lists of {what}", path)
    return parquet


def _embedded_vocab(paths: list, files: list) -> bytes | None:
    """The vocabulary metadata the files carry: the same in every part, or none in any."""
    embedded = [(parquet.schema_arrow.metadata or {}).get(VOCAB_KEY) for parquet in files]
    for path, raw in zip(paths[1:], embedded[1:]):
        if raw != embedded[0]:
            raise InputError(f"its vocabulary differs from that of {os.fspath(paths[0])}", path)
    return embedded[0]


def _values(parquet, column: str) -> int:
    """How many values the file's list column holds, at most (its metadata counts null and
    empty lists too): room enough for the column."""
    metadata = parquet.metadata
    return sum(metadata.row_group(group).column(j).num_values for group in range(metadata.num_row_groups)
               for j in range(metadata.num_columns)
               if metadata.row_group(group).column(j).path_in_schema.split(".")[0] == column)
