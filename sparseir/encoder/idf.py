"""Inference-free queries: each query token weighs its IDF in the collection; no model runs.

The IDF table is computed from the encoded collection (a term's document frequency is
the number of document vectors containing it) or read from a file: UTF-8 text, optionally
gzip-compressed, either a JSON object {term: idf} (``.json``, the ``idf.json`` that
OpenSearch's inference-free models ship) or one ``term<TAB>idf`` per line, terms spelled as in the
tokenizer's vocabulary, idf a finite non-negative number; terms not listed weigh 0 (a
query made only of them matches nothing).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from ..errors import InputError, ParameterError
from ..vectors import SparseVectors
from ._base import EncoderOptions, TermWeighter, load_tokenizer, special_token_ids, tokenizer_vocabulary
from .pipeline import Encoder


def bm25_idf(document_frequency: np.ndarray, n_docs: int) -> np.ndarray:
    """ln(1 + (N - df + 0.5) / (df + 0.5)) (always positive), 0 for terms no document has."""
    df = document_frequency.astype(np.float64)
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
    return np.where(document_frequency > 0, idf, 0.0).astype(np.float32)


class IdfWeighter(TermWeighter):
    """Query side: every distinct token of the query weighs its IDF, once."""

    def __init__(self, idf: np.ndarray, tokenizer, vocab):
        if len(idf) != len(vocab):
            raise ParameterError(f"the IDF table has {len(idf)} entries but the vocabulary {len(vocab)} terms")
        self.idf = np.ascontiguousarray(idf, dtype=np.float32)
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.special_ids = special_token_ids(tokenizer)

    def term_weights(self, token_ids: list[np.ndarray]) -> np.ndarray:
        rows = np.repeat(np.arange(len(token_ids)), [len(ids) for ids in token_ids])
        terms = np.concatenate(token_ids)
        weights = np.zeros((len(token_ids), len(self.vocab)), dtype=np.float32)
        weights[rows, terms] = self.idf[terms]
        weights[:, self.special_ids] = 0
        return weights


class IdfQueryEncoder(Encoder):
    """Queries weighted by IDF alone (no model at query time); documents by an optional model.

    tokenizer: a model directory ("default": the embedded model) or a loaded tokenizer;
    queries are tokenized exactly as the documents were.
    """

    def __init__(self, idf: np.ndarray, tokenizer="default", documents: TermWeighter | None = None,
                 options: EncoderOptions | None = None):
        tokenizer, vocab = _tokenizer_and_vocab(tokenizer, documents)
        super().__init__(documents, IdfWeighter(idf, tokenizer, vocab), options)

    @property
    def idf(self) -> np.ndarray:
        return self.queries.idf

    @classmethod
    def from_collection(cls, docs: SparseVectors, tokenizer="default", documents: TermWeighter | None = None,
                        options: EncoderOptions | None = None) -> "IdfQueryEncoder":
        """IDF from the documents' vectors, which must use the tokenizer's vocabulary."""
        encoder = cls.from_document_frequency(np.bincount(docs.terms, minlength=len(docs.vocab)), len(docs),
                                              tokenizer, documents, options)
        if docs.vocab != encoder.vocab:
            raise ParameterError(f"tokenizer/vocab mismatch: the documents use {docs.vocab!r} but the tokenizer "
                                 f"{encoder.vocab!r}")
        return encoder

    @classmethod
    def from_document_frequency(cls, document_frequency: np.ndarray, n_docs: int, tokenizer="default",
                                documents: TermWeighter | None = None,
                                options: EncoderOptions | None = None) -> "IdfQueryEncoder":
        """IDF from per-term document counts (e.g. an index's posting-list lengths)."""
        if n_docs < 1:
            raise ParameterError("cannot compute IDF from zero documents")
        return cls(bm25_idf(np.asarray(document_frequency), n_docs), tokenizer, documents, options)

    @classmethod
    def load(cls, path: str | os.PathLike, tokenizer="default", documents: TermWeighter | None = None,
             options: EncoderOptions | None = None) -> "IdfQueryEncoder":
        """Read a ``term<TAB>idf`` file, or a ``.json`` object {term: idf} (see the module docstring)."""
        tokenizer, vocab = _tokenizer_and_vocab(tokenizer, documents)
        idf = np.zeros(len(vocab), dtype=np.float32)

        def set_idf(term: str, value) -> None:
            term_id = vocab.get(term)
            if term_id is None:
                raise ParameterError(f"term {term!r} is not in the tokenizer's vocabulary")
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ParameterError(f"idf of {term!r} is not a number: {value!r}") from None
            if not math.isfinite(value) or value < 0:
                raise ParameterError(f"idf of {term!r} must be finite and non-negative, got {value!r}")
            idf[term_id] = value

        if os.fspath(path).endswith((".json", ".json.gz")):
            for term, value in _read_json_table(path).items():
                try:
                    set_idf(term, value)
                except ParameterError as e:
                    raise InputError(str(e), path) from None
        else:
            _read_tsv_table(path, set_idf)
        return cls(idf, tokenizer, documents, options)

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write the table as ``term<TAB>idf`` lines (terms with idf > 0, in vocabulary order)."""
        from ..fileio import atomic_file

        lines = (f"{self.vocab.term(int(term_id))}\t{float(self.idf[term_id]):.7g}\n"
                 for term_id in np.flatnonzero(self.idf > 0))
        with atomic_file(path, mode="wb", overwrite=overwrite) as f:
            f.write("".join(lines).encode("utf-8"))


def _read_json_table(path: str | os.PathLike) -> dict:
    from ..fileio import open_binary

    try:
        with open_binary(path) as f:
            table = json.load(f)
    except UnicodeDecodeError as e:
        raise InputError(f"invalid UTF-8 at byte {e.start}", path) from None
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON: {e.msg}", path, e.lineno) from None
    if not isinstance(table, dict) or not table:
        raise InputError("expected a non-empty JSON object {term: idf}", path)
    return table


def _read_tsv_table(path: str | os.PathLike, set_idf) -> None:
    from ..formats.lines import parse_lines

    def parse(line: str) -> str:
        fields = line.split("\t")
        if len(fields) != 2:
            raise ParameterError(f"expected 2 tab-separated fields (term, idf), got {len(fields)}")
        set_idf(fields[0], fields[1])
        return fields[0]

    for _ in parse_lines(path, parse, unique_key=lambda term: term, what="term<TAB>idf line"):
        pass


def _tokenizer_and_vocab(tokenizer, documents: TermWeighter | None):
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = load_tokenizer(tokenizer)
    if documents is not None:
        return tokenizer, documents.vocab
    name = os.path.basename(str(getattr(tokenizer, "name_or_path", "")).rstrip("/")) or "tokenizer"
    return tokenizer, tokenizer_vocabulary(tokenizer, name)
