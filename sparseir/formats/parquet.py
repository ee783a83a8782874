"""Parquet vectors: columns `id` (string), `terms` (list<int32>), `weights` (list<float32>).

The vocabulary travels in the schema metadata (its name when it is a known one, else
the term list), so term ids stay meaningful outside this process.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Callable, Iterator

import numpy as np

from ..errors import InputError
from ..fileio import atomic_file, check_readable
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


def read_parquet(path: str | os.PathLike, vocab: Vocabulary | str | None = "auto") -> SparseVectors:
    """The vocabulary embedded in the file wins over `vocab`, which serves files from elsewhere."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = check_readable(path)
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"not a Parquet file: {e}", path) from None
    names = set(parquet.schema_arrow.names)
    missing = {"id", "terms", "weights"} - names
    if missing:
        raise InputError(f"missing column(s) {sorted(missing)}; expected id, terms, weights", path)
    embedded_vocab = (parquet.schema_arrow.metadata or {}).get(VOCAB_KEY)
    ids, sizes, terms, weights = [], [], [], []
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=["id", "terms", "weights"]):
        term_lists, weight_lists = batch.column("terms"), batch.column("weights")
        term_sizes = np.asarray(term_lists.value_lengths().fill_null(0))
        if not np.array_equal(term_sizes, np.asarray(weight_lists.value_lengths().fill_null(0))):
            raise InputError("terms and weights lists differ in length", path)
        ids.extend(batch.column("id").to_pylist())
        sizes.append(term_sizes)
        terms.append(np.asarray(term_lists.flatten(), dtype=np.int64))
        weights.append(np.asarray(weight_lists.flatten(), dtype=np.float32))
    if not ids:
        raise InputError("no vectors found (empty file?)", path)
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(np.concatenate(sizes), out=offsets[1:])
    if len(set(ids)) != len(ids):
        raise InputError("duplicate ids", path)
    terms = np.concatenate(terms)
    try:
        if embedded_vocab is not None:
            vocab = _vocab_from_metadata(embedded_vocab)
        else:
            vocab, terms = vocab_for_term_ids(terms, offsets, vocab)
        return SparseVectors(offsets, terms, np.concatenate(weights), ids, vocab)
    except ValueError as e:
        raise InputError(str(e), path) from None
