"""Datasets in MS MARCO layout, and the embedded demo collection.

A dataset directory holds ``collection.tsv``, ``queries.tsv`` and ``qrels.txt`` (qrels
optional), and, when the texts are already encoded, ``vectors/collection.jsonl.gz`` and
``vectors/queries.jsonl.gz``. Without vectors the texts are encoded with the default model.
Documents, queries and qrels given one by one may also be ``irds:<dataset id>`` sources.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable

from .errors import InputError
from .formats import TextRecord, is_irds_source, is_text_file, read_documents, read_queries, read_vectors
from .formats.irds import check_irds_source
from .vectors import SparseVectors, Vocabulary

# Names tried in order inside a dataset directory.
COLLECTION_FILES = ("collection.tsv", "collection.tsv.gz")
QUERY_FILES = ("queries.tsv", "queries.tsv.gz")
QRELS_FILES = ("qrels.txt", "qrels.tsv", "qrels.txt.gz")
DOC_VECTOR_FILES = ("vectors/collection.jsonl.gz", "vectors/collection.jsonl", "vectors/collection.parquet")
QUERY_VECTOR_FILES = ("vectors/queries.jsonl.gz", "vectors/queries.jsonl", "vectors/queries.parquet")


# A file, or an ``irds:<dataset id>`` (kept as the string).
Source = Path | str


@dataclass(frozen=True)
class Dataset:
    """Where one collection's files are; texts or vectors may be missing, not both."""

    name: str
    collection: Source | None = None
    queries: Source | None = None
    qrels: Source | None = None
    doc_vectors: Path | None = None
    query_vectors: Path | None = None

    def __post_init__(self):
        if self.collection is None and self.doc_vectors is None:
            raise InputError("no collection: need collection.tsv or vectors/collection.jsonl.gz", self.name)
        if self.queries is None and self.query_vectors is None:
            raise InputError("no queries: need queries.tsv or vectors/queries.jsonl.gz", self.name)
        for path in (self.collection, self.queries, self.qrels, self.doc_vectors, self.query_vectors):
            if path is not None and not is_irds_source(path) and not Path(path).is_file():
                raise InputError("no such file", path)
        # Now, not after the documents are encoded: an unknown id or a file ir_datasets lacks.
        for source, part in ((self.collection, "docs"), (self.queries, "queries"), (self.qrels, "qrels")):
            if source is not None and is_irds_source(source):
                check_irds_source(source, part)

    def describe(self) -> dict[str, str | None]:
        return {"name": self.name, **{key: None if value is None else os.fspath(value)
                                      for key, value in vars(self).items() if key != "name"}}


def _source(value: str | os.PathLike) -> Source:
    return os.fspath(value) if is_irds_source(value) else Path(value)


def _first_existing(directory: Path, names: tuple[str, ...]) -> Path | None:
    return next((directory / name for name in names if (directory / name).is_file()), None)


def open_dataset(directory: str | os.PathLike | None = None, docs: str | os.PathLike | None = None,
                 queries: str | os.PathLike | None = None, qrels: str | os.PathLike | None = None) -> Dataset:
    """A dataset from a directory in MS MARCO layout, explicit paths, or both (paths win).

    `docs` and `queries` may be text (.tsv, or ``irds:<dataset id>``) or vectors (.jsonl[.gz],
    .bin, .parquet); `qrels` a file or ``irds:<dataset id>``.
    """
    found: dict[str, Source | None] = {}
    name = "dataset"
    if directory is not None:
        root = Path(directory)
        if not root.is_dir():
            raise InputError("not a dataset directory (expected collection.tsv, queries.tsv, qrels.txt)", root)
        name = os.fspath(root)
        found = {"collection": _first_existing(root, COLLECTION_FILES),
                 "queries": _first_existing(root, QUERY_FILES),
                 "qrels": _first_existing(root, QRELS_FILES),
                 "doc_vectors": _first_existing(root, DOC_VECTOR_FILES),
                 "query_vectors": _first_existing(root, QUERY_VECTOR_FILES)}
    for value, text_key, vector_key in ((docs, "collection", "doc_vectors"), (queries, "queries", "query_vectors")):
        if value is not None:
            found.update({text_key: None, vector_key: None})
            found[text_key if is_text_file(value) else vector_key] = _source(value)
    if qrels is not None:
        found["qrels"] = _source(qrels)
    if directory is None and docs is not None:
        name = os.fspath(docs)
    return Dataset(name, **found)


def demo_dataset() -> Dataset:
    """The small collection shipped inside the package (see sparseir/data/demo/SOURCE.md)."""
    return open_dataset(Path(str(resources.files("sparseir.data") / "demo")))


def demo_config() -> Path:
    """The sweep the demo runs, also usable with ``sparseir bench``."""
    return Path(str(resources.files("sparseir.data") / "demo" / "bench.toml"))


def load_vectors(dataset: Dataset, vocab: Vocabulary | None = None, batch_size: int = 32,
                 progress: bool = True) -> tuple[SparseVectors, SparseVectors]:
    """(documents, queries) as vectors: read when pre-encoded, else encoded with the default model."""
    pre_encoded = dataset.doc_vectors is not None and dataset.query_vectors is not None
    encoder = None if pre_encoded else default_encoder()
    if dataset.doc_vectors is not None:
        docs = read_vectors(dataset.doc_vectors, vocab=vocab)
    else:
        texts, ids = texts_and_ids(read_documents(dataset.collection))
        docs = encoder.encode_documents(texts, ids=ids, batch_size=batch_size, progress=progress)
    if dataset.query_vectors is not None:
        queries = read_vectors(dataset.query_vectors, vocab=docs.vocab)
    else:
        texts, ids = texts_and_ids(read_queries(dataset.queries))
        queries = encoder.encode_queries(texts, ids=ids, progress=progress)
    return docs, queries


def texts_and_ids(records: Iterable[TextRecord]) -> tuple[list[str], list[str]]:
    records = list(records)
    return [record.text for record in records], [record.id for record in records]


def default_encoder():
    """The embedded SPLADE model (a one-line error when the encoding extra is missing)."""
    from .encoder import load_encoder

    return load_encoder("default")
