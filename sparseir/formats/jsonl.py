"""Anserini JsonVectorCollection: one `{"id", "contents", "vector": {term: weight}}` per line."""

from __future__ import annotations

import contextlib
import json
import math
import os
from typing import Callable, Iterable, Iterator

from ..errors import ParameterError
from ..fileio import atomic_file
from ..vectors import SparseVectors, VectorBuilder, Vocabulary
from .lines import BadLines, parse_lines
from .vocabs import is_auto, resolve_vocab, unknown_term_hint


def _parse(line: str) -> tuple[str, dict, str]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise ParameterError(f"invalid JSON: {e.msg} at column {e.colno}") from None
    if not isinstance(record, dict):
        raise ParameterError("expected a JSON object")
    if "id" not in record:
        raise ParameterError('missing field "id"')
    vector = record.get("vector")
    if not isinstance(vector, dict):
        raise ParameterError('missing or non-object field "vector"')
    for term, weight in vector.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ParameterError(f"weight of {term!r} is not a number: {weight!r}")
        if not math.isfinite(weight):
            raise ParameterError(f"weight of {term!r} is not finite: {weight!r}")
        if weight < 0:
            raise ParameterError(f"weight of {term!r} is negative: {weight!r}")
    return str(record["id"]), vector, record.get("contents", "")


def read_jsonl(path: str | os.PathLike, vocab: Vocabulary | str | None = "auto",
               bad_lines: BadLines | None = None) -> SparseVectors:
    builder = VectorBuilder(resolve_vocab(vocab), open_on_unknown_term=is_auto(vocab),
                            unknown_term_hint=unknown_term_hint(vocab))

    seen: set[str] = set()

    def parse_and_add(line: str) -> str:
        vector_id, vector, _ = _parse(line)
        # Checked before adding: a skipped duplicate (skip_bad_lines) must not be kept.
        if vector_id in seen:
            raise ParameterError(f"duplicate id {vector_id!r}")
        builder.add(vector_id, vector)
        seen.add(vector_id)
        return vector_id

    for _ in parse_lines(path, parse_and_add, bad_lines, what="JSON vector line"):
        pass
    return builder.build()


@contextlib.contextmanager
def jsonl_writer(path: str | os.PathLike, vocab: Vocabulary, overwrite: bool = False) -> Iterator[Callable]:
    """Yield write(vectors, texts=None), appending records to one JSONL file written atomically."""
    with atomic_file(path, overwrite=overwrite) as f:
        def write(vectors: SparseVectors, texts: Iterable[str] | None = None) -> None:
            texts = iter(texts) if texts is not None else None
            for vector in vectors:
                record = {"id": vector.id, "contents": next(texts) if texts is not None else "",
                          "vector": vector.as_dict(vocab)}
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        yield write


def write_jsonl(vectors: SparseVectors, path: str | os.PathLike, overwrite: bool = False) -> None:
    with jsonl_writer(path, vectors.vocab, overwrite) as write:
        write(vectors)
