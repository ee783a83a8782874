"""File formats: a registry picks the reader/writer by extension (gzip is transparent).

Vector formats: ``jsonl`` (Anserini JsonVectorCollection), ``bin`` (Seismic binary),
``parquet``, ``ciff`` (an inverted index in the Common Index File Format, read as documents). Text formats: ``tsv`` (MS MARCO collection/queries), TREC qrels, TREC and
MS MARCO runs. Documents, queries and qrels may also come from ir_datasets as
``irds:<dataset id>`` (`read_documents`, `read_queries`, `read_qrels`).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError, ParameterError
from ..vectors import SparseVectors, Vocabulary
from .irds import IRDS_PREFIX, is_irds_source, read_irds
from .jsonl import read_jsonl, write_jsonl
from .lines import BadLines
from .parquet import read_parquet, write_parquet
from .records import Qrel, ScoredDoc, TextRecord
from .seismic_bin import read_seismic_bin, write_seismic_bin
from .text import read_texts, write_texts
from .trec import RUN_FORMATS, read_run, write_run
from .trec import read_qrels as read_qrels_file
from .vocabs import VOCAB_CHOICES, check_vocab

VECTOR_FORMATS = ("jsonl", "bin", "parquet", "ciff")
_EXTENSIONS = {".jsonl": "jsonl", ".json": "jsonl", ".bin": "bin", ".parquet": "parquet", ".ciff": "ciff",
               ".tsv": "tsv", ".txt": "tsv", ".tsv.gz": "tsv"}
# What a directory's parts end in: the names sparseir writes (not .json, which is also
# encode-ray's plan file parts.json).
_PART_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet", ".bin", ".bin.gz")

__all__ = [
    "IRDS_PREFIX",
    "RUN_FORMATS",
    "VECTOR_FORMATS",
    "VOCAB_CHOICES",
    "BadLines",
    "Qrel",
    "ScoredDoc",
    "TextRecord",
    "detect_format",
    "is_irds_source",
    "is_text_file",
    "read_documents",
    "read_qrels",
    "read_queries",
    "read_run",
    "read_texts",
    "read_vectors",
    "vector_parts",
    "write_run",
    "write_texts",
    "write_vectors",
]


def detect_format(path: str | os.PathLike) -> str | None:
    """The format named by the file's extension (ignoring a trailing .gz), or None."""
    return _EXTENSIONS.get(Path(Path(path).name.lower().removesuffix(".gz")).suffix)


def is_text_file(path: str | os.PathLike) -> bool:
    """True for raw text (collection.tsv / queries.tsv, or an ``irds:`` id) that needs an encoder first."""
    return is_irds_source(path) or detect_format(path) == "tsv"


def read_documents(source: str | os.PathLike, bad_lines: BadLines | None = None) -> Iterator[TextRecord]:
    """(id, text) of each document: a collection.tsv (as `read_texts`), or ``irds:<dataset id>``."""
    return read_irds(source, "docs", bad_lines) if is_irds_source(source) else read_texts(source, bad_lines)


def read_queries(source: str | os.PathLike, bad_lines: BadLines | None = None) -> Iterator[TextRecord]:
    """(id, text) of each query: a queries.tsv (as `read_texts`), or ``irds:<dataset id>``."""
    return read_irds(source, "queries", bad_lines) if is_irds_source(source) else read_texts(source, bad_lines)


def read_qrels(source: str | os.PathLike, bad_lines: BadLines | None = None) -> Iterator[Qrel]:
    """TREC qrels (`qid iteration docid relevance`) from a file, or ``irds:<dataset id>``."""
    return read_irds(source, "qrels", bad_lines) if is_irds_source(source) else read_qrels_file(source, bad_lines)


def _vector_format(path, format: str | None) -> str:
    format = format or detect_format(path)
    if format not in VECTOR_FORMATS:
        raise ParameterError(f"{os.fspath(path)}: cannot tell the vector format from the name; "
                             f"pass format= one of {VECTOR_FORMATS}")
    return format


def vector_parts(path: str | os.PathLike) -> list[Path]:
    """The files `read_vectors` reads for `path`: the file itself; the vector files of a
    directory (as `sparseir encode-ray` writes: part-00000.parquet, ...; hidden ones and
    others left out); or the files a glob pattern matches. Parts come in sorted order."""
    path = Path(path)
    if path.is_dir():
        parts = sorted(child for child in path.iterdir() if child.is_file() and not child.name.startswith(".")
                       and child.name.lower().endswith(_PART_SUFFIXES))
        if not parts:
            raise InputError(f"is a directory holding no vector files ({', '.join(_PART_SUFFIXES)})", path)
        return parts
    if not path.exists() and any(char in os.fspath(path) for char in "*?["):
        parts = sorted(Path(match) for match in glob.glob(os.fspath(path)) if Path(match).is_file())
        if not parts:
            raise InputError("no file matches this pattern", path)
        return parts
    return [path]


def read_vectors(path: str | os.PathLike, format: str | None = None, vocab: Vocabulary | str | None = "auto",
                 bad_lines: BadLines | None = None, workspace=None) -> SparseVectors:
    """Read sparse vectors from a file, format picked by extension unless given; or from the
    parts of one collection as one: a directory of them, or a glob pattern (`vector_parts`).

    vocab: ``"auto"`` (default; None too): the BERT uncased WordPiece vocabulary when every
    term of the file is in it, else an open one; ``"bert"`` (unknown terms are errors);
    ``"open"`` (terms are added as they appear); or a Vocabulary, e.g. ``index.vocab`` for
    queries. A vocabulary embedded in a Parquet file wins; .bin term ids beyond BERT's
    become terms named by their ids ("70000"). Parts are read like one file: ids unique
    across them, one vocabulary; they share one format (.bin, without ids, stands alone).
    An out-of-core `workspace` (``sparseir.workspace``) spools JSONL, Parquet and CIFF to its
    files instead of memory; .bin is read into memory. A CIFF file's impacts become the weights
    (``sparseir.formats.ciff``).
    """
    parts = vector_parts(path)
    formats = {_vector_format(part, format) for part in parts}
    if len(formats) > 1:
        raise ParameterError(f"{os.fspath(path)}: parts in several formats ({', '.join(sorted(formats))}); "
                             "keep one collection's parts in one format")
    format = formats.pop()
    check_vocab(vocab)  # before any reading, even where a Parquet file's own vocabulary wins
    if format == "jsonl":
        return read_jsonl(parts, vocab, bad_lines, workspace)
    if format == "parquet":
        return read_parquet(parts, vocab, workspace)
    if format == "ciff":
        if len(parts) > 1:
            raise ParameterError(f"{os.fspath(path)}: a CIFF file is a whole index; read one at a time")
        from .ciff import read_ciff

        return read_ciff(parts[0], vocab, workspace)
    if len(parts) > 1:
        raise ParameterError(f"{os.fspath(path)}: Seismic .bin files carry no ids, so their parts cannot be read "
                             "as one collection; convert them to .jsonl or .parquet")
    return read_seismic_bin(parts[0], vocab)


def write_vectors(vectors: SparseVectors, path: str | os.PathLike, format: str | None = None,
                  overwrite: bool = False) -> None:
    """Write vectors atomically (temp file, fsync, rename); .gz compresses."""
    format = _vector_format(path, format)
    if format == "ciff":
        raise ParameterError(f"{os.fspath(path)}: CIFF holds integer impacts, so writing it needs a declared "
                             "quantization: sparseir.formats.ciff.write_ciff(vectors, path, Quantization(scale=... | "
                             "bits=...)), Index.to_ciff or sparseir export-ciff")
    writer = {"jsonl": write_jsonl, "bin": write_seismic_bin, "parquet": write_parquet}[format]
    writer(vectors, path, overwrite=overwrite)

